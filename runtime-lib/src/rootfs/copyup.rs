//! `tmpcopyup`, runc's extension for tmpfs mounts that engines rely on (podman's
//! `--read-only` puts it on `/tmp`, `/run` and `/var/tmp`): the new tmpfs starts with a copy of
//! what the image had at its destination.
//!
//! The directory under the mount point is opened before the tmpfs covers it; the copy then
//! reads through that fd, so there is no temporary mount point and no path that the
//! container's files could redirect. Everything is done with `*at` calls relative to those
//! fds, never following a symlink of the image.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{openat, readlinkat, AtFlags, OFlag};
use nix::sys::stat::{fchmodat, fstatat, mkdirat, mknodat, utimensat, FchmodatFlags};
use nix::sys::stat::{Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchownat, symlinkat, Gid, Uid};

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
    let mut dir = Dir::from_fd(open_lower(from)?)?;
    let names: Vec<CString> = dir
        .iter()
        .map(|e| e.map(|e| e.file_name().to_owned()))
        .collect::<Result<_, _>>()?;
    for name in names
        .iter()
        .filter(|n| !matches!(n.to_bytes(), b"." | b".."))
    {
        copy_entry(from, to, name)?;
    }
    Ok(())
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
        let target = readlinkat(from, name)?;
        symlinkat(target.as_bytes(), to, name)?;
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
