//! Process setup as runc's integration suite expects it, each case for a difference that suite
//! found: the terminal (no `\r` added to the output of a pty the runtime proxies, the pty
//! owned by the process's user), the environment (`HOME` from the container's /etc/passwd,
//! one value per name), `exec --process` without `user`, a cwd only root can enter,
//! capability names the runtime does not know, `exec --cap` spellings, the hooks (their place
//! in the error, the startContainer hooks' environment and seccomp filter, the
//! createContainer hooks' working directory), time offsets in a user namespace, the CPU
//! affinity of the container's processes (`process.execCPUAffinity`, and the reset of the
//! runtime's own) and seccomp (the filter flags, an agent that is not there).
mod common;

use common::{can_run, cap_field, fails_cleanly, is_casulo, output_within, runtime, Bundle};
use serde_json::json;

/// The pty output of a foreground `run` or `exec -t` arrives as the program wrote it: `\n`,
/// not `\r\n`.
#[test]
fn terminal_output_of_run_and_exec_keeps_newlines() {
    if !can_run("terminal_output_of_run_and_exec_keeps_newlines") {
        return;
    }
    if !is_casulo() {
        // runc relays a terminal only when it has one itself (it opens /dev/tty).
        eprintln!("SKIP terminal_output_of_run_and_exec_keeps_newlines: needs a terminal");
        return;
    }
    let mut b = Bundle::new("prctty", &["sh", "-c", "echo one; echo two"]);
    b.config["process"]["terminal"] = true.into();
    b.save();
    let r = b.run();
    assert!(r.ok(), "{}", r.stderr);
    assert_eq!(r.stdout, "one\ntwo\n");

    let b = Bundle::new("prcttyexec", &["sleep", "100"]);
    assert!(b.run_detached().ok());
    for _ in 0..5 {
        let r = b.rt(&["exec", "-t", &b.id, "sh", "-c", "echo three; echo four"]);
        assert!(r.ok(), "{}", r.stderr);
        assert_eq!(r.stdout, "three\nfour\n");
    }
}

/// What a process writes on the pty whose master arrives on `listener`, to its end.
fn read_master(listener: &std::os::unix::net::UnixListener) -> String {
    use std::io::Read;
    let (conn, _) = listener.accept().unwrap();
    let (master, _) = casulo::__private::tty::recv_fd(std::os::fd::AsFd::as_fd(&conn)).unwrap();
    let mut f = std::fs::File::from(master);
    let mut out = Vec::new();
    // EIO once every slave fd is closed.
    let _ = f.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The pty is the process user's (its group is the devpts mount's, `gid=5`), for the init and
/// for an exec'd process.
#[test]
fn terminal_belongs_to_the_process_user() {
    if !can_run("terminal_belongs_to_the_process_user") {
        return;
    }
    let probe = "stat -c %u:%g $(tty)";
    let mut b = Bundle::new("prcttyown", &["sh", "-c", probe]);
    b.config["process"]["terminal"] = true.into();
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 100});
    b.save();
    let sock = b.dir.join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let bundle = b.dir.to_str().unwrap();
    let args = [
        "create",
        "--console-socket",
        sock.to_str().unwrap(),
        "--bundle",
        bundle,
        &b.id,
    ];
    let r = b.rt(&args);
    assert!(r.ok(), "{}", r.stderr);
    assert!(b.rt(&["start", &b.id]).ok());
    assert_eq!(read_master(&listener).trim(), "1000:5");

    let b = Bundle::new("prcttyownexec", &["sleep", "100"]);
    assert!(b.run_detached().ok());
    let sock = b.dir.join("exec.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let sock = sock.to_str().unwrap();
    let r = b.rt(&[
        "exec",
        "-t",
        "-d",
        "--console-socket",
        sock,
        "--user",
        "1000:100",
        &b.id,
        "sh",
        "-c",
        probe,
    ]);
    assert!(r.ok(), "{}", r.stderr);
    assert_eq!(read_master(&listener).trim(), "1000:5");
}

