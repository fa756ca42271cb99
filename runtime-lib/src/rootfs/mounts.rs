//! The mounts of config.json: option parsing (before the clone) and mounting (in the init,
//! onto fds resolved inside the root).

use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use nix::sys::statvfs::{fstatvfs, FsFlags};
use oci_spec::runtime::Mount;

use super::copyup;
use super::paths::{ensure_file_in_root, fd_path, mkdir_all_in_root, open_in_root};
use super::RootfsError;

/// Parsed mount options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags to set.
    pub flags: MsFlags,
    /// Flags explicitly cleared (`rw`, `suid`, `dev`, ...): relevant when remounting a bind.
    pub cleared: MsFlags,
    /// Propagation changes applied after the mount, in order.
    pub propagation: Vec<MsFlags>,
    /// Filesystem-specific options, comma-joined, for mount(2)'s data.
    pub data: String,
    /// `bind` or `rbind` was given.
    pub bind: bool,
    /// `tmpcopyup` (runc's extension, tmpfs only): the new tmpfs starts with a copy of what
    /// the rootfs has at the destination.
    pub copy_up: bool,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            flags: MsFlags::empty(),
            cleared: MsFlags::empty(),
            propagation: Vec::new(),
            data: String::new(),
            bind: false,
            copy_up: false,
        }
    }
}

/// Every mount option [`parse_options`] gives a meaning of its own (others are passed to the
/// filesystem as data); `features` reports this list.
pub const KNOWN_OPTIONS: [&str; 40] = [
    "defaults",
    "ro",
    "rw",
    "nosuid",
    "suid",
    "nodev",
    "dev",
    "noexec",
    "exec",
    "sync",
    "async",
    "dirsync",
    "remount",
    "mand",
    "nomand",
    "atime",
    "noatime",
    "diratime",
    "nodiratime",
    "relatime",
    "norelatime",
    "strictatime",
    "nostrictatime",
    "lazytime",
    "nolazytime",
    "silent",
    "loud",
    "iversion",
    "noiversion",
    "bind",
    "rbind",
    "private",
    "rprivate",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "unbindable",
    "runbindable",
    "tmpcopyup",
];

/// Parse the `options` of a mount entry. Unknown options are filesystem data, as mount(8) does.
pub fn parse_options<S: AsRef<str>>(options: &[S]) -> Result<MountOptions, RootfsError> {
    let mut o = MountOptions::default();
    let mut data = Vec::new();
    for opt in options {
        let opt = opt.as_ref();
        let (set, clear) = match opt {
            "defaults" => (MsFlags::empty(), MsFlags::empty()),
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "lazytime" => (MsFlags::MS_LAZYTIME, MsFlags::empty()),
            "nolazytime" => (MsFlags::empty(), MsFlags::MS_LAZYTIME),
            "silent" => (MsFlags::MS_SILENT, MsFlags::empty()),
            "loud" => (MsFlags::empty(), MsFlags::MS_SILENT),
            "iversion" => (MsFlags::MS_I_VERSION, MsFlags::empty()),
            "noiversion" => (MsFlags::empty(), MsFlags::MS_I_VERSION),
            "bind" => {
                o.bind = true;
                (MsFlags::MS_BIND, MsFlags::empty())
            }
            "rbind" => {
                o.bind = true;
                (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty())
            }
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => {
                let mut p = match opt.trim_start_matches('r') {
                    "private" => MsFlags::MS_PRIVATE,
                    "shared" => MsFlags::MS_SHARED,
                    "slave" => MsFlags::MS_SLAVE,
                    _ => MsFlags::MS_UNBINDABLE,
                };
                if opt.starts_with('r') {
                    p |= MsFlags::MS_REC;
                }
                o.propagation.push(p);
                continue;
            }
            "tmpcopyup" => {
                o.copy_up = true;
                continue;
            }
            "rro" | "rrw" | "rnosuid" | "rsuid" | "rnodev" | "rdev" | "rnoexec" | "rexec"
            | "rnodiratime" | "rdiratime" | "rrelatime" | "rnorelatime" | "rnoatime" | "ratime"
            | "rstrictatime" | "rnostrictatime" | "idmap" | "ridmap" | "nosymfollow"
            | "rnosymfollow" => {
                return Err(RootfsError::Unsupported(format!("mount option {opt:?}")));
            }
            "" => return Err(RootfsError::Invalid("empty mount option".into())),
            other => {
                data.push(other);
                continue;
            }
        };
        o.flags = (o.flags | set) & !clear;
        o.cleared = (o.cleared | clear) & !set;
    }
    o.data = data.join(",");
    Ok(o)
}

