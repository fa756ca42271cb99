//! Every resource of the runtime-spec, set on a real cgroup of this host and read back from the
//! cgroup files: the v1 files on a v1 or hybrid host, the v2 files on a pure cgroup v2 host (the
//! same tests run in the v2 VM). A resource the host cannot apply must fail with an error that
//! names it.
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod cgroup_common;
use cgroup_common::*;

use casulo::__private::cgroups::{self, host_mode, CgroupError, Mode};
use oci_spec::runtime::{LinuxDeviceType, LinuxResources};

fn v2() -> bool {
    host_mode() == Mode::Unified
}

/// A cgroup with one sleeping process in it.
fn guarded(tag: &str) -> Guard {
    let cfg = cgroups::resolve(Some(&format!("/{}", unique(tag))), "x", false).unwrap();
    let mut g = Guard::new(&cfg);
    let pid = g.spawn_sleeper();
    g.mgr.apply(pid).unwrap();
    g
}

fn resources(json: &str) -> LinuxResources {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
}

/// The directory holding controller `ctrl`'s files: its v1 hierarchy, or the cgroup2 one.
fn ctrl_dir(g: &Guard, ctrl: &str) -> Option<PathBuf> {
    if v2() {
        return g.dirs.first().cloned();
    }
    g.dirs
        .iter()
        .find(|d| {
            d.strip_prefix("/sys/fs/cgroup")
                .ok()
                .and_then(|r| r.components().next())
                .is_some_and(|c| {
                    c.as_os_str()
                        .to_string_lossy()
                        .split(',')
                        .any(|x| x == ctrl)
                })
        })
        .cloned()
}

fn file(g: &Guard, ctrl: &str, name: &str) -> String {
    let dir = ctrl_dir(g, ctrl).unwrap_or_else(|| panic!("no {ctrl} directory in {:?}", g.dirs));
    read(&dir, name).trim().to_string()
}

/// `set` must fail with an error that names `what`.
fn expect_named_error(g: &mut Guard, r: &LinuxResources, what: &str) {
    match g.mgr.set(r) {
        Err(e @ (CgroupError::Unsupported { .. } | CgroupError::Resource { .. })) => {
            assert!(
                e.to_string().contains(what),
                "error does not name {what}: {e}"
            )
        }
        other => panic!("expected an error naming {what}, got {other:?}"),
    }
}

fn has_controller(g: &Guard, ctrl: &str) -> bool {
    if v2() {
        let d = &g.dirs[0];
        return std::fs::read_to_string(d.join("cgroup.controllers"))
            .unwrap_or_default()
            .split_whitespace()
            .any(|c| c == ctrl);
    }
    ctrl_dir(g, ctrl).is_some()
}

