//! cgroups: one interface over v1, hybrid, v2 and the systemd driver (through cgroups-rs).
//!
//! * [`resolve`] turns `linux.cgroupsPath` into a [`CgroupConfig`] without touching the
//!   filesystem (pure validation and normalisation, the way runc interprets the field).
//! * [`manager`] discovers the host's hierarchies and returns a [`CgroupManager`] for it: the
//!   cgroupfs driver (`fs.rs`) or the systemd driver (`systemd.rs`).
//!
//! Path semantics (cgroupfs driver), as runc does them:
//! * an absolute `cgroupsPath` is taken as-is below the root of every hierarchy;
//! * a relative one is placed below the cgroup the runtime itself is in, per hierarchy (on a
//!   pure cgroup v2 host below the *parent* of that cgroup, because a cgroup with processes
//!   cannot delegate controllers to children);
//! * without `cgroupsPath` the container id is used as a relative path.
use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};
use serde::{Deserialize, Serialize};

mod bpf;
mod fs;
pub mod oom;
pub mod rootless;
pub mod stats;
mod systemd;
mod systemd_user;

pub(crate) use fs::join;
pub(crate) use fs::CgroupMount;
pub use fs::{CgroupMounts, FsCgroup};
pub use oom::OomWatcher;
pub use stats::Stats;
pub use systemd::SystemdCgroup;

/// Mount point of the cgroup filesystems.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup {path}: {msg}")]
    Failed { path: String, msg: String },
    /// `linux.cgroupsPath` (or the id used in its place) is malformed.
    #[error("invalid cgroupsPath {path:?}: {reason}")]
    InvalidPath { path: String, reason: String },
    /// A filesystem operation on the cgroup tree failed.
    #[error("cgroup: {step} {path}: {source}")]
    Io {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The host (or this driver) cannot apply a resource that the config asks for.
    #[error("cgroup resource {resource}: cannot be applied on this host: {reason}")]
    Unsupported { resource: String, reason: String },
    /// A resource value was rejected (by validation or by the kernel).
    #[error("cgroup resource {resource} ({path}): {msg}")]
    Resource {
        resource: String,
        path: String,
        msg: String,
    },
    /// The cgroup could not be removed because processes in it outlived SIGKILL: stuck in the
    /// kernel (state D), or frozen by a freezer other than the container's.
    #[error("{source}: processes {} did not die on SIGKILL (uninterruptible in the kernel, or frozen by another freezer); delete --force again once they have exited", pid_list(.pids))]
    Stuck {
        pids: Vec<i32>,
        #[source]
        source: Box<CgroupError>,
    },
    /// The systemd driver failed (D-Bus or unit management).
    #[error("systemd cgroup {unit}: {step}: {msg}")]
    Systemd {
        unit: String,
        step: &'static str,
        msg: String,
    },
}

fn pid_list(pids: &[i32]) -> String {
    let list: Vec<String> = pids.iter().map(|p| p.to_string()).collect();
    list.join(", ")
}

/// Where a container's cgroup lives; saved in state.json so that later commands find it.
///
/// `path` is, for the cgroupfs driver, a normalised absolute path (`/a/b`) or a normalised
/// relative one (`a/b`, resolved against the caller's own cgroups by [`manager`]); for the
/// systemd driver it is `slice:prefix:name` (an empty slice means `system.slice`, or the
/// manager's `user.slice` with `systemd_user`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CgroupConfig {
    pub path: String,
    pub systemd: bool,
    /// With `systemd`: the unit is the caller's own systemd manager's, reached on its session
    /// bus (a rootless container's), rather than the system's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub systemd_user: bool,
}

/// The cgroup layout of the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only cgroup v1 hierarchies.
    V1,
    /// cgroup v1 controllers plus a cgroup2 mount at `/sys/fs/cgroup/unified`.
    Hybrid,
    /// Pure cgroup v2 at `/sys/fs/cgroup`.
    Unified,
}