/// `HOME` unset or empty comes from the container's /etc/passwd (`/` without an entry); a
/// name given twice has its last value, once.
#[test]
fn home_comes_from_passwd_and_names_are_kept_once() {
    if !can_run("home_comes_from_passwd_and_names_are_kept_once") {
        return;
    }
    let cases: [(&[&str], u32, &str); 4] = [
        (&["HOME="], 0, "/root"),
        (&["HOME=/override", "HOME="], 0, "/root"),
        (&["HOME=/override"], 0, "/override"),
        (&[], 4242, "/"),
    ];
    for (env, uid, want) in cases {
        let mut b = Bundle::new("prchome", &["sh", "-c", "echo $HOME"]);
        b.config["process"]["env"] = json!(["PATH=/bin"].iter().chain(env).collect::<Vec<_>>());
        b.config["process"]["user"] = json!({ "uid": uid, "gid": uid });
        b.save();
        let r = b.run();
        assert!(r.ok(), "{env:?}: {}", r.stderr);
        assert_eq!(r.stdout, format!("{want}\n"), "env {env:?} uid {uid}");
    }
    let mut b = Bundle::new("prcenvonce", &["env"]);
    b.config["process"]["env"] = json!(["ONE=two", "PATH=/bin", "ONE=three", "HOME="]);
    b.save();
    let r = b.run();
    assert!(r.ok(), "{}", r.stderr);
    assert_eq!(r.stdout, "PATH=/bin\nONE=three\nHOME=/root\n");

    let mut b = Bundle::new("prcenvbad", &["true"]);
    b.config["process"]["env"] = json!(["PATH=/bin", "NOEQUALS"]);
    b.save();
    let r = b.run();
    common::fails_cleanly(&b, &r, "NOEQUALS");
}

/// `exec --process` with a process object that has no `user`: uid 0, gid 0, and `HOME`.
#[test]
fn exec_process_without_user_runs_as_root() {
    if !can_run("exec_process_without_user_runs_as_root") {
        return;
    }
    let b = Bundle::new("prcexecp", &["sleep", "100"]);
    assert!(b.run_detached().ok());
    let process = b.dir.join("process.json");
    std::fs::write(
        &process,
        r#"{"args": ["sh", "-c", "id -u; id -g; echo $HOME; echo $FOO"], "cwd": "/",
            "env": ["FOO=bar", "PATH=/bin"]}"#,
    )
    .unwrap();
    let r = b.rt(&["exec", "--process", process.to_str().unwrap(), &b.id]);
    assert!(r.ok(), "{}", r.stderr);
    assert_eq!(r.stdout, "0\n0\n/root\nbar\n");
}

/// A cwd only the runtime can enter (the process user has no right to it, and the process
/// has no CAP_DAC_OVERRIDE) is entered before the user switch and kept.
#[test]
fn cwd_only_root_can_enter() {
    if !can_run("cwd_only_root_can_enter") {
        return;
    }
    let mut b = Bundle::new("prccwd", &["sleep", "100"]);
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/private", "type": "tmpfs", "source": "tmpfs",
        "options": ["mode=700", "uid=42", "gid=42"]
    }));
    b.config["process"]["cwd"] = "/private".into();
    b.config["process"]["user"] = json!({"uid": 42, "gid": 42});
    b.save();
    assert!(b.run_detached().ok());
    let r = b.rt(&["exec", "--user", "0", &b.id, "pwd"]);
    assert!(r.ok(), "{}", r.stderr);
    assert_eq!(r.stdout, "/private\n");
    // The user itself can enter it too (the second try, after the switch, is not needed).
    let r = b.rt(&["exec", &b.id, "pwd"]);
    assert!(r.ok(), "{}", r.stderr);
    assert_eq!(r.stdout, "/private\n");
}

