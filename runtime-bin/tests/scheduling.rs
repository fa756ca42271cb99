//! process.scheduler, process.ioPriority and linux.personality: what the container's processes
//! (init and exec'd) get, seen from inside and from the host, and the refusals of bad values.
mod common;
use common::*;
use serde_json::{json, Value};

/// Whether the test can run here; runc 1.1 ignores these fields (they came with runtime-spec
/// 1.2 and runc 1.2), so only casulo is checked.
fn can_run_sched(test: &str) -> bool {
    if !can_run(test) {
        return false;
    }
    if !is_casulo() {
        eprintln!("SKIPPED {test}: runc 1.1 lacks process.scheduler, process.ioPriority and linux.personality");
        return false;
    }
    true
}

/// Fields of /proc/PID/stat, numbered as in proc(5) (1 is the pid).
fn stat_fields(stat: &str, wanted: &[usize]) -> Vec<i64> {
    // The command name may hold spaces: the fields after it start at the last ')'.
    let rest: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    wanted
        .iter()
        .map(|n| rest[n - 3].trim().parse().unwrap())
        .collect()
}

/// Priority (18), nice (19), rt_priority (40) and policy (41) of a host process.
fn host_sched(pid: i64) -> Vec<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat_fields(&stat, &[18, 19, 40, 41])
}

