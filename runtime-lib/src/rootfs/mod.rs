//! The container's root filesystem: propagation, the rootfs bind, every mount of config.json,
//! devices, `/dev` symlinks, pivot_root (or chroot), masked and readonly paths, readonly root.
//!
//! [`RootfsPlan::from_spec`] runs before the fork and does all the parsing and checking;
//! the init then calls, in order, [`RootfsPlan::bind_root`], [`RootfsPlan::mount_range`] for
//! the mounts before the first cgroup mount, then (once in its cgroup) for the rest,
//! [`RootfsPlan::make_devices`], [`pivot`] and [`RootfsPlan::finalize`].

mod cgroupfs;
mod copyup;
mod devices;
mod idmap;
mod masked;
pub mod mounts;
mod options;
pub mod paths;
mod remount;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::Mode;
use oci_spec::runtime::Spec;

pub use cgroupfs::HostCgroups;
pub use devices::Device;
pub use idmap::MappingNamespaces;
pub use mounts::{parse_options, MountPlan, SourceRequest};

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("{step} {}: {source}", dest.display())]
    Mount {
        step: &'static str,
        dest: PathBuf,
        source: nix::Error,
    },
    #[error("remount {}: {source}", dest.display())]
    Remount {
        dest: PathBuf,
        source: remount::RemountError,
    },
    #[error(transparent)]
    Idmap(#[from] idmap::IdmapError),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}: not supported by this runtime")]
    Unsupported(String),
}

/// Everything the init needs to build the root filesystem.
#[derive(Debug, Clone)]
pub struct RootfsPlan {
    pub rootfs: PathBuf,
    /// Propagation of `/` in the container's mount namespace (default rslave).
    pub propagation: MsFlags,
    /// With a shared `propagation` (`rshared`, `shared`): the mount point holding the rootfs,
    /// which the init makes private (see [`RootfsPlan::bind_root`]).
    pub shared_root_parent: Option<PathBuf>,
    pub mounts: Vec<MountPlan>,
    pub devices: Vec<Device>,
    /// False when the config bind-mounts `/dev` from elsewhere: then no nodes nor links are made.
    pub setup_dev: bool,
    pub masked: Vec<PathBuf>,
    pub readonly: Vec<PathBuf>,
    pub readonly_root: bool,
    pub no_pivot: bool,
    /// The container shares the runtime's mount namespace (no `mount` namespace in the
    /// config): everything is mounted under the rootfs's own private bind mount, which the
    /// runtime detaches at delete, and the root is entered with chroot.
    pub host_mount_ns: bool,
    pub host_cgroups: HostCgroups,
}

const DEFAULT_PROPAGATION: MsFlags = MsFlags::MS_SLAVE.union(MsFlags::MS_REC);

fn propagation(s: &str) -> Result<MsFlags, RootfsError> {
    Ok(match s {
        "" | "rslave" => DEFAULT_PROPAGATION,
        "slave" => MsFlags::MS_SLAVE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "private" => MsFlags::MS_PRIVATE,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        other => {
            return Err(RootfsError::Invalid(format!(
                "linux.rootfsPropagation: unknown value {other:?}"
            )))
        }
    })
}