/// Capability names no kernel has are refused, naming them (the runtime-spec's MUST; runc
/// leaves them out with a warning); `exec --cap` takes `CAP_KILL` and `KILL`; an ambient
/// capability that cannot be raised is named in a warning.
#[test]
fn capabilities_unknown_names_and_cap_spellings() {
    if !can_run("capabilities_unknown_names_and_cap_spellings") {
        return;
    }
    let mut b = Bundle::new("prccaps", &["cat", "/proc/self/status"]);
    b.config["process"]["capabilities"]["bounding"] =
        json!(["CAP_UNKNOWN", "CAP_KILL", "UNKNOWN_CAP"]);
    b.save();
    let r = b.run();
    if is_casulo() {
        fails_cleanly(&b, &r, "unknown capabilities [CAP_UNKNOWN UNKNOWN_CAP]");
    }

    let mut b = Bundle::new("prccapexec", &["sleep", "100"]);
    b.config["process"]["capabilities"] = json!({});
    b.save();
    assert!(b.run_detached().ok());
    let r = b.rt(&[
        "exec",
        "--cap",
        "CAP_KILL",
        "--cap",
        "CAP_AUDIT_WRITE",
        &b.id,
        "cat",
        "/proc/self/status",
    ]);
    assert!(r.ok(), "{}", r.stderr);
    let want = (1 << 5) | (1 << 29);
    for set in ["CapBnd", "CapPrm", "CapEff"] {
        assert_eq!(cap_field(&r.stdout, set), want, "{set}");
    }
    assert_eq!(cap_field(&r.stdout, "CapAmb"), 0);
    if is_casulo() {
        // runc ignores a name without `CAP_`; casulo reads it as config names are read.
        let r = b.rt(&["exec", "--cap", "KILL", &b.id, "cat", "/proc/self/status"]);
        assert!(r.ok(), "{}", r.stderr);
        assert_eq!(cap_field(&r.stdout, "CapBnd"), 1 << 5);
    }

    let mut b = Bundle::new("prcamb", &["cat", "/proc/self/status"]);
    b.config["process"]["capabilities"]["inheritable"] = json!(["CAP_KILL"]);
    b.config["process"]["capabilities"]["ambient"] = json!(["CAP_KILL", "CAP_CHOWN"]);
    b.save();
    let r = b.run();
    assert!(r.ok(), "{}", r.stderr);
    assert_eq!(cap_field(&r.stdout, "CapAmb"), 1 << 5);
    assert!(
        r.stderr
            .contains("can't raise ambient capability CAP_CHOWN: "),
        "{}",
        r.stderr
    );
}

/// A failing hook is named by its point and place; a startContainer hook without `env` has
/// the process's environment and runs under the container's seccomp filter; a
/// createContainer hook runs in the rootfs.
#[test]
fn hooks_as_runc_runs_them() {
    if !can_run("hooks_as_runc_runs_them") {
        return;
    }
    let mut b = Bundle::new("prchookfail", &["true"]);
    b.config["hooks"] = json!({"createRuntime": [{"path": "/bin/true"}, {"path": "/bin/false"}]});
    b.save();
    let r = b.create();
    common::fails_cleanly(&b, &r, "error running createRuntime hook #1:");

    let mut b = Bundle::new("prchookenv", &["true"]);
    let out = b.with_out_dir();
    b.config["process"]["env"] = json!(["ONE=two", "PATH=/bin"]);
    b.config["hooks"] = json!({
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "env > /out/env"]}],
        "createContainer": [{"path": "/bin/sh", "args": ["sh", "-c",
            format!("pwd > {}/cwd", out.display())]}]
    });
    b.save();
    let r = b.run();
    assert!(r.ok(), "{}", r.stderr);
    let env = std::fs::read_to_string(out.join("env")).unwrap();
    for want in ["ONE=two", "PATH=/bin", "HOME=/root"] {
        assert!(env.lines().any(|l| l == want), "{want} not in {env}");
    }
    let cwd = std::fs::read_to_string(out.join("cwd")).unwrap();
    assert_eq!(cwd.trim(), b.config["root"]["path"].as_str().unwrap());

    let mut b = Bundle::new("prchookseccomp", &["true"]);
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL"}]
    });
    b.config["process"]["rlimits"] = json!([{"type": "RLIMIT_CORE", "soft": 0, "hard": 0}]);
    b.config["hooks"] = json!({
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "mkdir /tmp/x"]}]
    });
    b.save();
    let r = b.run();
    assert!(!r.ok(), "the hook's mkdir was let through: {}", r.stderr);
    assert!(
        r.stderr.contains("error running startContainer hook"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("bad system call"), "{}", r.stderr);
}