/// Detect the host's cgroup layout from the filesystem types under `/sys/fs/cgroup`.
pub fn host_mode() -> Mode {
    use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};
    let is_cgroup2 =
        |p: &str| matches!(statfs(p), Ok(st) if st.filesystem_type() == CGROUP2_SUPER_MAGIC);
    if is_cgroup2(CGROUP_ROOT) {
        Mode::Unified
    } else if is_cgroup2("/sys/fs/cgroup/unified") {
        Mode::Hybrid
    } else {
        Mode::V1
    }
}

/// Resolve `linux.cgroupsPath` (or runc's default when absent) for container `id`.
///
/// Never touches the filesystem. Paths that climb above their starting point with `..` and
/// paths that would designate a hierarchy's root cgroup are rejected.
pub fn resolve(
    cgroups_path: Option<&str>,
    id: &str,
    systemd: bool,
) -> Result<CgroupConfig, CgroupError> {
    let invalid = |path: &str, reason: &str| CgroupError::InvalidPath {
        path: path.to_string(),
        reason: reason.to_string(),
    };
    if id.is_empty() || id.contains('/') || id == "." || id == ".." || id.contains('\0') {
        return Err(invalid(id, "the container id cannot name a cgroup"));
    }
    let given = cgroups_path.filter(|p| !p.is_empty());
    if let Some(p) = given {
        if p.contains('\0') {
            return Err(invalid(p, "contains a NUL byte"));
        }
    }
    if systemd {
        let path = match given {
            // runc: parent left to the driver (system.slice), scope prefix "runc".
            None => format!(":runc:{id}"),
            Some(p) => {
                validate_systemd_path(p)?;
                p.to_string()
            }
        };
        return Ok(CgroupConfig {
            path,
            systemd,
            systemd_user: false,
        });
    }
    let path = match given {
        None => id.to_string(),
        Some(p) => clean_fs_path(p)?,
    };
    Ok(CgroupConfig {
        path,
        systemd,
        systemd_user: false,
    })
}

/// Lexically normalise a cgroupfs path: collapse `//` and `.`, apply `..`, refuse escapes.
fn clean_fs_path(p: &str) -> Result<String, CgroupError> {
    let invalid = |reason: &str| CgroupError::InvalidPath {
        path: p.to_string(),
        reason: reason.to_string(),
    };
    let absolute = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for comp in p.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(invalid("`..` escapes above the cgroup root"));
                }
            }
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Err(invalid(
            "designates the root cgroup itself, which a container cannot own",
        ));
    }
    let joined = parts.join("/");
    Ok(if absolute {
        format!("/{joined}")
    } else {
        joined
    })
}

/// Check the systemd driver's `slice:prefix:name` form.
fn validate_systemd_path(p: &str) -> Result<(), CgroupError> {
    let invalid = |reason: String| CgroupError::InvalidPath {
        path: p.to_string(),
        reason,
    };
    let parts: Vec<&str> = p.split(':').collect();
    let [slice, prefix, name] = parts[..] else {
        return Err(invalid(format!(
            "expected \"slice:prefix:name\" for the systemd cgroup driver, found {} part(s)",
            parts.len()
        )));
    };
    for (what, part) in [("slice", slice), ("prefix", prefix), ("name", name)] {
        if part.contains('/') || part.contains("..") {
            return Err(invalid(format!(
                "the {what} {part:?} may not contain '/' or '..'"
            )));
        }
    }
    if !slice.is_empty() {
        let stem = slice
            .strip_suffix(".slice")
            .ok_or_else(|| invalid(format!("the slice {slice:?} must end with \".slice\"")))?;
        if stem.is_empty() || (stem != "-" && stem.split('-').any(str::is_empty)) {
            return Err(invalid(format!(
                "the slice {slice:?} is not a valid systemd slice name"
            )));
        }
    }
    if name.is_empty() {
        return Err(invalid("the name part is empty".to_string()));
    }
    if name.ends_with(".slice") && !prefix.is_empty() {
        return Err(invalid(format!(
            "a slice unit {name:?} cannot take a scope prefix ({prefix:?})"
        )));
    }
    Ok(())
}

