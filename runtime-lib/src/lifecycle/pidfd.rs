//! Waiting for and killing processes that may not be our children, through pidfds (a pid
//! alone may be reused once the process is gone), and handing a pidfd to the caller
//! (`--pidfd-socket`).

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use crate::process::{sys, ProcessError};

/// SIGKILL our child `pid` (through a pidfd: never another process that reused the pid) and
/// reap it.
pub(crate) fn kill_and_reap(pid: i32) {
    if let Ok(fd) = crate::sys::pidfd_open(pid) {
        let _ = crate::sys::pidfd_send_signal(fd.as_fd(), libc::SIGKILL);
        let _ = waitpid(Pid::from_raw(pid), None);
    }
}

/// Wait until the process behind `pidfd` exits, at most `timeout`.
pub(crate) fn wait_pidfd(pidfd: &OwnedFd, timeout: Duration) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms =
            PollTimeout::try_from(left.as_millis().min(60_000) as i32).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, ms) {
            Ok(n) if n > 0 => return true,
            Ok(_) if left.is_zero() => return false,
            Err(nix::Error::EINTR) | Ok(_) => continue,
            Err(_) => return false,
        }
    }
}

/// Which process a [`PidfdSocket`] is sent the pidfd of. The message's bytes say it, in the
/// reference runtime's words, which its receivers take as the received fd's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PidfdOf {
    /// The container's init (`create`, `run`).
    Init,
    /// A process started by `exec`.
    Exec,
}

impl PidfdOf {
    fn name(self) -> &'static [u8] {
        match self {
            PidfdOf::Init => b"standard",
            PidfdOf::Exec => b"setns",
        }
    }
}

/// The caller's `--pidfd-socket`, a unix stream socket that receives a pidfd of the container's
/// init or of an exec'd process (SCM_RIGHTS), so that the caller can signal and wait for it
/// without the races of a pid. It is connected before anything is made, so that a bad path
/// fails with nothing to undo; the runtime sends the pidfd once the process exists.
#[derive(Debug)]
pub(crate) struct PidfdSocket {
    path: PathBuf,
    conn: UnixStream,
}

impl PidfdSocket {
    /// Connect to `path`, if given.
    pub(crate) fn connect(path: Option<&Path>) -> Result<Option<PidfdSocket>, ProcessError> {
        let Some(path) = path else {
            return Ok(None);
        };
        let conn = crate::plan::connect_unix(path, "pidfd socket")?;
        Ok(Some(PidfdSocket {
            path: path.to_path_buf(),
            conn,
        }))
    }

    /// The connection's fd, for a forked child to close (it never holds the connection).
    pub(crate) fn as_raw(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.conn)
    }

    /// Send a pidfd of `pid` (a child of this process, so that its pid cannot have been reused).
    pub(crate) fn send(&self, pid: i32, of: PidfdOf) -> Result<(), ProcessError> {
        let pidfd = crate::sys::pidfd_open(pid).map_err(sys(format!("pidfd_open {pid}")))?;
        crate::sys::fdpass::send_with_fd(self.conn.as_fd(), of.name(), pidfd.as_fd()).map_err(sys(
            format!(
                "pidfd socket {}: send the pidfd of pid {pid}",
                self.path.display()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_path_and_a_file_that_is_no_socket_are_named() {
        let dir = std::env::temp_dir().join(format!("casulo-pidfd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.sock");
        let e = PidfdSocket::connect(Some(&missing))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.sock") && e.contains("connect"), "{e}");
        let file = dir.join("file");
        std::fs::write(&file, b"").unwrap();
        let e = PidfdSocket::connect(Some(&file)).unwrap_err().to_string();
        assert!(e.contains("not a socket"), "{e}");
        assert!(PidfdSocket::connect(None).unwrap().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_pidfd_arrives_with_its_name_and_a_closed_peer_is_an_error() {
        let dir = std::env::temp_dir().join(format!("casulo-pidfd-send-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let sock = PidfdSocket::connect(Some(&path)).unwrap().unwrap();
        let (peer, _) = listener.accept().unwrap();
        let me = std::process::id() as i32;
        sock.send(me, PidfdOf::Exec).unwrap();
        let (fd, name) = crate::sys::fdpass::recv_one_fd(peer.as_fd(), 64).unwrap();
        assert_eq!(name, b"setns");
        // A pidfd of this process: signal 0 through it succeeds.
        crate::sys::pidfd_send_signal(fd.as_fd(), 0).unwrap();
        drop(peer);
        let e = sock.send(me, PidfdOf::Init).unwrap_err().to_string();
        assert!(e.contains("s.sock") && e.contains("send the pidfd"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