impl RootfsPlan {
    pub fn from_spec(
        spec: &Spec,
        bundle: &Path,
        rootfs: &Path,
        no_pivot: bool,
    ) -> Result<RootfsPlan, RootfsError> {
        let linux = spec.linux().as_ref();
        let mut mounts = Vec::new();
        let lsm = crate::security::label::HostLsm::probe();
        let mount_label = linux.and_then(|l| l.mount_label().as_deref());
        for m in spec.mounts().iter().flatten() {
            let mut plan = MountPlan::from_spec(m, bundle, rootfs)?;
            if plan.kind == mounts::Kind::Other {
                plan.options.data = crate::security::label::mount_data(
                    lsm,
                    &plan.fstype,
                    &plan.options.data,
                    mount_label,
                );
            }
            mounts.push(plan);
        }
        idmap::check_idmapped(spec, &mounts)?;
        let setup_dev = !mounts
            .iter()
            .any(|m| m.kind == mounts::Kind::Bind && m.destination == Path::new("/dev"));
        let mut devices = devices::defaults();
        for d in linux
            .and_then(|l| l.devices().as_ref())
            .into_iter()
            .flatten()
        {
            let d = Device::from_spec(d)?;
            devices.retain(|x| x.path != d.path);
            devices.push(d);
        }
        let needs_cgroups = mounts.iter().any(|m| m.kind == mounts::Kind::Cgroup);
        let propagation = propagation(
            linux
                .and_then(|l| l.rootfs_propagation().as_deref())
                .unwrap_or(""),
        )?;
        let shared_root_parent = if propagation.contains(MsFlags::MS_SHARED) {
            Some(mount_point_holding(rootfs)?)
        } else {
            None
        };
        Ok(RootfsPlan {
            rootfs: rootfs.to_path_buf(),
            propagation,
            shared_root_parent,
            mounts,
            devices,
            setup_dev,
            masked: linux
                .and_then(|l| l.masked_paths().clone())
                .unwrap_or_default()
                .into_iter()
                .map(PathBuf::from)
                .collect(),
            readonly: linux
                .and_then(|l| l.readonly_paths().clone())
                .unwrap_or_default()
                .into_iter()
                .map(PathBuf::from)
                .collect(),
            readonly_root: spec
                .root()
                .as_ref()
                .and_then(|r| r.readonly())
                .unwrap_or(false),
            no_pivot,
            host_mount_ns: false,
            host_cgroups: if needs_cgroups {
                HostCgroups::read()
            } else {
                HostCgroups::default()
            },
        })
    }

