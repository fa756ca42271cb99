//! The terminal inside the container: a pty opened through the container's `/dev/ptmx`, its
//! slave bound onto `/dev/console` and made the controlling terminal, its master sent to the
//! console socket.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{fchmod, fstat, Mode, SFlag};
use nix::sys::termios::{tcgetattr, tcsetattr, SetArg};

use super::{at_path, send_fd, sys, TtyError, MASTER_MESSAGE};
use crate::sys::tty::{bind_fd_onto_fd, open_peer, pty_index, set_ctty, set_winsize, unlock_pty};

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

/// `setup_console` with `/dev` given as a directory fd.
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

/// For an exec'd process with a terminal: a new pty of the container's devpts (no
/// /dev/console: that is the init's), its master sent over `socket` (with ONLCR off first
/// when the runtime relays it, see [`ExecOptions::relayed_terminal`]); returns the slave.
///
/// [`ExecOptions::relayed_terminal`]: crate::lifecycle::exec::ExecOptions::relayed_terminal
pub fn open_terminal(
    socket: std::os::fd::BorrowedFd<'_>,
    size: Option<(u16, u16)>,
    relayed: bool,
) -> Result<OwnedFd, TtyError> {
    let dev = nix::fcntl::open(
        "/dev",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|source| TtyError::Sys {
        step: "open /dev",
        source,
    })?;
    let pty = open_pty(dev.as_fd())?;
    if let Some((rows, cols)) = size {
        set_window_size(pty.slave.as_fd(), rows, cols)?;
    }
    if relayed {
        disable_onlcr(pty.master.as_fd())?;
    }
    send_fd(socket, MASTER_MESSAGE, pty.master.as_fd())?;
    Ok(pty.slave)
}
