//! Waiting for and killing processes that may not be our children, through pidfds (a pid
//! alone may be reused once the process is gone).

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::sys::wait::waitpid;
use nix::unistd::Pid;

/// SIGKILL `pid` and wait until it is gone (reaping it if it is our child).
pub(crate) fn kill_and_wait(pid: i32, not_our_child: bool) {
    let pidfd = crate::sys::pidfd_open(pid).ok();
    match &pidfd {
        Some(fd) => {
            let _ = crate::sys::pidfd_send_signal(fd.as_fd(), libc::SIGKILL);
        }
        None => return,
    }
    if !not_our_child {
        let _ = waitpid(Pid::from_raw(pid), None);
        return;
    }
    if let Some(fd) = pidfd {
        wait_pidfd(&fd, Duration::from_secs(10));
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
