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
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::CgroupError;

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// The `data` of a stats event.
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
struct Filled {
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

/// The contents of `dir/file`, or None when the file does not exist (controller absent).
fn read_opt(dir: &Path, file: &str) -> Result<Option<String>, CgroupError> {
    let path = dir.join(file);
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok(Some(s)),
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                || e.raw_os_error() == Some(libc::EOPNOTSUPP) =>
        {
            Ok(None)
        }
        Err(source) => Err(CgroupError::Io {
            step: "read",
            path,
            source,
        }),
    }
}

fn bad(dir: &Path, file: &str, msg: impl std::fmt::Display) -> CgroupError {
    CgroupError::Failed {
        path: dir.join(file).display().to_string(),
        msg: format!("cannot parse: {msg}"),
    }
}

/// A single-value file as a number: `max` is `u64::MAX`, a negative value is 0 (as runc).
fn read_u64_opt(dir: &Path, file: &str) -> Result<Option<u64>, CgroupError> {
    match read_opt(dir, file)? {
        None => Ok(None),
        Some(s) => parse_value(s.trim())
            .map(Some)
            .ok_or_else(|| bad(dir, file, format!("{:?} is not a number", s.trim()))),
    }
}

fn read_i64_opt(dir: &Path, file: &str) -> Result<Option<i64>, CgroupError> {
    match read_opt(dir, file)? {
        None => Ok(None),
        Some(s) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| bad(dir, file, format!("{:?} is not a number", s.trim()))),
    }
}

/// A cgroup value: a decimal number, `max` for unlimited (`u64::MAX`); negative numbers
/// (v1's "-1" for unlimited in some files) read as 0, as runc reads them.
pub(crate) fn parse_value(s: &str) -> Option<u64> {
    if s == "max" {
        return Some(u64::MAX);
    }
    if let Ok(v) = s.parse::<u64>() {
        return Some(v);
    }
    match s.strip_prefix('-') {
        Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => Some(0),
        _ => None,
    }
}

/// A flat keyed file (`key value` per line: memory.stat, cpu.stat, memory.events). Lines
/// that are not a key and a number are skipped.
pub(crate) fn parse_keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let (k, v, rest) = (it.next()?, it.next()?, it.next());
            if rest.is_some() {
                return None;
            }
            Some((k.to_string(), parse_value(v)?))
        })
        .collect()
}

/// v1 cpuacct.stat: (user, system) in USER_HZ ticks.
pub(crate) fn parse_cpuacct_stat(text: &str) -> Option<(u64, u64)> {
    let kv = parse_keyed(text);
    Some((*kv.get("user")?, *kv.get("system")?))
}

/// USER_HZ ticks to nanoseconds (saturating).
pub(crate) fn ticks_to_ns(ticks: u64, hz: u64) -> u64 {
    let ns = ticks as u128 * 1_000_000_000 / hz.max(1) as u128;
    ns.min(u64::MAX as u128) as u64
}

/// The kernel's clock tick rate for times in cpuacct.stat (USER_HZ, 100 on Linux).
fn user_hz() -> u64 {
    use nix::unistd::{sysconf, SysconfVar};
    match sysconf(SysconfVar::CLK_TCK) {
        Ok(Some(hz)) if hz > 0 => hz as u64,
        _ => 100,
    }
}

/// v1 cpuacct.usage_all (`cpu user system` header, then one line per CPU): per-CPU
/// (kernel, user) nanoseconds.
pub(crate) fn parse_usage_all(text: &str) -> (Vec<u64>, Vec<u64>) {
    let mut kernel = Vec::new();
    let mut user = Vec::new();
    for l in text.lines().skip(1) {
        let f: Vec<&str> = l.split_whitespace().collect();
        if let [_, u, s] = f[..] {
            if let (Ok(u), Ok(s)) = (u.parse(), s.parse()) {
                user.push(u);
                kernel.push(s);
            }
        }
    }
    (kernel, user)
}

