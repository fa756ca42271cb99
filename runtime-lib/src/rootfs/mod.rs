//! The container's root filesystem: propagation, the rootfs bind, every mount of config.json,
//! devices, `/dev` symlinks, pivot_root (or chroot), masked and readonly paths, readonly root.
//!
//! [`RootfsPlan::from_spec`] runs before the fork and does all the parsing and checking;
//! the init then calls, in order, [`RootfsPlan::bind_root`], [`RootfsPlan::mount_range`] for
//! the mounts before the first cgroup mount, then (once in its cgroup) for the rest,
//! [`RootfsPlan::make_devices`], [`pivot`] and [`RootfsPlan::finalize`].
//!
//! Those steps run in the init, a fork of a program that may have other threads: they and
//! everything they call allocate nothing, failures included. Their errors are text in a fixed
//! buffer ([`ChildError`]), worded as the [`RootfsError`] of the same failure would be; the
//! parent's steps (the plan, the sources and idmapped trees the runtime serves) keep
//! [`RootfsError`].
// A ChildError is a fixed buffer by design: boxing it would allocate in the forked child.
#![allow(clippy::result_large_err)]

mod cgroupfs;
mod copyup;
mod devices;
mod idmap;
mod masked;
pub mod mounts;
mod nopivot;
mod options;
pub mod paths;
mod remount;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::Mode;
use oci_spec::runtime::Spec;

use crate::lifecycle::text::{child_err, ChildError};

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
    #[error(transparent)]
    Idmap(#[from] idmap::IdmapError),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}: not supported by this runtime")]
    Unsupported(String),
}

/// In the init: the error of `step` on container path `dest`, worded as
/// [`RootfsError::Mount`], made (and `dest` written out) only when there is one.
fn mount_err<'a>(step: &'static str, dest: &'a Path) -> impl FnOnce(nix::Error) -> ChildError + 'a {
    move |source| child_err!("{step} {}: {source}", dest.display())
}

