//! Behaviour of the command line, the lifecycle, cgroups and devices that runc's integration
//! suite and the runtime-spec validation suite check, kept here so that a regression shows
//! without those suites: device-cgroup rules versus `linux.devices`, the fds a created init
//! holds, refused cgroups, and runc's words and exit codes where clients match them.
mod common;
use common::*;

use std::path::Path;
use std::time::Duration;

use serde_json::json;

/// A bundle whose cgroup is `/<id>`, so that the cleanup check finds a cgroup left behind.
fn bundle(name: &str, args: &[&str]) -> Bundle {
    let mut b = Bundle::new(name, args);
    if !systemd_cgroup() {
        b.config["linux"]["cgroupsPath"] = format!("/{}", b.id).into();
    }
    b.save();
    b
}

fn add_caps(b: &mut Bundle, caps: &[&str]) {
    for set in ["bounding", "effective", "permitted"] {
        for c in caps {
            b.config["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push((*c).into());
        }
    }
    b.save();
}

/// A node of `linux.devices` gets no device-cgroup rule of its own: `resources.devices` alone
/// decides access, so a config that creates /dev/kmsg but denies every device cannot open it
/// (runc's dev.bats "device cgroup deny"). A FIFO there is a valid node that needs no rule
/// (runtime-tools' linux_devices).
#[test]
fn linux_devices_are_made_but_not_allowed() {
    if !can_run("linux_devices_are_made_but_not_allowed") {
        return;
    }
    let script = "ls -l /dev/kmsg /dev/fifo; \
                  if head -c0 /dev/kmsg 2>&1 | grep -q 'not permitted'; then echo denied; \
                  else echo allowed; fi";
    let mut b = bundle("devdeny", &["sh", "-c", script]);
    b.config["linux"]["resources"]["devices"] = json!([{"allow": false, "access": "rwm"}]);
    b.config["linux"]["devices"] = json!([
        {"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11},
        {"path": "/dev/fifo", "type": "p", "fileMode": 432}
    ]);
    add_caps(&mut b, &["CAP_SYSLOG"]);
    let r = b.run();
    assert!(r.ok(), "run: {:?} {}", r.status, r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with('c') && l.ends_with("/dev/kmsg")),
        "no /dev/kmsg node: {}",
        r.stdout
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("prw-rw----") && l.ends_with("/dev/fifo")),
        "no /dev/fifo FIFO: {}",
        r.stdout
    );
    assert_eq!(lines.last().copied(), Some("denied"), "{}", r.stdout);
}

/// The fds of the caller of create (beyond stdio and --preserve-fds) are gone from the init as
/// soon as it starts, not only at its execve: a created container holds no file of its
/// caller's (runc's create.bats "detect fd leak"). The same for an exec'd process.
#[test]
fn a_created_init_holds_none_of_its_callers_fds() {
    if !can_run("a_created_init_holds_none_of_its_callers_fds") {
        return;
    }
    let b = bundle("fdleak", &["sleep", "1000"]);
    let marker = b.dir.join("caller-file");
    std::fs::write(&marker, "").unwrap();
    let mut cmd = b.shell("create --bundle \"$2\" \"$3\" 7>>\"$4\" 9<\"$4\"");
    cmd.arg(&b.dir).arg(&b.id).arg(&marker);
    let r = output_within(cmd, Duration::from_secs(20));
    assert!(r.ok(), "create: {}", r.stderr);
    let pid = b.state().unwrap()["pid"].as_i64().unwrap();
    let held = |pid: i64| -> Vec<String> {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read_link(e.path()).ok())
            .map(|t| t.to_string_lossy().into_owned())
            .filter(|t| t.contains("caller-file"))
            .collect()
    };
    assert!(held(pid).is_empty(), "the init holds {:?}", held(pid));
    let r = b.rt(&["start", &b.id]);
    assert!(r.ok(), "start: {}", r.stderr);

    // exec --detach: the process's pid is in its pid file; it holds nothing of its caller.
    let pid_file = b.dir.join("exec.pid");
    let mut cmd = b.shell("exec -d --pid-file \"$2\" \"$3\" sleep 1000 7>>\"$4\"");
    cmd.arg(&pid_file).arg(&b.id).arg(&marker);
    let r = output_within(cmd, Duration::from_secs(20));
    assert!(r.ok(), "exec: {}", r.stderr);
    let pid: i64 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        held(pid).is_empty(),
        "the exec'd process holds {:?}",
        held(pid)
    );
}

