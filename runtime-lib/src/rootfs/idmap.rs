//! Idmapped bind mounts: the runtime-spec's `mounts[].uidMappings`/`gidMappings` and runc's
//! `idmap`/`ridmap` options.
//!
//! Where the work happens. Setting `MOUNT_ATTR_IDMAP` needs CAP_SYS_ADMIN over the user
//! namespace of the source's filesystem (the host's, for a host directory), which the init of
//! a container with a user namespace does not have; and the attribute can only be set on a
//! detached mount. So the runtime, as root on the host, makes the tree: in a thread of its own
//! that enters the init's mount namespace (so that it sees what the init sees, the mounts made
//! for the container so far included), it clones the source with
//! `open_tree(OPEN_TREE_CLONE)`, sets the mapping with `mount_setattr`, and sends the detached
//! tree to the init, which attaches it with `move_mount` onto its mount point, opened inside
//! the root like every other. A source inside the rootfs is opened by the init, resolved
//! inside the root, and passed to the runtime as an fd; a host path is the config's own and is
//! resolved by the runtime as for any bind source it opens. The init only sends and receives
//! fds and makes plain syscalls; the forks and map writes are the runtime's.
//!
//! The user namespace that carries a mount's mappings is one the runtime makes for it: a
//! short-lived child unshares it and waits; the runtime writes its maps, keeps an fd of it,
//! and kills and reaps the child. One namespace serves every mount with the same mappings
//! during a create. The `idmap` option without mappings uses the container's own user
//! namespace, new or joined.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxIdMapping, Mount, Spec};

use super::mounts::{Kind, MountPlan};
use super::options::MountOptions;
use super::RootfsError;
use super::RootfsPlan;
use crate::sys::mount_api::{self, TreeSource};
use crate::sys::{exit_now, fork, Fork};

/// The kernel's limit on the lines of a uid_map or gid_map.
const MAX_MAP_LINES: usize = 340;

/// Whose mappings an idmapped mount uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdmapUserns {
    /// The mount's own `uidMappings` and `gidMappings`, as uid_map and gid_map text.
    Mappings { uid_map: String, gid_map: String },
    /// The container's user namespace (`idmap`/`ridmap` without mappings).
    Container,
}

/// How a bind mount is idmapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdmapPlan {
    pub userns: IdmapUserns,
    /// `ridmap`: every mount of the (`rbind`) tree is idmapped, not only its top.
    pub recursive: bool,
}

impl IdmapPlan {
    /// The idmapping of mount `m`, if it has one, checked: both mappings or none, valid
    /// ranges, a bind mount.
    pub fn from_spec(
        m: &Mount,
        options: &MountOptions,
        kind: &Kind,
    ) -> Result<Option<IdmapPlan>, RootfsError> {
        let dest = m.destination();
        let (uids, gids) = (m.uid_mappings().as_ref(), m.gid_mappings().as_ref());
        if uids.is_none() && gids.is_none() && !options.idmap {
            return Ok(None);
        }
        let invalid = |why: &str| RootfsError::Invalid(format!("mount {}: {why}", dest.display()));
        if *kind != Kind::Bind {
            return Err(invalid(
                "id-mapped mounts are only supported for bind-mounts",
            ));
        }
        let userns = match (uids, gids) {
            (None, None) => IdmapUserns::Container,
            (Some(u), Some(g)) if !u.is_empty() && !g.is_empty() => IdmapUserns::Mappings {
                uid_map: map_text(u).map_err(|e| invalid(&format!("uidMappings: {e}")))?,
                gid_map: map_text(g).map_err(|e| invalid(&format!("gidMappings: {e}")))?,
            },
            _ => {
                return Err(invalid(
                    "id-mapped mounts must have both uid and gid mappings specified",
                ))
            }
        };
        Ok(Some(IdmapPlan {
            userns,
            recursive: options.idmap_recursive,
        }))
    }
}

