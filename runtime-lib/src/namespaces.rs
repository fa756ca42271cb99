//! Namespaces.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error("{0}")]
    Invalid(String),
}
