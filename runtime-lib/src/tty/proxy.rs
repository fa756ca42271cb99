//! The runtime's side of a terminal: receive the pty master on a console socket of its own
//! and connect it to the caller's terminal.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};

use super::{recv_fd, sys, TtyError};
use crate::sys::tty::{get_winsize, set_winsize};

/// A unix socket, in a private (0700) temporary directory, on which the container's init sends
/// the pty master. Removes the socket and the directory when dropped.
#[derive(Debug)]
pub struct ConsoleListener {
    listener: UnixListener,
    dir: PathBuf,
    path: PathBuf,
}

impl ConsoleListener {
    /// Bind in a new private directory under the system's temporary directory.
    pub fn new() -> Result<ConsoleListener, TtyError> {
        ConsoleListener::new_in(&std::env::temp_dir())
    }

    /// Bind in a new private directory under `parent`.
    pub fn new_in(parent: &Path) -> Result<ConsoleListener, TtyError> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let mut attempt = 0;
        let dir = loop {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or_default();
            let candidate = parent.join(format!(
                "casulo-console-{}-{}-{}",
                std::process::id(),
                SEQ.fetch_add(1, Ordering::Relaxed),
                nanos
            ));
            match std::fs::DirBuilder::new().mode(0o700).create(&candidate) {
                Ok(()) => break candidate,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 16 => {
                    attempt += 1;
                }
                Err(e) => {
                    return Err(TtyError::Io {
                        step: "create console socket directory",
                        path: candidate.display().to_string(),
                        source: e,
                    })
                }
            }
        };
        let path = dir.join("console.sock");
        let listener = match UnixListener::bind(&path) {
            Ok(l) => l,
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                return Err(TtyError::Io {
                    step: "bind console socket",
                    path: path.display().to_string(),
                    source: e,
                });
            }
        };
        Ok(ConsoleListener {
            listener,
            dir,
            path,
        })
    }

    /// The socket's path, to pass as the console socket.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Wait up to `timeout` for a connection that brings the pty master.
    pub fn recv_master(&self, timeout: Duration) -> Result<OwnedFd, TtyError> {
        self.recv_master_named(timeout).map(|(fd, _)| fd)
    }

    /// [`recv_master`](Self::recv_master), also returning the pty name that came with it.
    pub fn recv_master_named(&self, timeout: Duration) -> Result<(OwnedFd, String), TtyError> {
        let deadline = Instant::now() + timeout;
        wait_readable(
            self.listener.as_fd(),
            deadline,
            "wait for the console connection",
            timeout,
        )?;
        let (conn, _) = self.listener.accept().map_err(|e| TtyError::Io {
            step: "accept on console socket",
            path: self.path.display().to_string(),
            source: e,
        })?;
        wait_readable(conn.as_fd(), deadline, "wait for the pty master", timeout)?;
        let (fd, name) = recv_fd(conn.as_fd())?;
        Ok((fd, String::from_utf8_lossy(&name).into_owned()))
    }
}

impl Drop for ConsoleListener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn wait_readable(
    fd: BorrowedFd<'_>,
    deadline: Instant,
    step: &'static str,
    timeout: Duration,
) -> Result<(), TtyError> {
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(TtyError::Timeout {
                step,
                after: timeout,
            });
        }
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        match poll(&mut fds, millis(deadline - now)) {
            Ok(0) | Err(Errno::EINTR) => continue,
            Ok(_) => return Ok(()),
            Err(e) => return Err(sys("poll console socket")(e)),
        }
    }
}

fn millis(d: Duration) -> PollTimeout {
    let ms = d.as_millis().saturating_add(1).min(i32::MAX as u128) as i32;
    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
}

/// The terminal put in raw mode; its previous settings come back on drop.
pub struct RawMode<'fd> {
    fd: BorrowedFd<'fd>,
    saved: Termios,
}

impl<'fd> RawMode<'fd> {
    /// Put `fd` in raw mode if it is a terminal; `Ok(None)` if it is not one.
    pub fn enter(fd: BorrowedFd<'fd>) -> Result<Option<RawMode<'fd>>, TtyError> {
        if !nix::unistd::isatty(fd).unwrap_or(false) {
            return Ok(None);
        }
        let saved = tcgetattr(fd).map_err(sys("read terminal settings"))?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(fd, SetArg::TCSANOW, &raw).map_err(sys("set terminal raw mode"))?;
        Ok(Some(RawMode { fd, saved }))
    }
}

impl Drop for RawMode<'_> {
    fn drop(&mut self) {
        let _ = tcsetattr(self.fd, SetArg::TCSANOW, &self.saved);
    }
}

/// Connect the pty `master` to the caller's terminal until the container side hangs up:
/// stdin (in raw mode while this runs, if it is a terminal) goes to the master, the master's
/// output to stdout; the window size is copied at start and on every SIGWINCH.
///
/// SIGWINCH is blocked in the calling thread and read through a signalfd while this runs (its
/// previous mask is restored on return); in a multi-threaded program other threads should block
/// it too, or a resize may be delivered to them instead.
pub fn proxy(master: OwnedFd) -> Result<(), TtyError> {
    let stdin = io::stdin();
    let stdout = io::stdout();
    let input = stdin.as_fd();
    let _raw = RawMode::enter(input)?;
    let is_tty = nix::unistd::isatty(input).unwrap_or(false);
    proxy_fds(
        master,
        Some(input),
        stdout.as_fd(),
        if is_tty { Some(input) } else { None },
    )
}

