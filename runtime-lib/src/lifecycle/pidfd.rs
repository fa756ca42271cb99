//! Waiting for and killing processes that may not be our children, through pidfds (a pid
//! alone may be reused once the process is gone).

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::sys::wait::waitpid;
use nix::unistd::Pid;

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