/// The uid_map/gid_map text of `maps`, refused where the kernel would refuse it: an empty
/// range, a range past the 32-bit id space, overlapping ranges, too many lines.
fn map_text(maps: &[LinuxIdMapping]) -> Result<String, String> {
    if maps.len() > MAX_MAP_LINES {
        return Err(format!("more than {MAX_MAP_LINES} ranges"));
    }
    let mut ranges = Vec::with_capacity(maps.len());
    let mut text = String::new();
    for m in maps {
        let (inside, outside, size) = (m.container_id(), m.host_id(), m.size());
        if size == 0 {
            return Err(format!("range {inside}:{outside}:{size} is empty"));
        }
        let end = |start: u32| u64::from(start) + u64::from(size);
        if end(inside) > u64::from(u32::MAX) || end(outside) > u64::from(u32::MAX) {
            return Err(format!(
                "range {inside}:{outside}:{size} goes past the largest id"
            ));
        }
        ranges.push((inside, outside, size));
        text.push_str(&format!("{inside} {outside} {size}\n"));
    }
    let overlaps = |a: u32, b: u32, size_a: u32, size_b: u32| {
        u64::from(a) < u64::from(b) + u64::from(size_b)
            && u64::from(b) < u64::from(a) + u64::from(size_a)
    };
    for (i, a) in ranges.iter().enumerate() {
        for b in &ranges[i + 1..] {
            if overlaps(a.0, b.0, a.2, b.2) || overlaps(a.1, b.1, a.2, b.2) {
                return Err(format!(
                    "ranges {}:{}:{} and {}:{}:{} overlap",
                    a.0, a.1, a.2, b.0, b.1, b.2
                ));
            }
        }
    }
    Ok(text)
}

/// The failure of one step of making an idmapped mount, with the errno.
#[derive(Debug, thiserror::Error)]
#[error("idmapped mount {}: {step}: {source}{}", dest.display(), hint(step, *source))]
pub struct IdmapError {
    pub dest: PathBuf,
    pub step: &'static str,
    pub source: nix::Error,
}

const SET_IDMAP: &str = "mount_setattr(MOUNT_ATTR_IDMAP)";

fn hint(step: &str, errno: nix::Error) -> &'static str {
    match (step, errno) {
        (SET_IDMAP, nix::Error::EINVAL) => {
            " (the source's filesystem cannot be idmapped, or the source is not a mount tree \
             the runtime may clone)"
        }
        (SET_IDMAP, nix::Error::EPERM) => " (idmapped mounts need root on the host)",
        _ => "",
    }
}

/// The user namespaces made for the mappings of the mounts of one create, one per distinct
/// pair of maps; their fds close when this is dropped.
#[derive(Debug, Default)]
pub struct MappingNamespaces {
    made: Vec<(String, String, OwnedFd)>,
}

impl MappingNamespaces {
    /// A user namespace with these maps, made at the first request.
    fn get(&mut self, uid_map: &str, gid_map: &str) -> Result<BorrowedFd<'_>, IdmapFailure> {
        let i = match self
            .made
            .iter()
            .position(|(u, g, _)| u == uid_map && g == gid_map)
        {
            Some(i) => i,
            None => {
                let fd = userns_with_maps(uid_map, gid_map)?;
                self.made.push((uid_map.into(), gid_map.into(), fd));
                self.made.len() - 1
            }
        };
        Ok(self.made[i].2.as_fd())
    }
}

/// A step and its errno, before the mount it was for is named.
type IdmapFailure = (&'static str, nix::Error);

/// A child of the runtime that sits in a user namespace of its own until killed.
struct Holder {
    pid: i32,
}

impl Drop for Holder {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.pid);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(pid, None);
    }
}