/// The freezer directory of cgroup `/<name>`: v1's freezer hierarchy, or cgroup2.
fn freezer(name: &str) -> (std::path::PathBuf, &'static str, &'static str) {
    let v1 = Path::new("/sys/fs/cgroup/freezer");
    if v1.is_dir() {
        (v1.join(name), "freezer.state", "FROZEN")
    } else {
        (Path::new("/sys/fs/cgroup").join(name), "cgroup.freeze", "1")
    }
}

/// A cgroup that is frozen before the container is made is refused at once (runc's cgroups.bats
/// "should refuse pre-existing frozen cgroup"): the init would stop in it, create would never
/// return, and SIGKILL could not remove the init until the cgroup is thawed.
#[test]
fn create_refuses_a_frozen_cgroup() {
    if !can_run("create_refuses_a_frozen_cgroup") || systemd_cgroup() {
        return;
    }
    let b = bundle("frozen", &["sleep", "1000"]);
    let (dir, file, frozen) = freezer(&b.id);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(file), frozen).unwrap();
    let run = b.run_detached();
    let create = b.create();
    // Thaw and remove before asserting, so that a failure leaves no frozen cgroup behind.
    let _ = b.rt(&["delete", "--force", &b.id]);
    let _ = std::fs::write(dir.join(file), if frozen == "1" { "0" } else { "THAWED" });
    std::fs::remove_dir(&dir).unwrap();
    for (what, r) in [("run -d", run), ("create", create)] {
        assert_eq!(r.status, Some(1), "{what}: {}", r.stderr);
        assert!(
            r.stderr.contains("container's cgroup unexpectedly frozen"),
            "{what}: {}",
            r.stderr
        );
    }
    assert!(!b.root.join(&b.id).exists(), "a state dir was left");
}

/// A cgroup that already holds another container's processes is refused: deleting the new
/// container would kill them (runc's cgroups.bats "should error for a non-empty cgroup").
#[test]
fn create_refuses_a_cgroup_with_processes() {
    if !can_run("create_refuses_a_cgroup_with_processes") || systemd_cgroup() {
        return;
    }
    let first = bundle("cgfull", &["sleep", "1000"]);
    let r = first.run_detached();
    assert!(r.ok(), "{}", r.stderr);
    let mut second = Bundle::new("cgfull2", &["sleep", "1000"]);
    second.config["linux"]["cgroupsPath"] = first.config["linux"]["cgroupsPath"].clone();
    second.save();
    for r in [second.run_detached(), second.create()] {
        assert_eq!(r.status, Some(1), "{}", r.stderr);
        assert!(
            r.stderr
                .contains("container's cgroup is not empty: 1 process(es) found"),
            "{}",
            r.stderr
        );
    }
    assert_eq!(first.status().as_deref(), Some("running"));
    assert!(
        !second.root.join(&second.id).exists(),
        "a state dir was left"
    );
}

/// A failed exec exits 255 with runc's words where clients match them (exec.bats "exit
/// codes", "--cgroup sub-cgroups", cgroups.bats "exec should refuse a paused container"); the
/// status of the process itself passes through.
#[test]
fn exec_failures_exit_255_with_runcs_words() {
    if !can_run("exec_failures_exit_255_with_runcs_words") {
        return;
    }
    let b = bundle("exec255", &["sleep", "1000"]);
    let r = b.run_detached();
    assert!(r.ok(), "{}", r.stderr);
    let r = b.rt(&["exec", &b.id, "sh", "-c", "exit 42"]);
    assert_eq!(r.status, Some(42), "{}", r.stderr);
    let r = b.rt(&["exec", "no-such-container", "true"]);
    assert_eq!(r.status, Some(255), "{}", r.stderr);
    let r = b.rt(&["exec", "--pid-file", "/non-existent/dir", &b.id, "true"]);
    assert_eq!(r.status, Some(255), "{}", r.stderr);
    for (arg, words) in [
        ("..", "bad sub cgroup path"),
        ("a/../..", "bad sub cgroup path"),
        ("nonexistent", " adding pid "),
        ("pids:nonexistent", "o such file or directory"),
        ("whaaat:/", "unknown controller "),
    ] {
        let r = b.rt(&["exec", "--cgroup", arg, &b.id, "true"]);
        assert_eq!(r.status, Some(255), "--cgroup {arg}: {}", r.stderr);
        assert!(r.stderr.contains(words), "--cgroup {arg}: {}", r.stderr);
    }
    // `/` is the container's own cgroup.
    let r = b.rt(&["exec", "--cgroup", "/", &b.id, "true"]);
    assert!(r.ok(), "--cgroup /: {}", r.stderr);
    let r = b.rt(&["pause", &b.id]);
    assert!(r.ok(), "{}", r.stderr);
    let r = b.rt(&["exec", &b.id, "true"]);
    let _ = b.rt(&["resume", &b.id]);
    assert_eq!(r.status, Some(255), "{}", r.stderr);
    assert!(
        r.stderr.contains("cannot exec in a paused container"),
        "{}",
        r.stderr
    );
}

