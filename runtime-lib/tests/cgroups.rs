//! Root integration tests for the cgroup layer: real cgroups on this host, each test with its
//! own uniquely named cgroup and a sleeping child, removed by a guard even when a test fails.
use std::path::{Path, PathBuf};

mod cgroup_common;
use cgroup_common::*;

use casulo::__private::cgroups::{self, default_allowed_devices, host_mode, CgroupError, Mode};
use nix::sys::signal::Signal;
use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxHugepageLimitBuilder,
    LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResources, LinuxResourcesBuilder,
};

#[test]
fn cgroups_lifecycle_absolute_path() {
    if !can_run("cgroups_lifecycle_absolute_path") {
        return;
    }
    let name = unique("abs");
    let cfg = cgroups::resolve(Some(&format!("/{name}")), "ignored-id", false).unwrap();
    let mut g = Guard::new(&cfg);
    let mode = host_mode();
    assert!(!g.dirs.is_empty());
    for d in &g.dirs {
        assert!(
            d.ends_with(&name),
            "{} does not end with {name}",
            d.display()
        );
        assert!(!d.exists(), "{} exists before apply", d.display());
    }

    let pid = g.spawn_sleeper();
    g.mgr.apply(pid).expect("apply");
    for d in &g.dirs {
        assert!(d.is_dir(), "{} not created", d.display());
        let procs = read(d, "cgroup.procs");
        assert!(
            procs.lines().any(|l| l.trim() == pid.to_string()),
            "pid {pid} not in {}/cgroup.procs: {procs:?}",
            d.display()
        );
    }
    // The kernel's view agrees: every hierarchy of the child names our cgroup.
    for (ctrls, path) in proc_cgroup(pid) {
        assert_eq!(path, format!("/{name}"), "hierarchy {ctrls:?}");
    }
    if mode == Mode::Hybrid {
        assert!(g
            .dirs
            .iter()
            .any(|d| d.starts_with("/sys/fs/cgroup/unified")));
    }

    let resources: LinuxResources = LinuxResourcesBuilder::default()
        .pids(LinuxPidsBuilder::default().limit(17).build().unwrap())
        .memory(
            LinuxMemoryBuilder::default()
                .limit(64 * 1024 * 1024)
                .build()
                .unwrap(),
        )
        .cpu(
            LinuxCpuBuilder::default()
                .shares(512u64)
                .quota(50_000i64)
                .period(100_000u64)
                .build()
                .unwrap(),
        )
        .devices(vec![
            LinuxDeviceCgroupBuilder::default()
                .allow(false)
                .access("rwm")
                .build()
                .unwrap(),
            device_rule(true, LinuxDeviceType::C, 4, 64, "rw"),
        ])
        .build()
        .unwrap();
    g.mgr.set(&resources).expect("set");

    if mode == Mode::Unified {
        let d = dir_in(&g.dirs, "");
        assert_eq!(read(&d, "pids.max").trim(), "17");
        assert_eq!(
            read(&d, "memory.max").trim(),
            (64 * 1024 * 1024).to_string()
        );
        assert_eq!(read(&d, "cpu.max").trim(), "50000 100000");
    } else {
        assert_eq!(read(&dir_in(&g.dirs, "pids"), "pids.max").trim(), "17");
        assert_eq!(
            read(&dir_in(&g.dirs, "memory"), "memory.limit_in_bytes").trim(),
            (64 * 1024 * 1024).to_string()
        );
        let cpu = dir_in(&g.dirs, "cpu");
        assert_eq!(read(&cpu, "cpu.shares").trim(), "512");
        assert_eq!(read(&cpu, "cpu.cfs_quota_us").trim(), "50000");
        assert_eq!(read(&cpu, "cpu.cfs_period_us").trim(), "100000");
        let list = read(&dir_in(&g.dirs, "devices"), "devices.list");
        let lines: Vec<&str> = list.lines().collect();
        assert!(
            !lines.contains(&"a *:* rwm"),
            "deny-all not applied: {list}"
        );
        for want in [
            "c 4:64 rw",
            "c 1:3 rwm",
            "c *:* m",
            "b *:* m",
            "c 136:* rwm",
            "c 10:200 rwm",
        ] {
            assert!(
                lines.contains(&want),
                "{want:?} missing from devices.list: {list}"
            );
        }
        assert_eq!(lines.len(), 1 + default_allowed_devices().len(), "{list}");
    }

    assert_eq!(g.mgr.pids().expect("pids"), vec![pid]);
    let second = g.spawn_sleeper();
    g.mgr.apply(second).expect("apply second");
    let mut both = vec![pid, second];
    both.sort();
    assert_eq!(g.mgr.pids().unwrap(), both);

    g.mgr.kill_all(Signal::SIGKILL).expect("kill_all");
    for c in &mut g.children {
        let status = c.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "child not killed by SIGKILL"
        );
    }
    g.children.clear();
    assert_eq!(g.mgr.pids().unwrap(), Vec::<i32>::new());

    g.mgr.destroy().expect("destroy");
    for d in &g.dirs {
        assert!(!d.exists(), "{} still exists after destroy", d.display());
    }
    // Destroying what is already gone succeeds.
    g.mgr.destroy().expect("second destroy");
}

