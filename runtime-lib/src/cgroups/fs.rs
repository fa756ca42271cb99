//! The cgroupfs driver: directories and files under `/sys/fs/cgroup`, for v1, hybrid and v2.
//!
//! Hierarchy discovery and path placement are done here (cgroups-rs only knows either the v1
//! controllers or a pure v2 tree, and places a cgroup at the same relative path in every v1
//! hierarchy, while runc places a relative path below the runtime's own cgroup per hierarchy
//! and also joins the cgroup2 tree of a hybrid host). Resource files are written with the
//! cgroups-rs controllers pointed at the directories computed here, except the v1 device
//! rules, which are written by hand because the crate turns a wildcard major/minor into 0.
use std::collections::BTreeSet;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cgroups_rs::fs::blkio::BlkIoController;
use cgroups_rs::fs::cpu::CpuController;
use cgroups_rs::fs::cpuset::CpuSetController;
use cgroups_rs::fs::freezer::FreezerController;
use cgroups_rs::fs::hugetlb::HugeTlbController;
use cgroups_rs::fs::memory::MemController;
use cgroups_rs::fs::net_cls::NetClsController;
use cgroups_rs::fs::net_prio::NetPrioController;
use cgroups_rs::fs::pid::PidController;
use cgroups_rs::fs::{Controller, MaxValue};
use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxDeviceCgroup, LinuxDeviceType, LinuxMemory, LinuxNetwork,
    LinuxResources,
};

use super::{default_allowed_devices, host_mode, CgroupError, CgroupManager, Mode};

/// One mounted hierarchy and the container's directory in it.
#[derive(Debug, Clone)]
struct Hier {
    /// The v1 controllers bound to it (`cpu`, `name=systemd`, ...); empty for cgroup2.
    controllers: Vec<String>,
    v2: bool,
    mount: PathBuf,
    dir: PathBuf,
}

/// A container's cgroup on the cgroupfs driver.
#[derive(Debug, Clone)]
pub struct FsCgroup {
    mode: Mode,
    hiers: Vec<Hier>,
}

fn io_err(step: &'static str, path: &Path, source: std::io::Error) -> CgroupError {
    CgroupError::Io {
        step,
        path: path.to_path_buf(),
        source,
    }
}

fn unsupported(resource: &str, reason: impl Into<String>) -> CgroupError {
    CgroupError::Unsupported {
        resource: resource.to_string(),
        reason: reason.into(),
    }
}

fn res_err(resource: &str, dir: &Path, msg: impl ToString) -> CgroupError {
    CgroupError::Resource {
        resource: resource.to_string(),
        path: dir.display().to_string(),
        msg: msg.to_string(),
    }
}

/// A mount of a cgroup filesystem, from /proc/self/mountinfo.
struct CgroupMount {
    v2: bool,
    mount_point: PathBuf,
    mount_root: String,
    options: Vec<String>,
}