/// A new user namespace with the given maps: a child unshares it and waits, the runtime
/// writes its maps and opens it, then the child is killed and reaped (also on any error).
fn userns_with_maps(uid_map: &str, gid_map: &str) -> Result<OwnedFd, IdmapFailure> {
    let pipe = |step| nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| (step, e));
    let (ready_r, ready_w) = pipe("pipe")?;
    // The child blocks reading this until the runtime's end closes: it never outlives the
    // runtime, even one that dies before killing it.
    let (hold_r, hold_w) = pipe("pipe")?;
    let pid = match fork().map_err(|e| ("fork", e))? {
        Fork::Child => {
            // Plain syscalls only: the runtime may have other threads.
            drop(ready_r);
            drop(hold_w);
            let code = match nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER) {
                Ok(()) => 0,
                Err(e) => e as i32,
            };
            let _ = nix::unistd::write(&ready_w, &code.to_ne_bytes());
            let mut b = [0u8; 1];
            let _ = nix::unistd::read(hold_r.as_fd(), &mut b);
            exit_now(0)
        }
        Fork::Parent(pid) => pid,
    };
    let holder = Holder { pid };
    drop(ready_w);
    drop(hold_r);
    let mut code = [0u8; 4];
    match nix::unistd::read(ready_r.as_fd(), &mut code) {
        Ok(4) => {}
        Ok(_) => return Err(("wait for the user-namespace child", nix::Error::EIO)),
        Err(e) => return Err(("wait for the user-namespace child", e)),
    }
    match i32::from_ne_bytes(code) {
        0 => {}
        e => {
            return Err((
                "unshare(CLONE_NEWUSER) for the mapping",
                nix::Error::from_raw(e),
            ))
        }
    }
    crate::namespaces::write_id_maps(pid, uid_map, gid_map).map_err(|e| {
        let errno = match &e {
            crate::namespaces::NamespaceError::Map { source, .. } => source
                .raw_os_error()
                .map_or(nix::Error::EIO, nix::Error::from_raw),
            _ => nix::Error::EIO,
        };
        ("write the mapping's uid_map and gid_map", errno)
    })?;
    let ns = nix::fcntl::open(
        format!("/proc/{pid}/ns/user").as_str(),
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ("open the mapping's user namespace", e))?;
    drop(holder);
    drop(hold_w);
    Ok(ns)
}

/// The user namespace of the container's init `pid`, checked to still be that process.
fn container_userns(pid: i32) -> Result<OwnedFd, IdmapFailure> {
    let step = "open the container's user namespace";
    let pidfd = crate::sys::pidfd_open(pid).map_err(|e| (step, e))?;
    let ns = nix::fcntl::open(
        format!("/proc/{pid}/ns/user").as_str(),
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| (step, e))?;
    // The pid named the init when the pidfd was made; it still does if the init is alive.
    crate::sys::pidfd_send_signal(pidfd.as_fd(), 0).map_err(|e| (step, e))?;
    Ok(ns)
}

impl RootfsPlan {
    /// In the runtime, for the init `pid`: the detached idmapped tree of bind mount number
    /// `n`, made from `source`, the init's fd of a source inside the rootfs, or else from the
    /// mount's host path. `namespaces` keeps the user namespaces of the mappings for the
    /// other mounts of this create.
    pub fn idmapped_tree(
        &self,
        n: u32,
        pid: i32,
        source: Option<OwnedFd>,
        namespaces: &mut MappingNamespaces,
    ) -> Result<OwnedFd, RootfsError> {
        let m = usize::try_from(n)
            .ok()
            .and_then(|i| self.mounts.get(i))
            .filter(|m| m.kind == Kind::Bind)
            .ok_or_else(|| {
                RootfsError::Invalid(format!(
                    "the init asked for the idmapped tree of mount {n}, not a bind mount"
                ))
            })?;
        let plan = m.idmap.as_ref().ok_or_else(|| {
            RootfsError::Invalid(format!(
                "the init asked for an idmapped tree of mount {}, which is not idmapped",
                m.destination.display()
            ))
        })?;
        // Only a source inside the rootfs comes from the init; a host source is the config's.
        let source = source.filter(|_| m.source_in_root.is_some());
        if m.source_in_root.is_some() && source.is_none() {
            return Err(RootfsError::Invalid(format!(
                "mount {}: the init sent no source for the idmapped tree",
                m.destination.display()
            )));
        }
        Ok(make_tree(
            pid,
            &m.destination,
            m.source.as_deref(),
            source,
            m.options.flags.contains(MsFlags::MS_REC),
            plan,
            namespaces,
        )?)
    }
}

