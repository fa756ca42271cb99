//! Text made in a forked child without allocating. The stage, the init and an exec'd process
//! run in a fork of a program that may have other threads, one of which may have held the
//! allocator's lock at the fork: they write their messages into fixed buffers instead.
//! [`ChildError`] is their error ("step: cause", cut short if it does not fit); [`CPath`] a
//! NUL-terminated path or environment entry they build (the executable found in `PATH`,
//! `HOME=...`).

use std::ffi::CStr;
use std::fmt;

/// UTF-8 text in a fixed buffer that `write!` fills; what does not fit is cut at a character
/// boundary.
#[derive(Clone)]
pub struct Text<const N: usize> {
    len: usize,
    buf: [u8; N],
}

impl<const N: usize> Text<N> {
    pub const fn new() -> Self {
        Text {
            len: 0,
            buf: [0; N],
        }
    }

    /// The text of `args` (`format_args!`), cut to fit.
    pub fn of(args: fmt::Arguments<'_>) -> Self {
        let mut t = Self::new();
        let _ = fmt::Write::write_fmt(&mut t, args);
        t
    }

    pub fn as_str(&self) -> &str {
        // Only whole characters are ever copied in (see `write_str`).
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

impl<const N: usize> Default for Text<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Write for Text<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = N - self.len;
        let mut n = s.len().min(room);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        if n < s.len() {
            Err(fmt::Error)
        } else {
            Ok(())
        }
    }
}

impl<const N: usize> fmt::Display for Text<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> fmt::Debug for Text<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl<const N: usize> PartialEq<&str> for Text<N> {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// An error in a forked child: the text the runtime shows, "step: cause".
pub type ChildError = Text<4096>;

/// A [`ChildError`] from `format!`-style arguments, without allocating.
macro_rules! child_err {
    ($($arg:tt)*) => {
        $crate::lifecycle::text::ChildError::of(format_args!($($arg)*))
    };
}
pub(crate) use child_err;

/// A NUL-terminated string of up to `N - 1` bytes built in a fixed buffer, for the kernel.
pub struct CPath<const N: usize> {
    len: usize,
    buf: [u8; N],
}

impl<const N: usize> CPath<N> {
    /// The concatenation of `parts`, or `None` if it does not fit or contains a NUL.
    pub fn concat(parts: &[&[u8]]) -> Option<Self> {
        let mut p = CPath {
            len: 0,
            buf: [0; N],
        };
        for part in parts {
            if part.contains(&0) || p.len + part.len() >= N {
                return None;
            }
            p.buf[p.len..p.len + part.len()].copy_from_slice(part);
            p.len += part.len();
        }
        Some(p)
    }

    pub fn as_cstr(&self) -> &CStr {
        // `concat` keeps a NUL at `len` (the buffer starts zeroed, parts have none).
        CStr::from_bytes_with_nul(&self.buf[..=self.len]).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_cut_at_a_character_boundary() {
        let t = Text::<8>::of(format_args!("ab{}", "çççç"));
        assert_eq!(t.as_str(), "abççç");
        let e = child_err!("mount {}: {}", "/proc", nix::Error::EPERM);
        assert_eq!(e.as_str(), "mount /proc: EPERM: Operation not permitted");
    }

    #[test]
    fn cpath_concatenates_and_refuses_nul_and_overflow() {
        let p = CPath::<16>::concat(&[b"HOME=", b"/root"]).unwrap();
        assert_eq!(p.as_cstr(), c"HOME=/root");
        assert!(CPath::<16>::concat(&[b"a\0b"]).is_none());
        assert!(CPath::<4>::concat(&[b"abcd"]).is_none());
        assert_eq!(
            CPath::<5>::concat(&[b"ab", b"cd"]).unwrap().as_cstr(),
            c"abcd"
        );
    }
}
