//! The syscalls that give the runtime an image of itself the container cannot write: a
//! read-only detached bind mount of its binary (`open_tree` + `mount_setattr`) or a sealed
//! memfd copy, and `execveat` of either. The clone itself is `mount_api::open_tree_clone`.
use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd};

use nix::errno::Errno;

/// Make the (detached) mount `fd` is the root of read-only.
pub(crate) fn mount_set_readonly(fd: BorrowedFd<'_>) -> nix::Result<()> {
    let attr = super::mount_api::MountAttr {
        attr_set: super::mount_attr::RDONLY,
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