/// `RUNTIME ARGS` without a container.
fn bare(args: &[&str]) -> Run {
    let mut c = std::process::Command::new(runtime());
    c.args(args);
    output_within(c, Duration::from_secs(20))
}

/// The help starts with a NAME section naming the program (and the command), `-v` prints
/// the version, the commit and the spec version, and an unknown command is "No help topic"
/// (runc's help.bats and version.bats; scripts read these lines).
#[test]
fn help_and_version_as_runc_lays_them_out() {
    let prog = runtime()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    for flag in ["-h", "--help"] {
        let r = bare(&[flag]);
        assert!(r.ok(), "{flag}: {}", r.stderr);
        let lines: Vec<&str> = r.stdout.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(lines[0], "NAME:", "{}", r.stdout);
        assert!(
            lines[1].contains(&format!("{prog} - Open Container Initiative runtime")),
            "{}",
            r.stdout
        );
        for cmd in [
            "create",
            "exec",
            "update",
            "checkpoint",
            "restore",
            "features",
        ] {
            let r = bare(&[cmd, flag]);
            assert!(r.ok(), "{cmd} {flag}: {}", r.stderr);
            let lines: Vec<&str> = r.stdout.lines().filter(|l| !l.is_empty()).collect();
            assert_eq!(lines[0], "NAME:", "{cmd}: {}", r.stdout);
            assert!(
                lines[1].trim_start().starts_with(&format!("{prog} {cmd}")),
                "{cmd}: {}",
                r.stdout
            );
        }
    }
    let r = bare(&["-v"]);
    assert!(r.ok(), "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(
        lines[0].starts_with(&format!("{prog} version ")),
        "{}",
        r.stdout
    );
    assert!(lines[1].starts_with("commit:"), "{}", r.stdout);
    assert!(lines[2].starts_with("spec: 1."), "{}", r.stdout);
    for args in [&["foo", "-h"][..], &["help", "foo"], &["foo"]] {
        let r = bare(args);
        assert_ne!(r.status, Some(0), "{args:?}");
        assert!(
            r.stderr.contains("No help topic for 'foo'"),
            "{args:?}: {}",
            r.stderr
        );
    }
    // checkpoint takes runc's flags: with them, only the container is missing.
    let r = bare(&[
        "checkpoint",
        "--image-path",
        "/tmp/x",
        "--leave-running",
        "c1",
    ]);
    assert_eq!(r.status, Some(1));
    assert!(r.stderr.contains("does not exist"), "{}", r.stderr);
}

/// `--debug` says the steps of the child in the words runc's debug.bats and exec.bats look
/// for, on stderr or in --log.
#[test]
fn debug_lines_name_the_steps_of_the_child() {
    if !can_run("debug_lines_name_the_steps_of_the_child") {
        return;
    }
    let b = bundle("debug", &["true"]);
    let r = b.rt(&["--debug", "run", &b.id]);
    assert!(r.ok(), "{}", r.stderr);
    for words in [
        "level=debug",
        "nsexec container setup",
        "child process in init()",
        "init: closing the pipe to signal completion",
    ] {
        assert!(r.stderr.contains(words), "no {words:?} in {}", r.stderr);
    }
    let b = bundle("debugexec", &["sleep", "1000"]);
    assert!(b.run_detached().ok());
    let log = b.dir.join("debug.json");
    let r = b.rt(&[
        "--debug",
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "exec",
        &b.id,
        "true",
    ]);
    assert!(r.ok(), "{}", r.stderr);
    assert!(!r.stderr.contains("debug"), "{}", r.stderr);
    let text = std::fs::read_to_string(&log).unwrap();
    for words in [
        r#""level":"debug""#,
        "nsexec container setup",
        "child process in init()",
        "setns_init: about to exec",
    ] {
        assert!(text.contains(words), "no {words:?} in {text}");
    }
}

