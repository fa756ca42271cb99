//! An errno worded as `std::io::Error` words it, without the allocation its `Display` makes:
//! for messages made in a forked child.

use std::ffi::CStr;
use std::fmt;

use nix::errno::Errno;

/// `errno` shown as `std::io::Error::from_raw_os_error` shows it: the C library's
/// description and ` (os error N)`.
#[derive(Debug, Clone, Copy)]
pub struct OsError(pub Errno);

impl fmt::Display for OsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self.0 as i32;
        // The size std reserves for the same call.
        let mut buf = [0u8; 128];
        // SAFETY: strerror_r (the XSI one, as std calls it) writes at most `buf.len()` bytes,
        // NUL-terminated, into the buffer, which outlives the call. Like std, what it wrote is
        // taken whatever it returns ("Unknown error N" comes with EINVAL).
        unsafe { libc::strerror_r(code, buf.as_mut_ptr().cast(), buf.len()) };
        match CStr::from_bytes_until_nul(&buf).map(CStr::to_bytes) {
            Ok(desc) => {
                for chunk in desc.utf8_chunks() {
                    f.write_str(chunk.valid())?;
                    if !chunk.invalid().is_empty() {
                        f.write_str("\u{FFFD}")?;
                    }
                }
            }
            Err(_) => f.write_str("Unknown error")?,
        }
        write!(f, " (os error {code})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worded_as_std_words_it() {
        for e in [
            Errno::ENOENT,
            Errno::ENOTDIR,
            Errno::ELOOP,
            Errno::EACCES,
            Errno::EINVAL,
            Errno::EHWPOISON,
            Errno::UnknownErrno,
        ] {
            assert_eq!(
                OsError(e).to_string(),
                std::io::Error::from_raw_os_error(e as i32).to_string()
            );
        }
    }
}
