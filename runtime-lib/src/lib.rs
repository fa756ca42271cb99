//! casulo: an OCI container runtime as a library.
pub mod bundle;
pub mod cgroups;
pub mod error;
pub mod hooks;
pub mod namespaces;
pub mod process;
pub mod rootfs;
pub mod security;
pub mod state;
pub mod template;
pub(crate) mod sys;
pub mod tty;

pub use error::{Error, ErrorKind, Result, Step};
