//! Remounting a bind mount with new per-mount flags (`MS_BIND | MS_REMOUNT`).
//!
//! The requested flags are tried alone first, so that an explicit flag (`relatime` over a
//! `noatime` source, `rw` over a `ro` one) takes effect wherever the kernel allows it. A mount
//! inherited from a more privileged mount namespace has some flags locked (MNT_LOCK_*): in a
//! user namespace, clearing them fails with EPERM. Then the flags the mount has are kept, unless
//! the request explicitly clears a locked flag or asks for another atime mode, which is refused
//! by name rather than silently not done.

use std::os::fd::BorrowedFd;

use nix::mount::{mount, MsFlags};
use nix::sys::statvfs::{fstatvfs, FsFlags};

use super::paths::fd_path;

/// The atime modes, of which a mount has exactly one.
const ATIME_MODES: MsFlags = MsFlags::MS_NOATIME
    .union(MsFlags::MS_RELATIME)
    .union(MsFlags::MS_STRICTATIME);
/// Every atime-related flag.
const ATIME: MsFlags = ATIME_MODES.union(MsFlags::MS_NODIRATIME);
/// The flags the kernel locks on mounts that a less privileged user namespace inherits.
pub const LOCKABLE: MsFlags = MsFlags::MS_RDONLY
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC)
    .union(MsFlags::MS_NOSUID)
    .union(ATIME);

/// Why a remount did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RemountError {
    #[error("{0}")]
    Failed(nix::Error),
    #[error("cannot clear locked flags {}: {source}", FlagNames(*.flags))]
    ClearLocked { flags: MsFlags, source: nix::Error },
    #[error("cannot change locked atime flags {}: {source}", FlagNames(*.flags))]
    AtimeLocked { flags: MsFlags, source: nix::Error },
    #[error("remount with locked flags {} kept: {source}", FlagNames(*.flags))]
    WithLocked { flags: MsFlags, source: nix::Error },
}

/// The mount(2) names of `flags`, comma-joined, for messages: written out as they are
/// formatted, without allocating (the init words its remount failures with it).
#[derive(Debug, Clone, Copy)]
pub struct FlagNames(pub MsFlags);

impl std::fmt::Display for FlagNames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = [
            (MsFlags::MS_RDONLY, "ro"),
            (MsFlags::MS_NOSUID, "nosuid"),
            (MsFlags::MS_NODEV, "nodev"),
            (MsFlags::MS_NOEXEC, "noexec"),
            (MsFlags::MS_NOATIME, "noatime"),
            (MsFlags::MS_NODIRATIME, "nodiratime"),
            (MsFlags::MS_RELATIME, "relatime"),
            (MsFlags::MS_STRICTATIME, "strictatime"),
        ];
        let mut sep = "";
        for (_, name) in names.iter().filter(|(flag, _)| self.0.contains(*flag)) {
            write!(f, "{sep}{name}")?;
            sep = ",";
        }
        Ok(())
    }
}

/// The per-mount flags of the mount at `fd`, as mount(2) flags. statvfs has no "strictatime":
/// a mount with none of the other atime modes is strictatime.
pub fn mount_flags(fd: BorrowedFd<'_>) -> nix::Result<MsFlags> {
    let st = fstatvfs(fd)?.flags();
    let mut flags = MsFlags::empty();
    for (fs, ms) in [
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if st.contains(fs) {
            flags |= ms;
        }
    }
    if !flags.intersects(ATIME_MODES) {
        flags |= MsFlags::MS_STRICTATIME;
    }
    Ok(flags)
}

/// Remount the bind mount at `fd` with `set` (flags not in `set` are cleared, as by
/// `mount --bind -o remount`); `cleared` are the flags the request named explicitly as off
/// (`rw`, `suid`, ...), which must not be kept even when locked.
pub fn remount_bind(
    fd: BorrowedFd<'_>,
    set: MsFlags,
    cleared: MsFlags,
) -> Result<(), RemountError> {
    let path = fd_path(&fd);
    let flags = set | MsFlags::MS_BIND | MsFlags::MS_REMOUNT;
    let remount = |flags: MsFlags| {
        mount(
            None::<&str>,
            path.as_c_str(),
            None::<&str>,
            flags,
            None::<&str>,
        )
    };
    let first = match remount(flags) {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    let have = mount_flags(fd).map_err(RemountError::Failed)?;
    let must_clear = have & cleared & LOCKABLE;
    if !must_clear.is_empty() {
        return Err(RemountError::ClearLocked {
            flags: must_clear,
            source: first,
        });
    }
    // The kernel silently drops relatime next to noatime, and noatime and relatime next to
    // strictatime: an atime mode other than the locked one would not be what was asked for.
    if set.intersects(ATIME) && set & ATIME != have & ATIME {
        return Err(RemountError::AtimeLocked {
            flags: have & ATIME,
            source: first,
        });
    }
    let locked = have & LOCKABLE;
    remount(flags | locked).map_err(|source| RemountError::WithLocked {
        flags: locked,
        source,
    })
}

/// Make the bind mount at `fd` read-only, keeping its nosuid, nodev and noexec.
pub fn make_read_only(fd: BorrowedFd<'_>) -> Result<(), RemountError> {
    let keep = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let have = mount_flags(fd).map_err(RemountError::Failed)?;
    remount_bind(fd, MsFlags::MS_RDONLY | (have & keep), MsFlags::empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            FlagNames(MsFlags::MS_RDONLY | MsFlags::MS_NOATIME | MsFlags::MS_BIND).to_string(),
            "ro,noatime"
        );
        assert_eq!(FlagNames(MsFlags::empty()).to_string(), "");
        let e = RemountError::ClearLocked {
            flags: MsFlags::MS_RDONLY | MsFlags::MS_NODEV,
            source: nix::Error::EPERM,
        };
        assert_eq!(
            e.to_string(),
            "cannot clear locked flags ro,nodev: EPERM: Operation not permitted"
        );
    }

    #[test]
    fn lockable_flags() {
        assert!(LOCKABLE.contains(MsFlags::MS_RDONLY | MsFlags::MS_STRICTATIME));
        assert!(!LOCKABLE.contains(MsFlags::MS_SYNCHRONOUS));
    }
}