    /// In the init, in its new mount namespace, before pivot_root: propagation and the rootfs
    /// bind. Returns an fd of the rootfs, for [`RootfsPlan::mount_range`] and
    /// [`RootfsPlan::make_devices`].
    pub fn bind_root(&self) -> Result<OwnedFd, RootfsError> {
        let err = |step: &'static str, dest: &Path| {
            let dest = dest.to_path_buf();
            move |source: nix::Error| RootfsError::Mount { step, dest, source }
        };
        // Nothing we mount may propagate back to the host, and pivot_root refuses a shared
        // parent mount: every mount becomes a slave now; the configured propagation of `/`
        // is applied after pivot_root. In the host's own mount namespace, only the rootfs's
        // bind mount is touched: it is made private so that nothing under it propagates.
        //
        // A shared propagation (`rshared`, which containerd's CRI asks for with Kubernetes'
        // Bidirectional mounts) is applied now instead, as runc does: the namespace's copies of
        // the host's shared mounts must stay their peers, for a bind of one of them to send
        // the container's mounts back (a slave copy, bound, would only receive). The mount
        // holding the rootfs is then made private, so that the rootfs's bind and what is
        // mounted under it stay in the container, and pivot_root accepts the new root.
        if !self.host_mount_ns {
            let root_propagation = match self.shared_root_parent {
                Some(_) => self.propagation,
                None => DEFAULT_PROPAGATION,
            };
            mount(
                None::<&str>,
                "/",
                None::<&str>,
                root_propagation,
                None::<&str>,
            )
            .map_err(err("set propagation", Path::new("/")))?;
            if let Some(parent) = &self.shared_root_parent {
                mount(
                    None::<&str>,
                    parent,
                    None::<&str>,
                    MsFlags::MS_PRIVATE,
                    None::<&str>,
                )
                .map_err(err("make the rootfs's mount private", parent))?;
            }
        }
        mount(
            Some(&self.rootfs),
            &self.rootfs,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(err("bind rootfs", &self.rootfs))?;
        if self.host_mount_ns {
            mount(
                None::<&str>,
                &self.rootfs,
                None::<&str>,
                MsFlags::MS_PRIVATE | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(err("make rootfs private", &self.rootfs))?;
        }
        let root = nix::fcntl::open(
            &self.rootfs,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(err("open rootfs", &self.rootfs))?;
        Ok(root)
    }

    /// How many mounts come before the first `cgroup` mount: those can be made before the init
    /// is in its cgroup (a cgroup mount shows the init's own cgroup), the rest only after.
    pub fn mounts_before_cgroup(&self) -> usize {
        self.mounts
            .iter()
            .position(|m| m.kind == mounts::Kind::Cgroup)
            .unwrap_or(self.mounts.len())
    }

    /// The mounts numbered `range` (their order in config.json), inside `root`.
    ///
    /// `host_source` asks the runtime for the source of bind mount number N, opened in our
    /// mount namespace with the runtime's credentials (see [`RootfsPlan::open_host_source`]),
    /// for a source the init cannot reach itself (in a user namespace), or for the idmapped
    /// tree of an idmapped bind (see [`RootfsPlan::idmapped_tree`]).
    pub fn mount_range(
        &self,
        root: BorrowedFd<'_>,
        range: std::ops::Range<usize>,
        new_cgroupns: bool,
        host_source: &mut dyn FnMut(u32, SourceRequest<'_>) -> Result<OwnedFd, String>,
    ) -> Result<(), RootfsError> {
        for (n, m) in (0u32..)
            .zip(&self.mounts)
            .skip(range.start)
            .take(range.len())
        {
            match m.kind {
                mounts::Kind::Cgroup => {
                    cgroupfs::mount_cgroup(root, m, &self.host_cgroups, new_cgroupns)?
                }
                _ => m.mount(root, &mut |req| host_source(n, req))?,
            }
        }
        Ok(())
    }

    /// The device nodes and `/dev` symlinks, unless `/dev` is a bind mount of the config's. In
    /// the init once it is in its cgroup: mknod is subject to the device cgroup, whose v1 rules
    /// are written one by one after a "deny all".
    pub fn make_devices(&self, root: BorrowedFd<'_>, in_userns: bool) -> Result<(), RootfsError> {
        if self.setup_dev {
            for d in &self.devices {
                d.create(root, in_userns)?;
            }
            devices::create_symlinks(root)?;
        }
        Ok(())
    }

    /// In the runtime, for the init: the source of bind mount number `n`, a host path, opened
    /// (O_PATH) in the mount namespace of the init `pid` but with the runtime's credentials,
    /// which reach what the init's user namespace cannot. Only configured sources outside the
    /// rootfs are served.
    pub fn open_host_source(&self, n: u32, pid: i32) -> Result<OwnedFd, RootfsError> {
        let source = usize::try_from(n)
            .ok()
            .and_then(|i| self.mounts.get(i))
            .filter(|m| m.kind == mounts::Kind::Bind && m.source_in_root.is_none())
            .and_then(|m| m.source.as_deref())
            .ok_or_else(|| {
                RootfsError::Invalid(format!(
                    "the init asked for the source of mount {n}, not a bind mount of a host path"
                ))
            })?;
        open_in_mount_ns(pid, source).map_err(|source_err| RootfsError::Mount {
            step: "open bind source in the container's mount namespace",
            dest: source.to_path_buf(),
            source: source_err,
        })
    }

    /// After pivot_root: masked paths, readonly paths, readonly root.
    pub fn finalize(&self) -> Result<(), RootfsError> {
        let root = nix::fcntl::open(
            "/",
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|source| RootfsError::Mount {
            step: "open",
            dest: "/".into(),
            source,
        })?;
        for m in self.mounts.iter().filter(|m| m.read_only_later()) {
            m.make_read_only(root.as_fd())?;
        }
        masked::make_readonly(root.as_fd(), &self.readonly)?;
        masked::mask(root.as_fd(), &self.masked)?;
        if self.readonly_root {
            remount::make_read_only(root.as_fd()).map_err(|source| RootfsError::Remount {
                dest: "/".into(),
                source,
            })?;
        }
        if self.propagation != DEFAULT_PROPAGATION && !self.host_mount_ns {
            mount(
                None::<&str>,
                "/",
                None::<&str>,
                self.propagation,
                None::<&str>,
            )
            .map_err(|source| RootfsError::Mount {
                step: "set propagation",
                dest: "/".into(),
                source,
            })?;
        }
        Ok(())
    }
}

/// The mount point of the mount that holds `rootfs` (the rootfs itself when it is one), from
/// /proc/self/mountinfo; in the runtime, before the fork (the init's new mount namespace is a
/// copy of ours).
fn mount_point_holding(rootfs: &Path) -> Result<PathBuf, RootfsError> {
    let real = std::fs::canonicalize(rootfs)
        .map_err(|e| RootfsError::Invalid(format!("rootfs {}: {e}", rootfs.display())))?;
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| RootfsError::Invalid(format!("read /proc/self/mountinfo: {e}")))?;
    Ok(mount_point_holding_in(&info, &real))
}

/// [`mount_point_holding`] of an absolute, symlink-free `path` in mountinfo text: the
/// longest mount point that is `path` or one of its ancestors (`/` at worst).
fn mount_point_holding_in(mountinfo: &str, path: &Path) -> PathBuf {
    mountinfo
        .lines()
        .filter_map(|line| {
            let point = line.split(' ').nth(4)?;
            Some(paths::unescape_mountinfo(point))
        })
        .filter(|point| path.starts_with(point))
        .max_by_key(|point| point.components().count())
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// Make the rootfs the root: pivot_root(".", ".") and a lazy unmount of the old root, or with
/// `no_pivot` a move mount onto `/` and chroot, or in the host's mount namespace a plain chroot.
pub fn pivot(rootfs: &Path, no_pivot: bool, host_mount_ns: bool) -> Result<(), RootfsError> {
    let err = |step: &'static str| {
        move |source: nix::Error| RootfsError::Mount {
            step,
            dest: rootfs.to_path_buf(),
            source,
        }
    };
    nix::unistd::chdir(rootfs).map_err(err("chdir"))?;
    if host_mount_ns {
        nix::unistd::chroot(".").map_err(err("chroot"))?;
    } else if no_pivot {
        hide_host_pseudo_filesystems(rootfs)?;
        mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
            .map_err(err("move mount"))?;
        nix::unistd::chroot(".").map_err(err("chroot"))?;
    } else {
        // The old root, held so that it can be named after pivot_root: "." then still names
        // the new root (our working directory), and a recursive change of propagation there
        // would reach every mount of the container (turning one configured "shared" into
        // private).
        let old_root = nix::fcntl::open(
            "/",
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(err("open old root"))?;
        nix::unistd::pivot_root(".", ".").map_err(err("pivot_root"))?;
        // The old root is now stacked on the new one; detach it without propagating to the
        // host.
        nix::unistd::fchdir(old_root.as_fd()).map_err(err("enter old root"))?;
        drop(old_root);
        mount(
            None::<&str>,
            ".",
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(err("make old root slave"))?;
        umount2(".", MntFlags::MNT_DETACH).map_err(err("unmount old root"))?;
    }
    nix::unistd::chdir("/").map_err(err("chdir /"))
}

/// Open `path` (O_PATH) as seen in the mount namespace of process `pid`, from a thread of
/// our own that enters it (after unsharing its filesystem context, which setns requires and
/// which leaves the rest of the process where it was) and ends with it.
fn open_in_mount_ns(pid: i32, path: &Path) -> nix::Result<OwnedFd> {
    in_mount_ns(pid, || {
        nix::fcntl::open(path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|e| ("open", e))
    })
    .map_err(|(_, e)| e)
}

/// Run `f` in a thread of our own that has entered the mount namespace of process `pid`;
/// errors are (step, errno).
fn in_mount_ns<T: Send>(
    pid: i32,
    f: impl FnOnce() -> Result<T, (&'static str, nix::Error)> + Send,
) -> Result<T, (&'static str, nix::Error)> {
    let enter = "enter the container's mount namespace";
    let pidfd = crate::sys::pidfd_open(pid).map_err(|e| (enter, e))?;
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_FS).map_err(|e| (enter, e))?;
            nix::sched::setns(pidfd.as_fd(), nix::sched::CloneFlags::CLONE_NEWNS)
                .map_err(|e| (enter, e))?;
            f()
        })
        .join()
        .unwrap_or(Err((enter, nix::Error::EIO)))
    })
}

