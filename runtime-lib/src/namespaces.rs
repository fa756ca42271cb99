//! Namespaces: which are created, which are joined by path, in what order, and the id
//! mappings of a new user namespace. Paths are opened and checked before the fork.

use std::fmt::Write as _;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use nix::sched::CloneFlags;
use oci_spec::runtime::{Linux, LinuxIdMapping, LinuxNamespaceType};

#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error("{ns} namespace {path}: {source}")]
    Open {
        ns: &'static str,
        path: PathBuf,
        source: nix::Error,
    },
    #[error("{ns} namespace {path}: not a namespace file")]
    NotNamespace { ns: &'static str, path: PathBuf },
    #[error("join {ns} namespace: {source}")]
    Join {
        ns: &'static str,
        source: nix::Error,
    },
    #[error("create namespaces ({flags}): {source}")]
    Create { flags: String, source: nix::Error },
    #[error("write {what} of pid {pid}: {source}")]
    Map {
        what: &'static str,
        pid: i32,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

/// A namespace to join: its type and an fd opened before the fork.
#[derive(Debug)]
pub struct Join {
    pub typ: LinuxNamespaceType,
    pub fd: OwnedFd,
}

impl Join {
    fn join(&self) -> Result<(), NamespaceError> {
        nix::sched::setns(self.fd.as_fd(), clone_flag(self.typ)).map_err(|source| {
            NamespaceError::Join {
                ns: ns_name(self.typ),
                source,
            }
        })
    }
}

/// The namespace plan of a container.
#[derive(Debug)]
pub struct NamespacePlan {
    /// Namespaces to join, in `join_rank` order ([`NamespacePlan::join_all`] places the user
    /// namespace).
    pub joins: Vec<Join>,
    /// Namespaces to create with unshare(2).
    pub new: CloneFlags,
    /// "uid_map" and "gid_map" contents for a new user namespace.
    pub uid_map: String,
    pub gid_map: String,
    /// "/proc/self/timens_offsets" content for a new time namespace.
    pub time_offsets: String,
    /// Types present in the config (new or joined).
    pub present: Vec<LinuxNamespaceType>,
}

pub fn clone_flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// Join order: the mount namespace last, after the namespaces whose state it could hide. The
/// user namespace's place is decided by [`NamespacePlan::join_all`], which may join some of the
/// others before it and some after.
fn join_rank(t: LinuxNamespaceType) -> u8 {
    match t {
        LinuxNamespaceType::User => 0,
        LinuxNamespaceType::Ipc => 1,
        LinuxNamespaceType::Uts => 2,
        LinuxNamespaceType::Network => 3,
        LinuxNamespaceType::Pid => 4,
        LinuxNamespaceType::Cgroup => 5,
        LinuxNamespaceType::Time => 6,
        LinuxNamespaceType::Mount => 7,
    }
}

const NSFS_MAGIC: i64 = 0x6e73_6673;

fn mappings(m: Option<&Vec<LinuxIdMapping>>) -> String {
    let mut s = String::new();
    for m in m.into_iter().flatten() {
        let _ = writeln!(s, "{} {} {}", m.container_id(), m.host_id(), m.size());
    }
    s
}

impl Default for NamespacePlan {
    fn default() -> Self {
        NamespacePlan {
            joins: Vec::new(),
            new: CloneFlags::empty(),
            uid_map: String::new(),
            gid_map: String::new(),
            time_offsets: String::new(),
            present: Vec::new(),
        }
    }
}

impl NamespacePlan {
    pub fn from_spec(linux: Option<&Linux>) -> Result<NamespacePlan, NamespaceError> {
        let mut plan = NamespacePlan::default();
        let Some(linux) = linux else { return Ok(plan) };
        for ns in linux.namespaces().iter().flatten() {
            let t = ns.typ();
            plan.present.push(t);
            match ns.path() {
                Some(path) if !path.as_os_str().is_empty() => {
                    let fd = nix::fcntl::open(
                        path.as_path(),
                        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
                        nix::sys::stat::Mode::empty(),
                    )
                    .map_err(|source| NamespaceError::Open {
                        ns: ns_name(t),
                        path: path.clone(),
                        source,
                    })?;
                    let fs = nix::sys::statfs::fstatfs(fd.as_fd()).map_err(|source| {
                        NamespaceError::Open {
                            ns: ns_name(t),
                            path: path.clone(),
                            source,
                        }
                    })?;
                    if fs.filesystem_type().0 as i64 != NSFS_MAGIC {
                        return Err(NamespaceError::NotNamespace {
                            ns: ns_name(t),
                            path: path.clone(),
                        });
                    }
                    plan.joins.push(Join { typ: t, fd });
                }
                _ => plan.new |= clone_flag(t),
            }
        }
        plan.joins.sort_by_key(|j| join_rank(j.typ));
        if plan.new.contains(CloneFlags::CLONE_NEWUSER) {
            plan.uid_map = mappings(linux.uid_mappings().as_ref());
            plan.gid_map = mappings(linux.gid_mappings().as_ref());
            if plan.uid_map.is_empty() || plan.gid_map.is_empty() {
                return Err(NamespaceError::Invalid(
                    "a new user namespace needs linux.uidMappings and linux.gidMappings".into(),
                ));
            }
        }
        if let Some(offsets) = linux.time_offsets() {
            if !plan.new.contains(clone_flag(LinuxNamespaceType::Time)) {
                return Err(NamespaceError::Invalid(
                    "linux.timeOffsets needs a new time namespace".into(),
                ));
            }
            let mut keys: Vec<_> = offsets.iter().collect();
            keys.sort_by(|a, b| a.0.cmp(b.0));
            for (clock, off) in keys {
                if clock != "monotonic" && clock != "boottime" {
                    return Err(NamespaceError::Invalid(format!(
                        "linux.timeOffsets: unknown clock {clock:?}"
                    )));
                }
                let _ = writeln!(
                    plan.time_offsets,
                    "{clock} {} {}",
                    off.secs().unwrap_or(0),
                    off.nanosecs().unwrap_or(0)
                );
            }
        }
        Ok(plan)
    }

    pub fn has(&self, t: LinuxNamespaceType) -> bool {
        self.present.contains(&t)
    }

    pub fn creates(&self, t: LinuxNamespaceType) -> bool {
        self.new.contains(clone_flag(t))
    }

    /// A pid or time namespace, new or joined, applies only to children: the init must be
    /// forked after entering it.
    pub fn needs_fork(&self) -> bool {
        self.has(LinuxNamespaceType::Pid) || self.has(LinuxNamespaceType::Time)
    }

    /// In the child: join the configured namespaces, in order. Those that the runtime's
    /// credentials may join are joined before the user namespace (a namespace owned by
    /// another user namespace, say the host's network, cannot be joined from inside it);
    /// those refused (EPERM) are joined after it, with its privileges.
    pub fn join_all(&self) -> Result<(), NamespaceError> {
        let user = |j: &&Join| j.typ == LinuxNamespaceType::User;
        let mut refused = Vec::new();
        for j in self.joins.iter().filter(|j| !user(j)) {
            match j.join() {
                Err(NamespaceError::Join {
                    source: nix::Error::EPERM,
                    ..
                }) => refused.push(j),
                r => r?,
            }
        }
        for j in self.joins.iter().filter(user).chain(refused) {
            j.join()?;
        }
        Ok(())
    }

    /// In the child: create the new namespaces but the cgroup one, which must wait until the
    /// process is in its cgroup (see [`NamespacePlan::unshare_cgroup`]).
    pub fn unshare_all(&self) -> Result<(), NamespaceError> {
        let flags = self.new - CloneFlags::CLONE_NEWCGROUP;
        if flags.is_empty() {
            return Ok(());
        }
        nix::sched::unshare(flags).map_err(|source| NamespaceError::Create {
            flags: format!("{flags:?}"),
            source,
        })
    }

    /// In the init, once it is in its cgroup: a new cgroup namespace rooted there.
    pub fn unshare_cgroup(&self) -> Result<(), NamespaceError> {
        if !self.new.contains(CloneFlags::CLONE_NEWCGROUP) {
            return Ok(());
        }
        nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP).map_err(|source| NamespaceError::Create {
            flags: "CLONE_NEWCGROUP".into(),
            source,
        })
    }
}

/// In the runtime: write the id maps of process `pid`'s new user namespace.
pub fn write_id_maps(pid: i32, uid_map: &str, gid_map: &str) -> Result<(), NamespaceError> {
    for (what, text) in [("uid_map", uid_map), ("gid_map", gid_map)] {
        let path = format!("/proc/{pid}/{what}");
        std::fs::write(&path, text.as_bytes()).map_err(|source| NamespaceError::Map {
            what,
            pid,
            source,
        })?;
    }
    Ok(())
}

/// In the runtime: write the clock offsets of the new time namespace that process `pid` made
/// for its children. In a new user namespace the process cannot do it itself: it is not
/// dumpable, so its /proc files belong to the host's root, which it is not.
pub fn write_time_offsets(pid: i32, offsets: &str) -> Result<(), NamespaceError> {
    let path = format!("/proc/{pid}/timens_offsets");
    std::fs::write(&path, offsets.as_bytes()).map_err(|source| NamespaceError::Map {
        what: "timens_offsets",
        pid,
        source,
    })
}

/// The spec's name of a namespace type.
pub fn ns_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mount",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "network",
        LinuxNamespaceType::Time => "time",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linux(json: &str) -> Linux {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn new_namespaces_and_maps() {
        let l = linux(
            r#"{"namespaces":[{"type":"pid"},{"type":"user"},{"type":"mount"}],
                "uidMappings":[{"containerID":0,"hostID":1000,"size":10}],
                "gidMappings":[{"containerID":0,"hostID":2000,"size":1}]}"#,
        );
        let p = NamespacePlan::from_spec(Some(&l)).unwrap();
        assert!(p.creates(LinuxNamespaceType::User));
        assert!(p.needs_fork());
        assert_eq!(p.uid_map, "0 1000 10\n");
        assert_eq!(p.gid_map, "0 2000 1\n");
    }

    #[test]
    fn userns_without_maps_rejected() {
        let l = linux(r#"{"namespaces":[{"type":"user"}]}"#);
        assert!(NamespacePlan::from_spec(Some(&l)).is_err());
    }

    #[test]
    fn join_path_must_be_a_namespace() {
        let l = linux(r#"{"namespaces":[{"type":"network","path":"/etc/hostname"}]}"#);
        let e = NamespacePlan::from_spec(Some(&l)).unwrap_err();
        assert!(e.to_string().contains("not a namespace"), "{e}");
        let l = linux(r#"{"namespaces":[{"type":"network","path":"/nonexistent/ns"}]}"#);
        assert!(NamespacePlan::from_spec(Some(&l)).is_err());
    }

    #[test]
    fn joins_are_ordered_user_first_mount_last() {
        let l = linux(
            r#"{"namespaces":[{"type":"mount","path":"/proc/self/ns/mnt"},
                {"type":"network","path":"/proc/self/ns/net"},{"type":"user","path":"/proc/self/ns/user"}]}"#,
        );
        let p = NamespacePlan::from_spec(Some(&l)).unwrap();
        let order: Vec<_> = p.joins.iter().map(|j| j.typ).collect();
        assert_eq!(
            order,
            [
                LinuxNamespaceType::User,
                LinuxNamespaceType::Network,
                LinuxNamespaceType::Mount
            ]
        );
    }
}
