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
    #[error("write the id maps of pid {pid} with {helper}: {msg}")]
    Helper {
        helper: String,
        pid: i32,
        msg: String,
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
    /// The runtime is not root: it writes the maps of a new user namespace through the
    /// stage's /proc files, which are its own only while the stage is dumpable.
    pub unprivileged: bool,
    /// The runtime itself runs in a user namespace that is not the host's (as rootless
    /// podman runs it, as root of the user's namespace): mknod is denied there too.
    pub runtime_in_userns: bool,
    /// The runtime's own user namespace denies setgroups(2) (`unshare --map-root-user` makes
    /// one such), and so will the container's, which is that one or a child of it.
    pub runtime_setgroups_denied: bool,
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
            unprivileged: false,
            runtime_in_userns: false,
            runtime_setgroups_denied: false,
        }
    }
}

impl NamespacePlan {
    pub fn from_spec(linux: Option<&Linux>) -> Result<NamespacePlan, NamespaceError> {
        let mut plan = NamespacePlan {
            unprivileged: !nix::unistd::geteuid().is_root(),
            runtime_in_userns: crate::rootless::in_user_namespace(),
            runtime_setgroups_denied: std::fs::read_to_string("/proc/self/setgroups")
                .is_ok_and(|s| s.trim() == "deny"),
            ..NamespacePlan::default()
        };
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

    /// The container's user namespace will deny setgroups(2): an unprivileged runtime maps its
    /// own gid alone (see [`write_id_maps`]), or the runtime's own namespace denies it and the
    /// container's is that one or a new child of it (a child inherits the denial).
    pub fn denies_setgroups(&self) -> bool {
        let own_id_only = self.unprivileged
            && self.creates(LinuxNamespaceType::User)
            && is_own_id_only(&self.gid_map, nix::unistd::getegid().as_raw());
        own_id_only || (self.runtime_setgroups_denied && !self.joins_user())
    }

    /// The container joins an existing user namespace (`path` given).
    pub fn joins_user(&self) -> bool {
        self.joins.iter().any(|j| j.typ == LinuxNamespaceType::User)
    }

    /// Device nodes are bind mounts of the host's, not mknod: in a user namespace, the
    /// container's own or the one the runtime runs in, mknod is denied (runc decides the same).
    pub fn binds_devices(&self) -> bool {
        self.runtime_in_userns || self.has(LinuxNamespaceType::User)
    }

    pub fn has(&self, t: LinuxNamespaceType) -> bool {
        self.present.contains(&t)
    }

    pub fn creates(&self, t: LinuxNamespaceType) -> bool {
        self.new.contains(clone_flag(t))
    }

    /// A pid or time namespace, new or joined, applies only to children: the stage must fork
    /// the init after entering it, unless the runtime forked the stage into the new pid
    /// namespace already ([`NamespacePlan::runtime_makes_pid_ns`]).
    pub fn needs_fork(&self) -> bool {
        (self.has(LinuxNamespaceType::Pid) || self.has(LinuxNamespaceType::Time))
            && !self.runtime_makes_pid_ns()
    }

    /// The runtime makes the new pid namespace itself and forks the stage into it, so that the
    /// stage is the init: one fork where the stage would make it and fork again. Not with a
    /// user namespace, new or joined: the pid namespace must be owned by it, and a new one
    /// exists only once the stage made it and the runtime wrote its maps. Not with a time
    /// namespace, which, like the pid one, applies to children only: the stage still forks.
    /// And not where the runtime itself runs in a user namespace (as root of rootless podman's):
    /// its own pid namespace is then owned by an ancestor of that user namespace, and it could
    /// not set its children's back to it (setns: EPERM).
    pub fn runtime_makes_pid_ns(&self) -> bool {
        self.creates(LinuxNamespaceType::Pid)
            && !self.has(LinuxNamespaceType::User)
            && !self.has(LinuxNamespaceType::Time)
            && !self.runtime_in_userns
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
        let mut flags = self.new - CloneFlags::CLONE_NEWCGROUP;
        if self.runtime_makes_pid_ns() {
            // We are the first process of the new pid namespace already.
            flags -= CloneFlags::CLONE_NEWPID;
        }
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

/// In the runtime: the calling thread's children go into a new pid namespace until
/// [`PidNsForChildren::restore`] (or the drop) puts them back in the thread's own (see
/// [`NamespacePlan::runtime_makes_pid_ns`]). Only the calling thread's: another thread of a
/// program that links the crate forks into its own namespace meanwhile.
pub(crate) struct PidNsForChildren {
    own: Option<OwnedFd>,
}

impl PidNsForChildren {
    pub(crate) fn new() -> Result<PidNsForChildren, NamespaceError> {
        let path = "/proc/thread-self/ns/pid";
        let own = nix::fcntl::open(
            path,
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|source| NamespaceError::Open {
            ns: "pid",
            path: path.into(),
            source,
        })?;
        nix::sched::unshare(CloneFlags::CLONE_NEWPID).map_err(|source| NamespaceError::Create {
            flags: "CLONE_NEWPID".into(),
            source,
        })?;
        Ok(PidNsForChildren { own: Some(own) })
    }

    /// The fd of the thread's own pid namespace, which a forked child closes.
    pub(crate) fn own_fd(&self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        self.own.as_ref().map(|fd| fd.as_raw_fd())
    }

    /// Children go into the thread's own pid namespace again.
    pub(crate) fn restore(mut self) -> Result<(), NamespaceError> {
        self.back()
    }

    fn back(&mut self) -> Result<(), NamespaceError> {
        match self.own.take() {
            Some(own) => nix::sched::setns(own.as_fd(), CloneFlags::CLONE_NEWPID)
                .map_err(|source| NamespaceError::Join { ns: "pid", source }),
            None => Ok(()),
        }
    }
}

impl Drop for PidNsForChildren {
    fn drop(&mut self) {
        if let Err(e) = self.back() {
            tracing::error!("put the runtime's children back in its own pid namespace: {e}");
        }
    }
}

/// In the runtime: write the id maps of process `pid`'s new user namespace.
///
/// A runtime that is not root (its effective uid is not 0) may write one mapping of its own
/// id only, and the gid one only once `setgroups` is denied in the namespace: with a gid map
/// that is exactly its own gid, `setgroups` is denied first. Any other map it may not write
/// (EPERM) goes through the setuid helpers `newuidmap` and `newgidmap`, which map the ranges
/// `/etc/subuid` and `/etc/subgid` give the user, as runc does.
pub fn write_id_maps(pid: i32, uid_map: &str, gid_map: &str) -> Result<(), NamespaceError> {
    let unprivileged = !nix::unistd::geteuid().is_root();
    if unprivileged && is_own_id_only(gid_map, nix::unistd::getegid().as_raw()) {
        deny_setgroups(pid)?;
    }
    for (what, text, helper) in [
        ("uid_map", uid_map, "newuidmap"),
        ("gid_map", gid_map, "newgidmap"),
    ] {
        let path = format!("/proc/{pid}/{what}");
        match std::fs::write(&path, text.as_bytes()) {
            Ok(()) => {}
            Err(e) if unprivileged && e.raw_os_error() == Some(libc::EPERM) => {
                tracing::debug!("write {path}: EPERM: mapping {text:?} with {helper}");
                map_with_helper(helper, pid, text)?;
            }
            Err(source) => return Err(NamespaceError::Map { what, pid, source }),
        }
    }
    Ok(())
}

/// Whether `map` is a single mapping of host id `id` alone, which its owner may write
/// without a helper.
fn is_own_id_only(map: &str, id: u32) -> bool {
    let lines: Vec<Vec<&str>> = map
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let own = id.to_string();
    matches!(&lines[..], [l] if l.len() == 3 && l[1] == own && l[2] == "1")
}

/// Deny setgroups(2) in `pid`'s user namespace (before its gid map is written by a runtime
/// that is not root, as the kernel requires). A kernel without the file needs nothing.
fn deny_setgroups(pid: i32) -> Result<(), NamespaceError> {
    match std::fs::write(format!("/proc/{pid}/setgroups"), b"deny") {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(NamespaceError::Map {
            what: "setgroups",
            pid,
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Run `newuidmap PID ID HOSTID SIZE ...` (or `newgidmap`) for `map` (lines of
/// "ID HOSTID SIZE"), found in `PATH` as runc does, with an empty environment.
fn map_with_helper(helper: &str, pid: i32, map: &str) -> Result<(), NamespaceError> {
    let err = |msg: String| NamespaceError::Helper {
        helper: helper.to_string(),
        pid,
        msg,
    };
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into())
        .to_string_lossy()
        .split(':')
        .map(|d| std::path::Path::new(d).join(helper))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            err(format!(
                "not found in PATH (install it, e.g. Debian's uidmap package): the maps \
                 {} cannot be written by a user that is not root",
                map.trim().replace('\n', ", ")
            ))
        })?;
    let out = std::process::Command::new(&path)
        .arg(pid.to_string())
        .args(map.split_whitespace())
        .env_clear()
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| err(format!("{}: {e}", path.display())))?;
    if !out.status.success() {
        return Err(err(format!(
            "{} {pid} {}: {}: {}",
            path.display(),
            map.split_whitespace().collect::<Vec<_>>().join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
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
    fn who_makes_the_pid_namespace() {
        // As the runtime runs on a host; where it runs in a user namespace, the stage forks.
        let plan = |json: &str| NamespacePlan {
            runtime_in_userns: false,
            ..NamespacePlan::from_spec(Some(&linux(json))).unwrap()
        };
        let p = plan(r#"{"namespaces":[{"type":"pid"},{"type":"mount"},{"type":"network"}]}"#);
        assert!(p.runtime_makes_pid_ns());
        assert!(!p.needs_fork(), "the runtime forked the init already");
        let in_userns = NamespacePlan {
            runtime_in_userns: true,
            ..plan(r#"{"namespaces":[{"type":"pid"},{"type":"mount"}]}"#)
        };
        assert!(!in_userns.runtime_makes_pid_ns());
        assert!(in_userns.needs_fork());
        let p = plan(r#"{"namespaces":[{"type":"pid"},{"type":"time"}]}"#);
        assert!(!p.runtime_makes_pid_ns());
        assert!(p.needs_fork());
        let p = plan(r#"{"namespaces":[{"type":"pid","path":"/proc/self/ns/pid"}]}"#);
        assert!(!p.runtime_makes_pid_ns());
        assert!(p.needs_fork());
        let p = plan(r#"{"namespaces":[{"type":"mount"}]}"#);
        assert!(!p.runtime_makes_pid_ns());
        assert!(!p.needs_fork());
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
        assert!(!p.runtime_makes_pid_ns());
        assert_eq!(p.uid_map, "0 1000 10\n");
        assert_eq!(p.gid_map, "0 2000 1\n");
    }

    #[test]
    fn own_id_only_maps() {
        assert!(is_own_id_only("0 1000 1\n", 1000));
        assert!(is_own_id_only("5 1000 1\n", 1000));
        assert!(!is_own_id_only("0 1000 2\n", 1000));
        assert!(!is_own_id_only("0 1001 1\n", 1000));
        assert!(!is_own_id_only("0 1000 1\n1 100000 65536\n", 1000));
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