/// `proxy` with explicit ends: `input` (if any) is copied to the master, the master's output
/// to `output`, and the window size follows the terminal `winsize_from` (if any).
pub fn proxy_fds(
    master: OwnedFd,
    input: Option<BorrowedFd<'_>>,
    output: BorrowedFd<'_>,
    winsize_from: Option<BorrowedFd<'_>>,
) -> Result<(), TtyError> {
    let flags = OFlag::from_bits_retain(
        fcntl(&master, FcntlArg::F_GETFL).map_err(sys("read pty master flags"))?,
    );
    fcntl(&master, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))
        .map_err(sys("make the pty master non-blocking"))?;

    let winch = match winsize_from {
        Some(term) => {
            copy_window_size(term, master.as_fd())?;
            Some(WinchWatch::new()?)
        }
        None => None,
    };

    let mut input = input;
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let mut fds = Vec::with_capacity(3);
        let mut master_events = PollFlags::POLLIN;
        if !pending.is_empty() {
            master_events |= PollFlags::POLLOUT;
        }
        fds.push(PollFd::new(master.as_fd(), master_events));
        let idx_input = match input {
            Some(fd) if pending.is_empty() => {
                fds.push(PollFd::new(fd, PollFlags::POLLIN));
                Some(fds.len() - 1)
            }
            _ => None,
        };
        let idx_winch = winch.as_ref().map(|w| {
            fds.push(PollFd::new(w.fd.as_fd(), PollFlags::POLLIN));
            fds.len() - 1
        });
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(sys("poll terminal")(e)),
        }
        let revents = |i: usize| fds[i].revents().unwrap_or(PollFlags::empty());
        let master_rev = revents(0);
        let input_rev = idx_input.map(revents).unwrap_or(PollFlags::empty());
        let winch_rev = idx_winch.map(revents).unwrap_or(PollFlags::empty());
        drop(fds);

        if winch_rev.contains(PollFlags::POLLIN) {
            if let (Some(w), Some(term)) = (&winch, winsize_from) {
                w.consume();
                copy_window_size(term, master.as_fd())?;
            }
        }

        if master_rev.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
            match nix::unistd::read(&master, &mut buf) {
                Ok(0) | Err(Errno::EIO) => return Ok(()), // every slave fd is closed
                Ok(n) => write_all(output, &buf[..n]).map_err(sys("write terminal output"))?,
                Err(Errno::EAGAIN) | Err(Errno::EINTR) => {}
                Err(e) => return Err(sys("read pty master")(e)),
            }
        }

        if !pending.is_empty() && master_rev.contains(PollFlags::POLLOUT) {
            match nix::unistd::write(&master, &pending) {
                Ok(n) => {
                    pending.drain(..n);
                }
                Err(Errno::EAGAIN) | Err(Errno::EINTR) => {}
                Err(Errno::EIO) => return Ok(()),
                Err(e) => return Err(sys("write pty master")(e)),
            }
        }

        if input_rev.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
            if let Some(fd) = input {
                match nix::unistd::read(fd, &mut buf) {
                    // End of input: keep relaying output until the container hangs up.
                    Ok(0) | Err(Errno::EIO) => input = None,
                    Ok(n) => pending.extend_from_slice(&buf[..n]),
                    Err(Errno::EAGAIN) | Err(Errno::EINTR) => {}
                    Err(e) => return Err(sys("read terminal input")(e)),
                }
            }
        }
    }
}

/// Write everything, waiting while `fd` is non-blocking and full.
fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) -> Result<(), Errno> {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
                match poll(&mut fds, PollTimeout::NONE) {
                    Ok(_) | Err(Errno::EINTR) => {}
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// SIGWINCH blocked in this thread and readable from a signalfd; the old mask is restored on drop.
struct WinchWatch {
    fd: SignalFd,
    old_mask: SigSet,
}

impl WinchWatch {
    fn new() -> Result<WinchWatch, TtyError> {
        let mut set = SigSet::empty();
        set.add(Signal::SIGWINCH);
        let old_mask = set
            .thread_swap_mask(SigmaskHow::SIG_BLOCK)
            .map_err(sys("block SIGWINCH"))?;
        match SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC) {
            Ok(fd) => Ok(WinchWatch { fd, old_mask }),
            Err(e) => {
                let _ = old_mask.thread_set_mask();
                Err(sys("signalfd for SIGWINCH")(e))
            }
        }
    }

    fn consume(&self) {
        while let Ok(Some(_)) = self.fd.read_signal() {}
    }
}

impl Drop for WinchWatch {
    fn drop(&mut self) {
        let _ = self.old_mask.thread_set_mask();
    }
}

/// Copy the window size of the terminal `from` to the pty master `to`.
pub fn copy_window_size(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> Result<(), TtyError> {
    let ws = get_winsize(from).map_err(sys("read window size (TIOCGWINSZ)"))?;
    set_winsize(to, &ws).map_err(sys("set window size (TIOCSWINSZ)"))
}
