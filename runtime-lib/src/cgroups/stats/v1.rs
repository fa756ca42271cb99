//! Stats from the cgroup v1 hierarchies.
use std::path::Path;

use super::*;
use crate::cgroups::CgroupError;

use super::parse::*;

/// Everything a cgroup v1 hierarchy directory has to offer.
pub(super) fn read_v1(
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

/// `<prefix>.usage_in_bytes`, `.max_usage_in_bytes`, `.limit_in_bytes`, `.failcnt`; None when
/// the usage file does not exist.
pub(super) fn read_memory_v1(dir: &Path, prefix: &str) -> Result<Option<MemoryEntry>, CgroupError> {
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
pub(super) fn read_blkio_v1(dir: &Path, b: &mut Blkio) -> Result<(), CgroupError> {
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