/// A v1 blkio table: lines `MAJ:MIN Op value` or `MAJ:MIN value`; the `Total` line is
/// dropped. None when a line is malformed.
pub(crate) fn parse_blkio(text: &str) -> Option<Vec<BlkioEntry>> {
    let mut out = Vec::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split([' ', ':']).filter(|s| !s.is_empty()).collect();
        if f.is_empty() || (f.len() == 2 && f[0] == "Total") {
            continue;
        }
        let (op, value) = match f.len() {
            3 => ("", f[2]),
            4 => (f[2], f[3]),
            _ => return None,
        };
        out.push(BlkioEntry {
            major: f[0].parse().ok()?,
            minor: f[1].parse().ok()?,
            op: op.to_string(),
            value: value.parse().ok()?,
        });
    }
    Some(out)
}

/// v2 io.stat (`MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=.. dbytes=.. dios=..`):
/// (bytes, ios) tables with runc's v1 naming, `Read` and `Write` only.
pub(crate) fn parse_io_stat(text: &str) -> (Vec<BlkioEntry>, Vec<BlkioEntry>) {
    let mut bytes = Vec::new();
    let mut ios = Vec::new();
    for l in text.lines() {
        let mut f = l.split_whitespace();
        let Some((major, minor)) = f.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (major.parse(), minor.parse()) else {
            continue;
        };
        for kv in f {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let (table, op) = match k {
                "rbytes" => (&mut bytes, "Read"),
                "wbytes" => (&mut bytes, "Write"),
                "rios" => (&mut ios, "Read"),
                "wios" => (&mut ios, "Write"),
                _ => continue,
            };
            if let Ok(value) = v.parse() {
                table.push(BlkioEntry {
                    major,
                    minor,
                    op: op.to_string(),
                    value,
                });
            }
        }
    }
    (bytes, ios)
}

/// A cpu or memory-node list (`0-3,5`) as numbers.
pub(crate) fn parse_id_list(text: &str) -> Option<Vec<u16>> {
    let mut out = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u16, u16) = (a.parse().ok()?, b.parse().ok()?);
                if a > b {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

/// runc's name of a huge page size from a `/sys/kernel/mm/hugepages` entry
/// (`hugepages-2048kB` → `2MB`).
pub(crate) fn hugepage_size_name(entry: &str) -> Option<String> {
    let kb: u64 = entry
        .strip_prefix("hugepages-")?
        .strip_suffix("kB")?
        .parse()
        .ok()?;
    Some(if kb >= 1 << 20 {
        format!("{}GB", kb >> 20)
    } else if kb >= 1 << 10 {
        format!("{}MB", kb >> 10)
    } else {
        format!("{kb}KB")
    })
}

fn hugepage_sizes() -> Vec<String> {
    let mut sizes: Vec<String> = std::fs::read_dir("/sys/kernel/mm/hugepages")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| hugepage_size_name(&e.file_name().to_string_lossy()))
                .collect()
        })
        .unwrap_or_default();
    sizes.sort();
    sizes
}

