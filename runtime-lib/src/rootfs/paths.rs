//! Paths inside the container's root, resolved without ever leaving it: every lookup goes
//! through openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) relative to an fd of the root, so a
//! symlink in the rootfs (absolute or with `..`) resolves as if the root were `/`.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::sys::{openat2, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS};

/// `path` made relative (container paths are absolute), normalised, with `.` removed.
/// `..` components are kept: RESOLVE_IN_ROOT clamps them at the root.
fn relative(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => out.push(".."),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

fn cstr(p: &Path) -> Result<CString, Errno> {
    let bytes = if p.as_os_str().is_empty() {
        b"." as &[u8]
    } else {
        p.as_os_str().as_bytes()
    };
    CString::new(bytes).map_err(|_| Errno::EINVAL)
}

/// Open container path `path` with `flags`, resolved inside `root`.
pub fn open_in_root(root: BorrowedFd<'_>, path: &Path, flags: OFlag) -> Result<OwnedFd, Errno> {
    let rel = relative(path);
    openat2(
        root,
        &cstr(&rel)?,
        flags.bits(),
        0,
        RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    )
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
    let rel = relative(path);
    let mut parent = open_in_root(root, Path::new(""), dir)?;
    let mut prefix = PathBuf::new();
    for c in rel.components() {
        prefix.push(c);
        match open_in_root(root, &prefix, dir) {
            Ok(fd) => parent = fd,
            Err(Errno::ENOENT) => {
                let name = cstr(Path::new(c.as_os_str()))?;
                match nix::sys::stat::mkdirat(
                    parent.as_fd(),
                    name.as_c_str(),
                    Mode::from_bits_truncate(0o755),
                ) {
                    Ok(()) => parent = open_in_root(root, &prefix, dir)?,
                    Err(Errno::EEXIST) => {
                        // A dangling symlink: create what it points to, inside the root.
                        let target = nix::fcntl::readlinkat(parent.as_fd(), name.as_c_str())?;
                        let target = Path::new(&target);
                        // An absolute target replaces the joined prefix.
                        let resolved = Path::new("/")
                            .join(prefix.parent().unwrap_or(Path::new("")))
                            .join(target);
                        mkdir_all_depth(root, &resolved, depth + 1)?;
                        parent = open_in_root(root, &prefix, dir)?;
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(parent)
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
    let name = cstr(Path::new(name))?;
    match nix::fcntl::openat(
        parent.as_fd(),
        name.as_c_str(),
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(mode),
    ) {
        Ok(_) => {}
        Err(Errno::EEXIST) => {
            if let Ok(target) = nix::fcntl::readlinkat(parent.as_fd(), name.as_c_str()) {
                let target = Path::new(&target);
                let resolved = Path::new("/").join(parent_path).join(target);
                return ensure_file_depth(root, &resolved, mode, depth + 1);
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
pub fn fd_path(fd: &impl AsRawFd) -> String {
    format!("self/fd/{}", fd.as_raw_fd())
}

/// Split a container path into its parent (opened in root, created if needed) and its last
/// component.
pub fn parent_in_root(root: BorrowedFd<'_>, path: &Path) -> Result<(OwnedFd, CString), Errno> {
    let parent_path = path.parent().unwrap_or(Path::new("/"));
    let name = path.file_name().ok_or(Errno::EINVAL)?;
    Ok((
        mkdir_all_in_root(root, parent_path)?,
        cstr(Path::new(name))?,
    ))
}

/// A mountinfo path field: the kernel writes space, tab, newline and backslash as `\ooo` octal
/// escapes, which procfs's parser leaves as they are.
pub(crate) fn unescape_mountinfo(field: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

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
        assert_eq!(
            relative(Path::new("/a/./b/../c")),
            PathBuf::from("a/b/../c")
        );
        assert_eq!(relative(Path::new("/")), PathBuf::from(""));
    }
}