/// `kill ID 0` checks that the container runs (an error, "container not running", once it
/// stopped; none with --all); SIGKILL of a container without its own pid namespace reaches
/// every process of its cgroup, even once the init is gone (runc's kill.bats).
#[test]
fn kill_zero_and_kill_without_a_pid_namespace() {
    if !can_run("kill_zero_and_kill_without_a_pid_namespace") {
        return;
    }
    let b = bundle("kill0", &["sleep", "1000"]);
    assert!(b.run_detached().ok());
    assert!(b.rt(&["kill", &b.id, "0"]).ok());
    assert!(b.rt(&["kill", &b.id, "KILL"]).ok());
    assert!(b.wait_status("stopped"));
    let r = b.rt(&["kill", &b.id, "0"]);
    assert_ne!(r.status, Some(0));
    assert!(r.stderr.contains("container not running"), "{}", r.stderr);
    assert!(b.rt(&["kill", "-a", &b.id, "0"]).ok());

    let mut b = bundle("killhost", &["sleep", "1000"]);
    b.without_namespace("pid");
    assert!(b.run_detached().ok());
    let init = b.state().unwrap()["pid"].as_i64().unwrap() as i32;
    let other = b.exec_detached(&["sleep", "1000"]);
    // The init goes first; the other process stays, and kill still reaches it.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(init), nix::sys::signal::SIGKILL).unwrap();
    assert!(b.wait_status("stopped"));
    let r = b.rt(&["kill", &b.id, "KILL"]);
    assert!(r.ok(), "{}", r.stderr);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{other}")).exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let stat = std::fs::read_to_string(format!("/proc/{other}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z "),
        "pid {other} outlived kill: {stat}"
    );
}

/// `list` with a --root that does not exist fails; under the default root that does not
/// exist it lists nothing (runc's list.bats).
#[test]
fn list_of_a_missing_root() {
    let r = bare(&["--root", "/nonexistent-casulo-root/state", "list"]);
    assert_eq!(r.status, Some(1), "{}", r.stdout);
    assert!(
        r.stderr.contains("/nonexistent-casulo-root"),
        "{}",
        r.stderr
    );
}

/// `update` takes negative numbers as values (`--cpu-quota -1` removes the quota), a pids
/// limit of 0 means 1, and cpu.idle is set where the kernel has it, v1 included (runc's
/// update.bats and cgroups.bats).
#[test]
fn update_negative_values_pids_zero_and_cpu_idle() {
    if !can_run("update_negative_values_pids_zero_and_cpu_idle") || systemd_cgroup() {
        return;
    }
    let mut b = bundle("updneg", &["sleep", "1000"]);
    b.config["linux"]["resources"] =
        json!({"cpu": {"quota": 500000, "period": 1000000}, "pids": {"limit": 0}});
    b.save();
    let r = b.run_detached();
    assert!(r.ok(), "{}", r.stderr);
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let dir = |ctrl: &str| {
        if v2 {
            Path::new("/sys/fs/cgroup").join(&b.id)
        } else {
            Path::new("/sys/fs/cgroup").join(ctrl).join(&b.id)
        }
    };
    let read = |ctrl: &str, f: &str| {
        std::fs::read_to_string(dir(ctrl).join(f))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    assert_eq!(read("pids", "pids.max"), "1");
    let r = b.rt(&["update", "--cpu-quota", "-1", &b.id]);
    assert!(r.ok(), "{}", r.stderr);
    if v2 {
        assert!(
            read("cpu", "cpu.max").starts_with("max "),
            "{}",
            read("cpu", "cpu.max")
        );
    } else {
        assert_eq!(read("cpu", "cpu.cfs_quota_us"), "-1");
    }
    if dir("cpu").join("cpu.idle").exists() {
        let r = b.rt(&["update", "--cpu-idle", "1", &b.id]);
        assert!(r.ok(), "{}", r.stderr);
        assert_eq!(read("cpu", "cpu.idle"), "1");
    }
}
