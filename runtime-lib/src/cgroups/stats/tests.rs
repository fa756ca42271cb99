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