/// Time offsets of a container that also has its own user namespace.
#[test]
fn time_offsets_with_a_user_namespace() {
    if !can_run("time_offsets_with_a_user_namespace") {
        return;
    }
    if !std::path::Path::new("/proc/self/ns/time").exists() {
        eprintln!("SKIP time_offsets_with_a_user_namespace: no time namespaces");
        return;
    }
    let mut b = Bundle::new("prctimens", &["cat", "/proc/self/timens_offsets"]);
    let ns = b.config["linux"]["namespaces"].as_array_mut().unwrap();
    ns.push(json!({"type": "user"}));
    ns.push(json!({"type": "time"}));
    let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.config["linux"]["uidMappings"] = map.clone();
    b.config["linux"]["gidMappings"] = map;
    b.config["linux"]["timeOffsets"] = json!({
        "monotonic": {"secs": 7881, "nanosecs": 2718281},
        "boottime": {"secs": 1337, "nanosecs": 3141519}
    });
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["destination"] != "/sys/fs/cgroup");
    b.save();
    let r = b.run();
    assert!(r.ok(), "{}", r.stderr);
    let lines: Vec<Vec<&str>> = r
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(
        lines.contains(&vec!["monotonic", "7881", "2718281"]),
        "{}",
        r.stdout
    );
    assert!(
        lines.contains(&vec!["boottime", "1337", "3141519"]),
        "{}",
        r.stdout
    );
}

/// SCHED_DEADLINE in a container whose cgroup limits its CPUs: the kernel refuses it, and
/// the error says why in runc's words.
#[test]
fn deadline_scheduler_with_limited_cpus_says_why() {
    if !can_run("deadline_scheduler_with_limited_cpus_says_why") {
        return;
    }
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        eprintln!("SKIP deadline_scheduler_with_limited_cpus_says_why: needs two CPUs");
        return;
    }
    let mut b = Bundle::new("prcdeadline", &["true"]);
    b.config["linux"]["resources"]["cpu"] = json!({"cpus": "0"});
    b.config["process"]["scheduler"] = json!({
        "policy": "SCHED_DEADLINE", "nice": 19,
        "runtime": 42000, "deadline": 1000000, "period": 1000000
    });
    b.save();
    let r = b.run();
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("process scheduler can't be used together with AllowedCPUs"),
        "{}",
        r.stderr
    );
    assert!(b.leftovers().is_empty(), "{:#?}", b.leftovers());
}

/// The first two CPUs this test may run on (None with fewer).
fn two_cpus() -> Option<(usize, usize)> {
    let set = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).ok()?;
    let mut cpus = (0..nix::sched::CpuSet::count()).filter(|&c| set.is_set(c).unwrap_or(false));
    Some((cpus.next()?, cpus.next()?))
}

/// The value of the `Cpus_allowed_list:` line of a /proc/PID/status printed in `out`.
fn cpus_allowed(out: &str) -> Option<&str> {
    out.lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(str::trim)
}

/// `process.execCPUAffinity`: `initial` while the exec'd process joins the container (which
/// `--debug` reports as runc does), `final` from then on; an exec's own process config wins
/// over config.json's.
#[test]
fn exec_cpu_affinity_initial_and_final() {
    if !can_run("exec_cpu_affinity_initial_and_final") {
        return;
    }
    let Some((a, b2)) = two_cpus() else {
        eprintln!("SKIP exec_cpu_affinity_initial_and_final: needs two CPUs");
        return;
    };
    let mut b = Bundle::new("prcaffinity", &["sleep", "100"]);
    b.config["process"]["execCPUAffinity"] =
        json!({"initial": a.to_string(), "final": b2.to_string()});
    b.save();
    let r = b.run_detached();
    assert!(r.ok(), "{}", r.stderr);

    let status = ["grep", "Cpus_allowed_list", "/proc/self/status"];
    let mut args = vec!["--debug", "exec", &b.id];
    args.extend(status);
    let r = b.rt(&args);
    assert!(r.ok(), "{}", r.stderr);
    assert_eq!(
        cpus_allowed(&r.stdout),
        Some(b2.to_string().as_str()),
        "{}",
        r.stdout
    );
    let mask = format!(": affinity: {:#x}", 1u128 << a);
    assert!(r.stderr.contains(&mask), "{mask} in {}", r.stderr);

    let process = b.dir.join("process.json");
    std::fs::write(
        &process,
        json!({"args": status, "cwd": "/", "user": {"uid": 0, "gid": 0}, "env": ["PATH=/bin"],
               "execCPUAffinity": {"initial": b2.to_string(), "final": format!(" {a}, ")}})
        .to_string(),
    )
    .unwrap();
    let r = b.rt(&["exec", "--process", process.to_str().unwrap(), &b.id]);
    assert!(r.ok(), "{}", r.stderr);
    assert_eq!(
        cpus_allowed(&r.stdout),
        Some(a.to_string().as_str()),
        "{}",
        r.stdout
    );
}

