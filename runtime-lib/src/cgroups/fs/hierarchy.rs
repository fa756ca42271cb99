//! Where the container's cgroup is: the host's cgroup mounts, the caller's own cgroups, and
//! the container's directory in each hierarchy.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use cgroups_rs::fs::cpuset::CpuSetController;
use cgroups_rs::fs::Controller;

use super::{io_err, res_err, unsupported, write_file, FsCgroup, Hier};
use crate::cgroups::{host_mode, CgroupError, Mode};
use crate::rootfs::paths::unescape_mountinfo;

/// A mount of a cgroup filesystem, from /proc/self/mountinfo.
#[derive(Debug, Clone)]
pub(crate) struct CgroupMount {
    pub(crate) v2: bool,
    pub(crate) mount_point: PathBuf,
    pub(crate) mount_root: PathBuf,
    /// The superblock options, `key` or `key=value`.
    pub(crate) options: Vec<String>,
}

impl CgroupMount {
    /// `m`, where it is a cgroup (v1 or v2) mount.
    pub(crate) fn from_info(m: procfs::process::MountInfo) -> Option<CgroupMount> {
        let v2 = match m.fs_type.as_str() {
            "cgroup" => false,
            "cgroup2" => true,
            _ => return None,
        };
        Some(CgroupMount {
            v2,
            mount_point: unescape_mountinfo(&m.mount_point.to_string_lossy()),
            mount_root: unescape_mountinfo(&m.root),
            // procfs splits `name=systemd` into a key and a value: joined again here. The
            // order is lost, which no caller needs.
            options: m
                .super_options
                .into_iter()
                .map(|(k, v)| match v {
                    Some(v) => format!("{k}={v}"),
                    None => k,
                })
                .collect(),
        })
    }
}

/// The host's cgroup mounts. Create reads them once: the plan lays out the container's cgroup
/// mount from them, and the runtime places the container's cgroup in them.
#[derive(Debug, Clone)]
pub struct CgroupMounts(pub(crate) Vec<CgroupMount>);

impl CgroupMounts {
    pub(crate) fn read() -> Result<CgroupMounts, CgroupError> {
        let infos = procfs::process::Process::myself()
            .and_then(|me| me.mountinfo())
            .map_err(proc_err("/proc/self/mountinfo"))?;
        Ok(CgroupMounts(
            infos
                .into_iter()
                .filter_map(CgroupMount::from_info)
                .collect(),
        ))
    }
}

/// A /proc read that procfs failed, as the cgroup error naming the file.
fn proc_err(path: &'static str) -> impl FnOnce(procfs::ProcError) -> CgroupError {
    move |e| io_err("read", Path::new(path), std::io::Error::other(e))
}

/// The controller names the kernel knows (first column of /proc/cgroups).
fn known_subsystems() -> BTreeSet<String> {
    procfs::cgroups()
        .map(|c| c.0.into_iter().map(|c| c.name).collect())
        .unwrap_or_default()
}

/// This process's cgroup per hierarchy, from /proc/self/cgroup: (controllers, path);
/// the cgroup2 entry has no controllers.
fn own_cgroups() -> Result<Vec<(Vec<String>, String)>, CgroupError> {
    let cgroups = procfs::process::Process::myself()
        .and_then(|me| me.cgroups())
        .map_err(proc_err("/proc/self/cgroup"))?;
    Ok(cgroups
        .into_iter()
        .map(|c| {
            let mut controllers = c.controllers;
            controllers.sort();
            (controllers, c.pathname)
        })
        .collect())
}

impl FsCgroup {
    /// Discover the host's hierarchies and place `path` (normalised by `resolve`) in each.
    pub fn new(path: &str) -> Result<Self, CgroupError> {
        Self::new_in(path, &CgroupMounts::read()?)
    }

