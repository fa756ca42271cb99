//! An errno worded as `std::io::Error` words it, without the allocation its `Display` makes
//! (nor the lock of strerror): for messages made in a forked child.

use std::fmt;

use nix::errno::Errno;

/// `errno` shown as `std::io::Error::from_raw_os_error` shows it: the C library's
/// description and ` (os error N)`.
#[derive(Debug, Clone, Copy)]
pub struct OsError(pub Errno);

impl fmt::Display for OsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // nix's table of the C library's descriptions, not strerror(3): that one takes the
        // locale's lock, which a thread of the forking program may have held.
        write!(f, "{} (os error {})", self.0.desc(), self.0 as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worded_as_std_words_it() {
        // The common ones read as std's; a few of nix's descriptions are the kernel's rather than
        // the C library's (ELOOP: "Too many symbolic links encountered").
        for e in [Errno::ENOENT, Errno::ENOTDIR, Errno::EACCES, Errno::EINVAL] {
            assert_eq!(
                OsError(e).to_string(),
                std::io::Error::from_raw_os_error(e as i32).to_string()
            );
        }
        assert_eq!(
            OsError(Errno::ELOOP).to_string(),
            "Too many symbolic links encountered (os error 40)"
        );
    }
}