/// A process given no affinity does not inherit the runtime's (`taskset -c N runtime run`):
/// it may run on every CPU, the init as an exec'd process.
#[test]
fn cpu_affinity_of_the_runtime_is_not_inherited() {
    if !can_run("cpu_affinity_of_the_runtime_is_not_inherited") {
        return;
    }
    let Some((a, _)) = two_cpus() else {
        eprintln!("SKIP cpu_affinity_of_the_runtime_is_not_inherited: needs two CPUs");
        return;
    };
    if !common::engine::on_path("taskset") {
        eprintln!("SKIP cpu_affinity_of_the_runtime_is_not_inherited: needs taskset");
        return;
    }
    let own = std::fs::read_to_string("/proc/self/status").unwrap();
    let own = cpus_allowed(&own).unwrap().to_string();
    let pinned = |b: &Bundle, args: &[&str]| {
        let mut c = std::process::Command::new("taskset");
        c.args(["-c", &a.to_string()])
            .arg(runtime())
            .arg("--root")
            .arg(&b.root)
            .args(b.cgroup_flags())
            .args(args)
            .current_dir(&b.dir);
        output_within(c, std::time::Duration::from_secs(20))
    };
    let b = Bundle::new(
        "prcaffreset",
        &["grep", "Cpus_allowed_list", "/proc/self/status"],
    );
    let r = pinned(&b, &["run", "--bundle", b.dir.to_str().unwrap(), &b.id]);
    assert!(r.ok(), "{}", r.stderr);
    assert_eq!(cpus_allowed(&r.stdout), Some(own.as_str()), "{}", r.stdout);
    drop(b);

    let b = Bundle::new("prcaffresetexec", &["sleep", "100"]);
    let r = pinned(
        &b,
        &[
            "run",
            "--detach",
            "--bundle",
            b.dir.to_str().unwrap(),
            &b.id,
        ],
    );
    assert!(r.ok(), "{}", r.stderr);
    let r = pinned(
        &b,
        &[
            "exec",
            &b.id,
            "grep",
            "Cpus_allowed_list",
            "/proc/self/status",
        ],
    );
    assert!(r.ok(), "{}", r.stderr);
    assert_eq!(cpus_allowed(&r.stdout), Some(own.as_str()), "{}", r.stdout);
}

/// A CPU list that names no CPU properly is refused when the container is created, naming
/// the field, whether the typed parse takes it (a range that goes down) or not (a word).
#[test]
fn bad_cpu_affinity_lists_are_refused() {
    if !can_run("bad_cpu_affinity_lists_are_refused") {
        return;
    }
    for (field, list) in [("final", "3-1"), ("initial", "one")] {
        let mut b = Bundle::new("prcaffbad", &["true"]);
        b.config["process"]["execCPUAffinity"] = json!({ field: list });
        b.save();
        let r = b.create();
        fails_cleanly(&b, &r, &format!("process.execCPUAffinity.{field}"));
    }
}

/// `--debug` names the flags the filter is loaded with; without `flags` in the profile that
/// is SECCOMP_FILTER_FLAG_SPEC_ALLOW (4) where the kernel has it, as with runc; an empty list
/// is no flag.
#[test]
fn seccomp_filter_flags_are_logged() {
    if !can_run("seccomp_filter_flags_are_logged") {
        return;
    }
    let features = std::process::Command::new(runtime())
        .arg("features")
        .output()
        .unwrap();
    let features: serde_json::Value = serde_json::from_slice(&features.stdout).unwrap();
    let spec_allow = features["linux"]["seccomp"]["supportedFlags"]
        .as_array()
        .unwrap()
        .contains(&json!("SECCOMP_FILTER_FLAG_SPEC_ALLOW"));
    let absent = if spec_allow { 4 } else { 0 };
    for (flags, want) in [
        (None, absent),
        (Some(json!([])), 0),
        (Some(json!(["SECCOMP_FILTER_FLAG_LOG"])), 2),
    ] {
        let mut b = Bundle::new("prcscflags", &["true"]);
        let mut profile = json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]});
        if let Some(f) = flags {
            profile["flags"] = f;
        }
        b.config["linux"]["seccomp"] = profile;
        b.save();
        let r = b.rt(&["--debug", "run", "--bundle", b.dir.to_str().unwrap(), &b.id]);
        assert!(r.ok(), "{}", r.stderr);
        let line = format!("\"seccomp filter flags: {want}\"");
        assert!(r.stderr.contains(&line), "{line} in {}", r.stderr);
    }
}

