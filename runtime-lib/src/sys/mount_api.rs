//! The new mount API calls that idmapped mounts need: a detached copy of a mount tree
//! (`open_tree(OPEN_TREE_CLONE)`), an id mapping set on it (`mount_setattr` with
//! `MOUNT_ATTR_IDMAP`), and its attachment (`move_mount`); and the kernel probe for them.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

// Kernel ABI, include/uapi/linux/mount.h and fcntl.h.
const OPEN_TREE_CLONE: libc::c_uint = 1;
const OPEN_TREE_CLOEXEC: libc::c_uint = libc::O_CLOEXEC as libc::c_uint;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const AT_EMPTY_PATH: libc::c_uint = libc::AT_EMPTY_PATH as libc::c_uint;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x04;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
/// `MOUNT_ATTR_IDMAP` (Linux 5.12).
pub const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// `struct mount_attr` of mount_setattr(2): the one definition for every caller in `sys/`.
#[repr(C)]
pub(super) struct MountAttr {
    pub(super) attr_set: u64,
    pub(super) attr_clr: u64,
    pub(super) propagation: u64,
    pub(super) userns_fd: u64,
}

/// Where [`open_tree_clone`] finds the mount to copy.
pub enum TreeSource<'a> {
    /// The file an fd is open on (`AT_EMPTY_PATH`).
    Fd(BorrowedFd<'a>),
    /// A path, resolved from the caller's root and working directory.
    Path(&'a CStr),
}

/// A detached copy of the mount at `source` (with every mount under it when `recursive`),
/// rooted at `source` itself, close-on-exec.
pub fn open_tree_clone(source: TreeSource<'_>, recursive: bool) -> nix::Result<OwnedFd> {
    let mut flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    let (dir, path) = match source {
        TreeSource::Fd(fd) => {
            flags |= AT_EMPTY_PATH;
            (fd.as_raw_fd(), c"")
        }
        TreeSource::Path(p) => (libc::AT_FDCWD, p),
    };
    // SAFETY: open_tree reads the NUL-terminated `path` and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, dir, path.as_ptr(), flags) };
    let fd = Errno::result(fd)?;
    // SAFETY: the syscall succeeded, so `fd` is a new descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// mount_setattr(2) with `attr` on the mount `fd` is the root of (and the mounts under it
/// when `recursive`).
pub(super) fn mount_setattr(fd: RawFd, attr: &MountAttr, recursive: bool) -> nix::Result<()> {
    let mut flags = AT_EMPTY_PATH;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    // SAFETY: mount_setattr reads the NUL-terminated empty path and `attr`, whose size is
    // passed with it and which outlives the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd,
            c"".as_ptr(),
            flags,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(r).map(drop)
}

/// Make the detached mount `tree` (and the mounts under it when `recursive`) idmapped with
/// the id mappings of the user namespace `userns`.
pub fn mount_set_idmap(
    tree: BorrowedFd<'_>,
    userns: BorrowedFd<'_>,
    recursive: bool,
) -> nix::Result<()> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    mount_setattr(tree.as_raw_fd(), &attr, recursive)
}

/// Attach the detached mount `tree` onto the file `target` is open on.
pub fn move_mount_onto(tree: BorrowedFd<'_>, target: BorrowedFd<'_>) -> nix::Result<()> {
    // SAFETY: move_mount reads the two NUL-terminated empty paths; both fds are open.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    Errno::result(r).map(drop)
}

/// Whether the kernel has mount_setattr(2) with `MOUNT_ATTR_IDMAP`. Probed without a side
/// effect: the attribute is checked before its user-namespace fd, which is checked before the
/// mount, so a kernel that knows the attribute answers EBADF for an fd number that is not
/// open, one that does not answers EINVAL, and one without the call ENOSYS.
pub fn idmap_supported() -> bool {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        // The largest fd number the kernel takes; never open (above any RLIMIT_NOFILE).
        userns_fd: i32::MAX as u64,
    };
    mount_setattr(-1, &attr, false) == Err(Errno::EBADF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_matches_the_kernel_version() {
        // MOUNT_ATTR_IDMAP came with mount_setattr(2) in Linux 5.12.
        let release = nix::sys::utsname::uname().unwrap();
        let release = release.release().to_string_lossy().into_owned();
        let mut parts = release
            .split(['.', '-'])
            .map(|p| p.parse::<u32>().unwrap_or(0));
        let version = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        assert_eq!(idmap_supported(), version >= (5, 12), "kernel {release}");
    }
}
