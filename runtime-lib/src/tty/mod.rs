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
use std::io;

use crate::sys::tty::{
    bind_fd_onto_fd, get_winsize, open_peer, pty_index, set_ctty, set_winsize, unlock_pty,
};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, openat, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use nix::sys::stat::{fchmod, fstat, Mode, SFlag};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};

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

/// A freshly opened pty pair.
#[derive(Debug)]
pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
    /// The pty's number in its devpts instance.
    pub index: u32,
    /// The slave's name as seen inside the container, `/dev/pts/<index>`.
    pub name: String,
}

/// Inside the container, after pivot_root: open a pty through `/dev/ptmx`, bind its slave onto
/// `/dev/console`, send the master over `socket` (SCM_RIGHTS), and return the slave.
pub fn setup_console(socket: BorrowedFd<'_>) -> Result<OwnedFd, TtyError> {
    let dev = nix::fcntl::open(
        "/dev",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(at_path("open", "/dev"))?;
    setup_console_at(dev.as_fd(), socket)
}

/// [`setup_console`] with `/dev` given as a directory fd.
pub fn setup_console_at(dev: BorrowedFd<'_>, socket: BorrowedFd<'_>) -> Result<OwnedFd, TtyError> {
    let pty = open_pty(dev)?;
    mount_console(dev, pty.slave.as_fd())?;
    send_fd(socket, MASTER_MESSAGE, pty.master.as_fd())?;
    // The master now lives on in the receiver; ours is closed here.
    drop(pty.master);
    Ok(pty.slave)
}

/// Open a new pty through `<dev>/ptmx` (a device or a symlink to `pts/ptmx`): unlock it and
/// open its slave. Both fds are close-on-exec and neither becomes a controlling terminal.
pub fn open_pty(dev: BorrowedFd<'_>) -> Result<Pty, TtyError> {
    let master = openat(
        dev,
        "ptmx",
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(at_path("open", "/dev/ptmx"))?;
    // On Linux the devpts instance already gives the slave its owner and mode: granting access
    // (grantpt) amounts to checking that this is a pty master, which TIOCGPTN does.
    let index =
        pty_index(master.as_fd()).map_err(at_path("TIOCGPTN (not a pty master?)", "/dev/ptmx"))?;
    unlock_pty(master.as_fd()).map_err(sys("unlock pty (TIOCSPTLCK)"))?;
    let name = format!("/dev/pts/{index}");
    let slave = match open_peer(master.as_fd()) {
        Ok(fd) => fd,
        // Kernels before 4.13: open the slave by name, inside `dev`, without following links.
        Err(Errno::EINVAL) | Err(Errno::ENOTTY) => openat(
            dev,
            format!("pts/{index}").as_str(),
            OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
            Mode::empty(),
        )
        .map_err(at_path("open", &name))?,
        Err(e) => return Err(at_path("open slave (TIOCGPTPEER) of", &name)(e)),
    };
    Ok(Pty {
        master,
        slave,
        index,
        name,
    })
}

/// Bind-mount `slave` onto `<dev>/console`, creating that as an empty 0666 file if it is absent.
/// Refuses a symlink (or anything but a regular file or a device) at `<dev>/console`.
pub fn mount_console(dev: BorrowedFd<'_>, slave: BorrowedFd<'_>) -> Result<(), TtyError> {
    const PATH: &str = "/dev/console";
    match openat(
        dev,
        "console",
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o666),
    ) {
        Ok(created) => {
            // Not subject to the umask, unlike the mode given to open.
            fchmod(&created, Mode::from_bits_truncate(0o666)).map_err(at_path("chmod", PATH))?;
        }
        Err(Errno::EEXIST) => {}
        Err(e) => return Err(at_path("create", PATH)(e)),
    }
    let target = openat(
        dev,
        "console",
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(at_path("open", PATH))?;
    let st = fstat(&target).map_err(at_path("stat", PATH))?;
    let fmt = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    if fmt == SFlag::S_IFLNK {
        return Err(TtyError::ConsoleIsSymlink {
            path: PATH.to_string(),
        });
    }
    if fmt != SFlag::S_IFREG && fmt != SFlag::S_IFCHR {
        return Err(TtyError::ConsoleNotFile {
            path: PATH.to_string(),
            kind: file_kind(fmt),
        });
    }
    bind_fd_onto_fd(slave, target.as_fd()).map_err(at_path("bind-mount the pty slave onto", PATH))
}

fn file_kind(fmt: SFlag) -> &'static str {
    match fmt {
        SFlag::S_IFDIR => "directory",
        SFlag::S_IFBLK => "block device",
        SFlag::S_IFIFO => "fifo",
        SFlag::S_IFSOCK => "socket",
        _ => "special file",
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
    send_with_fd(socket, data, fd).map_err(sys("send master over the console socket"))
}

/// Send all of `data` over the unix socket `socket`, with `fd` attached (SCM_RIGHTS) to the
/// first sendmsg(2); a stream socket that takes part of the bytes gets the rest in further
/// sendmsg calls without fds (the only syscall made). `data` must not be empty: a stream socket
/// carries no fd without a byte.
pub(crate) fn send_with_fd(
    socket: BorrowedFd<'_>,
    data: &[u8],
    fd: BorrowedFd<'_>,
) -> Result<(), Errno> {
    if data.is_empty() {
        return Err(Errno::EINVAL);
    }
    let fds = [fd.as_raw_fd()];
    let mut sent = loop {
        let cmsg = [ControlMessage::ScmRights(&fds)];
        let iov = [io::IoSlice::new(data)];
        match sendmsg::<()>(
            socket.as_raw_fd(),
            &iov,
            &cmsg,
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Ok(n) => break n,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    };
    // sendmsg again rather than send: a seccomp filter just loaded may hand send(2)'s syscall
    // to the agent that is still waiting for the end of these bytes.
    while sent < data.len() {
        let iov = [io::IoSlice::new(&data[sent..])];
        match sendmsg::<()>(socket.as_raw_fd(), &iov, &[], MsgFlags::MSG_NOSIGNAL, None) {
            Ok(0) => return Err(Errno::EIO),
            Ok(n) => sent += n,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Receive one fd and the message bytes sent with it. The fd is close-on-exec.
pub fn recv_fd(socket: BorrowedFd<'_>) -> Result<(OwnedFd, Vec<u8>), TtyError> {
    let mut data = vec![0u8; MAX_NAME];
    let mut cmsg_buf = nix::cmsg_space!([RawFd; 4]);
    let (len, fds, flags) = loop {
        let mut iov = [io::IoSliceMut::new(&mut data)];
        match recvmsg::<()>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg_buf),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(msg) => {
                let mut fds: Vec<OwnedFd> = Vec::new();
                for c in msg
                    .cmsgs()
                    .map_err(sys("receive master: control messages"))?
                {
                    if let ControlMessageOwned::ScmRights(raw) = c {
                        // The kernel installed these fds in our table for this message.
                        fds.extend(raw.into_iter().map(crate::sys::tty::own_received_fd));
                    }
                }
                break (msg.bytes, fds, msg.flags);
            }
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(sys("receive master from the console socket")(e)),
        }
    };
    if flags.contains(MsgFlags::MSG_CTRUNC) {
        return Err(TtyError::BadMessage(
            "control data truncated (too many fds sent)".into(),
        ));
    }
    if len == 0 && fds.is_empty() {
        return Err(TtyError::BadMessage(
            "the peer closed the connection without sending a file descriptor".into(),
        ));
    }
    let mut fds = fds.into_iter();
    let (Some(fd), None) = (fds.next(), fds.next()) else {
        return Err(TtyError::BadMessage(
            "expected exactly one file descriptor in the message".into(),
        ));
    };
    data.truncate(len);
    Ok((fd, data))
}

/// Make `slave` the controlling terminal of this session leader and its stdin, stdout, stderr.
pub fn set_controlling(slave: OwnedFd) -> Result<(), TtyError> {
    set_ctty(slave.as_fd()).map_err(sys("make the pty the controlling terminal (TIOCSCTTY)"))?;
    nix::unistd::dup2_stdin(&slave).map_err(sys("dup2 the pty onto stdin"))?;
    nix::unistd::dup2_stdout(&slave).map_err(sys("dup2 the pty onto stdout"))?;
    nix::unistd::dup2_stderr(&slave).map_err(sys("dup2 the pty onto stderr"))?;
    if slave.as_raw_fd() <= 2 {
        // It already is one of stdio: keep it open, and since dup2 onto itself does not clear
        // close-on-exec, clear it here.
        let fd = slave.into_raw_fd();
        crate::sys::clear_cloexec(fd).map_err(sys("clear close-on-exec on the pty"))?;
    }
    Ok(())
}

/// Set the window size of terminal `fd` (process.consoleSize).
pub fn set_window_size(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> Result<(), TtyError> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    set_winsize(fd, &ws).map_err(sys("set window size (TIOCSWINSZ)"))
}

/// Turn off ONLCR on the pty of `master`: the container's `\n` then reaches the reader as
/// `\n`, not `\r\n`. For a pty the runtime itself proxies to its caller (the caller's own
/// terminal, in raw mode, does that translation once), as runc does for the ptys it receives;
/// a pty handed to a console socket keeps the kernel's default.
pub fn disable_onlcr(master: BorrowedFd<'_>) -> Result<(), TtyError> {
    let mut t = tcgetattr(master).map_err(sys("read pty settings"))?;
    t.output_flags.remove(nix::sys::termios::OutputFlags::ONLCR);
    tcsetattr(master, SetArg::TCSANOW, &t).map_err(sys("turn off ONLCR on the pty"))
}

/// Copy the window size of the terminal `from` to the pty master `to`.
pub fn copy_window_size(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> Result<(), TtyError> {
    let ws = get_winsize(from).map_err(sys("read window size (TIOCGWINSZ)"))?;
    set_winsize(to, &ws).map_err(sys("set window size (TIOCSWINSZ)"))
}

// ---- runtime side: receive the master and proxy it ------------------------------------------

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

/// [`proxy`] with explicit ends: `input` (if any) is copied to the master, the master's output
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
