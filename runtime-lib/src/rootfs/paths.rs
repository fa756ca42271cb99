//! Paths inside the container's root, resolved without ever leaving it: every lookup goes
//! through openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) relative to an fd of the root, so a
//! symlink in the rootfs (absolute or with `..`) resolves as if the root were `/`.

use std::ffi::{CStr, OsStr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::sys::{openat2, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS};

/// The kernel's limit on a path, its terminating NUL included.
pub const PATH_MAX: usize = libc::PATH_MAX as usize;

/// A NUL-terminated byte string of fewer than `N` bytes, built on the stack: the paths, names
/// and mount data the init makes up as it goes (it is a forked child and must not allocate).
/// Longer than that is ENAMETOOLONG, as the kernel says of a path past PATH_MAX; a NUL inside
/// is EINVAL.
pub struct StackCStr<const N: usize> {
    buf: [u8; N],
    len: usize,
}

/// A path of up to PATH_MAX bytes.
pub type PathBuffer = StackCStr<PATH_MAX>;
/// One component of a path (NAME_MAX bytes at most).
pub type Name = StackCStr<256>;
/// `self/fd/N` (see [`fd_path`]).
pub type FdPath = StackCStr<24>;

impl<const N: usize> StackCStr<N> {
    pub fn new() -> Self {
        StackCStr {
            buf: [0; N],
            len: 0,
        }
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Errno> {
        let mut s = Self::new();
        s.extend(bytes)?;
        Ok(s)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Append `bytes` as they are.
    pub fn extend(&mut self, bytes: &[u8]) -> Result<(), Errno> {
        if bytes.contains(&0) {
            return Err(Errno::EINVAL);
        }
        let end = self.len + bytes.len();
        if end >= N {
            return Err(Errno::ENAMETOOLONG);
        }
        self.buf[self.len..end].copy_from_slice(bytes);
        self.buf[end] = 0;
        self.len = end;
        Ok(())
    }

    /// Append `path` as [`std::path::PathBuf::push`] does: an absolute path replaces what is
    /// there, a relative one is joined with a `/` unless one ends the string already.
    pub fn push(&mut self, path: &[u8]) -> Result<(), Errno> {
        if path.first() == Some(&b'/') {
            self.len = 0;
            self.buf[0] = 0;
        } else if self.len > 0 && self.buf[self.len - 1] != b'/' {
            self.extend(b"/")?;
        }
        self.extend(path)
    }

    /// Append the target of the symlink `name` in `dir` as [`Self::push`] would.
    pub fn push_link(&mut self, dir: BorrowedFd<'_>, name: &CStr) -> Result<(), Errno> {
        // Read into the free space after a separator's room, then move it into place.
        let at = self.len + 1;
        let room = N.checked_sub(at + 1).ok_or(Errno::ENAMETOOLONG)?;
        let n = crate::sys::dir::readlinkat(dir, name, &mut self.buf[at..at + room])?;
        if n == room {
            return Err(Errno::ENAMETOOLONG);
        }
        let absolute = self.buf.get(at) == Some(&b'/');
        let to = if absolute {
            0
        } else if self.len > 0 && self.buf[self.len - 1] != b'/' {
            self.buf[self.len] = b'/';
            self.len + 1
        } else {
            self.len
        };
        self.buf.copy_within(at..at + n, to);
        self.len = to + n;
        self.buf[self.len] = 0;
        Ok(())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    pub fn as_c_str(&self) -> &CStr {
        // The bytes up to `len` hold no NUL and `buf[len]` is one (see `extend`).
        CStr::from_bytes_until_nul(&self.buf[..=self.len]).unwrap_or_default()
    }

    /// The bytes from `start` (a component boundary) to the end, NUL-terminated.
    fn tail_c_str(&self, start: usize) -> &CStr {
        CStr::from_bytes_until_nul(&self.buf[start.min(self.len)..=self.len]).unwrap_or_default()
    }

    pub fn as_path(&self) -> &Path {
        Path::new(OsStr::from_bytes(self.as_bytes()))
    }
}

impl<const N: usize> Default for StackCStr<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> std::fmt::Display for StackCStr<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_path().display().fmt(f)
    }
}

impl<const N: usize> std::fmt::Debug for StackCStr<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_c_str().fmt(f)
    }
}

