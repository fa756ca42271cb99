//! The kubelet's cgroup layout of pods, with either of its cgroup drivers: the suite plays the
//! kubelet, so it names the pod cgroups, makes them with their limits where a scenario needs
//! them, and removes them when their pods go.
//!
//! cgroupfs driver: a pod's cgroup parent is the path `/<kubepods>/<qos>/pod<uid>`, and
//! containerd puts each of its containers (and its sandbox) in `<parent>/<id>`. systemd driver
//! (`SystemdCgroup = true`): the parent is the name of the pod's slice,
//! `<kubepods>-<qos>-pod<uid>.slice` (systemd reads each dash as a level, so the slice lies in
//! `<kubepods>.slice/<kubepods>-<qos>.slice/`), and containerd names each container's cgroup
//! `<slice>:cri-containerd:<id>`, which the runtime makes a transient scope
//! `cri-containerd-<id>.scope` in that slice.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::engine::*;
use crate::common::*;
use crate::suite::Suite;

/// The prefix containerd's CRI plugin gives the scopes of its containers.
pub const SCOPE_PREFIX: &str = "cri-containerd";

/// The limits the kubelet writes into a pod's cgroup (its containers' limits plus the pod's
/// overhead): memory in bytes, CPU quota in microseconds per 100 ms period.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PodLimits {
    pub memory: i64,
    pub cpu_quota: i64,
}

/// `a-b-c.slice` as the path systemd gives it: `/a.slice/a-b.slice/a-b-c.slice`.
pub fn slice_path(slice: &str) -> String {
    let name = slice.trim_end_matches(".slice");
    let mut path = String::new();
    for (i, _) in name.match_indices('-').chain([(name.len(), "")]) {
        path.push_str(&format!("/{}.slice", &name[..i]));
    }
    path
}

fn read_trimmed(p: &Path) -> Result<String, String> {
    std::fs::read_to_string(p)
        .map(|v| v.trim().to_string())
        .map_err(|e| format!("{}: {e}", p.display()))
}

fn write(p: &Path, v: &str) -> Result<(), String> {
    std::fs::write(p, v).map_err(|e| format!("write {v:?} to {}: {e}", p.display()))
}

/// Whether `/sys/fs/cgroup` is a pure cgroup v2 hierarchy.
pub fn unified() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

impl Suite {
    /// The top of the pods' cgroups, named like the kubelet's `kubepods` with this run's
    /// prefix: a directory with the cgroupfs driver, a slice with the systemd driver.
    pub fn kubepods_top(pid: u32, systemd: bool) -> String {
        if systemd {
            format!("cri{pid}kubepods.slice")
        } else {
            format!("cri{pid}-kubepods")
        }
    }

    /// The cgroup parent the kubelet sends in the `PodSandboxConfig` of pod `uid` of QoS class
    /// `qos` (`besteffort`, `burstable`).
    pub fn pod_cgroup_parent(&self, qos: &str, uid: &str) -> String {
        if self.systemd {
            // A dash in the uid would be a level of the slice: the kubelet writes it as `_`.
            let top = self.kubepods.trim_end_matches(".slice");
            format!("{top}-{qos}-pod{}.slice", uid.replace('-', "_"))
        } else {
            format!("/{}/{qos}/pod{uid}", self.kubepods)
        }
    }

    /// The cgroup of pod cgroup parent `parent` as `/proc/<pid>/cgroup` shows it.
    pub fn pod_cgroup_path(&self, parent: &str) -> String {
        if self.systemd {
            slice_path(parent)
        } else {
            parent.to_string()
        }
    }

    /// The cgroup of container (or sandbox) `id` of the pod with cgroup parent `parent`.
    pub fn container_cgroup(&self, parent: &str, id: &str) -> String {
        if self.systemd {
            format!("{}/{SCOPE_PREFIX}-{id}.scope", slice_path(parent))
        } else {
            format!("{parent}/{id}")
        }
    }