/// What can be checked of the idmapped mounts before the fork: the `idmap` option without
/// mappings needs a user namespace (the container's), and setting a mapping needs root on
/// the host, which a rootless runtime is not.
pub(super) fn check_idmapped(spec: &Spec, mounts: &[MountPlan]) -> Result<(), RootfsError> {
    let has_userns = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| {
            ns.iter()
                .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::User)
        });
    for m in mounts {
        let Some(plan) = &m.idmap else { continue };
        let dest = m.destination.display();
        if plan.userns == IdmapUserns::Container && !has_userns {
            return Err(RootfsError::Invalid(format!(
                "mount {dest}: option \"idmap\" without uidMappings and gidMappings takes the \
                 container's user namespace, and the config has none"
            )));
        }
        if !nix::unistd::geteuid().is_root() {
            return Err(RootfsError::Invalid(format!(
                "mount {dest}: id-mapped mounts are not supported for rootless containers"
            )));
        }
    }
    Ok(())
}

/// In the runtime: the detached, idmapped tree of bind mount `plan` for the init `pid`.
/// `source` is the init's fd of a source inside the rootfs; else the mount's host path is
/// opened in the init's mount namespace.
fn make_tree(
    pid: i32,
    dest: &Path,
    host_source: Option<&Path>,
    source: Option<OwnedFd>,
    recursive_bind: bool,
    idmap: &IdmapPlan,
    namespaces: &mut MappingNamespaces,
) -> Result<OwnedFd, IdmapError> {
    let fail = |(step, source): IdmapFailure| IdmapError {
        dest: dest.to_path_buf(),
        step,
        source,
    };
    let own;
    let userns = match &idmap.userns {
        IdmapUserns::Mappings { uid_map, gid_map } => {
            namespaces.get(uid_map, gid_map).map_err(fail)?
        }
        IdmapUserns::Container => {
            own = container_userns(pid).map_err(fail)?;
            own.as_fd()
        }
    };
    let path = match (&source, host_source) {
        (Some(_), _) => None,
        (None, Some(p)) => Some(
            std::ffi::CString::new(p.as_os_str().as_encoded_bytes())
                .map_err(|_| fail(("source path", nix::Error::EINVAL)))?,
        ),
        (None, None) => return Err(fail(("no source", nix::Error::ENOENT))),
    };
    super::in_mount_ns(pid, || {
        let from = match (&source, &path) {
            (Some(fd), _) => TreeSource::Fd(fd.as_fd()),
            (None, Some(p)) => TreeSource::Path(p),
            (None, None) => return Err(("no source", nix::Error::ENOENT)),
        };
        let tree = mount_api::open_tree_clone(from, recursive_bind)
            .map_err(|e| ("open_tree(OPEN_TREE_CLONE)", e))?;
        mount_api::mount_set_idmap(tree.as_fd(), userns, idmap.recursive)
            .map_err(|e| (SET_IDMAP, e))?;
        Ok(tree)
    })
    .map_err(fail)
}

