//! readlinkat(2) into a buffer of the caller's: nix's wrapper returns an owned string, which
//! allocates, and this runs in the init, a forked child.

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