#[test]
fn resources_cpu_shares_quota_period() {
    if !can_run("resources_cpu_shares_quota_period") {
        return;
    }
    let mut g = guarded("cpu");
    let r = resources(r#"{"cpu":{"shares":512,"quota":50000,"period":100000}}"#);
    g.mgr.set(&r).unwrap();
    if v2() {
        // runc's conversion of shares 2..262144 to weight 1..10000.
        assert_eq!(file(&g, "cpu", "cpu.weight"), "20");
        assert_eq!(file(&g, "cpu", "cpu.max"), "50000 100000");
    } else {
        assert_eq!(file(&g, "cpu", "cpu.shares"), "512");
        assert_eq!(file(&g, "cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(file(&g, "cpu", "cpu.cfs_period_us"), "100000");
    }
    // Back to unlimited.
    g.mgr
        .set(&resources(r#"{"cpu":{"quota":-1,"period":100000}}"#))
        .unwrap();
    if v2() {
        assert_eq!(file(&g, "cpu", "cpu.max"), "max 100000");
    } else {
        assert_eq!(file(&g, "cpu", "cpu.cfs_quota_us"), "-1");
    }
}

#[test]
fn resources_cpu_burst_idle_realtime() {
    if !can_run("resources_cpu_burst_idle_realtime") {
        return;
    }
    let mut g = guarded("cpux");
    let burst_file = if v2() {
        "cpu.max.burst"
    } else {
        "cpu.cfs_burst_us"
    };
    let r = resources(r#"{"cpu":{"quota":50000,"period":100000,"burst":20000}}"#);
    if ctrl_dir(&g, "cpu").is_some_and(|d| d.join(burst_file).exists()) {
        g.mgr.set(&r).unwrap();
        assert_eq!(file(&g, "cpu", burst_file), "20000");
    } else {
        expect_named_error(&mut g, &r, "cpu.burst");
    }
    let idle = resources(r#"{"cpu":{"idle":1}}"#);
    // cgroup v2's file; v1's cpu controller has it too on kernels since 5.15.
    if ctrl_dir(&g, "cpu").is_some_and(|d| d.join("cpu.idle").exists()) {
        g.mgr.set(&idle).unwrap();
        assert_eq!(file(&g, "cpu", "cpu.idle"), "1");
    } else {
        expect_named_error(&mut g, &idle, "cpu.idle");
    }
    let rt = resources(r#"{"cpu":{"realtimePeriod":1000000,"realtimeRuntime":10000}}"#);
    if v2() {
        expect_named_error(&mut g, &rt, "cpu.realtime");
    } else if ctrl_dir(&g, "cpu").is_some_and(|d| d.join("cpu.rt_runtime_us").exists()) {
        g.mgr.set(&rt).unwrap();
        assert_eq!(file(&g, "cpu", "cpu.rt_period_us"), "1000000");
        assert_eq!(file(&g, "cpu", "cpu.rt_runtime_us"), "10000");
        // A period below the current runtime: the runtime has to go first.
        let up = resources(r#"{"cpu":{"realtimePeriod":900001,"realtimeRuntime":600001}}"#);
        g.mgr.set(&up).unwrap();
        let down = resources(r#"{"cpu":{"realtimePeriod":10000,"realtimeRuntime":3000}}"#);
        g.mgr.set(&down).unwrap();
        assert_eq!(file(&g, "cpu", "cpu.rt_period_us"), "10000");
        assert_eq!(file(&g, "cpu", "cpu.rt_runtime_us"), "3000");
    } else {
        eprintln!("SKIPPED part of resources_cpu_burst_idle_realtime: no CONFIG_RT_GROUP_SCHED");
    }
}

#[test]
fn resources_cpuset() {
    if !can_run("resources_cpuset") {
        return;
    }
    let mut g = guarded("cpuset");
    g.mgr
        .set(&resources(r#"{"cpu":{"cpus":"0","mems":"0"}}"#))
        .unwrap();
    assert_eq!(file(&g, "cpuset", "cpuset.cpus"), "0");
    assert_eq!(file(&g, "cpuset", "cpuset.mems"), "0");
}

#[test]
fn resources_memory() {
    if !can_run("resources_memory") {
        return;
    }
    let mut g = guarded("mem");
    let mib = 1i64 << 20;
    let r = resources(&format!(
        r#"{{"memory":{{"limit":{},"reservation":{}}}}}"#,
        64 * mib,
        32 * mib
    ));
    g.mgr.set(&r).unwrap();
    if v2() {
        assert_eq!(file(&g, "memory", "memory.max"), (64 * mib).to_string());
        assert_eq!(file(&g, "memory", "memory.low"), (32 * mib).to_string());
    } else {
        assert_eq!(
            file(&g, "memory", "memory.limit_in_bytes"),
            (64 * mib).to_string()
        );
        assert_eq!(
            file(&g, "memory", "memory.soft_limit_in_bytes"),
            (32 * mib).to_string()
        );
    }
    // Swap: limit + swap on v1 (memsw), swap alone on v2 (memory.swap.max).
    let swap = resources(&format!(
        r#"{{"memory":{{"limit":{},"swap":{}}}}}"#,
        64 * mib,
        96 * mib
    ));
    let dir = ctrl_dir(&g, "memory").unwrap();
    let swap_file = if v2() {
        "memory.swap.max"
    } else {
        "memory.memsw.limit_in_bytes"
    };
    if dir.join(swap_file).exists() {
        g.mgr.set(&swap).unwrap();
        let want = if v2() { 32 * mib } else { 96 * mib };
        assert_eq!(file(&g, "memory", swap_file), want.to_string());
    } else {
        expect_named_error(&mut g, &swap, "memory.swap");
    }
    let v1_only = resources(r#"{"memory":{"swappiness":10,"disableOOMKiller":true}}"#);
    if v2() {
        expect_named_error(&mut g, &v1_only, "memory.swappiness");
    } else {
        g.mgr.set(&v1_only).unwrap();
        assert_eq!(file(&g, "memory", "memory.swappiness"), "10");
        assert!(file(&g, "memory", "memory.oom_control").contains("oom_kill_disable 1"));
    }
    // checkBeforeUpdate: a limit at or below the current usage is refused. The usage must be
    // real memory: the counter also holds the charges a CPU keeps in stock for the cgroup, which
    // go when another cgroup charges on that CPU, so a usage read a moment earlier can halve
    // before `set` reads it. A process of the cgroup writes 1 MiB to a tmpfs file, whose pages
    // stay charged to the cgroup while the file exists.
    let shm = format!("/dev/shm/casulo-check-before-update-{}", std::process::id());
    let charged = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {}/cgroup.procs && head -c 1048576 /dev/zero > {shm}",
            dir.display()
        ))
        .status()
        .unwrap();
    assert!(charged.success(), "writing 1 MiB from inside the cgroup");
    let usage_file = if v2() {
        "memory.current"
    } else {
        "memory.usage_in_bytes"
    };
    let usage: i64 = file(&g, "memory", usage_file).parse().unwrap();
    assert!(
        usage >= 1 << 20,
        "{usage_file} {usage} after 1 MiB written in the cgroup"
    );
    let below = resources(&format!(
        r#"{{"memory":{{"limit":{},"checkBeforeUpdate":true}}}}"#,
        usage / 2
    ));
    let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        expect_named_error(&mut g, &below, "memory.limit")
    }));
    let _ = std::fs::remove_file(&shm);
    if let Err(p) = refused {
        std::panic::resume_unwind(p);
    }
}

#[test]
fn resources_kernel_memory_and_hierarchy() {
    if !can_run("resources_kernel_memory_and_hierarchy") {
        return;
    }
    let mut g = guarded("kmem");
    let mib = 1i64 << 20;
    let r = resources(&format!(
        r#"{{"memory":{{"kernel":{},"kernelTCP":{},"useHierarchy":true}}}}"#,
        64 * mib,
        16 * mib
    ));
    g.mgr.set(&r).unwrap();
    if !v2() {
        assert_eq!(
            file(&g, "memory", "memory.kmem.tcp.limit_in_bytes"),
            (16 * mib).to_string()
        );
        assert_eq!(file(&g, "memory", "memory.use_hierarchy"), "1");
    }
    if v2() {
        expect_named_error(
            &mut g,
            &resources(r#"{"memory":{"useHierarchy":false}}"#),
            "memory.useHierarchy",
        );
    }
}

#[test]
fn resources_pids() {
    if !can_run("resources_pids") {
        return;
    }
    let mut g = guarded("pids");
    g.mgr.set(&resources(r#"{"pids":{"limit":42}}"#)).unwrap();
    assert_eq!(file(&g, "pids", "pids.max"), "42");
    g.mgr.set(&resources(r#"{"pids":{"limit":-1}}"#)).unwrap();
    assert_eq!(file(&g, "pids", "pids.max"), "max");
    // 0 is 1, as runc (systemd's TasksMax cannot be 0).
    g.mgr.set(&resources(r#"{"pids":{"limit":0}}"#)).unwrap();
    assert_eq!(file(&g, "pids", "pids.max"), "1");
}

/// A real block device's major:minor, if the machine has one.
fn block_device() -> Option<(u64, u64)> {
    let mut out = None;
    for e in std::fs::read_dir("/sys/block").ok()?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("loop") || name.starts_with("ram") || name.starts_with("zram") {
            continue;
        }
        let dev = std::fs::read_to_string(e.path().join("dev")).ok()?;
        let (a, b) = dev.trim().split_once(':')?;
        out = Some((a.parse().ok()?, b.parse().ok()?));
        break;
    }
    out
}

#[test]
fn resources_block_io() {
    if !can_run("resources_block_io") {
        return;
    }
    let Some((maj, min)) = block_device() else {
        eprintln!("SKIPPED resources_block_io: no block device in /sys/block");
        return;
    };
    let mut g = guarded("blkio");
    let ctrl = if v2() { "io" } else { "blkio" };
    let r = resources(&format!(
        r#"{{"blockIO":{{
            "throttleReadBpsDevice":[{{"major":{maj},"minor":{min},"rate":1048576}}],
            "throttleWriteBpsDevice":[{{"major":{maj},"minor":{min},"rate":2097152}}],
            "throttleReadIOPSDevice":[{{"major":{maj},"minor":{min},"rate":100}}],
            "throttleWriteIOPSDevice":[{{"major":{maj},"minor":{min},"rate":200}}]}}}}"#
    ));
    if !has_controller(&g, ctrl) {
        expect_named_error(&mut g, &r, "blockIO");
        return;
    }
    g.mgr.set(&r).unwrap();
    if v2() {
        let max = file(&g, ctrl, "io.max");
        assert!(
            max.contains(&format!(
                "{maj}:{min} rbps=1048576 wbps=2097152 riops=100 wiops=200"
            )),
            "io.max: {max}"
        );
    } else {
        for (f, v) in [
            ("blkio.throttle.read_bps_device", 1048576),
            ("blkio.throttle.write_bps_device", 2097152),
            ("blkio.throttle.read_iops_device", 100),
            ("blkio.throttle.write_iops_device", 200),
        ] {
            assert_eq!(file(&g, ctrl, f), format!("{maj}:{min} {v}"), "{f}");
        }
    }
    // Weights need the disk scheduler's files; without them the error names the field.
    let w = resources(r#"{"blockIO":{"weight":500}}"#);
    let dir = ctrl_dir(&g, ctrl).unwrap();
    let files: &[&str] = if v2() {
        &["io.bfq.weight", "io.weight"]
    } else {
        &["blkio.bfq.weight", "blkio.weight"]
    };
    match files.iter().find(|f| dir.join(f).exists()) {
        Some(f) => {
            g.mgr.set(&w).unwrap();
            let got = read(&dir, f);
            // io.weight's range is 1..10000, blkio's 10..1000: runc's linear conversion.
            let want = if *f == "io.weight" { "4950" } else { "500" };
            assert!(got.contains(want), "{f}: {got}");
        }
        None => expect_named_error(&mut g, &w, "blockIO.weight"),
    }
}

#[test]
fn resources_hugetlb() {
    if !can_run("resources_hugetlb") {
        return;
    }
    let mut g = guarded("huge");
    let r = resources(r#"{"hugepageLimits":[{"pageSize":"2MB","limit":4194304}]}"#);
    if !has_controller(&g, "hugetlb") {
        expect_named_error(&mut g, &r, "hugepageLimits");
        return;
    }
    if !Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").exists() {
        expect_named_error(&mut g, &r, "hugepageLimits");
        return;
    }
    g.mgr.set(&r).unwrap();
    let f = if v2() {
        "hugetlb.2MB.max"
    } else {
        "hugetlb.2MB.limit_in_bytes"
    };
    assert_eq!(file(&g, "hugetlb", f), "4194304");
}

#[test]
fn resources_network_and_rdma() {
    if !can_run("resources_network_and_rdma") {
        return;
    }
    let mut g = guarded("net");
    let cls = resources(r#"{"network":{"classID":1048577}}"#);
    if has_controller(&g, "net_cls") && !v2() {
        g.mgr.set(&cls).unwrap();
        assert_eq!(file(&g, "net_cls", "net_cls.classid"), "1048577");
    } else {
        expect_named_error(&mut g, &cls, "network.classID");
    }
    let prio = resources(r#"{"network":{"priorities":[{"name":"lo","priority":5}]}}"#);
    if has_controller(&g, "net_prio") && !v2() {
        g.mgr.set(&prio).unwrap();
        assert!(file(&g, "net_prio", "net_prio.ifpriomap").contains("lo 5"));
    } else {
        expect_named_error(&mut g, &prio, "network.priorities");
    }
    // No RDMA device exists on a test machine: the kernel refuses the line, and the error
    // names the device; without the controller the error names rdma.
    let rdma = resources(r#"{"rdma":{"mlx5_0":{"hcaHandles":3,"hcaObjects":10000}}}"#);
    let has_device = Path::new("/sys/class/infiniband/mlx5_0").exists();
    if has_controller(&g, "rdma") && has_device {
        g.mgr.set(&rdma).unwrap();
        assert!(file(&g, "rdma", "rdma.max").contains("mlx5_0 hca_handle=3 hca_object=10000"));
    } else {
        expect_named_error(&mut g, &rdma, "rdma");
    }
}

#[test]
fn resources_unified() {
    if !can_run("resources_unified") {
        return;
    }
    let mut g = guarded("unified");
    let has_v2 = g
        .dirs
        .iter()
        .any(|d| d.starts_with("/sys/fs/cgroup/unified") || v2());
    let r = resources(r#"{"unified":{"cgroup.max.depth":"3"}}"#);
    if !has_v2 {
        expect_named_error(&mut g, &r, "unified");
        return;
    }
    g.mgr.set(&r).unwrap();
    let dir = g
        .dirs
        .iter()
        .find(|d| v2() || d.starts_with("/sys/fs/cgroup/unified"))
        .unwrap()
        .clone();
    assert_eq!(read(&dir, "cgroup.max.depth").trim(), "3");
    if v2() {
        g.mgr
            .set(&resources(r#"{"unified":{"pids.max":"7"}}"#))
            .unwrap();
        assert_eq!(read(&dir, "pids.max").trim(), "7");
    }
    // A key naming a controller the cgroup does not have is named in the error.
    expect_named_error(
        &mut g,
        &resources(r#"{"unified":{"nosuch.max":"1"}}"#),
        "unified.nosuch.max",
    );
    // On a v1 or hybrid host, a key of a controller that v1 holds is a config for another
    // kind of host: "invalid configuration", as runc words it.
    if !v2() {
        match g
            .mgr
            .set(&resources(r#"{"unified":{"memory.min":"131072"}}"#))
        {
            Err(e) => assert!(
                e.to_string().contains("invalid configuration") && e.to_string().contains("memory"),
                "{e}"
            ),
            Ok(()) => panic!("memory.min accepted on a v1/hybrid host"),
        }
    }
    // A key with a path in it is refused before any write.
    expect_named_error(
        &mut g,
        &resources(r#"{"unified":{"pids.max/../x":"1"}}"#),
        "unified",
    );
}

/// A shell in the cgroup that waits for a line on stdin, then tries to read /dev/zero and
/// reports whether it could.
#[test]
fn resources_devices_enforced_in_order() {
    if !can_run("resources_devices_enforced_in_order") {
        return;
    }
    let cfg = cgroups::resolve(Some(&format!("/{}", unique("dev"))), "x", false).unwrap();
    let mut g = Guard::new(&cfg);
    let mut child = Command::new("sh")
        .args([
            "-c",
            "while read x; do if head -c1 /dev/zero >/dev/null 2>&1; then echo allowed; \
             else echo denied; fi; done",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    g.children.push(child);
    g.mgr.apply(pid).unwrap();
    let mut ask = |stdin: &mut std::process::ChildStdin| {
        writeln!(stdin, "go").unwrap();
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        line.trim().to_string()
    };
    // deny all, then allow /dev/zero (1:5), then deny it again: the last rule wins.
    let zero = |allow| device_rule(allow, LinuxDeviceType::C, 1, 5, "rwm");
    let mut deny_all = device_rule(false, LinuxDeviceType::A, -1, -1, "rwm");
    deny_all.set_major(None);
    deny_all.set_minor(None);
    let mut r = LinuxResources::default();
    r.set_devices(Some(vec![deny_all.clone(), zero(true), zero(false)]));
    // runc's defaults, appended after the config's rules, allow /dev/zero again; the order
    // of the rules themselves is checked with a device that is not a default, below.
    g.mgr.set(&r).unwrap();
    assert_eq!(
        ask(&mut stdin),
        "allowed",
        "runc's defaults allow /dev/zero"
    );
    if !v2() {
        let list = file(&g, "devices", "devices.list");
        assert!(list.contains("c 1:5 rwm"), "devices.list: {list}");
        assert!(!list.contains("a *:* rwm"), "devices.list: {list}");
    }
    drop(stdin);
    g.reap();

    // A fresh shell that tries /dev/kmsg (1:11) for reading under three rule sets.
    let check_kmsg = |g: &mut Guard, rules: Vec<oci_spec::runtime::LinuxDeviceCgroup>| {
        let mut r = LinuxResources::default();
        r.set_devices(Some(rules));
        g.mgr.set(&r).unwrap();
        let mut child = Command::new("sh")
            .args([
                "-c",
                "read x; if head -c0 /dev/kmsg 2>/dev/null; then echo allowed; else echo denied; fi",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        g.mgr.apply(child.id() as i32).unwrap();
        writeln!(child.stdin.take().unwrap(), "go").unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let kmsg = |allow| device_rule(allow, LinuxDeviceType::C, 1, 11, "r");
    assert_eq!(check_kmsg(&mut g, vec![deny_all.clone()]), "denied");
    assert_eq!(
        check_kmsg(&mut g, vec![deny_all.clone(), kmsg(true)]),
        "allowed"
    );
    assert_eq!(
        check_kmsg(&mut g, vec![deny_all.clone(), kmsg(true), kmsg(false)]),
        "denied"
    );
}
