//! Device nodes and the standard `/dev` symlinks.

use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use nix::sys::stat::{makedev, mknodat, Mode, SFlag};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use super::paths::{ensure_file_in_root, fd_path, parent_in_root, PathBuffer};
use super::{mount_err, RootfsError};
use crate::lifecycle::text::ChildError;

/// A device node to create in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub path: PathBuf,
    pub kind: SFlag,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// The devices every container gets (runtime-spec "Default Devices").
pub fn defaults() -> Vec<Device> {
    [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ]
    .into_iter()
    .map(|(name, major, minor)| Device {
        path: PathBuf::from("/dev").join(name),
        kind: SFlag::S_IFCHR,
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    })
    .collect()
}

impl Device {
    pub fn from_spec(d: &LinuxDevice) -> Result<Device, RootfsError> {
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
            LinuxDeviceType::B => SFlag::S_IFBLK,
            LinuxDeviceType::P => SFlag::S_IFIFO,
            LinuxDeviceType::A => {
                return Err(RootfsError::Invalid(format!(
                    "device {}: type \"a\" is not a node type",
                    d.path().display()
                )))
            }
        };
        if d.path()
            .components()
            .any(|c| c == std::path::Component::ParentDir)
        {
            return Err(RootfsError::Invalid(format!(
                "device path {} contains ..",
                d.path().display()
            )));
        }
        Ok(Device {
            path: d.path().clone(),
            kind,
            major: d.major() as u64,
            minor: d.minor() as u64,
            mode: d.file_mode().unwrap_or(0o666) & 0o7777,
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        })
    }

    /// Create the node inside `root`: mknod, or in a user namespace (where mknod is denied) a
    /// bind mount of the host's node.
    pub fn create(&self, root: BorrowedFd<'_>, bind: bool) -> Result<(), ChildError> {
        let err = |step| mount_err(step, &self.path);
        if bind {
            let target = ensure_file_in_root(root, &self.path, 0o000)
                .map_err(err("create device mount point"))?;
            let host = PathBuffer::from_bytes(self.path.as_os_str().as_bytes())
                .map_err(err("bind device"))?;
            return mount(
                Some(host.as_c_str()),
                fd_path(&target).as_c_str(),
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(err("bind device"));
        }
        let (parent, name) =
            parent_in_root(root, &self.path).map_err(err("create device directory"))?;
        let dev = if self.kind == SFlag::S_IFIFO {
            0
        } else {
            makedev(self.major, self.minor)
        };
        match mknodat(
            parent.as_fd(),
            name.as_c_str(),
            self.kind,
            Mode::from_bits_truncate(self.mode),
            dev,
        ) {
            Ok(()) => {}
            // A node already there (the rootfs has /dev populated) is kept, as runc does.
            Err(nix::Error::EEXIST) => return Ok(()),
            Err(e) => return Err(err("mknod")(e)),
        }
        // mknod is subject to the umask: set the exact mode, then the owner.
        nix::sys::stat::fchmodat(
            parent.as_fd(),
            name.as_c_str(),
            Mode::from_bits_truncate(self.mode),
            nix::sys::stat::FchmodatFlags::NoFollowSymlink,
        )
        .or_else(|e| {
            if e == nix::Error::EOPNOTSUPP {
                Ok(())
            } else {
                Err(e)
            }
        })
        .map_err(err("chmod device"))?;
        nix::unistd::fchownat(
            parent.as_fd(),
            name.as_c_str(),
            Some(self.uid.into()),
            Some(self.gid.into()),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(err("chown device"))
    }
}

/// The `/dev` symlinks (`fd`, `stdin`, `stdout`, `stderr`, `ptmx`, and `core` where the host
/// has /proc/kcore).
pub fn create_symlinks(root: BorrowedFd<'_>) -> Result<(), ChildError> {
    let links = [
        ("/proc/self/fd", "/dev/fd"),
        ("/proc/self/fd/0", "/dev/stdin"),
        ("/proc/self/fd/1", "/dev/stdout"),
        ("/proc/self/fd/2", "/dev/stderr"),
    ];
    let core = Path::new("/proc/kcore")
        .exists()
        .then_some(("/proc/kcore", "/dev/core"));
    for (target, link) in links.into_iter().chain(core) {
        symlink(root, target, Path::new(link), false)?;
    }
    // /dev/ptmx must be the devpts instance's ptmx, replacing any node the rootfs has.
    symlink(root, "pts/ptmx", Path::new("/dev/ptmx"), true)
}

fn symlink(
    root: BorrowedFd<'_>,
    target: &str,
    link: &Path,
    replace: bool,
) -> Result<(), ChildError> {
    let err = |step| mount_err(step, link);
    let (parent, name) = parent_in_root(root, link).map_err(err("symlink"))?;
    if replace {
        match nix::unistd::unlinkat(
            parent.as_fd(),
            name.as_c_str(),
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        ) {
            Ok(()) | Err(nix::Error::ENOENT) => {}
            Err(e) => return Err(err("remove")(e)),
        }
    }
    match nix::unistd::symlinkat(target, parent.as_fd(), name.as_c_str()) {
        Ok(()) | Err(nix::Error::EEXIST) => Ok(()),
        Err(e) => Err(err("symlink")(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_devices() {
        let d = defaults();
        assert_eq!(d.len(), 6);
        assert!(d
            .iter()
            .any(|d| d.path == Path::new("/dev/null") && d.major == 1 && d.minor == 3));
        assert!(d
            .iter()
            .any(|d| d.path == Path::new("/dev/tty") && d.major == 5 && d.minor == 0));
    }

    #[test]
    fn config_device() {
        let d: LinuxDevice =
            serde_json::from_str(r#"{"path":"/dev/fuse","type":"c","major":10,"minor":229,"fileMode":438,"uid":0,"gid":0}"#)
                .unwrap();
        let d = Device::from_spec(&d).unwrap();
        assert_eq!((d.major, d.minor, d.mode), (10, 229, 0o666));
        let bad: LinuxDevice =
            serde_json::from_str(r#"{"path":"/dev/../etc/x","type":"c","major":1,"minor":3}"#)
                .unwrap();
        assert!(Device::from_spec(&bad).is_err());
    }
}
