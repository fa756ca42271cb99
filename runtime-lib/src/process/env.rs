//! The environment of the user process, as the reference runtime builds it: `process.env`
//! with each name kept once (its last value, in the order of those last values), and `HOME`
//! filled in when it is unset or empty: from the container's `/etc/passwd` entry of the
//! process's uid, `/` when there is none.
//!
//! [`prepare`] runs before the fork. [`home_of`] runs in the child, inside the container's root
//! and before the user switch (the file may be readable by root only), on a fixed buffer: it
//! allocates nothing and reads a bounded amount.

use std::ffi::CString;
use std::os::fd::AsFd;

use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, SFlag};

use super::ProcessError;

/// The process environment ready for execve, and whether it still needs `HOME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedEnv {
    pub env: Vec<CString>,
    /// `HOME` is unset or empty in `process.env`: the child adds it ([`home_of`]).
    pub needs_home: bool,
}

/// Check and deduplicate `process.env`. Every entry must be `NAME=value` with a non-empty
/// name and no NUL byte; a name given twice keeps its last value, at the place of that last
/// occurrence; an empty `HOME` is dropped (it is filled in later, as when unset).
pub fn prepare(env: &[String]) -> Result<PreparedEnv, ProcessError> {
    let invalid = |msg: String| ProcessError::Invalid(format!("process.env: {msg}"));
    let mut seen = std::collections::HashSet::new();
    let mut kept = Vec::with_capacity(env.len());
    let mut home_set = false;
    for entry in env.iter().rev() {
        let Some((name, value)) = entry.split_once('=') else {
            return Err(invalid(format!(
                "invalid environment variable {entry:?}: missing '='"
            )));
        };
        if name.is_empty() {
            return Err(invalid(format!(
                "invalid environment variable {entry:?}: name cannot be empty"
            )));
        }
        if !seen.insert(name) {
            continue;
        }
        if name == "HOME" {
            if value.is_empty() {
                continue;
            }
            home_set = true;
        }
        let c = CString::new(entry.as_bytes()).map_err(|_| {
            invalid(format!(
                "invalid environment variable {name:?}: contains a NUL byte"
            ))
        })?;
        kept.push(c);
    }
    kept.reverse();
    Ok(PreparedEnv {
        env: kept,
        needs_home: !home_set,
    })
}

/// The longest home directory taken from `/etc/passwd` (PATH_MAX); a longer one counts as none.
pub const HOME_MAX: usize = 4096;

/// How much of `/etc/passwd` is read at most: a file that never ends (a procfs file, say)
/// must not stall the container's start.
const READ_LIMIT: usize = 16 << 20;

/// The home directory of `uid` in the container's `/etc/passwd`, written to `out`; returns
/// its length, or `None` when the file cannot be read, is not a regular file, or has no
/// entry for `uid` (the caller then uses `/`). The first entry for `uid` wins.
pub fn home_of(uid: u32, out: &mut [u8; HOME_MAX]) -> Option<usize> {
    let fd = nix::fcntl::open(
        "/etc/passwd",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK | OFlag::O_NOCTTY,
        Mode::empty(),
    )
    .ok()?;
    let st = nix::sys::stat::fstat(fd.as_fd()).ok()?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
        return None;
    }
    let mut total = 0;
    let mut finder = HomeFinder::new(uid, out);
    let mut buf = [0u8; 4096];
    loop {
        let n = match nix::unistd::read(fd.as_fd(), &mut buf) {
            Ok(0) => return finder.finish(),
            Ok(n) => n,
            Err(nix::Error::EINTR) => continue,
            Err(_) => return None,
        };
        if let Some(found) = finder.feed(&buf[..n]) {
            return found;
        }
        total += n;
        if total >= READ_LIMIT {
            return None;
        }
    }
}

/// A passwd-format scanner fed in chunks (`name:password:uid:gid:gecos:home:shell` lines),
/// keeping only the current line's uid and home.
struct HomeFinder<'a> {
    uid: u32,
    out: &'a mut [u8; HOME_MAX],
    /// The index of the field the next byte belongs to.
    field: usize,
    /// The uid field read so far; `None` once it is not a number.
    line_uid: Option<u64>,
    uid_digits: usize,
    home_len: usize,
    home_too_long: bool,
}

impl<'a> HomeFinder<'a> {
    fn new(uid: u32, out: &'a mut [u8; HOME_MAX]) -> Self {
        HomeFinder {
            uid,
            out,
            field: 0,
            line_uid: Some(0),
            uid_digits: 0,
            home_len: 0,
            home_too_long: false,
        }
    }