#[test]
fn cgroups_default_path_is_relative_to_own_cgroup() {
    if !can_run("cgroups_default_path_is_relative_to_own_cgroup") {
        return;
    }
    let id = unique("rel");
    let cfg = cgroups::resolve(None, &id, false).unwrap();
    assert_eq!(cfg.path, id);
    let mut g = Guard::new(&cfg);
    let pid = g.spawn_sleeper();
    g.mgr.apply(pid).expect("apply");
    let mode = host_mode();
    let own = proc_cgroup(std::process::id() as i32);
    for (ctrls, path) in proc_cgroup(pid) {
        let own_path = &own.iter().find(|(c, _)| *c == ctrls).unwrap().1;
        let base = if ctrls.is_empty() && mode == Mode::Unified {
            Path::new(own_path)
                .parent()
                .unwrap_or(Path::new("/"))
                .to_path_buf()
        } else {
            PathBuf::from(own_path)
        };
        assert_eq!(Path::new(&path), base.join(&id), "hierarchy {ctrls:?}");
    }
    g.reap();
    g.mgr.destroy().expect("destroy");
    for d in &g.dirs {
        assert!(!d.exists(), "{} still exists after destroy", d.display());
    }
}

#[test]
fn cgroups_destroy_never_created_is_ok() {
    if !can_run("cgroups_destroy_never_created_is_ok") {
        return;
    }
    let cfg = cgroups::resolve(Some(&format!("/{}", unique("none"))), "x", false).unwrap();
    let mut mgr = cgroups::manager(&cfg).unwrap();
    mgr.destroy().expect("destroy of a missing cgroup");
    assert_eq!(mgr.pids().unwrap(), Vec::<i32>::new());
}

#[test]
fn cgroups_destroy_removes_nested_cgroups() {
    if !can_run("cgroups_destroy_removes_nested_cgroups") {
        return;
    }
    let name = unique("nest");
    let cfg = cgroups::resolve(Some(&format!("/{name}")), "x", false).unwrap();
    let mut g = Guard::new(&cfg);
    let pid = g.spawn_sleeper();
    g.mgr.apply(pid).unwrap();
    // A container may create sub-cgroups of its own.
    for d in &g.dirs {
        std::fs::create_dir(d.join("inner")).unwrap();
    }
    g.reap();
    g.mgr.destroy().expect("destroy");
    for d in &g.dirs {
        assert!(!d.exists(), "{} still exists", d.display());
    }
}