/// A container's cgroup.
pub trait CgroupManager: Send {
    /// Create the cgroup (all hierarchies) and move `pid` into it.
    ///
    /// On failure, directories already created stay: call [`CgroupManager::destroy`].
    fn apply(&mut self, pid: i32) -> Result<(), CgroupError>;
    /// As [`CgroupManager::apply`], except for the hierarchies that `pid` can join by itself
    /// at less cost: their files, to which that process (single-threaded, with the runtime's
    /// credentials) writes `0`, are returned, and until it does it is not in them. On cgroup
    /// v1 a thread that moves itself through `tasks` takes no global lock, where a write of a
    /// pid to `cgroup.procs` takes the cgroup core's threadgroup lock for writing, which waits
    /// for an RCU grace period (about 6 ms here) whenever no other cgroup move happened in
    /// the last one: on a host where containers start seconds apart, on every create. The
    /// default moves `pid` everywhere and leaves nothing to join.
    fn apply_leaving_self_join(&mut self, pid: i32) -> Result<Vec<PathBuf>, CgroupError> {
        self.apply(pid).map(|()| Vec::new())
    }
    /// Create the cgroup in every hierarchy without moving any process in (for example to
    /// clone straight into it with `CLONE_INTO_CGROUP`, or to set limits first).
    fn create(&mut self) -> Result<(), CgroupError>;
    /// Write the resource limits.
    ///
    /// When `resources.devices` is present its rules are written in order and then
    /// [`default_allowed_devices`] are appended, as runc does.
    fn set(&mut self, resources: &LinuxResources) -> Result<(), CgroupError>;
    /// Every process in the cgroup (and in any cgroup below it), sorted, without duplicates.
    fn pids(&self) -> Result<Vec<i32>, CgroupError>;
    /// Remove the cgroup from every hierarchy (it must be empty). Succeeds if already gone.
    fn destroy(&mut self) -> Result<(), CgroupError>;

    /// Freeze (`true`) or thaw (`false`) every process of the cgroup; waits until frozen.
    fn freeze(&mut self, frozen: bool) -> Result<(), CgroupError>;

    /// The cgroup's directory in each hierarchy (for state.json, stats, debugging).
    fn paths(&self) -> Vec<PathBuf>;

    /// Send `sig` to every process of the cgroup (`kill --all`).
    ///
    /// The cgroup is frozen while signalling when the host can, so that forks cannot escape;
    /// processes that are already gone are not an error.
    fn kill_all(&mut self, sig: Signal) -> Result<(), CgroupError> {
        let frozen = self.freeze(true).is_ok();
        let result = self.pids().and_then(|pids| signal_pids(&pids, sig));
        if frozen {
            let thawed = self.freeze(false);
            result?;
            thawed
        } else {
            result
        }
    }
}

/// Signal each pid, ignoring the ones that have exited meanwhile.
pub(crate) fn signal_pids(pids: &[i32], sig: Signal) -> Result<(), CgroupError> {
    use nix::errno::Errno;
    for &pid in pids {
        match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(e) => {
                return Err(CgroupError::Failed {
                    path: format!("pid {pid}"),
                    msg: format!("kill({sig}): {e}"),
                })
            }
        }
    }
    Ok(())
}

/// The manager for a resolved cgroup on this host's hierarchy (v1, hybrid or v2).
pub fn manager(cfg: &CgroupConfig) -> Result<Box<dyn CgroupManager>, CgroupError> {
    manager_in(cfg, None)
}

/// [`manager`], among the host's cgroup mounts where the caller read them already (the
/// cgroupfs driver's; the systemd one asks its manager).
pub(crate) fn manager_in(
    cfg: &CgroupConfig,
    mounts: Option<&CgroupMounts>,
) -> Result<Box<dyn CgroupManager>, CgroupError> {
    if cfg.systemd {
        validate_systemd_path(&cfg.path)?;
        if cfg.systemd_user {
            return Ok(Box::new(SystemdCgroup::new_user(&cfg.path, &[])?));
        }
        return Ok(Box::new(SystemdCgroup::new(&cfg.path)?));
    }
    // A config read back from state.json gets the same checks as a fresh one.
    let clean = clean_fs_path(&cfg.path)?;
    Ok(Box::new(match mounts {
        Some(mounts) => FsCgroup::new_in(&clean, mounts)?,
        None => FsCgroup::new(&clean)?,
    }))
}