    /// Scan `chunk`; `Some(result)` once the first entry for the uid has ended.
    fn feed(&mut self, chunk: &[u8]) -> Option<Option<usize>> {
        for &b in chunk {
            match b {
                b'\n' => {
                    if let Some(found) = self.end_line() {
                        return Some(found);
                    }
                }
                b':' => self.field += 1,
                _ if self.field == 2 => {
                    self.uid_digits += 1;
                    self.line_uid = match (b as char).to_digit(10) {
                        Some(d) => self
                            .line_uid
                            .and_then(|u| u.checked_mul(10))
                            .and_then(|u| u.checked_add(d.into())),
                        None => None,
                    };
                }
                _ if self.field == 5 => {
                    if self.home_len < self.out.len() {
                        self.out[self.home_len] = b;
                        self.home_len += 1;
                    } else {
                        self.home_too_long = true;
                    }
                }
                _ => {}
            }
        }
        None
    }

    /// The end of the file: a last line without a newline still counts.
    fn finish(&mut self) -> Option<usize> {
        self.end_line().flatten()
    }

    fn end_line(&mut self) -> Option<Option<usize>> {
        let matches =
            self.field >= 2 && self.uid_digits > 0 && self.line_uid == Some(u64::from(self.uid));
        let result = (!self.home_too_long).then_some(self.home_len);
        self.field = 0;
        self.line_uid = Some(0);
        self.uid_digits = 0;
        self.home_len = 0;
        self.home_too_long = false;
        matches.then_some(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn strings(p: &PreparedEnv) -> Vec<&str> {
        p.env.iter().map(|c| c.to_str().unwrap()).collect()
    }

    #[test]
    fn last_value_wins_in_the_place_of_the_last() {
        let p = prepare(&env(&["ONE=two", "PATH=/bin", "ONE=three", "HOME=/h"])).unwrap();
        assert_eq!(strings(&p), ["PATH=/bin", "ONE=three", "HOME=/h"]);
        assert!(!p.needs_home);
    }

    #[test]
    fn empty_home_is_dropped_and_asked_for() {
        let p = prepare(&env(&["HOME=/override", "HOME=", "A=1"])).unwrap();
        assert_eq!(strings(&p), ["A=1"]);
        assert!(p.needs_home);
        assert!(prepare(&[]).unwrap().needs_home);
        // An empty value of another name is kept.
        let p = prepare(&env(&["ONE=two", "ONE="])).unwrap();
        assert_eq!(strings(&p), ["ONE="]);
    }

    #[test]
    fn malformed_entries_are_refused() {
        for bad in ["NOEQUALS", "=value", "A=b\0c"] {
            let err = prepare(&env(&[bad])).unwrap_err().to_string();
            assert!(
                err.starts_with("process.env: invalid environment variable"),
                "{err}"
            );
        }
    }

    fn find(text: &[u8], uid: u32, chunk: usize) -> Option<String> {
        let mut out = [0u8; HOME_MAX];
        let mut f = HomeFinder::new(uid, &mut out);
        let mut result = None;
        for c in text.chunks(chunk.max(1)) {
            if let Some(r) = f.feed(c) {
                result = Some(r);
                break;
            }
        }
        let len = match result {
            Some(r) => r,
            None => f.finish(),
        }?;
        Some(String::from_utf8(out[..len].to_vec()).unwrap())
    }

    #[test]
    fn home_of_the_first_entry_for_the_uid() {
        let passwd = b"root:x:0:0:root:/root:/bin/sh\n\
                       daemon:x:1:1::/usr/sbin:/bin/false\n\
                       nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n\
                       again:x:1:1::/second:/bin/sh\n\
                       last:x:42:42::/last";
        for chunk in [1, 3, 7, 4096] {
            assert_eq!(find(passwd, 0, chunk).as_deref(), Some("/root"));
            assert_eq!(find(passwd, 1, chunk).as_deref(), Some("/usr/sbin"));
            assert_eq!(find(passwd, 65534, chunk).as_deref(), Some("/nonexistent"));
            assert_eq!(find(passwd, 42, chunk).as_deref(), Some("/last"));
            assert_eq!(find(passwd, 1000, chunk), None);
        }
    }

    #[test]
    fn odd_lines_do_not_match() {
        // No uid field, an empty one, a non-number, one that overflows, a uid that only
        // starts like the one asked for.
        let passwd = b"short\nempty:x::0::/e:\nword:x:abc:0::/w:\n\
                       big:x:99999999999999999999999:0::/b:\nlong:x:10:0::/l:\n";
        assert_eq!(find(passwd, 0, 5), None);
        assert_eq!(find(passwd, 1, 5), None);
        assert_eq!(find(passwd, 10, 5).as_deref(), Some("/l"));
        let mut long = b"u:x:7:7::/".to_vec();
        long.extend(std::iter::repeat_n(b'a', HOME_MAX));
        long.extend(b":/bin/sh\n");
        assert_eq!(find(&long, 7, 100), None);
    }
}
