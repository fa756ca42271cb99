//! readlinkat(2) and getdents64(2) into buffers of the caller's: nix's wrappers return owned
//! strings and an opendir(3) stream, which allocate, and these run in the init, a forked child.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd};

use nix::errno::Errno;

/// The target of the symlink `name` in `dir`, written to `buf`: its length. A length of
/// `buf.len()` means the target may have been cut short.
pub fn readlinkat(dir: BorrowedFd<'_>, name: &CStr, buf: &mut [u8]) -> nix::Result<usize> {
    // SAFETY: `name` is NUL-terminated; the kernel writes at most `buf.len()` bytes to `buf`,
    // which we hold mutably for the call.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    Errno::result(n).map(|n| n as usize)
}

/// The next directory entries of `dir` (an fd opened for reading) as `linux_dirent64` records
/// in `buf`: how many bytes were filled, 0 at the end of the directory.
pub fn getdents64(dir: BorrowedFd<'_>, buf: &mut [u8]) -> nix::Result<usize> {
    // SAFETY: the kernel writes at most `buf.len()` bytes to `buf`, which we hold mutably for
    // the call.
    let n = unsafe {
        libc::syscall(
            libc::SYS_getdents64,
            dir.as_raw_fd(),
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    Errno::result(n).map(|n| n as usize)
}