/// The components of `path` as [`relative`] keeps them: `.` and empty ones dropped.
fn relative_components(path: &Path) -> impl Iterator<Item = &[u8]> {
    path.as_os_str()
        .as_bytes()
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
}

/// `path` made relative (container paths are absolute), normalised, with `.` removed, and
/// NUL-terminated; `.` for the root. `..` components are kept: RESOLVE_IN_ROOT clamps them at
/// the root.
fn relative(path: &Path) -> Result<PathBuffer, Errno> {
    let mut out = PathBuffer::new();
    for c in relative_components(path) {
        out.push(c)?;
    }
    if out.is_empty() {
        out.extend(b".")?;
    }
    Ok(out)
}

/// Open `rel` (a path from [`relative`]) with `flags`, resolved inside `root`.
fn open_relative(root: BorrowedFd<'_>, rel: &CStr, flags: OFlag) -> Result<OwnedFd, Errno> {
    openat2(
        root,
        rel,
        flags.bits(),
        0,
        RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    )
}

/// Open container path `path` with `flags`, resolved inside `root`.
pub fn open_in_root(root: BorrowedFd<'_>, path: &Path, flags: OFlag) -> Result<OwnedFd, Errno> {
    open_relative(root, relative(path)?.as_c_str(), flags)
}

/// Create every missing directory of container path `path` (mode 0755) and return an O_PATH
/// fd of it.
pub fn mkdir_all_in_root(root: BorrowedFd<'_>, path: &Path) -> Result<OwnedFd, Errno> {
    mkdir_all_depth(root, path, 0)
}