/// In the init: a failed remount of `dest`.
fn remount_err(dest: &Path) -> impl FnOnce(remount::RemountError) -> ChildError + '_ {
    move |source| child_err!("remount {}: {source}", dest.display())
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
    /// Each masked path once (see [`masked::distinct`]).
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
    /// Whether the config mounts a cgroup filesystem, whose layout on a v1 or hybrid host
    /// (`host_cgroups`) comes from the host's cgroup mounts.
    pub fn mounts_cgroups(&self) -> bool {
        self.mounts.iter().any(|m| m.kind == mounts::Kind::Cgroup)
    }

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
            // /dev/ptmx is always the devpts instance's (a symlink made after the nodes, see
            // `devices::create_symlinks`), as with runc: a node for it would only be replaced,
            // and in a user namespace, where it is a bind mount, could not be (EBUSY).
            if d.path.components().eq(Path::new("/dev/ptmx").components()) {
                continue;
            }
            devices.retain(|x| x.path != d.path);
            devices.push(d);
        }
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
            masked: masked::distinct(
                linux
                    .and_then(|l| l.masked_paths().clone())
                    .unwrap_or_default()
                    .into_iter()
                    .map(PathBuf::from),
            ),
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
            // Laid out from the host's cgroup mounts by the plan, which reads them once (see
            // `mounts_cgroups`).
            host_cgroups: HostCgroups::default(),
        })
    }

    /// In the init, in its new mount namespace, before pivot_root: propagation and the rootfs
    /// bind. Returns an fd of the rootfs, for [`RootfsPlan::mount_range`] and
    /// [`RootfsPlan::make_devices`].
    pub fn bind_root(&self) -> Result<OwnedFd, ChildError> {
        let root_err = |step| mount_err(step, &self.rootfs);
        // On the stack: nix copies a path of 1024 bytes or more to the heap.
        let rootfs = paths::PathBuffer::from_bytes(self.rootfs.as_os_str().as_bytes())
            .map_err(root_err("bind rootfs"))?;
        let rootfs = rootfs.as_c_str();
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
            .map_err(mount_err("set propagation", Path::new("/")))?;
            if let Some(parent) = &self.shared_root_parent {
                mount(
                    None::<&str>,
                    parent,
                    None::<&str>,
                    MsFlags::MS_PRIVATE,
                    None::<&str>,
                )
                .map_err(mount_err("make the rootfs's mount private", parent))?;
            }
        }
        mount(
            Some(rootfs),
            rootfs,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(root_err("bind rootfs"))?;
        if self.host_mount_ns {
            mount(
                None::<&str>,
                rootfs,
                None::<&str>,
                MsFlags::MS_PRIVATE | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(root_err("make rootfs private"))?;
        }
        let root = nix::fcntl::open(
            rootfs,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(root_err("open rootfs"))?;
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
        host_source: &mut dyn FnMut(u32, SourceRequest<'_>) -> Result<OwnedFd, ChildError>,
    ) -> Result<(), ChildError> {
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
    pub fn make_devices(&self, root: BorrowedFd<'_>, in_userns: bool) -> Result<(), ChildError> {
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
    pub fn finalize(&self) -> Result<(), ChildError> {
        let slash = Path::new("/");
        let root = nix::fcntl::open(
            slash,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(mount_err("open", slash))?;
        for m in self.mounts.iter().filter(|m| m.read_only_later()) {
            m.make_read_only(root.as_fd())?;
        }
        masked::make_readonly(root.as_fd(), &self.readonly)?;
        masked::mask(root.as_fd(), &self.masked)?;
        if self.readonly_root {
            remount::make_read_only(root.as_fd()).map_err(remount_err(slash))?;
        }
        if self.propagation != DEFAULT_PROPAGATION && !self.host_mount_ns {
            mount(
                None::<&str>,
                "/",
                None::<&str>,
                self.propagation,
                None::<&str>,
            )
            .map_err(mount_err("set propagation", slash))?;
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
    let infos = procfs::process::Process::myself()
        .and_then(|p| p.mountinfo())
        .map_err(|e| RootfsError::Invalid(format!("read /proc/self/mountinfo: {e}")))?;
    let points: Vec<PathBuf> = infos.into_iter().map(|m| m.mount_point).collect();
    Ok(mount_point_holding_in(&points, &real))
}

/// [`mount_point_holding`] among `points` for an absolute, symlink-free `path`: the longest
/// mount point that is `path` or one of its ancestors (`/` at worst).
fn mount_point_holding_in(points: &[PathBuf], path: &Path) -> PathBuf {
    points
        .iter()
        .filter(|point| path.starts_with(point))
        .max_by_key(|point| point.components().count())
        .cloned()
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// Make the rootfs the root: pivot_root(".", ".") and a lazy unmount of the old root, or with
/// `no_pivot` a move mount onto `/` and chroot, or in the host's mount namespace a plain chroot.
pub fn pivot(rootfs: &Path, no_pivot: bool, host_mount_ns: bool) -> Result<(), ChildError> {
    let err = |step| mount_err(step, rootfs);
    let dir = paths::PathBuffer::from_bytes(rootfs.as_os_str().as_bytes()).map_err(err("chdir"))?;
    nix::unistd::chdir(dir.as_c_str()).map_err(err("chdir"))?;
    if host_mount_ns {
        nix::unistd::chroot(".").map_err(err("chroot"))?;
    } else if no_pivot {
        nopivot::hide_host_pseudo_filesystems(rootfs)?;
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

/// After [`pivot`], in a container whose `/dev` the runtime made: the init's standard fds that
/// are the null device (an engine gives a container without stdin the host's `/dev/null`, a
/// file on a mount the container does not have, which CRIU cannot checkpoint) are pointed at
/// the container's own `/dev/null`, as runc does.
pub fn reopen_null_stdio() -> Result<(), ChildError> {
    use nix::sys::stat::{fstat, major, minor, FileStat, SFlag};
    let is_null = |st: &FileStat| {
        SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFCHR
            && major(st.st_rdev) == 1
            && minor(st.st_rdev) == 3
    };
    let null_at = |n: i32| {
        crate::sys::stdio_fd(n)
            .and_then(|fd| fstat(fd).ok())
            .is_some_and(|st| is_null(&st))
    };
    let null_fds = [null_at(0), null_at(1), null_at(2)];
    if !null_fds.contains(&true) {
        return Ok(());
    }
    let path = Path::new("/dev/null");
    // Non-blocking and not followed: whatever is mounted there, the open cannot hang.
    let flags = OFlag::O_RDWR | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY;
    let null = match nix::fcntl::open(path, flags | OFlag::O_CLOEXEC, Mode::empty()) {
        // A symlink there (CVE-2025-31133's trick) is refused like any other impostor.
        Err(nix::Error::ELOOP) => None,
        other => Some(other.map_err(mount_err("reopen stdio on", path))?),
    };
    let null = null.filter(|fd| fstat(fd).is_ok_and(|st| is_null(&st)));
    let Some(null) = null else {
        return Err(child_err!(
            "/dev/null in the container is not the null device"
        ));
    };
    nix::fcntl::fcntl(&null, nix::fcntl::FcntlArg::F_SETFL(OFlag::O_RDWR))
        .map_err(mount_err("clear O_NONBLOCK of", path))?;
    let dups = [
        nix::unistd::dup2_stdin,
        nix::unistd::dup2_stdout,
        nix::unistd::dup2_stderr,
    ];
    for (dup, _) in dups.iter().zip(null_fds).filter(|(_, is)| *is) {
        dup(&null).map_err(mount_err("reopen stdio on", path))?;
    }
    Ok(())
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
    fn the_mount_point_holding_a_path() {
        let points: Vec<PathBuf> = ["/", "/run", "/run/ctr/rootfs", "/srv/a b", "/srv/ab"]
            .into_iter()
            .map(PathBuf::from)
            .collect();
        for (path, want) in [
            ("/run/ctr/rootfs", "/run/ctr/rootfs"),
            ("/run/ctr/rootfs2", "/run"),
            ("/srv/a b/rootfs", "/srv/a b"),
            ("/srv/abc/rootfs", "/"),
            ("/home/rootfs", "/"),
        ] {
            assert_eq!(
                mount_point_holding_in(&points, Path::new(path)),
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