    /// The directories of cgroup `path` in every hierarchy that has it.
    pub fn cgroup_dirs(path: &str) -> Vec<PathBuf> {
        let rel = path.trim_start_matches('/');
        let mut dirs = vec![Path::new("/sys/fs/cgroup").join(rel)];
        if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
            dirs.extend(entries.flatten().map(|e| e.path().join(rel)));
        }
        dirs.into_iter().filter(|d| d.is_dir()).collect()
    }

    /// Make the cgroup of the pod with parent `parent` with `limits`, as the kubelet does
    /// before `RunPodSandbox`: a transient slice with `MemoryMax` and `CPUQuota` (systemd), or
    /// the directories with the limits written into them (cgroupfs; each hierarchy on v1, the
    /// controllers enabled on the way down on v2).
    pub fn make_pod_cgroup(&self, parent: &str, limits: PodLimits) -> Result<(), String> {
        if self.systemd {
            let quota_per_sec = (limits.cpu_quota * 10).to_string();
            let memory = limits.memory.to_string();
            let args = [
                "call",
                "org.freedesktop.systemd1",
                "/org/freedesktop/systemd1",
                "org.freedesktop.systemd1.Manager",
                "StartTransientUnit",
                "ssa(sv)a(sa(sv))",
                parent,
                "replace",
                "2",
                "MemoryMax",
                "t",
                &memory,
                "CPUQuotaPerSecUSec",
                "t",
                &quota_per_sec,
                "0",
            ];
            let mut c = Command::new("busctl");
            c.args(args);
            let r = output_within(c, Duration::from_secs(30));
            check(r.ok(), || {
                format!("StartTransientUnit {parent}: {}", describe(&r))
            })?;
            let dir = Path::new("/sys/fs/cgroup").join(slice_path(parent).trim_start_matches('/'));
            return wait_until(&format!("systemd makes {}", dir.display()), || {
                dir.join("memory.max").exists()
            });
        }
        let rel = parent.trim_start_matches('/');
        if unified() {
            let mut dir = PathBuf::from("/sys/fs/cgroup");
            for part in rel.split('/') {
                let ctrls = read_trimmed(&dir.join("cgroup.controllers"))?;
                let want: Vec<String> = ["cpu", "memory", "pids"]
                    .iter()
                    .filter(|c| ctrls.split(' ').any(|x| x == **c))
                    .map(|c| format!("+{c}"))
                    .collect();
                write(&dir.join("cgroup.subtree_control"), &want.join(" "))?;
                dir.push(part);
                std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            write(&dir.join("memory.max"), &limits.memory.to_string())?;
            return write(
                &dir.join("cpu.max"),
                &format!("{} 100000", limits.cpu_quota),
            );
        }
        // v1: the kubelet makes the pod's cgroup in every hierarchy.
        let hierarchies = std::fs::read_dir("/sys/fs/cgroup")
            .map_err(|e| format!("/sys/fs/cgroup: {e}"))?
            .flatten()
            .filter(|e| e.path().join("cgroup.procs").exists())
            .map(|e| e.path());
        for h in hierarchies {
            let d = h.join(rel);
            std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        let memory = Path::new("/sys/fs/cgroup/memory").join(rel);
        write(
            &memory.join("memory.limit_in_bytes"),
            &limits.memory.to_string(),
        )?;
        let cpu = Path::new("/sys/fs/cgroup/cpu").join(rel);
        write(&cpu.join("cpu.cfs_period_us"), "100000")?;
        write(&cpu.join("cpu.cfs_quota_us"), &limits.cpu_quota.to_string())
    }

    /// The limits in the cgroup of the pod with parent `parent`, read back.
    pub fn pod_limits(&self, parent: &str) -> Result<PodLimits, String> {
        let rel = self.pod_cgroup_path(parent);
        let rel = rel.trim_start_matches('/');
        let num = |v: String| v.parse::<i64>().map_err(|e| format!("{v:?}: {e}"));
        if unified() {
            let dir = Path::new("/sys/fs/cgroup").join(rel);
            let cpu = read_trimmed(&dir.join("cpu.max"))?;
            return Ok(PodLimits {
                memory: num(read_trimmed(&dir.join("memory.max"))?)?,
                cpu_quota: num(cpu.split(' ').next().unwrap_or("").to_string())?,
            });
        }
        Ok(PodLimits {
            memory: num(read_trimmed(
                &Path::new("/sys/fs/cgroup/memory")
                    .join(rel)
                    .join("memory.limit_in_bytes"),
            )?)?,
            cpu_quota: num(read_trimmed(
                &Path::new("/sys/fs/cgroup/cpu")
                    .join(rel)
                    .join("cpu.cfs_quota_us"),
            )?)?,
        })
    }

    /// Remove the cgroup of the pod with parent `parent`, as the kubelet does once its pod is
    /// gone: the slice stopped (systemd), or the directories removed, the pod's first, then
    /// its QoS class's if no other pod is in it (cgroupfs).
    pub fn remove_pod_cgroup(&self, parent: &str) {
        if self.systemd {
            stop_unit(parent);
            return;
        }
        for d in Self::cgroup_dirs(parent) {
            let _ = std::fs::remove_dir(&d);
        }
    }

    /// What is left of the cgroup of the pod with parent `parent`.
    pub fn pod_cgroup_leftovers(&self, parent: &str) -> Vec<String> {
        let mut left: Vec<String> = Self::cgroup_dirs(&self.pod_cgroup_path(parent))
            .into_iter()
            .map(|d| format!("pod cgroup {} (not removable)", d.display()))
            .collect();
        if self.systemd && unit_active(parent) {
            left.push(format!("systemd unit {parent}"));
        }
        left
    }

    /// What is left of the cgroup of container `id` beyond what `leftovers_of` sees: with the
    /// systemd driver, its scope.
    pub fn scope_leftovers(&self, id: &str) -> Vec<String> {
        if !self.systemd {
            return Vec::new();
        }
        let scope = format!("{SCOPE_PREFIX}-{id}.scope");
        let mut left = Vec::new();
        // systemd keeps a transient unit's file while the unit is loaded.
        let unit_file = Path::new("/run/systemd/transient").join(&scope);
        if unit_file.exists() {
            left.push(format!("systemd unit {scope} ({})", unit_file.display()));
        }
        left
    }
}

/// `systemctl stop UNIT` (quietly: the unit may be gone).
pub fn stop_unit(unit: &str) {
    let mut c = Command::new("systemctl");
    c.args(["stop", unit]);
    let _ = try_output_within(c, Duration::from_secs(30));
}

/// Whether systemd has `unit` loaded and not inactive.
pub fn unit_active(unit: &str) -> bool {
    let mut c = Command::new("systemctl");
    c.args(["show", "--property=ActiveState", "--value", unit]);
    try_output_within(c, Duration::from_secs(30))
        .is_ok_and(|r| r.ok() && !matches!(r.stdout.trim(), "inactive" | ""))
}

#[test]
fn slice_paths() {
    assert_eq!(slice_path("a.slice"), "/a.slice");
    assert_eq!(
        slice_path("k-burstable-podx_y.slice"),
        "/k.slice/k-burstable.slice/k-burstable-podx_y.slice"
    );
}