/// Reopen the cgroup of a running container from the directories its manager reported with
/// [`CgroupManager::paths`] when it was created.
///
/// A relative `cgroupsPath` is placed below the cgroups of the process that calls
/// [`manager`], so a later command running in other cgroups must use this to find the same
/// directories. With the system's systemd manager the unit name is enough and `dirs` is not
/// used; with a user's, they spare asking the manager where its subtree is.
pub fn manager_at(
    cfg: &CgroupConfig,
    dirs: &[PathBuf],
) -> Result<Box<dyn CgroupManager>, CgroupError> {
    if cfg.systemd && cfg.systemd_user {
        validate_systemd_path(&cfg.path)?;
        return Ok(Box::new(SystemdCgroup::new_user(&cfg.path, dirs)?));
    }
    if cfg.systemd || dirs.is_empty() {
        return manager(cfg);
    }
    // The directories come from state.json: a damaged one must not point a later kill or
    // delete at someone else's cgroup. Each ends with the container's own cgroupsPath.
    let own = Path::new(cfg.path.trim_start_matches('/'));
    if let Some(d) = dirs
        .iter()
        .find(|d| own.as_os_str().is_empty() || !d.ends_with(own))
    {
        return Err(CgroupError::InvalidPath {
            path: d.display().to_string(),
            reason: format!(
                "a saved cgroup directory must end with the container's cgroupsPath {:?}",
                cfg.path
            ),
        });
    }
    Ok(Box::new(FsCgroup::from_dirs(dirs)?))
}

/// The devices runc lets every container use, appended after the config's device rules:
/// mknod of any block or char device, /dev/null, zero, full, random, urandom, tty, ptmx,
/// net/tun and every pts.
pub fn default_allowed_devices() -> Vec<LinuxDeviceCgroup> {
    let rule = |typ, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(true);
        r.set_typ(Some(typ));
        r.set_major(major);
        r.set_minor(minor);
        r.set_access(Some(access.to_string()));
        r
    };
    use LinuxDeviceType::{B, C};
    vec![
        rule(C, None, None, "m"),
        rule(B, None, None, "m"),
        rule(C, Some(1), Some(3), "rwm"),
        rule(C, Some(1), Some(8), "rwm"),
        rule(C, Some(1), Some(7), "rwm"),
        rule(C, Some(5), Some(0), "rwm"),
        rule(C, Some(1), Some(5), "rwm"),
        rule(C, Some(1), Some(9), "rwm"),
        rule(C, Some(136), None, "rwm"),
        rule(C, Some(5), Some(2), "rwm"),
        rule(C, Some(10), Some(200), "rwm"),
    ]
}

/// The resources a new container's cgroup gets: the config's, with the device rules made
/// allow-list style as runc does: deny everything, then the config's `resources.devices` rules
/// in order; [`CgroupManager::set`] appends [`default_allowed_devices`]. The nodes of
/// `linux.devices` get no rule of their own: the runtime-spec keeps creating a node and
/// allowing access to it apart, so a node the config creates but `resources.devices` denies
/// stays unusable (and a FIFO, which the device controller does not govern, needs none). A
/// container without `linux.resources` is confined the same way, so a device node the rootfs
/// happens to hold (a host disk, say) cannot be opened.
pub fn resources_for_create(linux: Option<&oci_spec::runtime::Linux>) -> LinuxResources {
    let mut resources = linux
        .and_then(|l| l.resources().clone())
        .unwrap_or_default();
    let mut deny_all = LinuxDeviceCgroup::default();
    deny_all.set_allow(false);
    deny_all.set_access(Some("rwm".to_string()));
    let mut rules = vec![deny_all];
    rules.extend(resources.devices().clone().unwrap_or_default());
    resources.set_devices(Some(rules));
    resources
}