/// In the init: attach the idmapped `tree` the runtime made onto `target`.
pub(super) fn attach(tree: &OwnedFd, target: &OwnedFd) -> nix::Result<()> {
    mount_api::move_mount_onto(tree.as_fd(), target.as_fd())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rootfs::parse_options;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;

    fn mount(json: serde_json::Value) -> Mount {
        serde_json::from_value(json).unwrap()
    }

    fn plan(json: serde_json::Value) -> Result<Option<IdmapPlan>, RootfsError> {
        let m = mount(json);
        let o = parse_options(m.options().as_deref().unwrap_or(&[])).unwrap();
        let kind = if o.bind { Kind::Bind } else { Kind::Other };
        IdmapPlan::from_spec(&m, &o, &kind)
    }

    #[test]
    fn mappings_become_map_text() {
        let p = plan(serde_json::json!({
            "destination": "/m", "source": "/s", "options": ["rbind", "ridmap"],
            "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536},
                            {"containerID": 70000, "hostID": 5, "size": 1}],
            "gidMappings": [{"containerID": 0, "hostID": 200000, "size": 10}],
        }))
        .unwrap()
        .unwrap();
        assert_eq!(
            p.userns,
            IdmapUserns::Mappings {
                uid_map: "0 100000 65536\n70000 5 1\n".into(),
                gid_map: "0 200000 10\n".into(),
            }
        );
        assert!(p.recursive);
        let p = plan(serde_json::json!({
            "destination": "/m", "source": "/s", "options": ["bind", "idmap"],
        }))
        .unwrap()
        .unwrap();
        assert_eq!((p.userns, p.recursive), (IdmapUserns::Container, false));
        let none = plan(serde_json::json!({"destination": "/m", "source": "/s",
            "options": ["bind"]}));
        assert!(none.unwrap().is_none());
    }

    #[test]
    fn bad_mappings_are_refused_naming_the_mount() {
        let cases = [
            (
                serde_json::json!({"destination": "/m", "source": "/s", "options": ["bind"],
                    "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]}),
                "both uid and gid mappings",
            ),
            (
                serde_json::json!({"destination": "/m", "type": "tmpfs", "source": "tmpfs",
                    "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}],
                    "gidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]}),
                "only supported for bind-mounts",
            ),
            (
                serde_json::json!({"destination": "/m", "source": "/s", "options": ["bind"],
                    "uidMappings": [{"containerID": 0, "hostID": 1, "size": 0}],
                    "gidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]}),
                "is empty",
            ),
            (
                serde_json::json!({"destination": "/m", "source": "/s", "options": ["bind"],
                    "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}],
                    "gidMappings": [{"containerID": 0, "hostID": 4294967295u32, "size": 2}]}),
                "past the largest id",
            ),
            (
                serde_json::json!({"destination": "/m", "source": "/s", "options": ["bind"],
                    "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 10},
                                    {"containerID": 5, "hostID": 5000, "size": 10}],
                    "gidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]}),
                "overlap",
            ),
            (
                serde_json::json!({"destination": "/m", "source": "/s", "options": ["bind"],
                    "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 10},
                                    {"containerID": 50, "hostID": 1005, "size": 10}],
                    "gidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]}),
                "overlap",
            ),
        ];
        for (json, want) in cases {
            let e = plan(json.clone()).unwrap_err().to_string();
            assert!(e.contains("mount /m") && e.contains(want), "{json}: {e}");
        }
    }

    #[test]
    fn error_names_mount_step_and_errno() {
        let e = IdmapError {
            dest: "/data".into(),
            step: SET_IDMAP,
            source: nix::Error::EINVAL,
        };
        let s = e.to_string();
        assert!(s.starts_with("idmapped mount /data: mount_setattr"), "{s}");
        assert!(
            s.contains("EINVAL") && s.contains("cannot be idmapped"),
            "{s}"
        );
    }

    #[test]
    fn mapping_namespaces_are_made_once_and_leave_no_process() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let mut ns = MappingNamespaces::default();
        let a = ns
            .get("0 100000 10\n", "0 100000 10\n")
            .unwrap()
            .as_raw_fd();
        let b = ns
            .get("0 100000 10\n", "0 100000 10\n")
            .unwrap()
            .as_raw_fd();
        assert_eq!(a, b);
        let c = ns
            .get("0 200000 10\n", "0 200000 10\n")
            .unwrap()
            .as_raw_fd();
        assert_eq!(ns.made.len(), 2);
        let ino = |fd: i32| {
            std::fs::metadata(format!("/proc/self/fd/{fd}"))
                .unwrap()
                .ino()
        };
        assert_ne!(ino(a), ino(c), "two mappings, two namespaces");
    }
}
