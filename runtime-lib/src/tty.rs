//! Terminal: a pty created inside the container, its master handed to the console socket.
use std::os::fd::{BorrowedFd, OwnedFd};

#[derive(Debug, thiserror::Error)]
pub enum TtyError {
    #[error("console: {step}: {source}")]
    Sys { step: &'static str, source: nix::Error },
}

/// Inside the container, after pivot_root: open a pty through `/dev/ptmx`, bind its slave onto
/// `/dev/console`, send the master over `socket` (SCM_RIGHTS), and return the slave.
pub fn setup_console(socket: BorrowedFd<'_>) -> Result<OwnedFd, TtyError> {
    let _ = socket;
    unimplemented!("tty")
}

/// Make `slave` the controlling terminal of this session leader and its stdin, stdout, stderr.
pub fn set_controlling(slave: OwnedFd) -> Result<(), TtyError> {
    let _ = slave;
    unimplemented!("tty")
}