/// What kind of mount an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Bind,
    Cgroup,
    Other,
}

/// A mount entry, checked and parsed before the clone.
#[derive(Debug, Clone)]
pub struct MountPlan {
    pub kind: Kind,
    pub source: Option<PathBuf>,
    pub destination: PathBuf,
    pub fstype: String,
    pub options: MountOptions,
    /// For a bind: whether the source is a directory (else a file is made as mount point).
    pub source_is_dir: bool,
}

impl MountPlan {
    pub fn from_spec(m: &Mount, bundle: &Path) -> Result<MountPlan, RootfsError> {
        let options = parse_options(m.options().as_deref().unwrap_or(&[]))?;
        let fstype = m.typ().clone().unwrap_or_default();
        let kind = if options.bind || fstype == "bind" {
            Kind::Bind
        } else if fstype == "cgroup" {
            Kind::Cgroup
        } else {
            Kind::Other
        };
        let mut source = m.source().clone();
        let mut source_is_dir = true;
        if kind == Kind::Bind {
            let src = source.as_ref().ok_or_else(|| {
                RootfsError::Invalid(format!(
                    "bind mount {} has no source",
                    m.destination().display()
                ))
            })?;
            let src = if src.is_absolute() {
                src.clone()
            } else {
                bundle.join(src)
            };
            let meta = std::fs::metadata(&src).map_err(|e| {
                RootfsError::Invalid(format!("bind mount source {}: {e}", src.display()))
            })?;
            source_is_dir = meta.is_dir();
            source = Some(src);
        }
        if options.copy_up && (kind != Kind::Other || fstype != "tmpfs") {
            return Err(RootfsError::Invalid(format!(
                "mount {}: option \"tmpcopyup\" is for tmpfs mounts only",
                m.destination().display()
            )));
        }
        if fstype.is_empty() && kind != Kind::Bind {
            return Err(RootfsError::Invalid(format!(
                "mount {} has no type",
                m.destination().display()
            )));
        }
        Ok(MountPlan {
            kind,
            source,
            destination: m.destination().clone(),
            fstype,
            options,
            source_is_dir,
        })
    }