/// Everything a cgroup v1 hierarchy directory has to offer.
fn read_v1(
    dir: &Path,
    sizes: &[String],
    st: &mut Stats,
    filled: &mut Filled,
) -> Result<(), CgroupError> {
    // cpuacct
    if let Some(total) = read_u64_opt(dir, "cpuacct.usage")? {
        let u = &mut st.cpu.usage;
        u.total = total;
        if let Some(t) = read_opt(dir, "cpuacct.usage_percpu")? {
            u.percpu = t
                .split_whitespace()
                .map(|v| v.parse().map_err(|_| bad(dir, "cpuacct.usage_percpu", v)))
                .collect::<Result<_, _>>()?;
        }
        if let Some(t) = read_opt(dir, "cpuacct.usage_all")? {
            (u.percpu_kernel, u.percpu_user) = parse_usage_all(&t);
        }
        if let Some(t) = read_opt(dir, "cpuacct.stat")? {
            let (user, system) =
                parse_cpuacct_stat(&t).ok_or_else(|| bad(dir, "cpuacct.stat", t.trim()))?;
            let hz = user_hz();
            u.user = ticks_to_ns(user, hz);
            u.kernel = ticks_to_ns(system, hz);
        }
        filled.cpu_usage = true;
    }
    // cpu: CFS throttling (the v1 cpu.stat has no usage_usec line)
    if let Some(t) = read_opt(dir, "cpu.stat")? {
        let kv = parse_keyed(&t);
        if !kv.contains_key("usage_usec") {
            let th = &mut st.cpu.throttling;
            th.periods = kv.get("nr_periods").copied().unwrap_or(0);
            th.throttled_periods = kv.get("nr_throttled").copied().unwrap_or(0);
            th.throttled_time = kv.get("throttled_time").copied().unwrap_or(0);
            filled.throttling = true;
        }
    }
    // memory
    if let Some(usage) = read_memory_v1(dir, "memory")? {
        let m = &mut st.memory;
        m.usage = usage;
        m.swap = read_memory_v1(dir, "memory.memsw")?.unwrap_or_default();
        m.kernel = read_memory_v1(dir, "memory.kmem")?.unwrap_or_default();
        m.kernel_tcp = read_memory_v1(dir, "memory.kmem.tcp")?.unwrap_or_default();
        if let Some(t) = read_opt(dir, "memory.stat")? {
            m.raw = parse_keyed(&t);
            m.cache = m.raw.get("cache").copied().unwrap_or(0);
        }
        filled.memory = true;
    }
    // pids
    if let Some(current) = read_u64_opt(dir, "pids.current")? {
        st.pids.current = current;
        st.pids.limit = pids_limit(read_u64_opt(dir, "pids.max")?);
        filled.pids = true;
    }
    // cpuset
    if let Some(cpus) = read_opt(dir, "cpuset.cpus")? {
        let c = &mut st.cpuset;
        c.cpus = parse_id_list(&cpus).ok_or_else(|| bad(dir, "cpuset.cpus", cpus.trim()))?;
        if let Some(mems) = read_opt(dir, "cpuset.mems")? {
            c.mems = parse_id_list(&mems).ok_or_else(|| bad(dir, "cpuset.mems", mems.trim()))?;
        }
        for (file, field) in [
            ("cpuset.cpu_exclusive", &mut c.cpu_exclusive),
            ("cpuset.mem_hardwall", &mut c.mem_hardwall),
            ("cpuset.mem_exclusive", &mut c.mem_exclusive),
            ("cpuset.memory_migrate", &mut c.memory_migrate),
            ("cpuset.memory_spread_page", &mut c.memory_spread_page),
            ("cpuset.memory_spread_slab", &mut c.memory_spread_slab),
            ("cpuset.memory_pressure", &mut c.memory_pressure),
            ("cpuset.sched_load_balance", &mut c.sched_load_balance),
        ] {
            *field = read_u64_opt(dir, file)?.unwrap_or(0);
        }
        c.sched_relax_domain_level =
            read_i64_opt(dir, "cpuset.sched_relax_domain_level")?.unwrap_or(0);
    }
    // blkio
    if !filled.blkio {
        read_blkio_v1(dir, &mut st.blkio)?;
        filled.blkio = !st.blkio.is_empty();
    }
    // hugetlb
    for size in sizes {
        let file = |what: &str| format!("hugetlb.{size}.{what}");
        if let Some(usage) = read_u64_opt(dir, &file("usage_in_bytes"))? {
            st.hugetlb.insert(
                size.clone(),
                Hugetlb {
                    usage,
                    max: read_u64_opt(dir, &file("max_usage_in_bytes"))?.unwrap_or(0),
                    failcnt: read_u64_opt(dir, &file("failcnt"))?.unwrap_or(0),
                },
            );
        }
    }
    Ok(())
}

/// runc reports an unlimited pids.max as 0.
fn pids_limit(max: Option<u64>) -> u64 {
    match max {
        Some(u64::MAX) | None => 0,
        Some(v) => v,
    }
}

/// `<prefix>.usage_in_bytes`, `.max_usage_in_bytes`, `.limit_in_bytes`, `.failcnt`; None when
/// the usage file does not exist.
fn read_memory_v1(dir: &Path, prefix: &str) -> Result<Option<MemoryEntry>, CgroupError> {
    let Some(usage) = read_u64_opt(dir, &format!("{prefix}.usage_in_bytes"))? else {
        return Ok(None);
    };
    let get = |what: &str| -> Result<u64, CgroupError> {
        Ok(read_u64_opt(dir, &format!("{prefix}.{what}"))?.unwrap_or(0))
    };
    Ok(Some(MemoryEntry {
        usage,
        max: get("max_usage_in_bytes")?,
        limit: get("limit_in_bytes")?,
        failcnt: get("failcnt")?,
    }))
}