    /// [`FsCgroup::new`] among `mounts`, the host's cgroup mounts read already.
    pub(crate) fn new_in(path: &str, mounts: &CgroupMounts) -> Result<Self, CgroupError> {
        let mode = host_mode();
        let known = known_subsystems();
        let own = own_cgroups()?;
        let mut hiers: Vec<Hier> = Vec::new();
        for m in mounts.0.iter().cloned() {
            let mut controllers: Vec<String> = Vec::new();
            if m.v2 {
                let wanted = match mode {
                    Mode::Unified => Path::new(crate::cgroups::CGROUP_ROOT).to_path_buf(),
                    Mode::Hybrid => Path::new(crate::cgroups::CGROUP_ROOT).join("unified"),
                    Mode::V1 => continue,
                };
                if m.mount_point != wanted || hiers.iter().any(|h| h.v2) {
                    continue;
                }
            } else {
                if mode == Mode::Unified {
                    continue;
                }
                controllers = m
                    .options
                    .iter()
                    .filter(|o| known.contains(*o) || o.starts_with("name="))
                    .cloned()
                    .collect();
                controllers.sort();
                if controllers.is_empty() || hiers.iter().any(|h| h.controllers == controllers) {
                    continue;
                }
            }
            let dir = if let Some(abs) = path.strip_prefix('/') {
                m.mount_point.join(abs)
            } else {
                let hierarchy = if m.v2 {
                    "cgroup2".to_string()
                } else {
                    controllers.join(",")
                };
                let own_path = own
                    .iter()
                    .find(|(c, _)| *c == controllers)
                    .map(|(_, p)| Path::new(p.as_str()))
                    .ok_or_else(|| CgroupError::Failed {
                        path: m.mount_point.display().to_string(),
                        msg: format!("no {hierarchy} entry in /proc/self/cgroup"),
                    })?;
                // Inside a bind-mounted subtree the mount root is a prefix of our own path.
                let own_path = own_path
                    .strip_prefix(&m.mount_root)
                    .unwrap_or(own_path)
                    .to_string_lossy()
                    .into_owned();
                let mut base = PathBuf::from(own_path.trim_start_matches('/'));
                if m.v2 && mode == Mode::Unified {
                    // A cgroup that holds processes cannot give controllers to children.
                    base.pop();
                }
                m.mount_point.join(base).join(path)
            };
            hiers.push(Hier {
                controllers,
                v2: m.v2,
                base: m.mount_point.clone(),
                mount: m.mount_point,
                dir,
            });
        }
        if hiers.is_empty() {
            return Err(CgroupError::Failed {
                path: crate::cgroups::CGROUP_ROOT.to_string(),
                msg: "no cgroup hierarchy is mounted".to_string(),
            });
        }
        Ok(Self {
            mode,
            hiers,
            created: false,
        })
    }

    /// Reopen a cgroup from the directories a manager reported with `paths()` (as saved in
    /// state.json), so that later commands find it whatever cgroup they run in. Each directory
    /// must lie strictly below a cgroup mount of this host; hierarchies without one are left
    /// out.
    pub fn from_dirs(dirs: &[PathBuf]) -> Result<Self, CgroupError> {
        let mode = host_mode();
        let known = known_subsystems();
        let mut hiers: Vec<Hier> = Vec::new();
        for d in dirs {
            let bad = |reason: &str| CgroupError::InvalidPath {
                path: d.display().to_string(),
                reason: reason.to_string(),
            };
            if !d.is_absolute()
                || d.components().any(|c| {
                    !matches!(
                        c,
                        std::path::Component::RootDir | std::path::Component::Normal(_)
                    )
                })
            {
                return Err(bad(
                    "a saved cgroup directory must be absolute and normalised",
                ));
            }
        }
        for m in CgroupMounts::read()?.0 {
            let Some(dir) = dirs
                .iter()
                .find(|d| d.starts_with(&m.mount_point) && **d != m.mount_point)
            else {
                continue;
            };
            if hiers.iter().any(|h| h.mount == m.mount_point) {
                continue;
            }
            let mut controllers: Vec<String> = Vec::new();
            if !m.v2 {
                controllers = m
                    .options
                    .iter()
                    .filter(|o| known.contains(*o) || o.starts_with("name="))
                    .cloned()
                    .collect();
                controllers.sort();
            }
            hiers.push(Hier {
                controllers,
                v2: m.v2,
                base: m.mount_point.clone(),
                mount: m.mount_point,
                dir: dir.clone(),
            });
        }
        if let Some(d) = dirs.iter().find(|d| !hiers.iter().any(|h| h.dir == **d)) {
            return Err(CgroupError::InvalidPath {
                path: d.display().to_string(),
                reason: "not below any cgroup mount of this host".to_string(),
            });
        }
        if hiers.is_empty() {
            return Err(CgroupError::InvalidPath {
                path: String::new(),
                reason: "no saved cgroup directory".to_string(),
            });
        }
        Ok(Self {
            mode,
            hiers,
            created: false,
        })
    }

    /// Only the hierarchies delegated to this process (a rootless runtime): those where the
    /// deepest existing directory above the container's cgroup, and its `cgroup.procs`, may
    /// be written (moving a process needs write access to the `cgroup.procs` of the common
    /// ancestor of its old and new cgroups, which that directory is). Create writes nothing
    /// above that directory. `None` when no hierarchy is delegated.
    pub fn delegated_only(mut self) -> Option<Self> {
        self.hiers.retain_mut(|h| {
            let Some(base) = h
                .dir
                .ancestors()
                .skip(1)
                .take_while(|a| a.starts_with(&h.mount))
                .find(|a| a.is_dir())
            else {
                return false;
            };
            let ok = crate::cgroups::rootless::writable(base)
                && crate::cgroups::rootless::writable(&base.join("cgroup.procs"));
            if ok {
                h.base = base.to_path_buf();
            } else {
                tracing::debug!(
                    "rootless: cgroup {} is not delegated to uid {}: not used",
                    base.display(),
                    nix::unistd::geteuid()
                );
            }
            ok
        });
        (!self.hiers.is_empty()).then_some(self)
    }