/// Refuse a cgroup that a new container cannot own, as runc does before anything is created:
/// one that already holds processes (deleting the container would kill them, and its limits
/// would bind them) or one that is frozen (the init would stop there, beyond the reach of
/// SIGKILL until someone thaws it, and create would never return).
pub fn check_unused(cg: &dyn CgroupManager) -> Result<(), CgroupError> {
    // Usually none exists yet: then there is nothing to read (a probe of each file in each
    // missing directory would sit on the path of every create).
    let dirs: Vec<PathBuf> = cg.paths().into_iter().filter(|d| d.is_dir()).collect();
    if dirs.is_empty() {
        return Ok(());
    }
    let pids = cg.pids()?;
    if !pids.is_empty() {
        return Err(CgroupError::Failed {
            path: dirs
                .first()
                .map(|d| d.display().to_string())
                .unwrap_or_default(),
            msg: format!(
                "container's cgroup is not empty: {} process(es) found",
                pids.len()
            ),
        });
    }
    if let Some(dir) = frozen_dir(&dirs) {
        return Err(CgroupError::Failed {
            path: dir.display().to_string(),
            msg: "container's cgroup unexpectedly frozen (thaw it or choose another cgroupsPath)"
                .into(),
        });
    }
    Ok(())
}

/// Whether the cgroup whose directories are `dirs` is frozen (the `paused` status): the v1
/// freezer where the host has one, else cgroup v2's `cgroup.freeze`.
pub fn is_frozen(dirs: &[PathBuf]) -> bool {
    frozen_dir(dirs).is_some()
}

