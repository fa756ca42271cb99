//! casulo: an OCI container runtime as a library.
//!
//! [`ContainerBuilder`] turns an OCI bundle into a created container; [`Container`] starts,
//! signals, reports on and deletes it. Every error names the container, the lifecycle step and
//! the cause.
//!
//! ```no_run
//! use casulo::{Container, ContainerBuilder};
//!
//! let c = ContainerBuilder::new("web", "/srv/bundles/web").root("/run/casulo").create()?;
//! c.start()?;
//! println!("{:?}", c.state()?.status);
//! c.kill(libc::SIGTERM, false)?;
//! Container::load("/run/casulo", "web")?.delete(true)?;
//! # Ok::<(), casulo::Error>(())
//! ```
pub mod bundle;
pub mod cgroups;
mod container;
pub mod error;
mod events;
pub mod exe;
pub mod features;
pub mod hooks;
pub mod lifecycle;
pub mod namespaces;
pub mod netdev;
pub mod plan;
pub mod process;
pub mod rootfs;
pub mod security;
pub mod state;
pub(crate) mod sys;
pub mod template;
pub mod tty;

pub use cgroups::stats::Stats;
pub use container::{default_root, list, Container, ContainerBuilder, ExecOptions};
pub use error::{Error, ErrorKind, Result, Step};
pub use events::{Event, EventKind};
pub use exe::protect_runtime_binary;
pub use state::{State, Status};
