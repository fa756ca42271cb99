//! Terminal: a pty created inside the container, its master handed to the console socket.
//!
//! Inside the container (after `pivot_root`) [`setup_console`] opens a pty through `/dev/ptmx`,
//! bind-mounts the slave onto `/dev/console`, sends the master over the console socket with
//! SCM_RIGHTS (the data bytes are [`MASTER_MESSAGE`], as the reference runtime sends) and
//! returns the slave, which [`set_controlling`] then makes the controlling terminal and stdio.
//!
//! On the runtime side, for a foreground `run` with a terminal and no console socket of the
//! caller's, [`ConsoleListener`] receives the master and [`proxy`] connects it to the caller's
//! own terminal.
//!
//! The in-container steps take a directory fd for `/dev` ([`setup_console_at`], [`open_pty`],
//! [`mount_console`]) so that they can be exercised on any devpts, and never resolve a path
//! outside that directory.
//!
//! `console.rs` holds the steps inside the container, `proxy.rs` the runtime's side.

mod console;
mod proxy;

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;

pub use console::*;
pub use proxy::*;

/// The bytes sent along with the master on the console socket. The reference runtime sends the
/// path it opened the master through (its file name), which is this; clients use it only to name
/// the received file.
pub const MASTER_MESSAGE: &[u8] = b"/dev/ptmx";

/// Longest pty name accepted from the console socket.
const MAX_NAME: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum TtyError {
    #[error("console: {step}: {source}")]
    Sys { step: &'static str, source: Errno },
    #[error("console: {step} {path}: {source}")]
    Path {
        step: &'static str,
        path: String,
        source: Errno,
    },
    #[error("console: {path} is a symlink: refusing to mount the console over it")]
    ConsoleIsSymlink { path: String },
    #[error("console: {path} is a {kind}, not a file or device: refusing to mount over it")]
    ConsoleNotFile { path: String, kind: &'static str },
    #[error("console: receive master: {0}")]
    BadMessage(String),
    #[error("console: {step}: timed out after {after:?}")]
    Timeout { step: &'static str, after: Duration },
    #[error("console: {step} {path}: {source}")]
    Io {
        step: &'static str,
        path: String,
        source: io::Error,
    },
}

fn sys(step: &'static str) -> impl FnOnce(Errno) -> TtyError {
    move |source| TtyError::Sys { step, source }
}

fn at_path<'p>(step: &'static str, path: &'p str) -> impl FnOnce(Errno) -> TtyError + 'p {
    move |source| TtyError::Path {
        step,
        path: path.to_string(),
        source,
    }
}

/// Send `fd` over the unix socket `socket` with `data` as the message bytes (non-empty, so that
/// the fd also travels on a stream socket).
pub fn send_fd(socket: BorrowedFd<'_>, data: &[u8], fd: BorrowedFd<'_>) -> Result<(), TtyError> {
    if data.is_empty() || data.len() > MAX_NAME {
        return Err(TtyError::Sys {
            step: "send master: message length",
            source: Errno::EINVAL,
        });
    }
    crate::sys::fdpass::send_with_fd(socket, data, fd)
        .map_err(sys("send master over the console socket"))
}

/// Receive one fd and the message bytes sent with it. The fd is close-on-exec.
pub fn recv_fd(socket: BorrowedFd<'_>) -> Result<(OwnedFd, Vec<u8>), TtyError> {
    use crate::sys::fdpass::RecvFdError;
    crate::sys::fdpass::recv_one_fd(socket, MAX_NAME).map_err(|e| match e {
        RecvFdError::Recv(e) => sys("receive master from the console socket")(e),
        RecvFdError::ControlMessages(e) => sys("receive master: control messages")(e),
        other => TtyError::BadMessage(other.to_string()),
    })
}