    /// Mount this entry inside `root` (the rootfs, before pivot_root).
    pub fn mount(&self, root: BorrowedFd<'_>) -> Result<(), RootfsError> {
        let dest = &self.destination;
        let err = |step: &'static str| {
            let dest = dest.clone();
            move |source: nix::Error| RootfsError::Mount { step, dest, source }
        };
        let target = if self.kind == Kind::Bind && !self.source_is_dir {
            ensure_file_in_root(root, dest, 0o644).map_err(err("create mount point"))?
        } else {
            mkdir_all_in_root(root, dest).map_err(err("create mount point"))?
        };
        let o = &self.options;
        let pre = MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT;
        match self.kind {
            Kind::Bind => {
                let flags = o.flags & (MsFlags::MS_BIND | MsFlags::MS_REC);
                mount(
                    self.source.as_deref(),
                    fd_path(&target).as_str(),
                    None::<&str>,
                    flags,
                    None::<&str>,
                )
                .map_err(err("bind"))?;
                let extra = o.flags & !pre;
                if !extra.is_empty() {
                    let top = open_in_root(root, dest, OFlag::O_PATH).map_err(err("reopen"))?;
                    remount_bind(top.as_fd(), extra).map_err(err("remount"))?;
                }
            }
            Kind::Cgroup | Kind::Other => {
                let data = (!o.data.is_empty()).then_some(o.data.as_str());
                let source = self.source.as_deref().unwrap_or(Path::new(&self.fstype));
                // What the tmpfs will cover, opened while it still can be.
                let lower = o
                    .copy_up
                    .then(|| copyup::open_lower(target.as_fd()))
                    .transpose()
                    .map_err(err("open for tmpcopyup"))?;
                // A read-only tmpfs is filled first and made read-only after.
                let ro_later = lower.is_some() && o.flags.contains(MsFlags::MS_RDONLY);
                let flags = if ro_later {
                    o.flags & !pre & !MsFlags::MS_RDONLY
                } else {
                    o.flags & !pre
                };
                mount(
                    Some(source),
                    fd_path(&target).as_str(),
                    Some(self.fstype.as_str()),
                    flags,
                    data,
                )
                .map_err(err("mount"))?;
                if let Some(lower) = lower {
                    let top = open_in_root(root, dest, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
                        .map_err(err("reopen"))?;
                    copyup::copy_tree(lower.as_fd(), top.as_fd()).map_err(err("tmpcopyup"))?;
                    if ro_later {
                        mount(
                            None::<&str>,
                            fd_path(&top).as_str(),
                            None::<&str>,
                            flags | MsFlags::MS_RDONLY | MsFlags::MS_REMOUNT,
                            data,
                        )
                        .map_err(err("remount read-only"))?;
                    }
                }
            }
        }
        if !o.propagation.is_empty() {
            let top = open_in_root(root, dest, OFlag::O_PATH).map_err(err("reopen"))?;
            for p in &o.propagation {
                mount(
                    None::<&str>,
                    fd_path(&top).as_str(),
                    None::<&str>,
                    *p,
                    None::<&str>,
                )
                .map_err(err("set propagation"))?;
            }
        }
        Ok(())
    }
}

/// Remount the bind mount at `fd` with `flags`, keeping the flags the kernel locks on mounts
/// inherited from a more privileged mount namespace (nosuid, nodev, noexec, atime).
pub fn remount_bind(fd: BorrowedFd<'_>, flags: MsFlags) -> nix::Result<()> {
    let path = fd_path(&fd);
    let mut locked = MsFlags::empty();
    if let Ok(st) = fstatvfs(fd) {
        let f = st.flags();
        for (fs, ms) in [
            (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
            (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
            (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
            (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
            (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
            (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        ] {
            if f.contains(fs) {
                locked |= ms;
            }
        }
    }
    let flags = flags | MsFlags::MS_BIND | MsFlags::MS_REMOUNT;
    match mount(
        None::<&str>,
        path.as_str(),
        None::<&str>,
        flags | locked,
        None::<&str>,
    ) {
        Err(nix::Error::EPERM) if !locked.is_empty() => mount(
            None::<&str>,
            path.as_str(),
            None::<&str>,
            flags,
            None::<&str>,
        ),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_data() {
        let o =
            parse_options(&["nosuid", "noexec", "nodev", "mode=755", "size=65536k", "ro"]).unwrap();
        assert_eq!(
            o.flags,
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV | MsFlags::MS_RDONLY
        );
        assert_eq!(o.data, "mode=755,size=65536k");
        let o = parse_options(&["ro", "rw"]).unwrap();
        assert!(!o.flags.contains(MsFlags::MS_RDONLY));
        assert!(o.cleared.contains(MsFlags::MS_RDONLY));
    }

    #[test]
    fn bind_and_propagation() {
        let o = parse_options(&["rbind", "rslave", "private"]).unwrap();
        assert!(o.bind);
        assert!(o.flags.contains(MsFlags::MS_BIND | MsFlags::MS_REC));
        assert_eq!(
            o.propagation,
            vec![MsFlags::MS_SLAVE | MsFlags::MS_REC, MsFlags::MS_PRIVATE]
        );
    }

    #[test]
    fn unsupported_is_reported() {
        let e = parse_options(&["idmap"]).unwrap_err();
        assert!(e.to_string().contains("idmap"), "{e}");
        assert!(parse_options(&[""]).is_err());
    }

    #[test]
    fn known_options_have_a_meaning() {
        for opt in KNOWN_OPTIONS {
            let o = parse_options(&[opt]).unwrap_or_else(|e| panic!("{opt}: {e}"));
            assert!(o.data.is_empty(), "{opt} was passed as filesystem data");
        }
    }
}
