//! The commands that use cgroups, run through the binary as a client would: `update`, `pause`
//! and `resume`, `ps`, `kill --all`, limits enforced on the container (pids, devices), and
//! `delete` of a paused container. Each container has `cgroupsPath` `/<id>`, so the cleanup
//! check of the harness finds any cgroup left behind. Runs on v1/hybrid and on pure v2. With
//! `CASULO_TEST_SYSTEMD_CGROUP` the containers use the systemd driver instead, each in its
//! scope `system.slice/casulo-<id>.scope`.
mod common;
use common::*;

use std::path::{Path, PathBuf};

use serde_json::json;

fn v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// The container's cgroup directory holding controller `ctrl` (v1), or its cgroup2 directory.
fn cgroup_dir(b: &Bundle, ctrl: &str) -> PathBuf {
    let rel = if systemd_cgroup() {
        Path::new("system.slice").join(systemd_scope(&b.id))
    } else {
        PathBuf::from(&b.id)
    };
    if v2() {
        Path::new("/sys/fs/cgroup").join(rel)
    } else {
        let mount = std::fs::read_dir("/sys/fs/cgroup")
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|n| n.split(',').any(|c| c == ctrl))
            .unwrap_or_else(|| panic!("no v1 {ctrl} hierarchy"));
        Path::new("/sys/fs/cgroup").join(mount).join(rel)
    }
}