/// The mount points of whole procfs and sysfs mounts (their root mounted) outside `rootfs`,
/// from mountinfo text (a line procfs cannot parse names no such mount).
fn host_pseudo_filesystems(mountinfo: &str, rootfs: &Path) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let m = procfs::process::MountInfo::from_line(line).ok()?;
            let point = paths::unescape_mountinfo(&m.mount_point.to_string_lossy());
            (m.root == "/"
                && matches!(m.fs_type.as_str(), "proc" | "sysfs")
                && !point.starts_with(rootfs))
            .then_some(point)
        })
        .collect()
}

/// Before `--no-pivot` moves the rootfs over `/`: the host's procfs and sysfs mounts stay in
/// the mount namespace under it, and while a whole one is there the kernel lets the container
/// mount a fresh procfs or sysfs of its own (in a user namespace of its own), which masked
/// paths would not cover. Detach them (our open fds of the host's procfs keep working), or
/// cover them with a tmpfs where they cannot be unmounted.
fn hide_host_pseudo_filesystems(rootfs: &Path) -> Result<(), RootfsError> {
    // Read by path, not through procfs::process::Process: this runs in the init, a forked child.
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| RootfsError::Invalid(format!("read /proc/self/mountinfo: {e}")))?;
    for point in host_pseudo_filesystems(&info, rootfs) {
        let err = |step: &'static str| {
            let dest = point.clone();
            move |source: nix::Error| RootfsError::Mount { step, dest, source }
        };
        // No unmount may propagate to the host.
        match mount(
            None::<&str>,
            &point,
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        ) {
            // Gone with a mount detached before it.
            Err(nix::Error::ENOENT) => continue,
            r => r.map_err(err("make host mount slave"))?,
        }
        match umount2(&point, MntFlags::MNT_DETACH) {
            Ok(()) => {}
            Err(nix::Error::EINVAL) | Err(nix::Error::EPERM) => mount(
                Some("tmpfs"),
                &point,
                Some("tmpfs"),
                MsFlags::empty(),
                None::<&str>,
            )
            .map_err(err("cover host mount"))?,
            Err(e) => return Err(err("unmount host mount")(e)),
        }
    }
    Ok(())
}

