//! Resource setters of the cgroupfs driver, one per resource group of the runtime-spec.
use std::path::{Path, PathBuf};

use cgroups_rs::fs::blkio::BlkIoController;
use cgroups_rs::fs::cpu::CpuController;
use cgroups_rs::fs::cpuset::CpuSetController;
use cgroups_rs::fs::hugetlb::HugeTlbController;
use cgroups_rs::fs::memory::MemController;
use cgroups_rs::fs::net_cls::NetClsController;
use cgroups_rs::fs::net_prio::NetPrioController;
use cgroups_rs::fs::pid::PidController;
use cgroups_rs::fs::MaxValue;
use std::collections::HashMap;

use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxHugepageLimit, LinuxMemory, LinuxNetwork, LinuxRdma,
};

use super::{read_u64, res_err, unsupported, write_existing, write_file, FsCgroup};
use crate::cgroups::CgroupError;
use crate::cgroups::Mode;

impl FsCgroup {
    pub(super) fn set_cpu(&self, cpu: &LinuxCpu) -> Result<(), CgroupError> {
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
            // As for the CFS pair: the kernel checks each write against the other value, so
            // a period shrinking below the current runtime needs the runtime written first.
            if let Some(p) = cpu.realtime_period() {
                if c.set_rt_period_us(p).is_err() {
                    if let Some(r) = cpu.realtime_runtime() {
                        c.set_rt_runtime(r)
                            .map_err(|e| res_err("cpu.realtimeRuntime", dir, e))?;
                    }
                    c.set_rt_period_us(p)
                        .map_err(|e| res_err("cpu.realtimePeriod", dir, e))?;
                }
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
            // cgroup v2's file, which v1's cpu controller also has on newer kernels (5.15+).
            write_existing(dir, "cpu.idle", &idle.to_string(), "cpu.idle")?;
        }
        Ok(())
    }

