//! Terminal ioctls and the mount API calls of the console bind.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

/// Own an fd the kernel installed in our table for a received SCM_RIGHTS message.
pub(crate) fn own_received_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: the caller got `fd` from a control message just received: the kernel created it
    // for us and nothing else refers to it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

pub(crate) fn pty_index(master: BorrowedFd<'_>) -> Result<u32, Errno> {
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one unsigned int through the pointer, which points at `n`.
    Errno::result(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut n) })?;
    Ok(n)
}

pub(crate) fn unlock_pty(master: BorrowedFd<'_>) -> Result<(), Errno> {
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int through the pointer, which points at `unlock`.
    Errno::result(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) })?;
    Ok(())
}

pub(crate) fn open_peer(master: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes the open flags by value and returns a new fd; no memory is passed.
    let fd = Errno::result(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags) })?;
    // SAFETY: the ioctl succeeded, so `fd` is a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub(crate) fn set_ctty(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    // SAFETY: TIOCSCTTY takes an int argument by value (0: do not steal); no memory is passed.
    Errno::result(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) })?;
    Ok(())
}

pub(crate) fn get_winsize(fd: BorrowedFd<'_>) -> Result<libc::winsize, Errno> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ fills one struct winsize through the pointer, which points at `ws`.
    Errno::result(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) })?;
    Ok(ws)
}

pub(crate) fn set_winsize(fd: BorrowedFd<'_>, ws: &libc::winsize) -> Result<(), Errno> {
    // SAFETY: TIOCSWINSZ reads one struct winsize through the pointer, which points at `ws`.
    Errno::result(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, ws as *const _) })?;
    Ok(())
}

// Mount API constants (kernel ABI, include/uapi/linux/mount.h and fcntl.h).
const OPEN_TREE_CLONE: libc::c_uint = 1;
const OPEN_TREE_CLOEXEC: libc::c_uint = libc::O_CLOEXEC as libc::c_uint;
const AT_EMPTY_PATH: libc::c_uint = libc::AT_EMPTY_PATH as libc::c_uint;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x04;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;

/// Bind-mount the file `source` is open on onto the file `target` is open on, without any path
/// lookup: `open_tree(OPEN_TREE_CLONE)` + `move_mount`, or on kernels without the mount API,
/// `mount(MS_BIND)` through the fds' `/proc/self/fd` links.
pub(crate) fn bind_fd_onto_fd(source: BorrowedFd<'_>, target: BorrowedFd<'_>) -> Result<(), Errno> {
    let empty = c"";
    // SAFETY: open_tree reads the NUL-terminated path `empty` and returns a new fd or -1.
    let tree = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            source.as_raw_fd(),
            empty.as_ptr(),
            OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH,
        )
    };
    if tree < 0 {
        return match Errno::last() {
            Errno::ENOSYS => bind_via_proc(source, target),
            e => Err(e),
        };
    }
    // SAFETY: open_tree succeeded, so `tree` is a new fd that nothing else owns.
    let tree = unsafe { OwnedFd::from_raw_fd(tree as RawFd) };
    // SAFETY: move_mount reads the two NUL-terminated empty paths; both fds are open.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            target.as_raw_fd(),
            empty.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    Errno::result(ret)?;
    Ok(())
}

pub(crate) fn bind_via_proc(source: BorrowedFd<'_>, target: BorrowedFd<'_>) -> Result<(), Errno> {
    // Relative to the host's procfs, the init's working directory (see rootfs::paths::fd_path).
    let src = format!("self/fd/{}", source.as_raw_fd());
    let dst = format!("self/fd/{}", target.as_raw_fd());
    nix::mount::mount(
        Some(src.as_str()),
        dst.as_str(),
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
}