/// What busybox's ionice says of a host process, e.g. "idle" or "best-effort: prio 6".
fn host_ionice(pid: i64) -> String {
    let out = std::process::Command::new("/bin/busybox")
        .args(["ionice", "-p", &pid.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A running container's cgroup v1 cpu hierarchy has no real-time time unless given some; the
/// kernel then refuses SCHED_FIFO/RR in it.
fn give_realtime_time(b: &mut Bundle) {
    if std::path::Path::new("/sys/fs/cgroup/cpu/cpu.rt_runtime_us").exists() {
        b.config["linux"]["resources"]["cpu"] =
            json!({"realtimeRuntime": 10000, "realtimePeriod": 1000000});
    }
}

/// The shell prints nice and policy of itself (fields 19 and 41 of its stat).
const NICE_AND_POLICY: &str = "cut -d' ' -f19,41 /proc/$$/stat";

#[test]
fn batch_with_nice_from_inside() {
    if !can_run_sched("batch_with_nice_from_inside") {
        return;
    }
    let mut b = Bundle::new("schedbatch", &["sh", "-c", NICE_AND_POLICY]);
    b.config["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 5});
    b.save();
    let r = b.run();
    assert!(r.ok(), "{}", r.stderr);
    assert_eq!(r.stdout.trim(), "5 3", "nice 5, policy SCHED_BATCH (3)");
}

#[test]
fn idle_policy_from_inside() {
    if !can_run_sched("idle_policy_from_inside") {
        return;
    }
    let mut b = Bundle::new("schedidle", &["sh", "-c", NICE_AND_POLICY]);
    b.config["process"]["scheduler"] = json!({"policy": "SCHED_IDLE"});
    b.save();
    let r = b.run();
    assert!(r.ok(), "{}", r.stderr);
    assert_eq!(r.stdout.trim(), "0 5", "policy SCHED_IDLE (5)");
}

#[test]
fn fifo_priority_and_reset_on_fork() {
    if !can_run_sched("fifo_priority_and_reset_on_fork") {
        return;
    }
    // The shell's own rt_priority and policy, then those of a forked child (`; true` keeps the
    // shell from exec'ing cut in its place), which reset-on-fork sends back to SCHED_OTHER.
    let mut b = Bundle::new(
        "schedfifo",
        &[
            "sh",
            "-c",
            "cut -d' ' -f40,41 /proc/$$/stat; cut -d' ' -f40,41 /proc/self/stat; true",
        ],
    );
    b.config["process"]["scheduler"] = json!({"policy": "SCHED_FIFO", "priority": 10,
        "flags": ["SCHED_FLAG_RESET_ON_FORK"]});
    // The user's capabilities need not include CAP_SYS_NICE: the init sets the policy first.
    b.config["process"]["capabilities"] = json!({"bounding": [], "effective": [], "permitted": []});
    give_realtime_time(&mut b);
    b.save();
    let r = b.run();
    assert!(r.ok(), "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(
        lines,
        ["10 1", "0 0"],
        "FIFO 10 for the shell, OTHER for its child"
    );
}

#[test]
fn io_priority_from_inside() {
    if !can_run_sched("io_priority_from_inside") {
        return;
    }
    for (class, prio, want) in [
        ("IOPRIO_CLASS_IDLE", 0, "idle"),
        ("IOPRIO_CLASS_BE", 6, "best-effort: prio 6"),
        ("IOPRIO_CLASS_RT", 3, "realtime: prio 3"),
    ] {
        let mut b = Bundle::new("ioprio", &["sh", "-c", "ionice -p $$"]);
        b.config["process"]["ioPriority"] = json!({"class": class, "priority": prio});
        b.save();
        let r = b.run();
        assert!(r.ok(), "{class}: {}", r.stderr);
        assert_eq!(r.stdout.trim(), want, "{class} {prio}");
    }
}

#[test]
fn linux32_personality() {
    if !can_run_sched("linux32_personality") {
        return;
    }
    if std::env::consts::ARCH != "x86_64" {
        eprintln!(
            "SKIPPED linux32_personality: the expected machine name is known for x86_64 only"
        );
        return;
    }
    let mut b = Bundle::new("pers32", &["sh", "-c", "uname -m; sleep 100"]);
    b.config["linux"]["personality"] = json!({"domain": "LINUX32"});
    b.save();
    let out = b.dir.join("run.out");
    let mut cmd = b.cmd(&[
        "run",
        "--detach",
        "--bundle",
        b.dir.to_str().unwrap(),
        &b.id,
    ]);
    cmd.stdout(std::fs::File::create(&out).unwrap());
    let st = cmd.status().unwrap();
    assert!(st.success());
    // exec'd processes get the container's personality too.
    let r = b.rt(&["exec", &b.id, "uname", "-m"]);
    assert!(r.ok(), "{}", r.stderr);
    assert_eq!(r.stdout.trim(), "i686");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::fs::read_to_string(&out).unwrap_or_default().is_empty()
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(std::fs::read_to_string(&out).unwrap().trim(), "i686");

    let mut plain = Bundle::new("pers64", &["uname", "-m"]);
    plain.config["linux"]["personality"] = json!({"domain": "LINUX", "flags": []});
    plain.save();
    let r = plain.run();
    assert!(r.ok(), "{}", r.stderr);
    assert_eq!(r.stdout.trim(), "x86_64");
}

/// Before `start`, the waiting init already has the scheduling the config asks for; the user
/// program keeps it. Both seen from the host.
#[test]
fn created_and_started_init_seen_from_the_host() {
    if !can_run_sched("created_and_started_init_seen_from_the_host") {
        return;
    }
    let mut b = Bundle::new("schedhost", &["sleep", "100"]);
    b.config["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 7});
    b.config["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 7});
    b.save();
    let r = b.create();
    assert!(r.ok(), "{}", r.stderr);
    let pid = b.state().unwrap()["pid"].as_i64().unwrap();
    let created = host_sched(pid);
    assert_eq!(
        (created[1], created[3]),
        (7, 3),
        "created init: nice 7, SCHED_BATCH"
    );
    assert_eq!(host_ionice(pid), "best-effort: prio 7");
    assert!(b.rt(&["start", &b.id]).ok());
    assert!(b.wait_status("running"));
    let after = host_sched(pid);
    assert_eq!(
        (after[1], after[3]),
        (7, 3),
        "the user program: nice 7, SCHED_BATCH"
    );
    assert_eq!(host_ionice(pid), "best-effort: prio 7");
}

#[test]
fn exec_processes_get_theirs_or_the_containers() {
    if !can_run_sched("exec_processes_get_theirs_or_the_containers") {
        return;
    }
    let mut b = Bundle::new("schedexec", &["sleep", "100"]);
    b.config["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 3});
    b.config["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0});
    b.save();
    assert!(b.run_detached().ok());
    let show = format!("{NICE_AND_POLICY}; ionice -p $$");

    // The container's process with new args: the container's settings.
    let r = b.rt(&["exec", &b.id, "sh", "-c", &show]);
    assert!(r.ok(), "{}", r.stderr);
    assert_eq!(r.stdout.lines().collect::<Vec<_>>(), ["3 3", "idle"]);

    // A process.json with its own.
    let mut p: Value = b.config["process"].clone();
    p["args"] = json!(["sh", "-c", show]);
    p["scheduler"] = json!({"policy": "SCHED_IDLE"});
    p["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 2});
    let pj = b.dir.join("process.json");
    std::fs::write(&pj, serde_json::to_vec(&p).unwrap()).unwrap();
    let r = b.rt(&["exec", "--process", pj.to_str().unwrap(), &b.id]);
    assert!(r.ok(), "{}", r.stderr);
    assert_eq!(
        r.stdout.lines().collect::<Vec<_>>(),
        ["0 5", "best-effort: prio 2"]
    );

    // A process.json without them: the container's, as with runc.
    let obj = p.as_object_mut().unwrap();
    obj.remove("scheduler");
    obj.remove("ioPriority");
    std::fs::write(&pj, serde_json::to_vec(&p).unwrap()).unwrap();
    let r = b.rt(&["exec", "--process", pj.to_str().unwrap(), &b.id]);
    assert!(r.ok(), "{}", r.stderr);
    assert_eq!(r.stdout.lines().collect::<Vec<_>>(), ["3 3", "idle"]);

    // A bad one in process.json: refused, naming the field, with the status of a failed exec
    // (255, as runc); the container runs on.
    p["scheduler"] = json!({"policy": "SCHED_RR", "priority": 0});
    std::fs::write(&pj, serde_json::to_vec(&p).unwrap()).unwrap();
    let r = b.rt(&["exec", "--process", pj.to_str().unwrap(), &b.id]);
    assert_eq!(r.status, Some(255), "{}", r.stderr);
    assert!(
        r.stderr.contains("process.scheduler.priority"),
        "{}",
        r.stderr
    );
    p["scheduler"] = json!({"policy": "SCHED_SOON"});
    std::fs::write(&pj, serde_json::to_vec(&p).unwrap()).unwrap();
    let r = b.rt(&["exec", "--process", pj.to_str().unwrap(), &b.id]);
    assert_eq!(r.status, Some(255), "{}", r.stderr);
    assert!(
        r.stderr.contains("process.scheduler.policy"),
        "{}",
        r.stderr
    );
    assert_eq!(b.status().as_deref(), Some("running"));
}

/// `run` with `edit` applied to the config fails with status 1, a message that contains
/// `field`, and (checked when the bundle drops) nothing left behind.
fn refused(name: &str, field: &str, edit: impl FnOnce(&mut Value)) {
    let mut b = Bundle::new(name, &["true"]);
    edit(&mut b.config);
    b.save();
    let r = b.run();
    assert_eq!(r.status, Some(1), "{field}: {} / {}", r.stdout, r.stderr);
    assert!(r.stderr.contains(field), "{field}: {}", r.stderr);
}

#[test]
fn bad_values_are_refused_by_field() {
    if !can_run_sched("bad_values_are_refused_by_field") {
        return;
    }
    refused("badprio", "process.scheduler.priority", |c| {
        c["process"]["scheduler"] = json!({"policy": "SCHED_FIFO", "priority": 200});
    });
    refused("badpolicy", "process.scheduler.policy", |c| {
        c["process"]["scheduler"] = json!({"policy": "SCHED_SOMETIMES"});
    });
    refused("isopolicy", "SCHED_ISO", |c| {
        c["process"]["scheduler"] = json!({"policy": "SCHED_ISO"});
    });
    refused("badnice", "process.scheduler.nice", |c| {
        c["process"]["scheduler"] = json!({"policy": "SCHED_OTHER", "nice": 40});
    });
    refused("badflag", "process.scheduler.flags[0]", |c| {
        c["process"]["scheduler"] = json!({"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_FAST"]});
    });
    refused("badioclass", "process.ioPriority.class", |c| {
        c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BOGUS", "priority": 1});
    });
    refused("badiolevel", "process.ioPriority.priority", |c| {
        c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 9});
    });
    refused("baddomain", "linux.personality.domain", |c| {
        c["linux"]["personality"] = json!({"domain": "LINUX64"});
    });
    refused("badpflags", "linux.personality.flags", |c| {
        c["linux"]["personality"] = json!({"domain": "LINUX", "flags": ["ADDR_NO_RANDOMIZE"]});
    });
}

/// A value only the kernel refuses (a SCHED_DEADLINE period below its minimum of 100 µs)
/// fails in the init: the error names the field and the errno, and create undoes everything.
#[test]
fn kernel_refusal_in_the_init_is_reported_and_undone() {
    if !can_run_sched("kernel_refusal_in_the_init_is_reported_and_undone") {
        return;
    }
    let min_us = std::fs::read_to_string("/proc/sys/kernel/sched_deadline_period_min_us")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok());
    if min_us.is_none_or(|us| us < 3) {
        eprintln!("SKIPPED kernel_refusal_in_the_init_is_reported_and_undone: this kernel's minimum SCHED_DEADLINE period is not above 2 µs");
        return;
    }
    let mut b = Bundle::new("schedkernel", &["true"]);
    b.config["process"]["scheduler"] = json!({"policy": "SCHED_DEADLINE",
        "runtime": 1024, "deadline": 1500, "period": 2000});
    b.save();
    let r = b.run();
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    assert!(
        r.stderr.contains("process.scheduler") && r.stderr.contains("EINVAL"),
        "{}",
        r.stderr
    );
}