/// v1 blkio, from the first family of files that has data, in runc's order: BFQ with debug
/// counters, BFQ, CFQ, throttling (recursive), throttling.
fn read_blkio_v1(dir: &Path, b: &mut Blkio) -> Result<(), CgroupError> {
    type Field = fn(&mut Blkio) -> &mut Vec<BlkioEntry>;
    let serviced: Field = |b| &mut b.io_serviced_recursive;
    let bytes: Field = |b| &mut b.io_service_bytes_recursive;
    let sectors: Field = |b| &mut b.sectors_recursive;
    let service_time: Field = |b| &mut b.io_service_time_recursive;
    let wait_time: Field = |b| &mut b.io_wait_time_recursive;
    let merged: Field = |b| &mut b.io_merged_recursive;
    let queued: Field = |b| &mut b.io_queued_recursive;
    let time: Field = |b| &mut b.io_time_recursive;
    let full = |p: &str| -> Vec<(String, Field)> {
        [
            ("sectors_recursive", sectors),
            ("io_service_time_recursive", service_time),
            ("io_wait_time_recursive", wait_time),
            ("io_merged_recursive", merged),
            ("io_queued_recursive", queued),
            ("time_recursive", time),
            ("io_serviced_recursive", serviced),
            ("io_service_bytes_recursive", bytes),
        ]
        .into_iter()
        .map(|(f, field)| (format!("blkio.{p}{f}"), field))
        .collect()
    };
    let pair = |serviced_file: &str, bytes_file: &str| -> Vec<(String, Field)> {
        vec![
            (serviced_file.to_string(), serviced),
            (bytes_file.to_string(), bytes),
        ]
    };
    let families = [
        full("bfq."),
        pair(
            "blkio.bfq.io_serviced_recursive",
            "blkio.bfq.io_service_bytes_recursive",
        ),
        full(""),
        pair(
            "blkio.throttle.io_serviced_recursive",
            "blkio.throttle.io_service_bytes_recursive",
        ),
        pair(
            "blkio.throttle.io_serviced",
            "blkio.throttle.io_service_bytes",
        ),
    ];
    for family in families {
        // A family whose first file is missing or empty is not in use: try the next one.
        let first = match read_opt(dir, &family[0].0)? {
            Some(t) => parse_blkio(&t).ok_or_else(|| bad(dir, &family[0].0, "malformed line"))?,
            None => continue,
        };
        if first.is_empty() {
            continue;
        }
        *(family[0].1)(b) = first;
        for (file, field) in &family[1..] {
            if let Some(t) = read_opt(dir, file)? {
                *field(b) = parse_blkio(&t).ok_or_else(|| bad(dir, file, "malformed line"))?;
            }
        }
        return Ok(());
    }
    Ok(())
}