/// In the runtime, after a container that shared its mount namespace is gone: detach the
/// rootfs's bind mount and with it everything mounted for the container.
pub fn detach_host_mounts(rootfs: &Path) -> Result<(), RootfsError> {
    match umount2(rootfs, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => Ok(()),
        Err(source) => Err(RootfsError::Mount {
            step: "unmount",
            dest: rootfs.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_host_procfs_and_sysfs_outside_the_rootfs() {
        let info = "22 1 0:21 / /proc rw,nosuid - proc proc rw
23 1 0:22 / /sys rw,nosuid - sysfs sysfs rw
24 23 0:23 / /sys/kernel/security rw - securityfs securityfs rw
25 1 0:21 /sys /somewhere/sys ro - proc proc rw
26 1 0:24 / /run/a\\040b rw - proc proc rw
27 1 0:21 / /ctr/rootfs/proc rw - proc proc rw
28 1 0:25 / /ctr/rootfs2 rw - sysfs sysfs rw";
        let got = host_pseudo_filesystems(info, Path::new("/ctr/rootfs"));
        let want: Vec<PathBuf> = ["/proc", "/sys", "/run/a b", "/ctr/rootfs2"]
            .into_iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn the_mount_point_holding_a_path() {
        let info = "27 1 254:0 / / rw - ext4 /dev/vda rw
40 27 0:30 / /run rw - tmpfs tmpfs rw
41 40 0:31 / /run/ctr/rootfs rw - overlay overlay rw
42 27 0:32 / /srv/a\\040b rw - tmpfs tmpfs rw
43 27 0:33 / /srv/ab rw - tmpfs tmpfs rw";
        for (path, want) in [
            ("/run/ctr/rootfs", "/run/ctr/rootfs"),
            ("/run/ctr/rootfs2", "/run"),
            ("/srv/a b/rootfs", "/srv/a b"),
            ("/srv/abc/rootfs", "/"),
            ("/home/rootfs", "/"),
        ] {
            assert_eq!(
                mount_point_holding_in(info, Path::new(path)),
                Path::new(want),
                "{path}"
            );
        }
    }

    #[test]
    fn host_sources_only_for_binds_of_host_paths() {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "mounts": [
                {"destination": "/t", "type": "tmpfs", "source": "tmpfs"},
                {"destination": "/b", "type": "bind", "source": "/tmp", "options": ["bind"]},
                {"destination": "/c", "type": "bind", "source": "/ctr/rootfs/x",
                 "options": ["bind"]},
            ],
        }))
        .unwrap();
        let root = Path::new("/ctr/rootfs");
        let plan = RootfsPlan::from_spec(&spec, Path::new("/ctr"), root, false).unwrap();
        let me = std::process::id() as i32;
        for n in [0, 2, 3, 99] {
            let e = plan.open_host_source(n, me).unwrap_err();
            assert!(
                e.to_string().contains("not a bind mount of a host path"),
                "{e}"
            );
        }
        if nix::unistd::geteuid().is_root() {
            let fd = plan.open_host_source(1, me).unwrap();
            let st = nix::sys::stat::fstat(fd.as_fd()).unwrap();
            let tmp = nix::sys::stat::stat("/tmp").unwrap();
            assert_eq!((st.st_dev, st.st_ino), (tmp.st_dev, tmp.st_ino));
        }
    }
}