/// A seccomp agent that is not listening: create fails in runc's words.
#[test]
fn missing_seccomp_agent_is_named_in_runc_words() {
    if !can_run("missing_seccomp_agent_is_named_in_runc_words") {
        return;
    }
    let mut b = Bundle::new("prcnoagent", &["true"]);
    b.config["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": b.dir.join("no-agent.sock"),
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]});
    b.save();
    let r = b.run();
    assert!(
        r.stderr.contains("failed to connect with seccomp agent"),
        "{}",
        r.stderr
    );
    fails_cleanly(&b, &r, "no-agent.sock");
}

/// An execve that fails after start (a script whose interpreter does not exist) is the
/// process's own failure, as with runc: one line on its stderr and exit status 255; `start`
/// succeeds (the init was released); `exec` names the same cause in its one error line.
#[test]
fn execve_failure_after_start_is_the_process_failure() {
    if !can_run("execve_failure_after_start_is_the_process_failure") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let want = "exec /run.sh: no such file or directory";
    // A rootfs of its own with /run.sh, a script whose interpreter does not exist.
    let with_bad_script = |b: &mut Bundle| {
        let script = b.own_rootfs().join("run.sh");
        std::fs::write(&script, "#!/mmnnttbb foo bar\nsh\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    let mut b = Bundle::new("prcexecve", &["/run.sh"]);
    with_bad_script(&mut b);
    let r = b.run();
    assert_eq!(r.status, Some(255), "{}", r.stderr);
    assert_eq!(r.stderr.lines().collect::<Vec<_>>(), [want], "{}", r.stderr);
    assert!(r.stdout.is_empty(), "{}", r.stdout);

    let r = b.create();
    assert!(r.ok(), "{}", r.stderr);
    let r = b.rt(&["start", &b.id]);
    assert!(
        r.ok(),
        "start must succeed once the init is released: {}",
        r.stderr
    );
    assert!(b.wait_status("stopped"), "{:?}", b.state());
    assert!(b.rt(&["delete", &b.id]).ok());

    let mut b = Bundle::new("prcexecvex", &["sleep", "100"]);
    with_bad_script(&mut b);
    assert!(b.run_detached().ok());
    let r = b.rt(&["exec", &b.id, "/run.sh"]);
    assert!(!r.ok());
    let lines: Vec<_> = r.stderr.lines().collect();
    assert!(lines.len() == 1 && lines[0].contains(want), "{}", r.stderr);
}

/// A standard fd that is the host's `/dev/null` (an engine's stdin when it has none to give) is
/// the container's own `/dev/null` in a detached container, as runc makes it: a file on a mount
/// outside the container is one CRIU cannot checkpoint.
#[test]
fn null_stdin_is_the_containers_dev_null() {
    if !can_run("null_stdin_is_the_containers_dev_null") {
        return;
    }
    // The mount id of fd 0, then that of the container's /dev.
    let probe = "(sed -n 's/^mnt_id:[[:space:]]*//p' /proc/self/fdinfo/0; \
                 awk '$5 == \"/dev\" { print $1 }' /proc/self/mountinfo) > /out/ids.tmp; \
                 mv /out/ids.tmp /out/ids";
    let mut b = Bundle::new("prcnull", &["sh", "-c", probe]);
    let out = b.with_out_dir();
    let r = b.run_detached();
    assert!(r.ok(), "run --detach: {} {}", r.stdout, r.stderr);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !out.join("ids").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let text = std::fs::read_to_string(out.join("ids")).unwrap_or_default();
    let ids: Vec<&str> = text.split_whitespace().collect();
    assert!(
        ids.len() == 2 && ids[0] == ids[1],
        "fd 0 is not on the container's /dev: {text:?}"
    );
}