#[test]
fn cgroups_freeze_and_thaw() {
    if !can_run("cgroups_freeze_and_thaw") {
        return;
    }
    let cfg = cgroups::resolve(Some(&format!("/{}", unique("frz"))), "x", false).unwrap();
    let mut g = Guard::new(&cfg);
    // A shell that handles SIGTERM: a frozen task runs no handler until thawed. (A signal
    // whose default action kills is not a test of freezing: cgroup v2 lets fatal signals
    // through to frozen tasks.)
    // It says "ready" once the trap is set: frozen before that, SIGTERM would still be fatal.
    let mut child = std::process::Command::new("sh")
        .args([
            "-c",
            "trap 'exit 7' TERM; echo ready; while :; do sleep 0.05; done",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn sh");
    let pid = child.id() as i32;
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut ready,
    )
    .unwrap();
    assert_eq!(ready.trim(), "ready");
    g.children.push(child);
    g.mgr.apply(pid).unwrap();
    g.mgr.freeze(true).expect("freeze");
    let state = |g: &Guard| -> String {
        if host_mode() == Mode::Unified {
            read(&dir_in(&g.dirs, ""), "cgroup.freeze")
                .trim()
                .to_string()
        } else {
            read(&dir_in(&g.dirs, "freezer"), "freezer.state")
                .trim()
                .to_string()
        }
    };
    assert!(
        matches!(state(&g).as_str(), "FROZEN" | "1"),
        "{}",
        state(&g)
    );
    // Check that the task does not run by signalling it: its handler runs only after thawing.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGTERM).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(
        Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap()
                .contains(") Z"),
        "frozen task handled SIGTERM"
    );
    g.mgr.freeze(false).expect("thaw");
    assert!(
        matches!(state(&g).as_str(), "THAWED" | "0"),
        "{}",
        state(&g)
    );
    let status = g.children[0].wait().unwrap();
    assert_eq!(status.code(), Some(7), "{status:?}");
    g.children.clear();
    g.mgr.destroy().unwrap();
}

#[test]
fn cgroups_unavailable_resource_is_named() {
    if !can_run("cgroups_unavailable_resource_is_named") {
        return;
    }
    let cfg = cgroups::resolve(Some(&format!("/{}", unique("hug"))), "x", false).unwrap();
    let mut g = Guard::new(&cfg);
    let pid = g.spawn_sleeper();
    g.mgr.apply(pid).unwrap();
    let has_v1_hugetlb = Path::new("/sys/fs/cgroup/hugetlb").exists();
    if has_v1_hugetlb || host_mode() == Mode::Unified {
        eprintln!(
            "SKIP cgroups_unavailable_resource_is_named: this host has a usable hugetlb controller"
        );
        return;
    }
    let res = LinuxResourcesBuilder::default()
        .hugepage_limits(vec![LinuxHugepageLimitBuilder::default()
            .page_size("2MB")
            .limit(1i64 << 21)
            .build()
            .unwrap()])
        .build()
        .unwrap();
    match g.mgr.set(&res) {
        Err(e @ CgroupError::Unsupported { .. }) => {
            assert!(e.to_string().contains("hugepageLimits"), "{e}")
        }
        other => panic!("expected Unsupported(hugepageLimits), got {other:?}"),
    }
}

#[test]
fn cgroups_invalid_memory_swap_is_rejected() {
    if !can_run("cgroups_invalid_memory_swap_is_rejected") {
        return;
    }
    let cfg = cgroups::resolve(Some(&format!("/{}", unique("swp"))), "x", false).unwrap();
    let mut g = Guard::new(&cfg);
    let pid = g.spawn_sleeper();
    g.mgr.apply(pid).unwrap();
    // memory+swap below memory: the kernel (v1) or our conversion (v2) refuses it.
    let res = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(64i64 << 20)
                .swap(32i64 << 20)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let err = g.mgr.set(&res).expect_err("swap below limit accepted");
    assert!(err.to_string().contains("memory"), "{err}");
}

#[test]
fn cgroups_systemd_driver_without_systemd_fails_clearly() {
    if !can_run("cgroups_systemd_driver_without_systemd_fails_clearly") {
        return;
    }
    if Path::new("/run/systemd/system").exists() {
        eprintln!(
            "SKIP cgroups_systemd_driver_without_systemd_fails_clearly: systemd is running here"
        );
        return;
    }
    let cfg = cgroups::resolve(None, &unique("sd"), true).unwrap();
    match cgroups::manager(&cfg) {
        Err(e @ CgroupError::Systemd { .. }) => assert!(
            e.to_string().contains("systemd is not the init system"),
            "{e}"
        ),
        Err(e) => panic!("unexpected error kind: {e}"),
        Ok(_) => panic!("systemd manager created without systemd"),
    }
}

