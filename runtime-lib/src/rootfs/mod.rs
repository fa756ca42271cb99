//! The container's root filesystem.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("{0}")]
    Invalid(String),
}
