//! The exec fifo, the barrier between create and start. The init opens it for write, which
//! blocks until `start` opens it for read; the init then writes `0`, runs the startContainer
//! hooks and execs the user program. The write end is close-on-exec, so `start` reads EOF once
//! the exec happened or the init gave up; a failure after the release is the container
//! process's own (on its stderr, exit status 255, as with runc), not a failed start.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::fcntl::{open, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::stat::Mode;

use crate::process::{sys, ProcessError};

/// In the runtime, before the fork: an O_PATH fd of the fifo for the init, which reopens it
/// for write through procfs (the state directory may be out of its reach).
pub fn open_path(path: &Path) -> Result<OwnedFd, ProcessError> {
    open(path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(sys(format!("open {}", path.display())))
}

/// In the init: block until `start` opens the fifo, through `proc` (an fd of the host's
/// /proc opened before pivot_root, so that this works whatever the container mounts).
pub fn wait_for_start(proc: BorrowedFd<'_>, fifo: BorrowedFd<'_>) -> nix::Result<OwnedFd> {
    // On the stack: the init must not allocate.
    let path = super::text::Text::<32>::of(format_args!("self/fd/{}", fifo.as_raw_fd()));
    loop {
        match nix::fcntl::openat(
            proc,
            path.as_str(),
            OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Err(nix::Error::EINTR) => continue,
            r => return r,
        }
    }
}

/// In `start`: release the init waiting on `path` and wait until it has exec'd the user
/// program or given up (the fifo closes either way). `pidfd` is the init's, opened before the release: once released, the
/// program may run, exit and be reaped (by a subreaper such as containerd's shim) before this
/// looks at it, which must not turn a successful start into an error. If the init dies before
/// opening the fifo, this fails instead of blocking forever.
pub fn release(path: &Path, pidfd: BorrowedFd<'_>) -> Result<(), ProcessError> {
    let fifo = open(
        path,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys(format!("open {}", path.display())))?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let mut fds = [
            PollFd::new(fifo.as_fd(), PollFlags::POLLIN),
            PollFd::new(pidfd, PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(sys("poll exec fifo")(e)),
            Ok(_) => {}
        }
        let fifo_ev = fds[0].revents().unwrap_or(PollFlags::empty());
        let died = fds[1].revents().is_some_and(|r| !r.is_empty());
        if fifo_ev.intersects(PollFlags::POLLIN | PollFlags::POLLHUP) {
            match nix::unistd::read(fifo.as_fd(), &mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(nix::Error::EAGAIN) | Err(nix::Error::EINTR) => {}
                Err(e) => return Err(sys("read exec fifo")(e)),
            }
            continue;
        }
        if died {
            // Drain what the init may have written just before dying.
            if let Ok(dup) = fifo.try_clone() {
                let mut f = std::fs::File::from(dup);
                let _ = f.read_to_end(&mut got);
            }
            if got.is_empty() {
                return Err(ProcessError::Init(
                    "the container's init exited before start".into(),
                ));
            }
            break;
        }
    }
    // The init writes `0` once released; what fails after that is the process's own failure,
    // reported on its stderr (see the init), not a failed start.
    match got.first() {
        Some(b'0') => Ok(()),
        _ => Err(ProcessError::Init(
            "the container's init exited before start".into(),
        )),
    }
}
