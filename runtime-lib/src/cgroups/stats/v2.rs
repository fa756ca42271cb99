//! Stats from the cgroup2 directory.
use std::path::Path;

use super::*;
use crate::cgroups::CgroupError;

use super::parse::*;

/// What the cgroup2 directory offers for the sections no v1 hierarchy filled.
pub(super) fn read_v2(
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
pub(super) fn read_memory_v2(dir: &Path, prefix: &str) -> Result<Option<MemoryEntry>, CgroupError> {
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