/// What the cgroup2 directory offers for the sections no v1 hierarchy filled.
fn read_v2(
    dir: &Path,
    sizes: &[String],
    pure: bool,
    st: &mut Stats,
    filled: &mut Filled,
) -> Result<(), CgroupError> {
    // cpu.stat exists without the cpu controller (usage only); throttling needs it.
    if let Some(t) = read_opt(dir, "cpu.stat")? {
        let kv = parse_keyed(&t);
        let us = |k: &str| kv.get(k).copied().unwrap_or(0).saturating_mul(1000);
        if !filled.cpu_usage && kv.contains_key("usage_usec") {
            let u = &mut st.cpu.usage;
            u.total = us("usage_usec");
            u.user = us("user_usec");
            u.kernel = us("system_usec");
            filled.cpu_usage = true;
        }
        if !filled.throttling && kv.contains_key("nr_periods") {
            let th = &mut st.cpu.throttling;
            th.periods = kv["nr_periods"];
            th.throttled_periods = kv.get("nr_throttled").copied().unwrap_or(0);
            th.throttled_time = us("throttled_usec");
            filled.throttling = true;
        }
    }
    if !filled.memory {
        if let Some(usage) = read_memory_v2(dir, "memory")? {
            let m = &mut st.memory;
            if let Some(mut swap) = read_memory_v2(dir, "memory.swap")? {
                // v1 counts memory + swap together: report v2's the same way, as runc does.
                swap.usage = swap.usage.saturating_add(usage.usage);
                if swap.limit != u64::MAX {
                    swap.limit = swap.limit.saturating_add(usage.limit);
                }
                m.swap = swap;
            }
            m.usage = usage;
            if let Some(t) = read_opt(dir, "memory.stat")? {
                m.raw = parse_keyed(&t);
                m.cache = m.raw.get("file").copied().unwrap_or(0);
            }
            filled.memory = true;
        }
    }
    if !filled.pids {
        if let Some(current) = read_u64_opt(dir, "pids.current")? {
            st.pids.current = current;
            st.pids.limit = pids_limit(read_u64_opt(dir, "pids.max")?);
            filled.pids = true;
        } else if pure {
            // Without the pids controller, count the members as runc does.
            if let Some(procs) = read_opt(dir, "cgroup.procs")? {
                st.pids.current = procs.lines().count() as u64;
                filled.pids = true;
            }
        }
    }
    if !filled.blkio {
        if let Some(t) = read_opt(dir, "io.stat")? {
            let (bytes, ios) = parse_io_stat(&t);
            st.blkio.io_service_bytes_recursive = bytes;
            st.blkio.io_serviced_recursive = ios;
            filled.blkio = true;
        }
    }
    for size in sizes {
        if st.hugetlb.contains_key(size) {
            continue;
        }
        if let Some(usage) = read_u64_opt(dir, &format!("hugetlb.{size}.current"))? {
            let failcnt = read_opt(dir, &format!("hugetlb.{size}.events"))?
                .and_then(|t| parse_keyed(&t).get("max").copied())
                .unwrap_or(0);
            st.hugetlb.insert(
                size.clone(),
                Hugetlb {
                    usage,
                    max: 0,
                    failcnt,
                },
            );
        }
    }
    Ok(())
}

