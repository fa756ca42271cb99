//! The syscalls that give the runtime an image of itself the container cannot write: a
//! read-only detached bind mount of its binary (`open_tree` + `mount_setattr`) or a sealed
//! memfd copy, and `execveat` of either.
use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

// Kernel ABI, include/uapi/linux/mount.h.
const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOUNT_ATTR_RDONLY: u64 = 0x1;

/// A detached clone of the mount holding `path`, rooted at `path` itself.
pub(crate) fn open_tree_clone(path: &CStr) -> nix::Result<OwnedFd> {
    // SAFETY: open_tree reads the NUL-terminated `path` and returns a new fd or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            path.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the syscall succeeded, so `fd` is a new descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Make the (detached) mount `fd` is the root of read-only.
pub(crate) fn mount_set_readonly(fd: BorrowedFd<'_>) -> nix::Result<()> {
    let attr = super::mount_api::MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    super::mount_api::mount_setattr(fd.as_raw_fd(), &attr, false)
}

/// execveat(fd, "", argv, envp, AT_EMPTY_PATH): run the file `fd` is open on. Returns only on
/// failure.
pub(crate) fn execveat_fd(fd: BorrowedFd<'_>, argv: &[CString], envp: &[CString]) -> Errno {
    let argv: Vec<*const libc::c_char> = argv
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let envp: Vec<*const libc::c_char> = envp
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    // SAFETY: both arrays are NULL-terminated and point into CStrings that outlive the call;
    // execveat returns only on failure.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    Errno::last()
}