fn cgroup_mounts() -> Result<Vec<CgroupMount>, CgroupError> {
    let path = Path::new("/proc/self/mountinfo");
    let data = std::fs::read_to_string(path).map_err(|e| io_err("read", path, e))?;
    let mut out = Vec::new();
    for line in data.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        if left.len() < 5 || right.len() < 3 {
            continue;
        }
        let v2 = match right[0] {
            "cgroup" => false,
            "cgroup2" => true,
            _ => continue,
        };
        out.push(CgroupMount {
            v2,
            mount_point: PathBuf::from(unescape_mountinfo(left[4])),
            mount_root: unescape_mountinfo(left[3]),
            options: right[2].split(',').map(str::to_string).collect(),
        });
    }
    Ok(out)
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The controller names the kernel knows (first column of /proc/cgroups).
fn known_subsystems() -> BTreeSet<String> {
    std::fs::read_to_string("/proc/cgroups")
        .map(|d| {
            d.lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.split_whitespace().next().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// This process's cgroup per hierarchy, from /proc/self/cgroup: (controllers, path);
/// the cgroup2 entry has no controllers.
fn own_cgroups() -> Result<Vec<(Vec<String>, String)>, CgroupError> {
    let path = Path::new("/proc/self/cgroup");
    let data = std::fs::read_to_string(path).map_err(|e| io_err("read", path, e))?;
    Ok(data
        .lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let _id = it.next()?;
            let ctrls = it.next()?;
            let p = it.next()?;
            let mut c: Vec<String> = ctrls
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            c.sort();
            Some((c, p.to_string()))
        })
        .collect())
}

impl FsCgroup {
    /// Discover the host's hierarchies and place `path` (normalised by `resolve`) in each.
    pub fn new(path: &str) -> Result<Self, CgroupError> {
        let mode = host_mode();
        let known = known_subsystems();
        let own = own_cgroups()?;
        let mut hiers: Vec<Hier> = Vec::new();
        for m in cgroup_mounts()? {
            let mut controllers: Vec<String> = Vec::new();
            if m.v2 {
                let wanted = match mode {
                    Mode::Unified => Path::new(super::CGROUP_ROOT).to_path_buf(),
                    Mode::Hybrid => Path::new(super::CGROUP_ROOT).join("unified"),
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
                mount: m.mount_point,
                dir,
            });
        }
        if hiers.is_empty() {
            return Err(CgroupError::Failed {
                path: super::CGROUP_ROOT.to_string(),
                msg: "no cgroup hierarchy is mounted".to_string(),
            });
        }
        Ok(Self { mode, hiers })
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
        for m in cgroup_mounts()? {
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
        Ok(Self { mode, hiers })
    }

    /// The host layout this manager works on.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The directory of the cgroup in the hierarchy of v1 controller `ctrl`, or in the cgroup2
    /// tree when that controller is available there (v2, or a hybrid host that delegates it).
    fn ctrl_dir(&self, ctrl: &str) -> Option<(&Path, bool)> {
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

    fn require(&self, ctrl: &str, resource: &str) -> Result<(&Path, bool), CgroupError> {
        self.ctrl_dir(ctrl).ok_or_else(|| {
            unsupported(
                resource,
                format!("no {ctrl} controller is mounted (v1) or available in the cgroup2 tree"),
            )
        })
    }

    fn v2_hier(&self) -> Option<&Hier> {
        self.hiers.iter().find(|h| h.v2)
    }

    /// Create `h.dir` and every missing ancestor below the mount point.
    fn create_in(&self, h: &Hier) -> Result<(), CgroupError> {
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
    fn enable_v2_controllers(&self, h: &Hier) {
        let mut ancestors: Vec<&Path> = h
            .dir
            .ancestors()
            .skip(1)
            .take_while(|a| a.starts_with(&h.mount))
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
    fn procs_hier(&self) -> &Hier {
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

    fn set_cpu(&self, cpu: &LinuxCpu) -> Result<(), CgroupError> {
        if cpu.cpus().is_some() || cpu.mems().is_some() {
            let (dir, v2) = self.require("cpuset", "cpu.cpus/cpu.mems")?;
            let c = CpuSetController::new(dir.to_path_buf(), PathBuf::from("/"), v2);
            if let Some(cpus) = cpu.cpus() {
                c.set_cpus(cpus).map_err(|e| res_err("cpu.cpus", dir, e))?;
            }
            if let Some(mems) = cpu.mems() {
                c.set_mems(mems).map_err(|e| res_err("cpu.mems", dir, e))?;
            }
        }
        let wants_cpu = cpu.shares().is_some()
            || cpu.quota().is_some()
            || cpu.period().is_some()
            || cpu.realtime_runtime().is_some()
            || cpu.realtime_period().is_some()
            || cpu.burst().is_some()
            || cpu.idle().is_some();
        if !wants_cpu {
            return Ok(());
        }
        let (dir, v2) = self.require("cpu", "cpu")?;
        let c = CpuController::new(dir.to_path_buf(), PathBuf::from("/"), v2);
        if let Some(shares) = cpu.shares().filter(|s| *s != 0) {
            let value = if v2 { shares_to_weight(shares) } else { shares };
            c.set_shares(value)
                .map_err(|e| res_err("cpu.shares", dir, e))?;
        }
        if cpu.quota().is_some() || cpu.period().is_some() {
            if v2 {
                c.set_cfs_quota_and_period(cpu.quota(), cpu.period())
                    .map_err(|e| res_err("cpu.quota/cpu.period", dir, e))?;
            } else {
                // Write the period first when it shrinks below the current quota and the quota
                // first otherwise; the kernel validates each write against the other value.
                if let Some(p) = cpu.period() {
                    let r = c.set_cfs_period(p);
                    if r.is_err() {
                        if let Some(q) = cpu.quota() {
                            c.set_cfs_quota(q)
                                .map_err(|e| res_err("cpu.quota", dir, e))?;
                        }
                        c.set_cfs_period(p)
                            .map_err(|e| res_err("cpu.period", dir, e))?;
                    }
                }
                if let Some(q) = cpu.quota() {
                    c.set_cfs_quota(q)
                        .map_err(|e| res_err("cpu.quota", dir, e))?;
                }
            }
        }
        if cpu.realtime_runtime().is_some() || cpu.realtime_period().is_some() {
            if v2 {
                return Err(unsupported(
                    "cpu.realtimeRuntime/cpu.realtimePeriod",
                    "cgroup v2 has no real-time bandwidth control",
                ));
            }
            if let Some(p) = cpu.realtime_period() {
                c.set_rt_period_us(p)
                    .map_err(|e| res_err("cpu.realtimePeriod", dir, e))?;
            }
            if let Some(r) = cpu.realtime_runtime() {
                c.set_rt_runtime(r)
                    .map_err(|e| res_err("cpu.realtimeRuntime", dir, e))?;
            }
        }
        if let Some(burst) = cpu.burst() {
            let file = if v2 {
                "cpu.max.burst"
            } else {
                "cpu.cfs_burst_us"
            };
            write_existing(dir, file, &burst.to_string(), "cpu.burst")?;
        }
        if let Some(idle) = cpu.idle() {
            if !v2 {
                return Err(unsupported("cpu.idle", "cpu.idle exists only in cgroup v2"));
            }
            write_existing(dir, "cpu.idle", &idle.to_string(), "cpu.idle")?;
        }
        Ok(())
    }

    fn set_memory(&self, m: &LinuxMemory) -> Result<(), CgroupError> {
        if m.kernel().is_some() || m.kernel_tcp().is_some() {
            tracing::warn!(
                "memory.kernel and memory.kernelTCP are deprecated by the kernel and ignored"
            );
        }
        let wanted = m.limit().is_some()
            || m.swap().is_some()
            || m.reservation().is_some()
            || m.swappiness().is_some()
            || m.disable_oom_killer() == Some(true);
        if !wanted {
            return Ok(());
        }
        let (dir, v2) = self.require("memory", "memory")?;
        let c = MemController::new(dir.to_path_buf(), PathBuf::from("/"), v2);
        let limit = m.limit().unwrap_or(0);
        let swap = m.swap().unwrap_or(0);
        if m.check_before_update() == Some(true) && limit > 0 {
            let file = if v2 {
                "memory.current"
            } else {
                "memory.usage_in_bytes"
            };
            let usage = read_u64(dir, file)?;
            if limit as u64 <= usage {
                return Err(res_err(
                    "memory.limit",
                    dir,
                    format!("new limit {limit} is not above the current usage {usage}"),
                ));
            }
        }
        if v2 {
            let swap_v2 =
                swap_for_v2(limit, swap).map_err(|msg| res_err("memory.swap", dir, msg))?;
            if swap_v2 != 0 {
                if dir.join("memory.swap.max").exists() {
                    c.set_memswap_limit(swap_v2)
                        .map_err(|e| res_err("memory.swap", dir, e))?;
                } else if swap_v2 > 0 {
                    return Err(unsupported(
                        "memory.swap",
                        "the kernel has no swap accounting",
                    ));
                }
            }
            if limit != 0 {
                c.set_limit(limit)
                    .map_err(|e| res_err("memory.limit", dir, e))?;
            }
            if let Some(r) = m.reservation() {
                c.set_soft_limit(r)
                    .map_err(|e| res_err("memory.reservation", dir, e))?;
            }
            if m.swappiness().is_some() {
                return Err(unsupported(
                    "memory.swappiness",
                    "cgroup v2 has no per-cgroup swappiness",
                ));
            }
            if m.disable_oom_killer() == Some(true) {
                return Err(unsupported(
                    "memory.disableOOMKiller",
                    "cgroup v2 cannot disable the OOM killer",
                ));
            }
            return Ok(());
        }
        // v1: unlimited memory without an explicit swap means unlimited swap too.
        let swap = if limit == -1 && swap == 0 { -1 } else { swap };
        let has_memsw = dir.join("memory.memsw.limit_in_bytes").exists();
        if swap > 0 && !has_memsw {
            return Err(unsupported(
                "memory.swap",
                "the kernel has no swap accounting (memory.memsw.limit_in_bytes missing)",
            ));
        }
        let set_swap = |v: i64| {
            c.set_memswap_limit(v)
                .map_err(|e| res_err("memory.swap", dir, e))
        };
        let set_limit = |v: i64| c.set_limit(v).map_err(|e| res_err("memory.limit", dir, e));
        // memory.limit_in_bytes may never exceed memory.memsw.limit_in_bytes: raise swap
        // first when it grows, the limit first otherwise.
        if limit != 0 && swap != 0 && has_memsw {
            let current = read_u64(dir, "memory.limit_in_bytes")?;
            if swap == -1 || (current as i64) < swap {
                set_swap(swap)?;
                set_limit(limit)?;
            } else {
                set_limit(limit)?;
                set_swap(swap)?;
            }
        } else {
            if limit != 0 {
                set_limit(limit)?;
            }
            if swap != 0 && has_memsw {
                set_swap(swap)?;
            }
        }
        if let Some(r) = m.reservation() {
            c.set_soft_limit(r)
                .map_err(|e| res_err("memory.reservation", dir, e))?;
        }
        if let Some(s) = m.swappiness() {
            if s > 100 {
                return Err(res_err(
                    "memory.swappiness",
                    dir,
                    format!("{s} is above 100"),
                ));
            }
            c.set_swappiness(s)
                .map_err(|e| res_err("memory.swappiness", dir, e))?;
        }
        if m.disable_oom_killer() == Some(true) {
            c.disable_oom_killer()
                .map_err(|e| res_err("memory.disableOOMKiller", dir, e))?;
        }
        Ok(())
    }

    fn set_blkio(&self, b: &LinuxBlockIo) -> Result<(), CgroupError> {
        if b.weight().is_none()
            && b.leaf_weight().is_none()
            && empty(b.weight_device())
            && empty(b.throttle_read_bps_device())
            && empty(b.throttle_write_bps_device())
            && empty(b.throttle_read_iops_device())
            && empty(b.throttle_write_iops_device())
        {
            return Ok(());
        }
        let (dir, v2) = self
            .require("blkio", "blockIO")
            .or_else(|_| self.require("io", "blockIO"))?;
        let c = BlkIoController::new(dir.to_path_buf(), PathBuf::from("/"), v2);
        let e = |what: &str| {
            let what = format!("blockIO.{what}");
            move |err: cgroups_rs::fs::error::Error| res_err(&what, dir, err)
        };
        if let Some(w) = b.weight() {
            c.set_weight(w.into()).map_err(e("weight"))?;
        }
        if let Some(w) = b.leaf_weight() {
            if v2 {
                return Err(unsupported(
                    "blockIO.leafWeight",
                    "cgroup v2 has no leaf weight",
                ));
            }
            c.set_leaf_weight(w.into()).map_err(e("leafWeight"))?;
        }
        for d in b.weight_device().iter().flatten() {
            let (maj, min) = (d.major() as u64, d.minor() as u64);
            if let Some(w) = d.weight() {
                c.set_weight_for_device(maj, min, w.into())
                    .map_err(e("weightDevice"))?;
            }
            if let Some(w) = d.leaf_weight() {
                c.set_leaf_weight_for_device(maj, min, w.into())
                    .map_err(e("weightDevice.leafWeight"))?;
            }
        }
        for d in b.throttle_read_bps_device().iter().flatten() {
            c.throttle_read_bps_for_device(d.major() as u64, d.minor() as u64, d.rate())
                .map_err(e("throttleReadBpsDevice"))?;
        }
        for d in b.throttle_write_bps_device().iter().flatten() {
            c.throttle_write_bps_for_device(d.major() as u64, d.minor() as u64, d.rate())
                .map_err(e("throttleWriteBpsDevice"))?;
        }
        for d in b.throttle_read_iops_device().iter().flatten() {
            c.throttle_read_iops_for_device(d.major() as u64, d.minor() as u64, d.rate())
                .map_err(e("throttleReadIOPSDevice"))?;
        }
        for d in b.throttle_write_iops_device().iter().flatten() {
            c.throttle_write_iops_for_device(d.major() as u64, d.minor() as u64, d.rate())
                .map_err(e("throttleWriteIOPSDevice"))?;
        }
        Ok(())
    }

    fn set_network(&self, n: &LinuxNetwork) -> Result<(), CgroupError> {
        if let Some(class) = n.class_id() {
            let (dir, _) = self.require("net_cls", "network.classID")?;
            NetClsController::new(dir.to_path_buf(), PathBuf::from("/"))
                .set_class(class.into())
                .map_err(|e| res_err("network.classID", dir, e))?;
        }
        for p in n.priorities().iter().flatten() {
            let (dir, _) = self.require("net_prio", "network.priorities")?;
            NetPrioController::new(dir.to_path_buf(), PathBuf::from("/"))
                .set_if_prio(p.name(), p.priority().into())
                .map_err(|e| res_err("network.priorities", dir, e))?;
        }
        Ok(())
    }

    /// Write the device rules in order, then runc's default allowed devices (v1 only).
    fn set_devices(&self, rules: &[LinuxDeviceCgroup]) -> Result<(), CgroupError> {
        let Some(h) = self
            .hiers
            .iter()
            .find(|h| !h.v2 && h.controllers.iter().any(|c| c == "devices"))
        else {
            return Err(unsupported(
                "devices",
                if self.mode == Mode::Unified {
                    "cgroup v2 device control needs an eBPF program, which this runtime does not load"
                } else {
                    "no devices controller is mounted"
                },
            ));
        };
        let defaults = default_allowed_devices();
        for rule in rules.iter().chain(defaults.iter()) {
            let line = device_rule_line(rule).map_err(|msg| res_err("devices", &h.dir, msg))?;
            let file = if rule.allow() {
                "devices.allow"
            } else {
                "devices.deny"
            };
            write_file(&h.dir.join(file), &line).map_err(|e| {
                res_err(
                    "devices",
                    &h.dir,
                    format!("writing {line:?} to {file}: {e}"),
                )
            })?;
        }
        Ok(())
    }

    fn set_unified(
        &self,
        map: &std::collections::HashMap<String, String>,
    ) -> Result<(), CgroupError> {
        if map.is_empty() {
            return Ok(());
        }
        let h = self
            .v2_hier()
            .ok_or_else(|| unsupported("unified", "the host has no cgroup2 hierarchy"))?;
        let avail = std::fs::read_to_string(h.dir.join("cgroup.controllers")).unwrap_or_default();
        let mut keys: Vec<&String> = map.keys().collect();
        keys.sort();
        for k in keys {
            let (ctrl, _) = k.split_once('.').ok_or_else(|| {
                res_err(
                    "unified",
                    &h.dir,
                    format!("key {k:?} is not <controller>.<file>"),
                )
            })?;
            if k.contains('/') || k.starts_with('.') {
                return Err(res_err(
                    "unified",
                    &h.dir,
                    format!("key {k:?} is not a file name"),
                ));
            }
            if ctrl != "cgroup" && !avail.split_whitespace().any(|c| c == ctrl) {
                return Err(unsupported(
                    &format!("unified.{k}"),
                    format!("controller {ctrl:?} is not enabled for {}", h.dir.display()),
                ));
            }
            write_file(&h.dir.join(k), &map[k])
                .map_err(|e| res_err(&format!("unified.{k}"), &h.dir, e))?;
        }
        Ok(())
    }

    fn freezer(&self) -> Result<(&Path, bool), CgroupError> {
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

impl CgroupManager for FsCgroup {
    fn create(&mut self) -> Result<(), CgroupError> {
        for h in &self.hiers {
            self.create_in(h)?;
            if h.v2 && self.mode == Mode::Unified {
                self.enable_v2_controllers(h);
            }
        }
        Ok(())
    }

    fn apply(&mut self, pid: i32) -> Result<(), CgroupError> {
        CgroupManager::create(self)?;
        for h in &self.hiers {
            let procs = h.dir.join("cgroup.procs");
            write_file(&procs, &pid.to_string()).map_err(|e| CgroupError::Failed {
                path: procs.display().to_string(),
                msg: format!("moving pid {pid} in: {e}"),
            })?;
        }
        Ok(())
    }

    fn set(&mut self, resources: &LinuxResources) -> Result<(), CgroupError> {
        if let Some(h) = self.hiers.iter().find(|h| !h.dir.is_dir()) {
            return Err(CgroupError::Failed {
                path: h.dir.display().to_string(),
                msg: "cannot set resources: the cgroup does not exist (create or apply first)"
                    .to_string(),
            });
        }
        if let Some(cpu) = resources.cpu() {
            self.set_cpu(cpu)?;
        }
        if let Some(m) = resources.memory() {
            self.set_memory(m)?;
        }
        if let Some(p) = resources.pids() {
            let (dir, v2) = self.require("pids", "pids")?;
            let value = if p.limit() > 0 {
                MaxValue::Value(p.limit())
            } else {
                MaxValue::Max
            };
            PidController::new(dir.to_path_buf(), PathBuf::from("/"), v2)
                .set_pid_max(value)
                .map_err(|e| res_err("pids.limit", dir, e))?;
        }
        if let Some(b) = resources.block_io() {
            self.set_blkio(b)?;
        }
        if let Some(limits) = resources
            .hugepage_limits()
            .as_ref()
            .filter(|l| !l.is_empty())
        {
            let (dir, v2) = self.require("hugetlb", "hugepageLimits")?;
            let c = HugeTlbController::new(dir.to_path_buf(), PathBuf::from("/"), v2);
            for l in limits {
                if !c.size_supported(l.page_size()) {
                    return Err(unsupported(
                        &format!("hugepageLimits[{}]", l.page_size()),
                        "the kernel does not offer this huge page size",
                    ));
                }
                c.set_limit_in_bytes(l.page_size(), l.limit() as u64)
                    .map_err(|e| res_err("hugepageLimits", dir, e))?;
            }
        }
        if let Some(n) = resources.network() {
            self.set_network(n)?;
        }
        if resources.rdma().as_ref().is_some_and(|r| !r.is_empty()) {
            return Err(unsupported(
                "rdma",
                "rdma limits are not implemented by this runtime",
            ));
        }
        if let Some(u) = resources.unified() {
            self.set_unified(u)?;
        }
        if let Some(d) = resources.devices() {
            self.set_devices(d)?;
        }
        Ok(())
    }

    fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let mut pids = Vec::new();
        collect_procs(&self.procs_hier().dir, &mut pids)?;
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    fn destroy(&mut self) -> Result<(), CgroupError> {
        // Processes that were just killed leave their cgroups a moment later: retry the
        // hierarchies that are still busy, all together, for about 0.6 s in total.
        let mut pending: Vec<&Path> = self.hiers.iter().map(|h| h.dir.as_path()).collect();
        let mut first_err = None;
        let mut delay = Duration::from_millis(10);
        for attempt in 0..=6 {
            let last = attempt == 6;
            pending.retain(|dir| match remove_tree(dir) {
                Ok(()) => false,
                Err(e) => {
                    let busy = matches!(&e, CgroupError::Io { source, .. }
                        if source.raw_os_error() == Some(libc::EBUSY));
                    if busy && !last {
                        true
                    } else {
                        first_err.get_or_insert(e);
                        false
                    }
                }
            });
            if pending.is_empty() {
                break;
            }
            std::thread::sleep(delay);
            delay *= 2;
        }
        first_err.map_or(Ok(()), Err)
    }

    fn freeze(&mut self, frozen: bool) -> Result<(), CgroupError> {
        let (dir, v2) = self.freezer()?;
        let c = FreezerController::new(dir.to_path_buf(), PathBuf::from("/"), v2);
        let act = |c: &FreezerController| if frozen { c.freeze() } else { c.thaw() };
        act(&c).map_err(|e| res_err("freezer", dir, e))?;
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut tries = 0u32;
        loop {
            let reached = if v2 {
                let ev = std::fs::read_to_string(dir.join("cgroup.events"))
                    .map_err(|e| io_err("read", &dir.join("cgroup.events"), e))?;
                let want = if frozen { "frozen 1" } else { "frozen 0" };
                ev.lines().any(|l| l.trim() == want)
            } else {
                let st = std::fs::read_to_string(dir.join("freezer.state"))
                    .map_err(|e| io_err("read", &dir.join("freezer.state"), e))?;
                st.trim() == if frozen { "FROZEN" } else { "THAWED" }
            };
            if reached {
                return Ok(());
            }
            if Instant::now() > deadline {
                if frozen {
                    // Leave the cgroup runnable rather than half-frozen.
                    let _ = c.thaw();
                }
                return Err(res_err(
                    "freezer",
                    dir,
                    format!(
                        "timed out waiting for the cgroup to become {}",
                        if frozen { "frozen" } else { "thawed" }
                    ),
                ));
            }
            tries += 1;
            // A v1 freeze can stall on a task in an uninterruptible sleep: ask again.
            if !v2 && tries % 50 == 0 {
                act(&c).map_err(|e| res_err("freezer", dir, e))?;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn paths(&self) -> Vec<PathBuf> {
        self.hiers.iter().map(|h| h.dir.clone()).collect()
    }
}

fn empty<T>(v: &Option<Vec<T>>) -> bool {
    v.as_ref().is_none_or(Vec::is_empty)
}

/// runc's conversion of cgroup v1 cpu shares [2, 262144] to a v2 weight [1, 10000].
fn shares_to_weight(shares: u64) -> u64 {
    if shares <= 2 {
        1
    } else if shares >= 262_144 {
        10_000
    } else {
        1 + ((shares - 2) * 9999) / 262_142
    }
}

/// The OCI `memory.swap` is memory+swap; cgroup v2's `memory.swap.max` is swap alone.
/// Returns 0 for "leave unset" and -1 for "max".
fn swap_for_v2(limit: i64, swap: i64) -> Result<i64, String> {
    match (limit, swap) {
        (-1, 0) => Ok(-1),
        (_, -1) | (_, 0) => Ok(swap),
        (-1, s) => Ok(s),
        (0, _) => Err("memory.swap is set but memory.limit is not".to_string()),
        (l, _) if l < 0 => Err(format!("invalid memory.limit {l}")),
        (l, s) if s < l => Err(format!("memory.swap {s} is below memory.limit {l}")),
        (l, s) => Ok(s - l),
    }
}

/// `type major:minor access` for devices.allow / devices.deny.
fn device_rule_line(r: &LinuxDeviceCgroup) -> Result<String, String> {
    let typ = match r.typ().unwrap_or(LinuxDeviceType::A) {
        LinuxDeviceType::A => 'a',
        LinuxDeviceType::B => 'b',
        LinuxDeviceType::C | LinuxDeviceType::U => 'c',
        LinuxDeviceType::P => {
            return Err("device rules cannot name FIFOs (type \"p\")".to_string());
        }
    };
    let access = r
        .access()
        .as_deref()
        .filter(|a| !a.is_empty())
        .unwrap_or("rwm");
    if !access.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
        return Err(format!("access {access:?} may only contain r, w and m"));
    }
    let num = |v: Option<i64>| match v {
        Some(n) if n >= 0 => n.to_string(),
        _ => "*".to_string(),
    };
    Ok(format!(
        "{typ} {}:{} {access}",
        num(r.major()),
        num(r.minor())
    ))
}

/// One write(2) of `value` to an existing cgroup file.
fn write_file(path: &Path, value: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.write_all(value.as_bytes())
}

fn write_existing(dir: &Path, file: &str, value: &str, resource: &str) -> Result<(), CgroupError> {
    let path = dir.join(file);
    if !path.exists() {
        return Err(unsupported(
            resource,
            format!("{} does not exist", path.display()),
        ));
    }
    write_file(&path, value)
        .map_err(|e| res_err(resource, dir, format!("writing {value:?} to {file}: {e}")))
}

fn read_u64(dir: &Path, file: &str) -> Result<u64, CgroupError> {
    let path = dir.join(file);
    let s = std::fs::read_to_string(&path).map_err(|e| io_err("read", &path, e))?;
    s.trim().parse().map_err(|e| CgroupError::Failed {
        path: path.display().to_string(),
        msg: format!("cannot parse {:?}: {e}", s.trim()),
    })
}

/// Pids in cgroup.procs of `dir` and of every cgroup below it; a missing cgroup has none.
fn collect_procs(dir: &Path, out: &mut Vec<i32>) -> Result<(), CgroupError> {
    let procs = dir.join("cgroup.procs");
    match std::fs::read_to_string(&procs) {
        Ok(s) => {
            for l in s.lines() {
                out.push(l.trim().parse().map_err(|e| CgroupError::Failed {
                    path: procs.display().to_string(),
                    msg: format!("bad pid {l:?}: {e}"),
                })?);
            }
        }
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("read", &procs, e)),
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("list", dir, e)),
    };
    for ent in entries {
        let ent = ent.map_err(|e| io_err("list", dir, e))?;
        if ent.file_type().is_ok_and(|t| t.is_dir()) {
            collect_procs(&ent.path(), out)?;
        }
    }
    Ok(())
}

/// rmdir `dir` after its sub-cgroups; a cgroup that is already gone is not an error.
fn remove_tree(dir: &Path) -> Result<(), CgroupError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("list", dir, e)),
    };
    for ent in entries {
        let ent = ent.map_err(|e| io_err("list", dir, e))?;
        if ent.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&ent.path())?;
        }
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("remove", dir, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroups_device_rule_lines() {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(false);
        r.set_access(Some("rwm".into()));
        assert_eq!(device_rule_line(&r).unwrap(), "a *:* rwm");
        r.set_typ(Some(LinuxDeviceType::C));
        r.set_major(Some(1));
        r.set_minor(Some(3));
        r.set_access(None);
        assert_eq!(device_rule_line(&r).unwrap(), "c 1:3 rwm");
        r.set_typ(Some(LinuxDeviceType::B));
        r.set_minor(None);
        r.set_access(Some("m".into()));
        assert_eq!(device_rule_line(&r).unwrap(), "b 1:* m");
        r.set_access(Some("rx".into()));
        assert!(device_rule_line(&r).unwrap_err().contains("access"));
        r.set_access(None);
        r.set_typ(Some(LinuxDeviceType::P));
        assert!(device_rule_line(&r).unwrap_err().contains("FIFO"));
    }

    #[test]
    fn cgroups_swap_conversion() {
        assert_eq!(swap_for_v2(-1, 0), Ok(-1));
        assert_eq!(swap_for_v2(100, 0), Ok(0));
        assert_eq!(swap_for_v2(100, -1), Ok(-1));
        assert_eq!(swap_for_v2(-1, 300), Ok(300));
        assert_eq!(swap_for_v2(100, 300), Ok(200));
        assert!(swap_for_v2(0, 300).is_err());
        assert!(swap_for_v2(300, 100).is_err());
    }

    #[test]
    fn cgroups_shares_to_weight() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
    }

    #[test]
    fn cgroups_mountinfo_unescape() {
        assert_eq!(unescape_mountinfo("/a\\040b"), "/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
        assert_eq!(unescape_mountinfo("/end\\04"), "/end\\04");
    }
}
