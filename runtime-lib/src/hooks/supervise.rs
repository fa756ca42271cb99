//! Watching a running hook: its state on stdin, the tail of its stderr, its exit, its timeout.
//! Waiting uses a pidfd and `poll`, so this works the same in the runtime and in a freshly
//! forked, single-threaded child.

use std::os::fd::{AsFd, OwnedFd};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};

use super::spawn::HookChild;
use super::STDERR_TAIL;

/// How often to check on a hook when the kernel has no pidfd (before Linux 5.3).
const FALLBACK_TICK: Duration = Duration::from_millis(10);

/// Kills and reaps the hook when dropped while still armed.
pub(super) struct ChildGuard(pub Option<HookChild>);

impl ChildGuard {
    pub fn child(&mut self) -> &mut HookChild {
        self.0.as_mut().expect("guard is armed")
    }
    pub fn release(&mut self) {
        self.0 = None;
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            // The child is ours and not yet reaped, so its pid cannot have been reused.
            child.kill_and_reap();
        }
    }
}

pub(super) enum Supervised {
    Exited(ExitStatus, Tail),
    TimedOut(Tail),
}

/// Feed stdin, collect the stderr tail and wait for the exit, all within the timeout.
pub(super) fn supervise(
    child: &mut HookChild,
    input: &[u8],
    timeout: Option<i64>,
) -> Result<Supervised, (&'static str, Errno)> {
    let start = Instant::now();
    // A deadline past what the clock can represent is no deadline at all.
    let deadline =
        timeout.and_then(|secs| start.checked_add(Duration::from_secs(secs.unsigned_abs())));

    let mut stdin: Option<OwnedFd> = child.stdin.take();
    let mut stderr: Option<OwnedFd> = child.stderr.take();
    for fd in stdin.iter().chain(stderr.iter()) {
        set_nonblocking(fd).map_err(|e| ("set pipe non-blocking", e))?;
    }
    if input.is_empty() {
        stdin = None;
    }
    let pidfd = pidfd_open(child.pid).map_err(|e| ("pidfd_open", e))?;

    let mut written = 0usize;
    let mut tail = Tail::default();
    loop {
        if let Some(status) = child.try_wait().map_err(|e| ("wait", e))? {
            if let Some(fd) = &stderr {
                tail.drain(fd);
            }
            return Ok(Supervised::Exited(status, tail));
        }

        let mut wait = match deadline {
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    if let Some(fd) = &stderr {
                        tail.drain(fd);
                    }
                    return Ok(Supervised::TimedOut(tail));
                }
                Some(d - now)
            }
            None => None,
        };
        if pidfd.is_none() {
            wait = Some(wait.map_or(FALLBACK_TICK, |w| w.min(FALLBACK_TICK)));
        }
        let poll_timeout = match wait {
            // Round up so that a sub-millisecond rest does not spin.
            Some(w) => {
                PollTimeout::try_from(w.as_millis().saturating_add(1).min(i32::MAX as u128) as i32)
                    .unwrap_or(PollTimeout::MAX)
            }
            None => PollTimeout::NONE,
        };

        // On the stack: this runs in forked children, which must not allocate.
        let mut fds = arrayvec::ArrayVec::<PollFd, 3>::new();
        let mut idx_stdin = None;
        let mut idx_stderr = None;
        if let Some(fd) = &pidfd {
            fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
        }
        if let Some(fd) = &stdin {
            idx_stdin = Some(fds.len());
            fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLOUT));
        }
        if let Some(fd) = &stderr {
            idx_stderr = Some(fds.len());
            fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, poll_timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(("poll", e)),
        }
        let ready = |i: Option<usize>| {
            i.and_then(|i| fds[i].revents())
                .is_some_and(|r| !r.is_empty())
        };
        let stdin_ready = ready(idx_stdin);
        let stderr_ready = ready(idx_stderr);
        drop(fds);

        if stdin_ready {
            if let Some(fd) = &stdin {
                match write_no_sigpipe(fd, &input[written..]) {
                    Ok(n) => written += n,
                    Err(Errno::EAGAIN) | Err(Errno::EINTR) => {}
                    // The hook closed its stdin without reading it all: that is its business.
                    Err(Errno::EPIPE) => written = input.len(),
                    Err(e) => return Err(("write state to stdin", e)),
                }
                if written >= input.len() {
                    stdin = None; // close: the hook sees EOF
                }
            }
        }
        if stderr_ready {
            if let Some(fd) = &stderr {
                if tail.read_some(fd).map_err(|e| ("read stderr", e))? {
                    stderr = None;
                }
            }
        }
    }
}

fn set_nonblocking(fd: &OwnedFd) -> Result<(), Errno> {
    let flags = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// A pidfd for our own unreaped child, or `None` when the kernel predates pidfds.
fn pidfd_open(pid: i32) -> Result<Option<OwnedFd>, Errno> {
    match crate::sys::pidfd_open(pid) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::ENOSYS) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Write with SIGPIPE blocked in this thread, so that a hook that closed its stdin yields EPIPE
/// instead of killing a process that does not ignore SIGPIPE. A SIGPIPE raised by this write is
/// consumed; one that was already pending is left alone.
fn write_no_sigpipe(fd: &OwnedFd, buf: &[u8]) -> Result<usize, Errno> {
    let mut pipe_set = SigSet::empty();
    pipe_set.add(Signal::SIGPIPE);
    let old = pipe_set.thread_swap_mask(SigmaskHow::SIG_BLOCK)?;
    let was_pending = sigpipe_pending();
    let result = nix::unistd::write(fd, buf);
    if result == Err(Errno::EPIPE) && !was_pending && sigpipe_pending() {
        // Returns at once: the signal is pending and blocked.
        let _ = pipe_set.wait();
    }
    let _ = old.thread_set_mask();
    result
}

fn sigpipe_pending() -> bool {
    crate::sys::signal_pending(libc::SIGPIPE)
}

/// The last [`STDERR_TAIL`] bytes of a stream, in a fixed buffer.
pub(crate) struct Tail {
    len: usize,
    buf: [u8; STDERR_TAIL],
}

impl Default for Tail {
    fn default() -> Self {
        Tail {
            len: 0,
            buf: [0; STDERR_TAIL],
        }
    }
}

impl Tail {
    pub fn push(&mut self, data: &[u8]) {
        let data = &data[data.len().saturating_sub(STDERR_TAIL)..];
        let excess = (self.len + data.len()).saturating_sub(STDERR_TAIL);
        if excess > 0 {
            self.buf.copy_within(excess..self.len, 0);
            self.len -= excess;
        }
        self.buf[self.len..self.len + data.len()].copy_from_slice(data);
        self.len += data.len();
    }

    /// Read what is available now; `Ok(true)` at end of stream.
    fn read_some(&mut self, fd: &OwnedFd) -> Result<bool, Errno> {
        let mut chunk = [0u8; 4096];
        loop {
            match nix::unistd::read(fd, &mut chunk) {
                Ok(0) => return Ok(true),
                Ok(n) => self.push(&chunk[..n]),
                Err(Errno::EAGAIN) => return Ok(false),
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// After the hook exited: take what is buffered without waiting for EOF (a background
    /// process the hook left behind may hold the pipe open).
    fn drain(&mut self, fd: &OwnedFd) {
        let _ = self.read_some(fd);
    }

    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}
