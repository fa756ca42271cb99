//! Resource usage of a container's cgroup, in the JSON shape of runc's `events` stats.
//!
//! [`read`] takes the cgroup's directory in each hierarchy ([`super::CgroupManager::paths`])
//! and fills [`Stats`] from the files it finds there. A controller that is not mounted or
//! not enabled leaves its section empty; only a file that exists but cannot be read or parsed
//! is an error.
//!
//! cgroup v1 controllers are read first; the cgroup2 directory (pure v2, or the unified
//! hierarchy of a hybrid host) then fills the sections no v1 controller provided. Units and
//! conventions are runc's: CPU times in nanoseconds, memory in bytes, an unlimited v2 memory
//! limit as `u64::MAX`, an unlimited pids limit as 0 (omitted), v2 swap reported as memory
//! plus swap like v1's `memsw`, v2 `io.stat` mapped onto v1's `Read`/`Write` tables.
//!
//! Field names and omission rules follow runc's event types: Go's `omitempty` drops zero
//! numbers and empty lists, never nested objects, so e.g. `"memory":{"usage":{"limit":0,
//! "failcnt":0}}` keeps the object and its two always-present fields.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::CgroupError;

mod parse;
mod v1;
mod v2;

use parse::*;
pub(crate) use parse::{parse_keyed, read_path_opt};
use v1::read_v1;
use v2::read_v2;

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// A container's resource usage: the `data` of a stats [`Event`](crate::Event), from
/// [`Container::stats`](crate::Container::stats). The fields and their JSON names are those of
/// runc's stats event; CPU times are in nanoseconds, memory in bytes.
///
/// ```no_run
/// let stats = casulo::Container::load("/run/casulo", "web")?.stats()?;
/// let mem = &stats.memory.usage;
/// println!("memory {} of {} bytes (peak {})", mem.usage, mem.limit, mem.max);
/// # Ok::<(), casulo::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    #[serde(default)]
    pub cpu: Cpu,
    #[serde(default)]
    pub cpuset: CpuSet,
    #[serde(default)]
    pub memory: Memory,
    #[serde(default)]
    pub pids: Pids,
    #[serde(default)]
    pub blkio: Blkio,
    /// Per huge page size (`"2MB"`, `"1GB"`).
    #[serde(default)]
    pub hugetlb: BTreeMap<String, Hugetlb>,
    /// Intel RDT is not supported (`linux.intelRdt` is rejected), so this is always empty.
    #[serde(default)]
    pub intel_rdt: IntelRdt,
    /// runc fills this only for interfaces its own network config created, which OCI bundles
    /// never have: `null`.
    #[serde(default)]
    pub network_interfaces: Option<Vec<NetworkInterface>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cpu {
    #[serde(default)]
    pub usage: CpuUsage,
    #[serde(default)]
    pub throttling: Throttling,
}

/// CPU time consumed since the cgroup was created, in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuUsage {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub total: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    #[serde(default)]
    pub kernel: u64,
    #[serde(default)]
    pub user: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Throttling {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    /// Nanoseconds.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

/// The v1 cpuset controller's settings (runc reports none on cgroup v2).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuSet {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    #[serde(default)]
    pub cpu_exclusive: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
    #[serde(default)]
    pub mem_hardwall: u64,
    #[serde(default)]
    pub mem_exclusive: u64,
    #[serde(default)]
    pub memory_migrate: u64,
    #[serde(default)]
    pub memory_spread_page: u64,
    #[serde(default)]
    pub memory_spread_slab: u64,
    #[serde(default)]
    pub memory_pressure: u64,
    #[serde(default)]
    pub sched_load_balance: u64,
    #[serde(default)]
    pub sched_relax_domain_level: i64,
}

/// One memory counter: bytes in use, the most ever used, the limit and how often it was hit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryEntry {
    #[serde(default)]
    pub limit: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max: u64,
    #[serde(default)]
    pub failcnt: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Memory {
    /// Page cache bytes (`cache` of v1's memory.stat, `file` of v2's).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache: u64,
    #[serde(default)]
    pub usage: MemoryEntry,
    /// Memory plus swap, as v1's `memsw` counts it (v2's swap is added to memory).
    #[serde(default)]
    pub swap: MemoryEntry,
    #[serde(default)]
    pub kernel: MemoryEntry,
    #[serde(default, rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    /// Every line of memory.stat.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pids {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub current: u64,
    /// 0 when unlimited.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub limit: u64,
}

/// One line of a blkio table: device, operation (`Read`, `Write`, `Sync`, `Async`,
/// `Discard`, `Total`, or none) and value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlkioEntry {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub major: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub minor: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub value: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blkio {
    #[serde(
        default,
        rename = "ioServiceBytesRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(
        default,
        rename = "ioServicedRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_serviced_recursive: Vec<BlkioEntry>,
    /// runc's field name is `ioQueueRecursive` (sic).
    #[serde(
        default,
        rename = "ioQueueRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_queued_recursive: Vec<BlkioEntry>,
    #[serde(
        default,
        rename = "ioServiceTimeRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_service_time_recursive: Vec<BlkioEntry>,
    #[serde(
        default,
        rename = "ioWaitTimeRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_wait_time_recursive: Vec<BlkioEntry>,
    #[serde(
        default,
        rename = "ioMergedRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_merged_recursive: Vec<BlkioEntry>,
    #[serde(
        default,
        rename = "ioTimeRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_time_recursive: Vec<BlkioEntry>,
    #[serde(
        default,
        rename = "sectorsRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub sectors_recursive: Vec<BlkioEntry>,
}

impl Blkio {
    fn is_empty(&self) -> bool {
        *self == Blkio::default()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hugetlb {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub usage: u64,
    /// The most ever used (v1 only).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max: u64,
    #[serde(default)]
    pub failcnt: u64,
}

/// Intel RDT statistics: none, since this runtime does not manage resctrl groups.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntelRdt {}

/// A network interface's counters, with runc's (Go's default) field names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkInterface {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

/// Which sections a hierarchy already filled, so that a later one does not overwrite them.
#[derive(Default)]
pub(super) struct Filled {
    cpu_usage: bool,
    throttling: bool,
    memory: bool,
    pids: bool,
    blkio: bool,
}

/// Read the stats of the cgroup whose directories (one per hierarchy) are `dirs`.
pub fn read(dirs: &[PathBuf]) -> Result<Stats, CgroupError> {
    let mut st = Stats::default();
    let mut filled = Filled::default();
    let (v2, v1): (Vec<&PathBuf>, Vec<&PathBuf>) = dirs
        .iter()
        .partition(|d| d.join("cgroup.controllers").exists());
    let sizes = hugepage_sizes();
    for d in &v1 {
        read_v1(d, &sizes, &mut st, &mut filled)?;
    }
    for d in &v2 {
        read_v2(d, &sizes, v1.is_empty(), &mut st, &mut filled)?;
    }
    Ok(st)
}

#[cfg(test)]
mod tests;