    pub(super) fn set_memory(&self, m: &LinuxMemory) -> Result<(), CgroupError> {
        self.set_kernel_memory(m)?;
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

    /// `memory.kernel`, `memory.kernelTCP` and `memory.useHierarchy`: v1 knobs. The kernel
    /// limit is deprecated by the runtime-spec and newer kernels accept but ignore it: that is
    /// reported as a warning, as is asking for either on cgroup v2, which has no such files.
    pub(super) fn set_kernel_memory(&self, m: &LinuxMemory) -> Result<(), CgroupError> {
        let wanted =
            m.kernel().is_some() || m.kernel_tcp().is_some() || m.use_hierarchy().is_some();
        if !wanted {
            return Ok(());
        }
        let (dir, v2) = self.require("memory", "memory")?;
        if v2 {
            if m.kernel().is_some() || m.kernel_tcp().is_some() {
                tracing::warn!(
                    cgroup = %dir.display(),
                    "memory.kernel and memory.kernelTCP do not exist on cgroup v2: ignored"
                );
            }
            // v2 is always hierarchical; only asking for the opposite is an error.
            if m.use_hierarchy() == Some(false) {
                return Err(unsupported(
                    "memory.useHierarchy",
                    "cgroup v2 is always hierarchical",
                ));
            }
            return Ok(());
        }
        if let Some(k) = m.kernel() {
            write_existing(
                dir,
                "memory.kmem.limit_in_bytes",
                &k.to_string(),
                "memory.kernel",
            )?;
            let now = read_u64(dir, "memory.kmem.limit_in_bytes")?;
            if k >= 0 && now > k as u64 {
                tracing::warn!(
                    cgroup = %dir.display(), limit = k,
                    "memory.kernel: this kernel accepts but no longer enforces kernel memory limits"
                );
            }
        }
        if let Some(k) = m.kernel_tcp() {
            write_existing(
                dir,
                "memory.kmem.tcp.limit_in_bytes",
                &k.to_string(),
                "memory.kernelTCP",
            )?;
        }
        if let Some(h) = m.use_hierarchy() {
            write_file(&dir.join("memory.use_hierarchy"), if h { "1" } else { "0" }).map_err(
                |e| {
                    let why = if e.raw_os_error() == Some(libc::EINVAL) {
                        "the kernel refuses it (memory cgroups are always hierarchical here)"
                            .to_string()
                    } else {
                        e.to_string()
                    };
                    res_err("memory.useHierarchy", dir, why)
                },
            )?;
        }
        Ok(())
    }

    pub(super) fn set_blkio(&self, b: &LinuxBlockIo) -> Result<(), CgroupError> {
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
            self.set_blkio_weight(dir, v2, None, w)?;
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
                self.set_blkio_weight(dir, v2, Some((maj, min)), w)?;
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

    /// A block I/O weight, for the whole cgroup or for one device. The classic files
    /// (`blkio.weight`, `io.weight`) exist only with the CFQ scheduler or io.cost; with BFQ the
    /// weight lives in `*.bfq.weight`. Without either the weight cannot be applied.
    pub(super) fn set_blkio_weight(
        &self,
        dir: &Path,
        v2: bool,
        device: Option<(u64, u64)>,
        weight: u16,
    ) -> Result<(), CgroupError> {
        let resource = if device.is_some() {
            "blockIO.weightDevice"
        } else {
            "blockIO.weight"
        };
        let (plain, bfq) = match (v2, device.is_some()) {
            (false, false) => ("blkio.weight", "blkio.bfq.weight"),
            (false, true) => ("blkio.weight_device", "blkio.bfq.weight_device"),
            (true, _) => ("io.weight", "io.bfq.weight"),
        };
        let value = |w: u64| match device {
            Some((maj, min)) => format!("{maj}:{min} {w}"),
            None if v2 && !dir.join(bfq).exists() => format!("default {w}"),
            None => w.to_string(),
        };
        let (file, value) = if dir.join(bfq).exists() {
            (bfq, value(weight.into()))
        } else if dir.join(plain).exists() {
            // io.weight takes 1..10000, blkio.weight 10..1000.
            let w = if v2 {
                1 + (u64::from(weight).saturating_sub(10)) * 9999 / 990
            } else {
                weight.into()
            };
            (plain, value(w))
        } else {
            return Err(unsupported(
                resource,
                format!(
                    "neither {plain} nor {bfq} exists in {} (the disk scheduler offers no weights)",
                    dir.display()
                ),
            ));
        };
        write_file(&dir.join(file), &value)
            .map_err(|e| res_err(resource, dir, format!("writing {value:?} to {file}: {e}")))
    }

    pub(super) fn set_pids(&self, limit: i64) -> Result<(), CgroupError> {
        let (dir, v2) = self.require("pids", "pids")?;
        // 0 is taken as 1, as runc does (systemd cannot set TasksMax=0, and both drivers
        // should agree); a negative limit is no limit.
        let value = match limit {
            1.. => MaxValue::Value(limit),
            0 => MaxValue::Value(1),
            _ => MaxValue::Max,
        };
        PidController::new(dir.to_path_buf(), PathBuf::from("/"), v2)
            .set_pid_max(value)
            .map_err(|e| res_err("pids.limit", dir, e))
    }

    pub(super) fn set_hugetlb(&self, limits: &[LinuxHugepageLimit]) -> Result<(), CgroupError> {
        if limits.is_empty() {
            return Ok(());
        }
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
        Ok(())
    }

    /// `rdma`: one `rdma.max` line per device, `max` for an absent limit.
    pub(super) fn set_rdma(&self, rdma: &HashMap<String, LinuxRdma>) -> Result<(), CgroupError> {
        if rdma.is_empty() {
            return Ok(());
        }
        let (dir, _) = self.require("rdma", "rdma")?;
        let mut devices: Vec<&String> = rdma.keys().collect();
        devices.sort();
        for name in devices {
            let r = &rdma[name];
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(res_err("rdma", dir, format!("bad device name {name:?}")));
            }
            let limit = |v: Option<u32>| v.map_or("max".to_string(), |n| n.to_string());
            let line = format!(
                "{name} hca_handle={} hca_object={}",
                limit(r.hca_handles()),
                limit(r.hca_objects())
            );
            write_file(&dir.join("rdma.max"), &line).map_err(|e| {
                res_err(
                    &format!("rdma[{name}]"),
                    dir,
                    format!("writing {line:?} to rdma.max: {e}"),
                )
            })?;
        }
        Ok(())
    }

    pub(super) fn set_network(&self, n: &LinuxNetwork) -> Result<(), CgroupError> {
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

    pub(super) fn set_unified(
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
                // On a v1 or hybrid host the controllers are v1's: such a key is a config
                // for another kind of host ("invalid configuration", runc's words).
                let why = if self.mode == Mode::Unified {
                    format!("controller {ctrl:?} is not enabled for {}", h.dir.display())
                } else {
                    format!(
                        "invalid configuration: controller {ctrl:?} is not in the cgroup2 tree \
                         of this v1/hybrid host ({})",
                        h.dir.display()
                    )
                };
                return Err(unsupported(&format!("unified.{k}"), why));
            }
            write_file(&h.dir.join(k), &map[k])
                .map_err(|e| res_err(&format!("unified.{k}"), &h.dir, e))?;
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