/// The directory of `dirs` that says the cgroup is frozen, as [`is_frozen`] decides.
fn frozen_dir(dirs: &[PathBuf]) -> Option<&PathBuf> {
    let read = |p: PathBuf| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
    };
    // The freezer hierarchy's directory first: on a v1 host the other dozen directories
    // have no freezer.state, and `list` asks this of every container.
    let named_freezer = |d: &&PathBuf| d.components().any(|c| c.as_os_str() == "freezer");
    if let Some((dir, state)) = dirs
        .iter()
        .filter(named_freezer)
        .chain(dirs.iter().filter(|d| !named_freezer(d)))
        .find_map(|d| read(d.join("freezer.state")).map(|s| (d, s)))
    {
        return (state == "FROZEN").then_some(dir);
    }
    dirs.iter()
        .find(|d| read(d.join("cgroup.freeze")).as_deref() == Some("1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path_of(p: Option<&str>, id: &str, systemd: bool) -> String {
        resolve(p, id, systemd).unwrap().path
    }

    fn reason_of(p: Option<&str>, id: &str, systemd: bool) -> String {
        match resolve(p, id, systemd) {
            Err(CgroupError::InvalidPath { reason, .. }) => reason,
            other => panic!("expected InvalidPath for {p:?}, got {other:?}"),
        }
    }

    #[test]
    fn cgroups_resolve_absent_uses_id_relative() {
        assert_eq!(path_of(None, "ctr1", false), "ctr1");
        assert_eq!(path_of(Some(""), "ctr1", false), "ctr1");
        assert!(!resolve(None, "ctr1", false).unwrap().systemd);
    }

    #[test]
    fn cgroups_resolve_absolute_kept_and_cleaned() {
        assert_eq!(path_of(Some("/a/b"), "x", false), "/a/b");
        assert_eq!(path_of(Some("//a/./b/"), "x", false), "/a/b");
        assert_eq!(path_of(Some("/a/c/../b"), "x", false), "/a/b");
    }

    #[test]
    fn cgroups_resolve_relative_kept_and_cleaned() {
        assert_eq!(path_of(Some("a/b"), "x", false), "a/b");
        assert_eq!(path_of(Some("./a//b/."), "x", false), "a/b");
    }

    #[test]
    fn cgroups_resolve_rejects_escape_and_root() {
        assert!(reason_of(Some("/../etc"), "x", false).contains(".."));
        assert!(reason_of(Some("../x"), "x", false).contains(".."));
        assert!(reason_of(Some("/a/../../b"), "x", false).contains(".."));
        assert!(reason_of(Some("/"), "x", false).contains("root"));
        assert!(reason_of(Some("a/.."), "x", false).contains("root"));
    }

    #[test]
    fn cgroups_resolve_rejects_bad_ids() {
        for id in ["", "a/b", "..", "."] {
            assert!(resolve(None, id, false).is_err(), "id {id:?} accepted");
        }
    }

    #[test]
    fn cgroups_resolve_systemd_forms() {
        assert_eq!(path_of(None, "c1", true), ":runc:c1");
        assert_eq!(
            path_of(Some("system.slice:docker:abc"), "c1", true),
            "system.slice:docker:abc"
        );
        assert_eq!(path_of(Some(":casulo:abc"), "c1", true), ":casulo:abc");
        assert_eq!(
            path_of(Some("machine-a.slice::abc"), "c1", true),
            "machine-a.slice::abc"
        );
        assert_eq!(
            path_of(Some("user.slice::my.slice"), "c1", true),
            "user.slice::my.slice"
        );
    }

    #[test]
    fn cgroups_resolve_systemd_rejects_malformed() {
        assert!(reason_of(Some("/abs/path"), "c", true).contains("slice:prefix:name"));
        assert!(reason_of(Some("a:b"), "c", true).contains("slice:prefix:name"));
        assert!(reason_of(Some("a:b:c:d"), "c", true).contains("slice:prefix:name"));
        assert!(reason_of(Some("system:docker:x"), "c", true).contains(".slice"));
        assert!(reason_of(Some("a--b.slice:p:x"), "c", true).contains("slice"));
        assert!(reason_of(Some("system.slice:p:"), "c", true).contains("empty"));
        assert!(reason_of(Some("system.slice:p:a/b"), "c", true).contains("'/'"));
        assert!(reason_of(Some("system.slice:..:x"), "c", true).contains(".."));
        assert!(reason_of(Some("system.slice:p:my.slice"), "c", true).contains("prefix"));
    }

    #[test]
    fn cgroups_default_devices_match_runc() {
        let rules: Vec<String> = default_allowed_devices()
            .iter()
            .map(|r| {
                let n = |v: Option<i64>| v.map_or("*".to_string(), |v| v.to_string());
                format!(
                    "{} {}:{} {}",
                    r.typ().unwrap().as_str(),
                    n(r.major()),
                    n(r.minor()),
                    r.access().as_deref().unwrap()
                )
            })
            .collect();
        assert_eq!(rules.len(), 11);
        for want in [
            "c *:* m",
            "b *:* m",
            "c 1:3 rwm",
            "c 136:* rwm",
            "c 10:200 rwm",
        ] {
            assert!(rules.iter().any(|r| r == want), "{want} missing");
        }
        assert!(default_allowed_devices().iter().all(|r| r.allow()));
    }

    #[test]
    fn cgroups_create_resources_deny_by_default() {
        let r = resources_for_create(None);
        let rules = r.devices().clone().unwrap();
        assert_eq!(rules.len(), 1);
        assert!(!rules[0].allow());
        assert_eq!(rules[0].typ(), None);

        let linux: oci_spec::runtime::Linux = serde_json::from_str(
            r#"{"resources":{"devices":[{"allow":true,"type":"c","major":4,"minor":1,"access":"r"}],
                "pids":{"limit":5}},
               "devices":[{"path":"/dev/fuse","type":"c","major":10,"minor":229},
                          {"path":"/dev/fifo","type":"p"}]}"#,
        )
        .unwrap();
        let r = resources_for_create(Some(&linux));
        let rules = r.devices().clone().unwrap();
        // linux.devices add no rule: /dev/fuse stays denied, the FIFO needs none.
        assert_eq!(rules.len(), 2);
        assert!(!rules[0].allow());
        assert_eq!(
            (rules[1].major(), rules[1].access().as_deref()),
            (Some(4), Some("r"))
        );
        assert_eq!(r.pids().as_ref().map(|p| p.limit()), Some(5));
    }
}