    /// The directory of the cgroup in the hierarchy of v1 controller `ctrl`, or in the cgroup2
    /// tree when that controller is available there (v2, or a hybrid host that delegates it).
    pub(super) fn ctrl_dir(&self, ctrl: &str) -> Option<(&Path, bool)> {
        if let Some(h) = self
            .hiers
            .iter()
            .find(|h| !h.v2 && h.controllers.iter().any(|c| c == ctrl))
        {
            return Some((&h.dir, false));
        }
        let h = self.hiers.iter().find(|h| h.v2)?;
        let avail = std::fs::read_to_string(h.dir.join("cgroup.controllers")).ok()?;
        avail
            .split_whitespace()
            .any(|c| c == ctrl)
            .then_some((h.dir.as_path(), true))
    }

    pub(super) fn require(&self, ctrl: &str, resource: &str) -> Result<(&Path, bool), CgroupError> {
        self.ctrl_dir(ctrl).ok_or_else(|| {
            unsupported(
                resource,
                format!("no {ctrl} controller is mounted (v1) or available in the cgroup2 tree"),
            )
        })
    }

    pub(super) fn v2_hier(&self) -> Option<&Hier> {
        self.hiers.iter().find(|h| h.v2)
    }

    /// Create `h.dir` and every missing ancestor below the mount point.
    pub(super) fn create_in(&self, h: &Hier) -> Result<(), CgroupError> {
        if !h.v2 && h.controllers.iter().any(|c| c == "cpuset") {
            // The crate's cpuset controller fills empty cpuset.cpus/mems from the nearest
            // non-empty ancestor, without which no task can join.
            CpuSetController::new(h.dir.clone(), h.mount.clone(), false)
                .create()
                .map_err(|e| res_err("cpuset", &h.dir, format!("create: {e}")))?;
            for f in ["cpuset.cpus", "cpuset.mems"] {
                let v = std::fs::read_to_string(h.dir.join(f))
                    .map_err(|e| io_err("read", &h.dir.join(f), e))?;
                if v.trim().is_empty() {
                    return Err(res_err(
                        "cpuset",
                        &h.dir,
                        format!("{f} is empty after creation"),
                    ));
                }
            }
            return Ok(());
        }
        std::fs::create_dir_all(&h.dir).map_err(|e| io_err("create", &h.dir, e))
    }

    /// On a pure v2 host, enable in each ancestor's cgroup.subtree_control every controller it
    /// has, so the container's cgroup gets them all (as runc does). Controllers the kernel
    /// refuses to enable at some level are skipped; `set` reports them when they are needed.
    pub(super) fn enable_v2_controllers(&self, h: &Hier) {
        let mut ancestors: Vec<&Path> = h
            .dir
            .ancestors()
            .skip(1)
            .take_while(|a| a.starts_with(&h.base))
            .collect();
        ancestors.reverse();
        for a in ancestors {
            let avail = std::fs::read_to_string(a.join("cgroup.controllers")).unwrap_or_default();
            let enabled =
                std::fs::read_to_string(a.join("cgroup.subtree_control")).unwrap_or_default();
            let enabled: BTreeSet<&str> = enabled.split_whitespace().collect();
            for c in avail.split_whitespace().filter(|c| !enabled.contains(c)) {
                if let Err(e) = write_file(&a.join("cgroup.subtree_control"), &format!("+{c}")) {
                    tracing::debug!(cgroup = %a.display(), controller = c, error = %e,
                        "cannot enable controller in subtree_control");
                }
            }
        }
    }

    /// The hierarchy whose cgroup.procs lists the container's processes.
    pub(super) fn procs_hier(&self) -> &Hier {
        if self.mode == Mode::Unified {
            if let Some(h) = self.v2_hier() {
                return h;
            }
        }
        for want in ["pids", "devices", "freezer", "memory", "cpu"] {
            if let Some(h) = self
                .hiers
                .iter()
                .find(|h| h.controllers.iter().any(|c| c == want))
            {
                return h;
            }
        }
        &self.hiers[0]
    }

    pub(super) fn freezer(&self) -> Result<(&Path, bool), CgroupError> {
        if let Some((dir, v2)) = self.ctrl_dir("freezer") {
            return Ok((dir, v2));
        }
        match self.v2_hier() {
            Some(h) if h.dir.join("cgroup.freeze").exists() => Ok((&h.dir, true)),
            _ => Err(unsupported(
                "freezer",
                "no freezer controller and no cgroup.freeze",
            )),
        }
    }
}