/// A dangling symlink on the way is followed (inside the root) and its target created, as a
/// path lookup would; `depth` bounds symlink loops.
fn mkdir_all_depth(root: BorrowedFd<'_>, path: &Path, depth: u32) -> Result<OwnedFd, Errno> {
    if depth > 40 {
        return Err(Errno::ELOOP);
    }
    let dir = OFlag::O_PATH | OFlag::O_DIRECTORY;
    match open_in_root(root, path, dir) {
        Ok(fd) => return Ok(fd),
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(e),
    }
    let mut parent = open_relative(root, c".", dir)?;
    let mut prefix = PathBuffer::new();
    for c in relative_components(path) {
        let parent_len = prefix.len();
        prefix.push(c)?;
        match open_relative(root, prefix.as_c_str(), dir) {
            Ok(fd) => parent = fd,
            Err(Errno::ENOENT) => {
                let start = prefix.len() - c.len();
                let name = prefix.tail_c_str(start);
                match nix::sys::stat::mkdirat(parent.as_fd(), name, Mode::from_bits_truncate(0o755))
                {
                    Ok(()) => parent = open_relative(root, prefix.as_c_str(), dir)?,
                    Err(Errno::EEXIST) => {
                        // A dangling symlink: create what it points to, inside the root.
                        let prefix_parent = &prefix.as_bytes()[..parent_len];
                        follow_dangling(root, parent.as_fd(), name, prefix_parent, depth)?;
                        parent = open_relative(root, prefix.as_c_str(), dir)?;
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(parent)
}

/// Make the directory that the dangling symlink `name` in `parent` (container path
/// `/parent_path`) points to. An absolute target replaces the parent's path.
fn follow_dangling(
    root: BorrowedFd<'_>,
    parent: BorrowedFd<'_>,
    name: &CStr,
    parent_path: &[u8],
    depth: u32,
) -> Result<(), Errno> {
    let mut resolved = PathBuffer::from_bytes(b"/")?;
    resolved.push(parent_path)?;
    resolved.push_link(parent, name)?;
    mkdir_all_depth(root, resolved.as_path(), depth + 1).map(drop)
}

/// Make sure container path `path` exists as a regular file (creating its parents and an empty
/// file if needed) and return an O_PATH fd of it. A dangling symlink at `path` is followed
/// (inside the root) and the file made where it points.
pub fn ensure_file_in_root(root: BorrowedFd<'_>, path: &Path, mode: u32) -> Result<OwnedFd, Errno> {
    ensure_file_depth(root, path, mode, 0)
}

fn ensure_file_depth(
    root: BorrowedFd<'_>,
    path: &Path,
    mode: u32,
    depth: u32,
) -> Result<OwnedFd, Errno> {
    if depth > 40 {
        return Err(Errno::ELOOP);
    }
    match open_in_root(root, path, OFlag::O_PATH) {
        Ok(fd) => return Ok(fd),
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(e),
    }
    let parent_path = path.parent().unwrap_or(Path::new("/"));
    let name = path.file_name().ok_or(Errno::EINVAL)?;
    let parent = mkdir_all_in_root(root, parent_path)?;
    let name = Name::from_bytes(name.as_bytes())?;
    match nix::fcntl::openat(
        parent.as_fd(),
        name.as_c_str(),
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(mode),
    ) {
        Ok(_) => {}
        Err(Errno::EEXIST) => {
            let mut resolved = PathBuffer::from_bytes(b"/")?;
            resolved.push(parent_path.as_os_str().as_bytes())?;
            // Not a symlink: the file is there (and is opened below).
            match resolved.push_link(parent.as_fd(), name.as_c_str()) {
                Ok(()) => return ensure_file_depth(root, resolved.as_path(), mode, depth + 1),
                Err(Errno::ENAMETOOLONG) => return Err(Errno::ENAMETOOLONG),
                Err(_) => {}
            }
        }
        Err(e) => return Err(e),
    }
    open_in_root(root, path, OFlag::O_PATH)
}

/// The magic-link path through which an fd can be named to mount(2): `self/fd/N`, relative,
/// because the init keeps the host's procfs (opened and checked before anything was mounted)
/// as its working directory while it builds the rootfs. An absolute `/proc/self/fd/N` would be
/// resolved through the container's `/proc` after pivot_root, which a config can replace with
/// a directory of symlinks that redirect masks and remounts.
pub fn fd_path(fd: &impl AsRawFd) -> FdPath {
    let mut digits = [0u8; 10];
    let mut n = fd.as_raw_fd().unsigned_abs();
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut p = FdPath::new();
    // "self/fd/" and at most 10 digits fit in an FdPath.
    let _ = p.extend(b"self/fd/");
    let _ = p.extend(&digits[i..]);
    p
}

/// Split a container path into its parent (opened in root, created if needed) and its last
/// component.
pub fn parent_in_root(root: BorrowedFd<'_>, path: &Path) -> Result<(OwnedFd, Name), Errno> {
    let parent_path = path.parent().unwrap_or(Path::new("/"));
    let name = path.file_name().ok_or(Errno::EINVAL)?;
    Ok((
        mkdir_all_in_root(root, parent_path)?,
        Name::from_bytes(name.as_bytes())?,
    ))
}

/// The bytes of a mountinfo path field: the kernel writes space, tab, newline and backslash as
/// `\ooo` octal escapes, which procfs's parser leaves as they are.
fn unescaped(field: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        let c = *field.get(i)?;
        let octal = field
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        Some(match (c, octal) {
            (b'\\', Some(d)) => {
                i += 4;
                (d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0')
            }
            (c, _) => {
                i += 1;
                c
            }
        })
    })
}

/// A mountinfo path field, unescaped (see [`unescaped`]).
pub(crate) fn unescape_mountinfo(field: &str) -> std::path::PathBuf {
    use std::os::unix::ffi::OsStringExt;
    std::path::PathBuf::from(std::ffi::OsString::from_vec(
        unescaped(field.as_bytes()).collect(),
    ))
}

/// A mountinfo path field, unescaped on the stack (for the init).
pub(crate) fn unescape_mountinfo_into(field: &[u8]) -> Result<PathBuffer, Errno> {
    let mut out = PathBuffer::new();
    for b in unescaped(field) {
        out.extend(&[b])?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::path::PathBuf;

    #[test]
    fn mountinfo_escapes() {
        let un = |s| {
            unescape_mountinfo(s)
                .into_os_string()
                .into_string()
                .unwrap()
        };
        assert_eq!(un("a\\011b\\134c\\0"), "a\tb\\c\\0");
        assert_eq!(un("/a\\040b"), "/a b");
        assert_eq!(un("/a\\040"), "/a ");
        assert_eq!(un("/plain"), "/plain");
        assert_eq!(un("/end\\04"), "/end\\04");
        let into = unescape_mountinfo_into(b"/run/a\\040b\\134").unwrap();
        assert_eq!(into.as_bytes(), b"/run/a b\\");
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("casulo-paths-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn symlinks_stay_inside_root() {
        let root = tmp("inside");
        let outside = tmp("outside");
        symlink(&outside, root.join("escape")).unwrap();
        symlink("../../..", root.join("up")).unwrap();
        let rootfd =
            nix::fcntl::open(&root, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        let fd = mkdir_all_in_root(rootfd.as_fd(), Path::new("/escape/sub")).unwrap();
        let seen = std::fs::read_link(format!("/proc/{}", fd_path(&fd))).unwrap();
        assert!(
            seen.starts_with(&root),
            "{} escaped the root",
            seen.display()
        );
        assert!(!outside.join("sub").exists());
        let fd = mkdir_all_in_root(rootfd.as_fd(), Path::new("/up/x/../y")).unwrap();
        let seen = std::fs::read_link(format!("/proc/{}", fd_path(&fd))).unwrap();
        assert!(
            seen.starts_with(&root),
            "{} escaped the root",
            seen.display()
        );
        let f = ensure_file_in_root(rootfd.as_fd(), Path::new("/escape/file"), 0o644).unwrap();
        assert!(std::fs::read_link(format!("/proc/{}", fd_path(&f)))
            .unwrap()
            .starts_with(&root));
        std::fs::remove_dir_all(&root).unwrap();
        std::fs::remove_dir_all(&outside).unwrap();
    }

    #[test]
    fn relative_forms() {
        let rel = |p: &str| relative(Path::new(p)).unwrap().as_bytes().to_vec();
        assert_eq!(rel("/a/./b/../c"), b"a/b/../c");
        assert_eq!(rel("//a//b/"), b"a/b");
        assert_eq!(rel("/"), b".");
        assert_eq!(relative(Path::new("/a\0b")).unwrap_err(), Errno::EINVAL);
        let long = format!("/{}", "a/".repeat(PATH_MAX / 2 + 1));
        assert_eq!(relative(Path::new(&long)).unwrap_err(), Errno::ENAMETOOLONG);
    }

    #[test]
    fn push_joins_as_pathbuf_does() {
        for (base, add) in [
            ("", "a"),
            ("/", ""),
            ("/", "a/b"),
            ("/x", "a"),
            ("/x/", "a"),
            ("/x", "/abs"),
            ("x", ""),
        ] {
            let mut s = PathBuffer::from_bytes(base.as_bytes()).unwrap();
            s.push(add.as_bytes()).unwrap();
            assert_eq!(s.as_path(), std::path::PathBuf::from(base).join(add));
        }
        assert_eq!(fd_path(&7).to_string(), "self/fd/7");
        assert_eq!(fd_path(&1234567).as_c_str(), c"self/fd/1234567");
    }

    #[test]
    fn symlink_targets_join_as_pathbuf_does() {
        let d = tmp("links");
        symlink("rel/t", d.join("r")).unwrap();
        symlink("/abs/t", d.join("a")).unwrap();
        let dir = nix::fcntl::open(&d, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        for (base, link, want) in [
            ("/p", c"r", "/p/rel/t"),
            ("/", c"r", "/rel/t"),
            ("/p", c"a", "/abs/t"),
        ] {
            let mut s = PathBuffer::from_bytes(base.as_bytes()).unwrap();
            s.push_link(dir.as_fd(), link).unwrap();
            assert_eq!(s.as_path(), Path::new(want));
        }
        let mut s = PathBuffer::from_bytes(b"/p").unwrap();
        assert_eq!(s.push_link(dir.as_fd(), c"none"), Err(Errno::ENOENT));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