#[test]
fn cgroups_reopen_from_saved_paths() {
    if !can_run("cgroups_reopen_from_saved_paths") {
        return;
    }
    let id = unique("reopen");
    let cfg = cgroups::resolve(None, &id, false).unwrap();
    let mut g = Guard::new(&cfg);
    let pid = g.spawn_sleeper();
    g.mgr.apply(pid).unwrap();
    // What state.json would hold, read back by a later command.
    let saved = g.mgr.paths();
    let mut again = cgroups::manager_at(&cfg, &saved).expect("manager_at");
    assert_eq!(again.paths(), saved);
    assert_eq!(again.pids().unwrap(), vec![pid]);
    again.kill_all(Signal::SIGKILL).unwrap();
    // No waiting for the child: destroy retries while the killed process leaves.
    again
        .destroy()
        .expect("destroy through the reopened manager");
    g.reap();
    for d in &saved {
        assert!(!d.exists(), "{} still exists", d.display());
    }
}

#[test]
fn cgroups_reopen_rejects_foreign_dirs() {
    if !can_run("cgroups_reopen_rejects_foreign_dirs") {
        return;
    }
    let cfg = cgroups::resolve(None, "x", false).unwrap();
    for bad in [
        "/tmp/not-a-cgroup",
        "/sys/fs/cgroup/pids/../../../etc",
        "relative/dir",
    ] {
        match cgroups::manager_at(&cfg, &[PathBuf::from(bad)]) {
            Err(CgroupError::InvalidPath { path, .. }) => assert_eq!(path, bad),
            Err(e) => panic!("{bad}: unexpected error {e}"),
            Ok(m) => panic!("{bad}: accepted as {:?}", m.paths()),
        }
    }
}

#[test]
fn cgroups_create_then_set_then_join() {
    if !can_run("cgroups_create_then_set_then_join") {
        return;
    }
    let cfg = cgroups::resolve(Some(&format!("/{}", unique("pre"))), "x", false).unwrap();
    let mut g = Guard::new(&cfg);
    let res = LinuxResourcesBuilder::default()
        .pids(LinuxPidsBuilder::default().limit(5).build().unwrap())
        .build()
        .unwrap();
    let err = g.mgr.set(&res).expect_err("set before create accepted");
    assert!(err.to_string().contains("does not exist"), "{err}");
    g.mgr.create().expect("create");
    for d in &g.dirs {
        assert!(d.is_dir(), "{} not created", d.display());
        assert_eq!(
            read(d, "cgroup.procs").trim(),
            "",
            "{} not empty",
            d.display()
        );
    }
    g.mgr.set(&res).expect("set on the empty cgroup");
    let pids_dir = if host_mode() == Mode::Unified {
        dir_in(&g.dirs, "")
    } else {
        dir_in(&g.dirs, "pids")
    };
    assert_eq!(read(&pids_dir, "pids.max").trim(), "5");
    let pid = g.spawn_sleeper();
    g.mgr.apply(pid).expect("join");
    assert_eq!(g.mgr.pids().unwrap(), vec![pid]);
}

#[test]
fn cgroups_destroy_refuses_a_populated_cgroup() {
    if !can_run("cgroups_destroy_refuses_a_populated_cgroup") {
        return;
    }
    let cfg = cgroups::resolve(Some(&format!("/{}", unique("busy"))), "x", false).unwrap();
    let mut g = Guard::new(&cfg);
    let pid = g.spawn_sleeper();
    g.mgr.apply(pid).unwrap();
    match g.mgr.destroy() {
        Err(e @ CgroupError::Io { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("remove") && msg.contains("/sys/fs/cgroup/"),
                "{msg}"
            );
        }
        other => panic!("destroy of a populated cgroup: {other:?}"),
    }
    // Still usable: the process is still accounted for.
    assert_eq!(g.mgr.pids().unwrap(), vec![pid]);
}