fn cg_read(b: &Bundle, ctrl: &str, file: &str) -> String {
    let p = cgroup_dir(b, ctrl).join(file);
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

/// A bundle whose cgroup is `/<id>` (or the systemd scope of the harness), with `resources`.
fn bundle(name: &str, args: &[&str], resources: serde_json::Value) -> Bundle {
    let mut b = Bundle::new(name, args);
    if !systemd_cgroup() {
        b.config["linux"]["cgroupsPath"] = format!("/{}", b.id).into();
    }
    b.config["linux"]["resources"] = resources;
    b.save();
    b
}

fn started(b: &Bundle) {
    let r = b.create();
    assert!(r.ok(), "create: {}", r.stderr);
    let r = b.rt(&["start", &b.id]);
    assert!(r.ok(), "start: {}", r.stderr);
}

#[test]
fn update_changes_a_running_container() {
    if !can_run("update_changes_a_running_container") {
        return;
    }
    let b = bundle(
        "upd",
        &["sleep", "1000"],
        json!({"pids": {"limit": 100}, "memory": {"limit": 67108864}}),
    );
    started(&b);
    assert_eq!(cg_read(&b, "pids", "pids.max"), "100");
    let r = b.rt(&[
        "update",
        "--pids-limit",
        "50",
        "--memory",
        "32m",
        "--cpu-quota",
        "20000",
        "--cpu-period",
        "100000",
        &b.id,
    ]);
    assert!(r.ok(), "update: {}", r.stderr);
    assert_eq!(cg_read(&b, "pids", "pids.max"), "50");
    if v2() {
        assert_eq!(cg_read(&b, "memory", "memory.max"), "33554432");
        assert_eq!(cg_read(&b, "cpu", "cpu.max"), "20000 100000");
    } else {
        assert_eq!(cg_read(&b, "memory", "memory.limit_in_bytes"), "33554432");
        assert_eq!(cg_read(&b, "cpu", "cpu.cfs_quota_us"), "20000");
    }
    // --resources FILE, then --resources - (stdin).
    let file = b.dir.join("res.json");
    std::fs::write(&file, r#"{"pids":{"limit":60}}"#).unwrap();
    let r = b.rt(&["update", "--resources", file.to_str().unwrap(), &b.id]);
    assert!(r.ok(), "update -r FILE: {}", r.stderr);
    assert_eq!(cg_read(&b, "pids", "pids.max"), "60");
    let mut cmd = b.cmd(&["update", "-r", "-", &b.id]);
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(br#"{"pids":{"limit":70}}"#).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "update -r -: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(cg_read(&b, "pids", "pids.max"), "70");
    // A bad value is refused with exit 1, a message naming the container, and no change.
    let r = b.rt(&["update", "--memory", "lots", &b.id]);
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    if is_casulo() {
        assert!(r.stderr.contains(&b.id), "{}", r.stderr);
    }
    assert_eq!(cg_read(&b, "pids", "pids.max"), "70");
}

#[test]
fn pause_freezes_and_resume_thaws() {
    if !can_run("pause_freezes_and_resume_thaws") {
        return;
    }
    let mut b = bundle(
        "pause",
        &[
            "sh",
            "-c",
            "i=0; while true; do i=$((i+1)); echo $i > /out/tick; sleep 0.05; done",
        ],
        json!({}),
    );
    let out = b.with_out_dir();
    started(&b);
    let tick = || std::fs::read_to_string(out.join("tick")).unwrap_or_default();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let r = b.rt(&["pause", &b.id]);
    assert!(r.ok(), "pause: {}", r.stderr);
    assert_eq!(b.status().as_deref(), Some("paused"));
    if v2() {
        assert_eq!(cg_read(&b, "freezer", "cgroup.freeze"), "1");
    } else {
        assert_eq!(cg_read(&b, "freezer", "freezer.state"), "FROZEN");
    }
    let frozen_at = tick();
    std::thread::sleep(std::time::Duration::from_millis(400));
    assert_eq!(tick(), frozen_at, "the container ran while paused");
    // Pausing twice is an error, as in runc.
    let r = b.rt(&["pause", &b.id]);
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    let r = b.rt(&["resume", &b.id]);
    assert!(r.ok(), "resume: {}", r.stderr);
    assert_eq!(b.status().as_deref(), Some("running"));
    std::thread::sleep(std::time::Duration::from_millis(400));
    assert_ne!(tick(), frozen_at, "the container did not run after resume");
    let r = b.rt(&["resume", &b.id]);
    assert_eq!(
        r.status,
        Some(1),
        "resume of a running container: {}",
        r.stderr
    );
}

#[test]
fn delete_force_of_a_paused_container_leaves_nothing() {
    if !can_run("delete_force_of_a_paused_container_leaves_nothing") {
        return;
    }
    let mut b = bundle(
        "pausedel",
        &["sh", "-c", "sleep 1000 & exec sleep 1000"],
        json!({}),
    );
    // Without a pid namespace the init's death does not take the other process along.
    let nss = b.config["linux"]["namespaces"].as_array_mut().unwrap();
    nss.retain(|n| n["type"] != "pid");
    b.save();
    started(&b);
    let r = b.rt(&["pause", &b.id]);
    assert!(r.ok(), "pause: {}", r.stderr);
    let r = b.rt(&["delete", "--force", &b.id]);
    assert!(r.ok(), "delete --force: {}", r.stderr);
    let left = b.leftovers();
    assert!(left.is_empty(), "left behind: {left:#?}");
}

#[test]
fn ps_lists_the_container_processes() {
    if !can_run("ps_lists_the_container_processes") {
        return;
    }
    let b = bundle(
        "ps",
        &["sh", "-c", "sleep 1000 & sleep 1000 & wait"],
        json!({}),
    );
    started(&b);
    let pid = b.state().unwrap()["pid"].as_i64().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let pids: Vec<i64> = loop {
        let r = b.rt(&["ps", "--format", "json", &b.id]);
        assert!(r.ok(), "ps json: {}", r.stderr);
        let pids: Vec<i64> = serde_json::from_str(r.stdout.trim()).unwrap();
        if pids.len() >= 3 || std::time::Instant::now() > deadline {
            break pids;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(pids.len(), 3, "{pids:?}");
    assert!(pids.contains(&pid), "{pids:?} lacks the init {pid}");
    let r = b.rt(&["ps", &b.id]);
    assert!(r.ok(), "ps: {}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(lines[0].contains("PID"), "{}", r.stdout);
    assert_eq!(lines.len(), 4, "{}", r.stdout);
    let sleeps = r.stdout.lines().filter(|l| l.ends_with(" sleep 1000"));
    assert_eq!(sleeps.count(), 2, "{}", r.stdout);
    // Extra arguments go to ps(1).
    let r = b.rt(&["ps", &b.id, "-o", "pid,comm"]);
    assert!(r.ok(), "ps -o: {}", r.stderr);
    assert!(r.stdout.lines().next().unwrap().contains("COMMAND"));
    assert_eq!(r.stdout.lines().count(), 4, "{}", r.stdout);
}

#[test]
fn kill_all_signals_every_process() {
    if !can_run("kill_all_signals_every_process") {
        return;
    }
    let mut b = bundle(
        "killall",
        &["sh", "-c", "sleep 1000 & sleep 1000 & exec sleep 1000"],
        json!({}),
    );
    let nss = b.config["linux"]["namespaces"].as_array_mut().unwrap();
    nss.retain(|n| n["type"] != "pid");
    b.save();
    started(&b);
    let procs = cgroup_dir(&b, "pids").join("cgroup.procs");
    let count = || {
        std::fs::read_to_string(&procs)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while count() < 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(count(), 3);
    let r = b.rt(&["kill", "--all", &b.id, "KILL"]);
    assert!(r.ok(), "kill --all: {}", r.stderr);
    assert!(b.wait_status("stopped"), "{:?}", b.status());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while count() > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(count(), 0, "processes survived kill --all");
}

#[test]
fn pids_limit_stops_forks() {
    if !can_run("pids_limit_stops_forks") {
        return;
    }
    let b = bundle(
        "pidslim",
        &[
            "sh",
            "-c",
            "n=0; for i in 1 2 3 4 5 6 7 8; do sleep 5 & n=$((n+1)); done; echo started $n",
        ],
        json!({"pids": {"limit": 4}}),
    );
    let r = b.run();
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(
        all.contains("Resource temporarily unavailable") || all.contains("can't fork"),
        "8 forks under pids.max 4 all succeeded: {all}"
    );
}

#[test]
fn devices_denied_unless_a_rule_allows() {
    if !can_run("devices_denied_unless_a_rule_allows") {
        return;
    }
    // /dev/fuse's numbers, made under the container's own /dev: not a default device, and
    // opening it needs no capability. The device cgroup answers EPERM before the driver
    // is asked (which may answer ENODEV where fuse is not loaded).
    let script = "mknod /dev/probe c 10 229 && if head -c0 /dev/probe 2>&1 | \
                  grep -q 'not permitted'; then echo denied; else echo allowed; fi";
    let cases = [
        (
            json!({"devices": [{"allow": false, "access": "rwm"}]}),
            "denied",
        ),
        (json!({}), "denied"),
        (
            json!({"devices": [{"allow": false, "access": "rwm"},
                               {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "r"}]}),
            "allowed",
        ),
        (
            json!({"devices": [{"allow": false, "access": "rwm"},
                               {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "r"},
                               {"allow": false, "type": "c", "major": 10, "minor": 229, "access": "r"}]}),
            "denied",
        ),
    ];
    for (i, (resources, want)) in cases.into_iter().enumerate() {
        let mut b = bundle(&format!("dev{i}"), &["sh", "-c", script], resources);
        for set in ["bounding", "effective", "permitted"] {
            b.config["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push("CAP_MKNOD".into());
        }
        b.save();
        let r = b.run();
        assert!(
            r.stdout.trim() == want,
            "case {i}: want {want}, got {:?} (stderr {:?})",
            r.stdout,
            r.stderr
        );
    }
}

/// The systemd driver end to end: a transient scope `casulo-<id>.scope` in `system.slice`, with
/// the limits of the config as unit properties, changed by `update`, gone after delete (the
/// unit too, so that the name is free again). Needs systemd as the init system.
#[test]
fn systemd_driver_end_to_end() {
    if !can_run("systemd_driver_end_to_end") {
        return;
    }
    if !Path::new("/run/systemd/system").is_dir() {
        eprintln!("SKIPPED systemd_driver_end_to_end: systemd is not the init system here");
        return;
    }
    let mut b = Bundle::new("sdcg", &["sleep", "1000"]);
    b.config["linux"]["cgroupsPath"] = format!("system.slice:casulo:{}", b.id).into();
    b.config["linux"]["resources"] = json!({"pids": {"limit": 33}});
    b.save();
    let scope = systemd_scope(&b.id);
    // The harness passes the flag itself under CASULO_TEST_SYSTEMD_CGROUP.
    let rt_of = |b: &Bundle, args: &[&str]| {
        let mut all = Vec::new();
        if b.cgroup_flags().is_empty() {
            all.push("--systemd-cgroup");
        }
        all.extend_from_slice(args);
        b.rt(&all)
    };
    let rt = |args: &[&str]| rt_of(&b, args);
    // `systemctl show` lists the properties in its own order: sorted here.
    let show = |props: &str| {
        let out = std::process::Command::new("systemctl")
            .args(["show", &format!("--property={props}"), &scope])
            .output()
            .unwrap();
        let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        lines.sort();
        lines.join(" ")
    };
    for round in 0..2 {
        let r = rt(&["create", "--bundle", b.dir.to_str().unwrap(), &b.id]);
        assert!(
            r.ok(),
            "create --systemd-cgroup (round {round}): {}",
            r.stderr
        );
        let pid = b.state().unwrap()["pid"].as_i64().unwrap();
        let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        assert!(
            cg.lines()
                .any(|l| l.ends_with(&format!("/system.slice/{scope}"))),
            "{cg}"
        );
        let dir = if v2() {
            Path::new("/sys/fs/cgroup/system.slice").join(&scope)
        } else {
            Path::new("/sys/fs/cgroup/pids/system.slice").join(&scope)
        };
        let pids_max = || {
            std::fs::read_to_string(dir.join("pids.max"))
                .unwrap()
                .trim()
                .to_string()
        };
        assert_eq!(pids_max(), "33");
        assert_eq!(
            show("ActiveState,Delegate,TasksMax"),
            "ActiveState=active Delegate=yes TasksMax=33"
        );
        if round == 0 {
            // A second container cannot take the unit, and its failed create leaves the
            // first one alone.
            let mut other = Bundle::new("sdcg2", &["sleep", "1000"]);
            other.config["linux"]["cgroupsPath"] = b.config["linux"]["cgroupsPath"].clone();
            other.save();
            let r = rt_of(
                &other,
                &["create", "--bundle", other.dir.to_str().unwrap(), &other.id],
            );
            assert!(!r.ok(), "a second container took the unit {scope}");
            if is_casulo() {
                // The unit is there, and so is the first container's init in its cgroup:
                // either refusal leaves the first container alone.
                assert!(
                    r.stderr.contains("already exists")
                        || r.stderr.contains("container's cgroup is not empty"),
                    "{}",
                    r.stderr
                );
            }
            drop(other);
            assert_eq!(b.status().as_deref(), Some("created"));
            assert_eq!(show("ActiveState"), "ActiveState=active");
            // update changes the unit's property, not only the file systemd would rewrite.
            let r = rt(&["update", "--pids-limit", "44", &b.id]);
            assert!(r.ok(), "update: {}", r.stderr);
            assert_eq!(pids_max(), "44");
            assert_eq!(show("TasksMax"), "TasksMax=44");
        }
        let r = rt(&["delete", "--force", &b.id]);
        assert!(r.ok(), "delete: {}", r.stderr);
        assert!(!dir.exists(), "{} left behind", dir.display());
        assert_eq!(
            show("LoadState"),
            "LoadState=not-found",
            "the unit is still loaded"
        );
    }
}

/// The init makes the device nodes only once the device cgroup is complete. On v1 the rules are
/// written one by one after a "deny all", and a node made meanwhile failed with
/// `mknod /dev/zero: EPERM` (seen under containerd, whose default spec has no cgroup mount, on
/// a loaded host). Many rules make that window wide; without the fix, about one run in ten
/// failed here.
#[test]
fn device_nodes_are_made_after_the_device_rules_are_written() {
    if !can_run("device_nodes_are_made_after_the_device_rules_are_written") {
        return;
    }
    let mut rules = vec![json!({"allow": false, "access": "rwm"})];
    for minor in 0..400 {
        rules
            .push(json!({"allow": true, "type": "c", "major": 240, "minor": minor, "access": "r"}));
    }
    let mut b = bundle(
        "devorder",
        &["sh", "-c", "head -c1 /dev/zero | od -An -c | tr -d ' '"],
        json!({ "devices": rules }),
    );
    // No cgroup mount, as in containerd's default spec: the init waits for its cgroup before
    // that mount, and so would not race.
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["type"] != "cgroup");
    b.save();
    for i in 0..20 {
        let r = b.run();
        assert!(
            r.ok() && r.stdout.trim() == "\\0",
            "run {i}: {:?}, stdout {:?}, stderr {:?}",
            r.status,
            r.stdout,
            r.stderr
        );
    }
}

/// When the init fails while the runtime is still setting up its cgroup, the error names the
/// init's cause, not the runtime's next step finding the init gone ("sync channel: the other
/// side closed it"): containerd shows this last error line to the user.
#[test]
fn an_init_failure_during_cgroup_setup_is_reported_with_its_cause() {
    if !can_run("an_init_failure_during_cgroup_setup_is_reported_with_its_cause") {
        return;
    }
    let mut rules = vec![json!({"allow": false, "access": "rwm"})];
    for minor in 0..200 {
        rules
            .push(json!({"allow": true, "type": "c", "major": 240, "minor": minor, "access": "r"}));
    }
    let mut b = bundle("initfail", &["true"], json!({ "devices": rules }));
    // Only the kernel can refuse this, in the init, at its first mount.
    let bad = json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                     "options": ["size=not-a-size"]});
    b.config["mounts"].as_array_mut().unwrap().insert(0, bad);
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["type"] != "cgroup");
    b.save();
    for i in 0..5 {
        let r = b.run();
        assert_eq!(r.status, Some(1), "run {i}: {}", r.stderr);
        assert!(
            r.stderr.contains("/tmp") && !r.stderr.contains("other side closed"),
            "run {i}: the init's cause is lost: {}",
            r.stderr
        );
    }
}

/// The init is in the container's cgroup in every hierarchy once create returns, in both
/// ways it gets there: moved by the runtime, and (cgroup v1, no user namespace) joining by
/// itself through `tasks`. And it got there after the limits were written: its first
/// process count is already bounded.
#[test]
fn the_init_is_in_every_hierarchy_of_its_cgroup_after_create() {
    // casulo's own state.json names the directories.
    if !can_run("the_init_is_in_every_hierarchy_of_its_cgroup_after_create") || !is_casulo() {
        return;
    }
    let b = bundle("cgjoin", &["sleep", "100"], json!({"pids": {"limit": 7}}));
    let r = b.create();
    assert!(r.ok(), "create: {}", r.stderr);
    let pid = b.state().unwrap()["pid"].as_i64().unwrap();
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.root.join(&b.id).join("state.json")).unwrap())
            .unwrap();
    let dirs = state["cgroupPaths"].as_array().expect("cgroupPaths");
    assert!(!dirs.is_empty(), "{state}");
    for d in dirs {
        let procs = Path::new(d.as_str().unwrap()).join("cgroup.procs");
        let text = std::fs::read_to_string(&procs).unwrap();
        assert!(
            text.lines().any(|l| l.trim() == pid.to_string()),
            "{}: {text:?} lacks the init {pid}",
            procs.display()
        );
    }
    assert_eq!(cg_read(&b, "pids", "pids.max"), "7");
    // A process exec'd into it is in the init's cgroup in every hierarchy too (it joins the
    // v1 ones by itself as well).
    let r = b.rt(&["start", &b.id]);
    assert!(r.ok(), "start: {}", r.stderr);
    let e = b.rt(&[
        "exec",
        &b.id,
        "sh",
        "-c",
        "cat /proc/self/cgroup; echo --; cat /proc/1/cgroup",
    ]);
    assert!(e.ok(), "exec: {}", e.stderr);
    let (own, init) = e.stdout.split_once("--\n").expect("two lists");
    assert_eq!(own, init, "the exec'd process and the init differ");
    assert!(b.rt(&["delete", "--force", &b.id]).ok());
}