/// `<prefix>.current`, `.max`, `.peak` (when the kernel has it) and the `max` count of
/// `<prefix>.events` as the failure count; None when the current file does not exist.
fn read_memory_v2(dir: &Path, prefix: &str) -> Result<Option<MemoryEntry>, CgroupError> {
    let Some(usage) = read_u64_opt(dir, &format!("{prefix}.current"))? else {
        return Ok(None);
    };
    let failcnt = read_opt(dir, &format!("{prefix}.events"))?
        .and_then(|t| parse_keyed(&t).get("max").copied())
        .unwrap_or(0);
    Ok(Some(MemoryEntry {
        usage,
        limit: read_u64_opt(dir, &format!("{prefix}.max"))?.unwrap_or(u64::MAX),
        max: read_u64_opt(dir, &format!("{prefix}.peak"))?.unwrap_or(0),
        failcnt,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stats_values_max_and_negative() {
        assert_eq!(parse_value("max"), Some(u64::MAX));
        assert_eq!(parse_value("42"), Some(42));
        assert_eq!(parse_value("-1"), Some(0));
        assert_eq!(parse_value("-"), None);
        assert_eq!(parse_value("x1"), None);
    }

    #[test]
    fn stats_keyed_files() {
        let t = "cache 4096\nrss 8192\nbogus\nhierarchical_memory_limit 9223372036854771712\n";
        let kv = parse_keyed(t);
        assert_eq!(kv["cache"], 4096);
        assert_eq!(kv["hierarchical_memory_limit"], 9223372036854771712);
        assert_eq!(kv.len(), 3);
        let ev = "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n";
        let kv = parse_keyed(ev);
        assert_eq!((kv["max"], kv["oom"], kv["oom_kill"]), (12, 3, 2));
    }

    #[test]
    fn stats_cpuacct_stat_ticks() {
        assert_eq!(
            parse_cpuacct_stat("user 40708\nsystem 9807\n"),
            Some((40708, 9807))
        );
        assert_eq!(parse_cpuacct_stat("user 1\n"), None);
        assert_eq!(ticks_to_ns(250, 100), 2_500_000_000);
        assert_eq!(ticks_to_ns(1 << 40, 100), (1u64 << 40) * 10_000_000);
        assert_eq!(ticks_to_ns(u64::MAX / 100, 100), u64::MAX, "saturates");
    }

    #[test]
    fn stats_usage_all() {
        let t = "cpu user system\n0 1979 449\n1 2061 524\n";
        let (k, u) = parse_usage_all(t);
        assert_eq!(k, vec![449, 524]);
        assert_eq!(u, vec![1979, 2061]);
    }

    #[test]
    fn stats_blkio_lines() {
        let t = "8:0 Read 4096\n8:0 Write 0\n8:0 Sync 10\n253:1 Total 4106\nTotal 4106\n";
        let e = parse_blkio(t).unwrap();
        assert_eq!(e.len(), 4);
        assert_eq!(
            e[0],
            BlkioEntry {
                major: 8,
                minor: 0,
                op: "Read".into(),
                value: 4096
            }
        );
        assert_eq!(
            (e[3].major, e[3].minor, e[3].op.as_str()),
            (253, 1, "Total")
        );
        // Files without an operation column (blkio.time_recursive).
        let e = parse_blkio("8:16 1234\n").unwrap();
        assert_eq!((e[0].minor, e[0].op.as_str(), e[0].value), (16, "", 1234));
        assert_eq!(parse_blkio("Total 0\n").unwrap(), vec![]);
        assert!(parse_blkio("8:0 Read x\n").is_none());
        assert!(parse_blkio("garbage\n").is_none());
    }

    #[test]
    fn stats_io_stat_lines() {
        let t = "8:0 rbytes=1024 wbytes=2048 rios=3 wios=4 dbytes=0 dios=0\n\
                 253:0 rbytes=5 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n";
        let (bytes, ios) = parse_io_stat(t);
        let ops: Vec<(u64, &str, u64)> = bytes
            .iter()
            .map(|e| (e.major, e.op.as_str(), e.value))
            .collect();
        assert_eq!(
            ops,
            vec![
                (8, "Read", 1024),
                (8, "Write", 2048),
                (253, "Read", 5),
                (253, "Write", 0)
            ]
        );
        assert_eq!(ios.len(), 4);
        assert_eq!((ios[1].op.as_str(), ios[1].value), ("Write", 4));
        assert_eq!(parse_io_stat("bad line\n"), (vec![], vec![]));
    }

    #[test]
    fn stats_id_lists() {
        assert_eq!(parse_id_list("0-3,5\n"), Some(vec![0, 1, 2, 3, 5]));
        assert_eq!(parse_id_list("0"), Some(vec![0]));
        assert_eq!(parse_id_list(""), Some(vec![]));
        assert_eq!(parse_id_list("3-1"), None);
        assert_eq!(parse_id_list("a"), None);
    }

    #[test]
    fn stats_hugepage_names() {
        assert_eq!(
            hugepage_size_name("hugepages-2048kB").as_deref(),
            Some("2MB")
        );
        assert_eq!(
            hugepage_size_name("hugepages-1048576kB").as_deref(),
            Some("1GB")
        );
        assert_eq!(
            hugepage_size_name("hugepages-64kB").as_deref(),
            Some("64KB")
        );
        assert_eq!(hugepage_size_name("other"), None);
    }

    #[test]
    fn stats_json_omits_zeroes_like_runc() {
        let v = serde_json::to_value(Stats::default()).unwrap();
        let zero_entry = json!({"limit": 0, "failcnt": 0});
        assert_eq!(
            v,
            json!({
                "cpu": {"usage": {"kernel": 0, "user": 0}, "throttling": {}},
                "cpuset": {"cpu_exclusive": 0, "mem_hardwall": 0, "mem_exclusive": 0,
                    "memory_migrate": 0, "memory_spread_page": 0, "memory_spread_slab": 0,
                    "memory_pressure": 0, "sched_load_balance": 0,
                    "sched_relax_domain_level": 0},
                "memory": {"usage": zero_entry, "swap": zero_entry, "kernel": zero_entry,
                    "kernelTCP": zero_entry},
                "pids": {},
                "blkio": {},
                "hugetlb": {},
                "intel_rdt": {},
                "network_interfaces": null
            })
        );
    }

    #[test]
    fn stats_json_field_names() {
        let mut s = Stats::default();
        s.cpu.usage.total = 5;
        s.cpu.usage.percpu = vec![2, 3];
        s.cpu.usage.percpu_kernel = vec![1];
        s.cpu.usage.percpu_user = vec![1];
        s.cpu.throttling = Throttling {
            periods: 1,
            throttled_periods: 2,
            throttled_time: 3,
        };
        s.memory.cache = 7;
        s.memory.usage = MemoryEntry {
            limit: u64::MAX,
            usage: 10,
            max: 11,
            failcnt: 1,
        };
        s.memory.raw.insert("cache".into(), 7);
        s.pids = Pids {
            current: 2,
            limit: 0,
        };
        s.blkio.io_queued_recursive.push(BlkioEntry {
            major: 8,
            minor: 0,
            op: "Read".into(),
            value: 0,
        });
        s.hugetlb.insert("2MB".into(), Hugetlb::default());
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(
            v["cpu"],
            json!({"usage": {"total": 5, "percpu": [2, 3], "percpu_kernel": [1],
                "percpu_user": [1], "kernel": 0, "user": 0},
                "throttling": {"periods": 1, "throttledPeriods": 2, "throttledTime": 3}})
        );
        assert_eq!(
            v["memory"]["usage"],
            json!({"limit": u64::MAX, "usage": 10, "max": 11, "failcnt": 1})
        );
        assert_eq!(v["memory"]["cache"], 7);
        assert_eq!(v["memory"]["raw"], json!({"cache": 7}));
        assert_eq!(v["pids"], json!({"current": 2}));
        assert_eq!(
            v["blkio"],
            json!({"ioQueueRecursive": [{"major": 8, "op": "Read"}]})
        );
        assert_eq!(v["hugetlb"], json!({"2MB": {"failcnt": 0}}));
        let back: Stats = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
    }

    /// A fake hierarchy directory with the given files.
    fn fake_dir(name: &str, files: &[(&str, &str)]) -> PathBuf {
        let d = std::env::temp_dir().join(format!("casulo-stats-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        for (f, c) in files {
            std::fs::write(d.join(f), c).unwrap();
        }
        d
    }

    #[test]
    fn stats_read_v1_dirs() {
        let cpuacct = fake_dir(
            "v1cpuacct",
            &[
                ("cpuacct.usage", "3000\n"),
                ("cpuacct.usage_percpu", "1000 2000 \n"),
                (
                    "cpuacct.usage_all",
                    "cpu user system\n0 700 300\n1 1500 500\n",
                ),
                ("cpuacct.stat", "user 2\nsystem 1\n"),
            ],
        );
        let mem = fake_dir(
            "v1mem",
            &[
                ("memory.usage_in_bytes", "4096\n"),
                ("memory.max_usage_in_bytes", "8192\n"),
                ("memory.limit_in_bytes", "8388608\n"),
                ("memory.failcnt", "3\n"),
                ("memory.stat", "cache 1024\nrss 2048\n"),
                ("memory.memsw.usage_in_bytes", "4096\n"),
                ("memory.memsw.max_usage_in_bytes", "8192\n"),
                ("memory.memsw.limit_in_bytes", "8388608\n"),
                ("memory.memsw.failcnt", "0\n"),
            ],
        );
        let pids = fake_dir("v1pids", &[("pids.current", "2\n"), ("pids.max", "max\n")]);
        let blkio = fake_dir(
            "v1blkio",
            &[
                ("blkio.bfq.io_serviced_recursive", "Total 0\n"),
                (
                    "blkio.throttle.io_serviced_recursive",
                    "8:0 Read 2\nTotal 2\n",
                ),
                (
                    "blkio.throttle.io_service_bytes_recursive",
                    "8:0 Read 8192\nTotal 8192\n",
                ),
            ],
        );
        let st = read(&[cpuacct.clone(), mem.clone(), pids.clone(), blkio.clone()]).unwrap();
        assert_eq!(st.cpu.usage.total, 3000);
        assert_eq!(st.cpu.usage.percpu, vec![1000, 2000]);
        assert_eq!(st.cpu.usage.percpu_kernel, vec![300, 500]);
        assert_eq!(st.cpu.usage.percpu_user, vec![700, 1500]);
        let hz = user_hz();
        assert_eq!(st.cpu.usage.user, ticks_to_ns(2, hz));
        assert_eq!(st.cpu.usage.kernel, ticks_to_ns(1, hz));
        assert_eq!(
            st.memory.usage,
            MemoryEntry {
                limit: 8388608,
                usage: 4096,
                max: 8192,
                failcnt: 3
            }
        );
        assert_eq!(st.memory.swap.limit, 8388608);
        assert_eq!(st.memory.kernel, MemoryEntry::default());
        assert_eq!(st.memory.cache, 1024);
        assert_eq!(st.memory.raw.len(), 2);
        assert_eq!(
            st.pids,
            Pids {
                current: 2,
                limit: 0
            }
        );
        // The empty BFQ table is skipped in favour of the throttling one.
        assert_eq!(st.blkio.io_serviced_recursive.len(), 1);
        assert_eq!(st.blkio.io_service_bytes_recursive[0].value, 8192);
        for d in [cpuacct, mem, pids, blkio] {
            std::fs::remove_dir_all(d).unwrap();
        }
    }

    #[test]
    fn stats_read_v2_dir() {
        let d = fake_dir(
            "v2",
            &[
                ("cgroup.controllers", "cpu io memory pids\n"),
                ("cgroup.procs", "10\n11\n"),
                (
                    "cpu.stat",
                    "usage_usec 30\nuser_usec 20\nsystem_usec 10\nnr_periods 4\nnr_throttled 1\nthrottled_usec 7\n",
                ),
                ("memory.current", "4096\n"),
                ("memory.max", "max\n"),
                ("memory.events", "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\n"),
                ("memory.stat", "anon 2048\nfile 1024\n"),
                ("memory.swap.current", "100\n"),
                ("memory.swap.max", "1000\n"),
                ("pids.current", "2\n"),
                ("pids.max", "64\n"),
                ("io.stat", "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n"),
            ],
        );
        let st = read(std::slice::from_ref(&d)).unwrap();
        assert_eq!(st.cpu.usage.total, 30_000);
        assert_eq!((st.cpu.usage.user, st.cpu.usage.kernel), (20_000, 10_000));
        assert_eq!(st.cpu.throttling.throttled_time, 7_000);
        assert_eq!(
            st.memory.usage,
            MemoryEntry {
                limit: u64::MAX,
                usage: 4096,
                max: 0,
                failcnt: 5
            }
        );
        // v2 swap is reported as memory + swap, like v1's memsw; a max memory limit stays max.
        assert_eq!(st.memory.swap.usage, 4196);
        assert_eq!(st.memory.swap.limit, u64::MAX);
        assert_eq!(st.memory.cache, 1024);
        assert_eq!(
            st.pids,
            Pids {
                current: 2,
                limit: 64
            }
        );
        assert_eq!(st.blkio.io_service_bytes_recursive.len(), 2);
        assert_eq!(st.blkio.io_serviced_recursive[1].value, 2);

        // A v1 memory hierarchy next to it wins for memory (hybrid hosts).
        let v1mem = fake_dir(
            "v2-hybrid-mem",
            &[
                ("memory.usage_in_bytes", "1\n"),
                ("memory.limit_in_bytes", "2\n"),
            ],
        );
        let st = read(&[d.clone(), v1mem.clone()]).unwrap();
        assert_eq!((st.memory.usage.usage, st.memory.usage.limit), (1, 2));
        assert_eq!(st.cpu.usage.total, 30_000, "v2 fills what v1 lacks");
        std::fs::remove_dir_all(d).unwrap();
        std::fs::remove_dir_all(v1mem).unwrap();
    }

    #[test]
    fn stats_missing_controllers_are_empty() {
        let d = fake_dir("none", &[]);
        assert_eq!(read(std::slice::from_ref(&d)).unwrap(), Stats::default());
        assert_eq!(read(&[d.join("gone")]).unwrap(), Stats::default());
        std::fs::remove_dir_all(d).unwrap();
    }
}
