//! `tmpcopyup`, runc's extension for tmpfs mounts that engines rely on (podman's
//! `--read-only` puts it on `/tmp`, `/run` and `/var/tmp`): the new tmpfs starts with a copy of
//! what the image had at its destination.
//!
//! The directory under the mount point is opened before the tmpfs covers it; the copy then
//! reads through that fd, so there is no temporary mount point and no path that the
//! container's files could redirect. Everything is done with `*at` calls relative to those
//! fds, never following a symlink of the image.

use std::ffi::CStr;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{fchmodat, fstatat, mkdirat, mknodat, utimensat, FchmodatFlags};
use nix::sys::stat::{Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchownat, symlinkat, Gid, Uid};

use super::paths::{StackCStr, PATH_MAX};

/// Open the directory `at` (an `O_PATH` fd of the mount point) for reading, before the tmpfs
/// is mounted over it.
pub fn open_lower(at: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    openat(
        at,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// Copy the tree under `from` into `to` (the fresh tmpfs): files, directories, symlinks,
/// device nodes, fifos and sockets, with owner, mode and times. The tmpfs root itself keeps
/// the mode its mount options gave it, as runc's copy-up does.
pub fn copy_tree(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> Result<(), Errno> {
    copy_dir_entries(from, to)
}

fn copy_dir_entries(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> Result<(), Errno> {
    // Read with getdents64 into a buffer of our own (an opendir stream allocates, and this runs
    // in the init); the fd is our own, so its offset is not shared with `from`'s.
    let dir = open_lower(from)?;
    let mut buf = [0u8; 2048];
    loop {
        let n = crate::sys::dir::getdents64(dir.as_fd(), &mut buf)?;
        if n == 0 {
            return Ok(());
        }
        for name in dirent_names(&buf[..n]) {
            if !matches!(name.to_bytes(), b"." | b"..") {
                copy_entry(from, to, name)?;
            }
        }
    }
}

/// The names of the `linux_dirent64` records in `buf` (u64 inode, i64 offset, u16 record
/// length, u8 type, then the NUL-terminated name).
fn dirent_names(buf: &[u8]) -> impl Iterator<Item = &CStr> {
    const NAME: usize = 19;
    let mut rest = buf;
    std::iter::from_fn(move || {
        let reclen = usize::from(u16::from_ne_bytes([*rest.get(16)?, *rest.get(17)?]));
        let record = rest.get(..reclen)?;
        rest = &rest[reclen..];
        CStr::from_bytes_until_nul(record.get(NAME..)?).ok()
    })
}

fn copy_entry(from: BorrowedFd<'_>, to: BorrowedFd<'_>, name: &CStr) -> Result<(), Errno> {
    let st = fstatat(from, name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
    let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
    let mode = Mode::from_bits_truncate(st.st_mode & 0o7777);
    let (uid, gid) = (Uid::from_raw(st.st_uid), Gid::from_raw(st.st_gid));
    let times = [
        TimeSpec::new(st.st_atime, st.st_atime_nsec),
        TimeSpec::new(st.st_mtime, st.st_mtime_nsec),
    ];
    if kind == SFlag::S_IFLNK {
        // Room for any target symlink(2) accepts (PATH_MAX - 1 bytes).
        let mut target = StackCStr::<{ PATH_MAX + 2 }>::new();
        target.push_link(from, name)?;
        symlinkat(target.as_c_str(), to, name)?;
        fchownat(to, name, Some(uid), Some(gid), AtFlags::AT_SYMLINK_NOFOLLOW)?;
        return utimensat(
            to,
            name,
            &times[0],
            &times[1],
            UtimensatFlags::NoFollowSymlink,
        );
    }
    if kind == SFlag::S_IFDIR {
        mkdirat(to, name, Mode::from_bits_truncate(0o700))?;
        let sub_from = open_dir_at(from, name)?;
        let sub_to = open_dir_at(to, name)?;
        copy_dir_entries(sub_from.as_fd(), sub_to.as_fd())?;
    } else if kind == SFlag::S_IFREG {
        let src = openat(
            from,
            name,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let mut src = File::from(src);
        let dst = openat(
            to,
            name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )?;
        let mut dst = File::from(dst);
        std::io::copy(&mut src, &mut dst)
            .map_err(|e| e.raw_os_error().map_or(Errno::EIO, Errno::from_raw))?;
    } else {
        // Character and block devices, fifos, sockets: the node itself.
        mknodat(to, name, kind, mode, st.st_rdev)?;
    }
    fchownat(to, name, Some(uid), Some(gid), AtFlags::AT_SYMLINK_NOFOLLOW)?;
    // After the owner: chown clears set-id bits.
    fchmodat(to, name, mode, FchmodatFlags::FollowSymlink)?;
    utimensat(
        to,
        name,
        &times[0],
        &times[1],
        UtimensatFlags::NoFollowSymlink,
    )
}

fn open_dir_at(at: BorrowedFd<'_>, name: &CStr) -> Result<OwnedFd, Errno> {
    openat(
        at,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn copies_a_tree_past_one_buffer_of_entries() {
        let base = std::env::temp_dir().join(format!("casulo-copyup-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let (from, to) = (base.join("from"), base.join("to"));
        std::fs::create_dir_all(from.join("sub/deeper")).unwrap();
        std::fs::create_dir_all(&to).unwrap();
        // More entries than one getdents64 buffer holds.
        let names: Vec<String> = (0..200)
            .map(|i| format!("file-with-a-long-name-{i:04}"))
            .collect();
        for n in &names {
            std::fs::write(from.join(n), n).unwrap();
        }
        std::fs::write(from.join("sub/deeper/f"), "deep").unwrap();
        let long_target = "t".repeat(PATH_MAX - 1);
        symlink(&long_target, from.join("sub/long")).unwrap();
        symlink("/abs", from.join("abs")).unwrap();
        let open = |p: &std::path::Path| {
            nix::fcntl::open(p, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty()).unwrap()
        };
        copy_tree(open(&from).as_fd(), open(&to).as_fd()).unwrap();
        for n in &names {
            assert_eq!(std::fs::read_to_string(to.join(n)).unwrap(), *n);
        }
        assert_eq!(
            std::fs::read_to_string(to.join("sub/deeper/f")).unwrap(),
            "deep"
        );
        let link = std::fs::read_link(to.join("sub/long")).unwrap();
        assert_eq!(link.as_os_str().len(), long_target.len());
        assert_eq!(
            std::fs::read_link(to.join("abs")).unwrap(),
            std::path::Path::new("/abs")
        );
        std::fs::remove_dir_all(&base).unwrap();
    }
}
