//! A runtime killed in the middle of create, as an engine's timeout kills it: at every step
//! (casulo's debug builds SIGKILL themselves as step N begins, `CASULO_TEST_KILL_AT_STEP`) and
//! at random moments from outside. Afterwards `state` answers (never a crash or a hang) with an
//! honest status, `list` shows what `state` knows, and `delete --force` leaves nothing: no state
//! dir, cgroup, mount or process.
//!
//! The tests of this file run one at a time ([`SERIAL`]): the process makes itself a child
//! subreaper so that the processes a killed runtime leaves are reparented to it and counted,
//! and reaps every child it has, which would take another test's commands from under it.
mod common;

use std::process::Command;
use std::time::Duration;

use common::{can_run, is_casulo, output_within, Bundle, Run};
use serde_json::json;

/// One test at a time: they count this process's children.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The children of this process that are not zombies (processes a killed runtime left).
fn live_children() -> Vec<String> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(p.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so split after its ')'.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let mut f = rest.split(' ');
        let (state, ppid) = (f.next().unwrap_or(""), f.next().unwrap_or(""));
        if ppid == me && state != "Z" {
            let cmd = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
            found.push(format!(
                "{}: {}",
                p.file_name().to_string_lossy(),
                String::from_utf8_lossy(&cmd).replace('\0', " ")
            ));
        }
    }
    found
}

/// Reap every zombie child (the test's own runtime commands are waited for already).
fn reap() {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    while let Ok(st) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if st == WaitStatus::StillAlive {
            break;
        }
    }
}

/// What the runtime says of a container a kill left behind: `state` exits 0 with an honest
/// status (`running` only where a started container may be) or says it does not exist, `list` agrees, `delete --force` succeeds.
fn check_after_kill(b: &Bundle, what: &str) {
    let st = b.rt(&["state", &b.id]);
    // As runc, `list` with a --root that does not exist is an error: the kill came first.
    let in_list = b.root.exists() && {
        let listed = b.rt(&["list", "-q"]);
        assert!(listed.ok(), "{what}: list: {}", listed.stderr);
        listed.stdout.lines().any(|l| l == b.id)
    };
    match st.status {
        Some(0) => {
            let v: serde_json::Value = serde_json::from_str(&st.stdout).unwrap();
            let status = v["status"].as_str().unwrap_or("");
            assert!(
                ["creating", "created", "running", "stopped"].contains(&status),
                "{what}: state says {status}"
            );
            assert!(in_list, "{what}: state knows it, list does not");
        }
        Some(1) => {
            assert!(
                st.stderr.contains("does not exist"),
                "{what}: state: {}",
                st.stderr
            );
            assert!(!in_list, "{what}: list shows what state does not know");
        }
        other => panic!("{what}: state exited {other:?}: {}", st.stderr),
    }
    let d = b.rt(&["delete", "--force", &b.id]);
    assert!(d.ok(), "{what}: delete --force: {}", d.stderr);
    let left = b.leftovers();
    assert!(left.is_empty(), "{what}: left behind: {left:#?}");
    // The stage and the init of a killed create notice the closed channel and exit, or
    // delete --force killed them.
    let mut children = live_children();
    for _ in 0..100 {
        if children.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        reap();
        children = live_children();
    }
    assert!(children.is_empty(), "{what}: processes left: {children:#?}");
}

/// A config whose create has every kind of step: a user namespace (id maps), a pid namespace
/// (the stage forks the init), runtime hooks, and a bind source.
fn full_bundle(name: &str) -> Bundle {
    let mut b = Bundle::new(name, &["sleep", "100"]);
    b.use_userns();
    b.config["hooks"] = json!({
        "prestart": [{"path": "/bin/true"}],
        "createRuntime": [{"path": "/bin/true"}]
    });
    b.save();
    b
}

fn create_killed_at(b: &Bundle, step: usize) -> Run {
    let mut cmd = b.cmd(&["create", "--bundle", b.dir.to_str().unwrap(), &b.id]);
    cmd.env("CASULO_TEST_KILL_AT_STEP", step.to_string());
    output_within(cmd, Duration::from_secs(20))
}

#[test]
fn killed_at_every_step_of_create_leaves_nothing_after_delete_force() {
    if !can_run("killed_at_every_step_of_create_leaves_nothing_after_delete_force") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    nix::sys::prctl::set_child_subreaper(true).unwrap();
    reap();
    if is_casulo() {
        // For a plain config and for one with every kind of step.
        for (kind, make) in [
            (
                "plain",
                (|n: &str| Bundle::new(n, &["sleep", "100"])) as fn(&str) -> Bundle,
            ),
            ("full", full_bundle),
        ] {
            let mut steps = 0;
            for step in 0..200 {
                let b = make("rbkill");
                let r = create_killed_at(&b, step);
                if r.ok() {
                    // Past the last step: a normal create (Drop deletes it and checks).
                    break;
                }
                assert_eq!(
                    r.status, None,
                    "{kind} step {step}: not killed but failed: {}",
                    r.stderr
                );
                check_after_kill(&b, &format!("{kind}: killed at step {step}"));
                steps = step + 1;
            }
            assert!(steps > 10, "{kind}: only {steps} steps seen");
            eprintln!("{kind}: killed at each of {steps} steps of create: nothing left");
        }
    } else {
        eprintln!("SKIP killed_at_every_step_of_create: it is casulo's fault injection");
    }
}

#[test]
fn killed_at_random_moments_of_create_leaves_nothing_after_delete_force() {
    if !can_run("killed_at_random_moments_of_create_leaves_nothing_after_delete_force") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    nix::sys::prctl::set_child_subreaper(true).unwrap();
    reap();
    for i in 0..30u64 {
        let b = full_bundle("rbrand");
        let mut child = b
            .cmd(&["create", "--bundle", b.dir.to_str().unwrap(), &b.id])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Spread over the few milliseconds a create takes.
        std::thread::sleep(Duration::from_micros(
            (i * 7919 + std::process::id() as u64) % 12_000,
        ));
        let _ = child.kill();
        let _ = child.wait();
        check_after_kill(&b, &format!("killed from outside, try {i}"));
    }
}

/// A state dir damaged on disk: every command names the file and the cause and exits 1,
/// nothing panics or hangs, `list` names it and goes on, and `delete --force` removes it.
#[test]
fn damaged_state_on_disk() {
    if !can_run("damaged_state_on_disk") {
        return;
    }
    if !is_casulo() {
        eprintln!("SKIP damaged_state_on_disk: checks casulo's messages");
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    nix::sys::prctl::set_child_subreaper(true).unwrap();
    let cases: [(&str, Option<&[u8]>); 4] = [
        ("empty", Some(b"")),
        ("truncated", Some(b"{\"ociVersion\":\"1.0.2\",\"id\":")),
        ("garbage", Some(b"\x00\xff not json")),
        ("missing", None),
    ];
    for (what, content) in cases {
        let b = Bundle::new("rbdamaged", &["sleep", "100"]);
        assert!(b.create().ok());
        // The init of the created container, for the cleanup after the damage.
        let state: serde_json::Value =
            serde_json::from_str(&b.rt(&["state", &b.id]).stdout).unwrap();
        let pid = state["pid"].as_i64().unwrap() as i32;
        let file = b.root.join(&b.id).join("state.json");
        match content {
            Some(c) => std::fs::write(&file, c).unwrap(),
            None => std::fs::remove_file(&file).unwrap(),
        }
        for args in [
            vec!["state", &b.id],
            vec!["start", &b.id],
            vec!["kill", &b.id, "KILL"],
            vec!["delete", &b.id],
            vec!["exec", &b.id, "true"],
            vec!["ps", &b.id],
        ] {
            let r = b.rt(&args);
            // A failed exec exits 255, as runc's does.
            let want = if args[0] == "exec" { 255 } else { 1 };
            assert_eq!(r.status, Some(want), "{what}: {args:?}: {}", r.stderr);
            assert!(
                r.stderr.contains(file.to_str().unwrap()) && r.stderr.contains(&b.id),
                "{what}: {args:?} names the file and the container: {}",
                r.stderr
            );
        }
        let l = b.rt(&["list"]);
        assert!(l.ok(), "{what}: list: {}", l.stderr);
        assert!(
            l.stderr.contains(file.to_str().unwrap()),
            "{what}: {}",
            l.stderr
        );
        let d = b.rt(&["delete", "--force", &b.id]);
        assert!(d.ok(), "{what}: delete --force: {}", d.stderr);
        assert!(!b.root.join(&b.id).exists(), "{what}: the state dir stays");
        // Without its state the runtime cannot find the init: the test cleans it up, and
        // Drop checks that nothing else is left (the cgroup is named after the id).
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        for _ in 0..100 {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                break;
            }
            reap();
            std::thread::sleep(Duration::from_millis(10));
        }
        // Its cgroups, wherever the hierarchies put them (under the runtime's own cgroup in
        // some v1 hierarchies).
        let _ = Command::new("find")
            .args(["/sys/fs/cgroup", "-depth", "-type", "d", "-name", &b.id])
            .args(["-exec", "rmdir", "{}", "+"])
            .status();
    }
}

/// A state root on a full filesystem or a read-only one: create fails naming the path and the
/// cause, and leaves nothing (not even a temporary state dir).
#[test]
fn state_root_full_or_read_only() {
    if !can_run("state_root_full_or_read_only") {
        return;
    }
    // The other tests reap every child of this process: not this one's commands meanwhile.
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    for (what, flags, cause) in [
        ("full", MsFlags::empty(), "No space left on device"),
        ("read-only", MsFlags::MS_RDONLY, "Read-only file system"),
    ] {
        let mut b = Bundle::new("rbroot", &["true"]);
        let root = b.dir.join("small-root");
        std::fs::create_dir_all(&root).unwrap();
        mount(
            Some("tmpfs"),
            &root,
            Some("tmpfs"),
            flags,
            Some("size=64k,nr_inodes=16"),
        )
        .unwrap();
        if what == "full" {
            // Fill it: bytes first, then every inode left.
            let _ = std::fs::write(root.join("fill"), vec![0u8; 64 * 1024]);
            for i in 0..32 {
                let _ = std::fs::create_dir(root.join(format!("d{i}")));
            }
        }
        let original = std::mem::replace(&mut b.root, root.clone());
        let r = b.create();
        let left: Vec<_> = std::fs::read_dir(&root)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != "fill" && !n.starts_with('d'))
            .collect();
        b.root = original;
        umount2(&root, MntFlags::MNT_DETACH).unwrap();
        assert_eq!(r.status, Some(1), "{what}: {}", r.stderr);
        if is_casulo() {
            assert!(
                r.stderr.contains(cause) && r.stderr.contains(root.to_str().unwrap()),
                "{what}: names the path and the cause: {}",
                r.stderr
            );
        }
        assert!(left.is_empty(), "{what}: left in the root: {left:?}");
    }
}

/// Kill `cmd` after `delay`.
fn kill_after(mut cmd: Command, delay: Duration) {
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    let _ = child.kill();
    let _ = child.wait();
}

/// `run`, `exec` and `delete` killed at random moments, then `delete --force`.
#[test]
fn killed_mid_run_exec_or_delete_leaves_nothing_after_delete_force() {
    if !can_run("killed_mid_run_exec_or_delete_leaves_nothing_after_delete_force") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    nix::sys::prctl::set_child_subreaper(true).unwrap();
    reap();
    let spread = |i: u64, max_us: u64| {
        Duration::from_micros((i * 7919 + std::process::id() as u64) % max_us)
    };
    for i in 0..8u64 {
        let b = full_bundle("rbrun");
        let run = b.cmd(&["run", "--bundle", b.dir.to_str().unwrap(), &b.id]);
        kill_after(run, spread(i, 20_000));
        check_after_kill(&b, &format!("run killed, try {i}"));

        let b = Bundle::new("rbexec", &["sleep", "100"]);
        assert!(b.run_detached().ok());
        kill_after(b.cmd(&["exec", &b.id, "sleep", "100"]), spread(i, 12_000));
        check_after_kill(&b, &format!("exec killed, try {i}"));

        let b = full_bundle("rbdel");
        assert!(b.run_detached().ok());
        kill_after(b.cmd(&["delete", "--force", &b.id]), spread(i, 8_000));
        check_after_kill(&b, &format!("delete --force killed, try {i}"));
    }
}

/// A cgroup v1 freezer cgroup of the test's own, outside the container's: tasks it freezes
/// ignore SIGKILL until thawed (they show as `D`, as a process stuck in the kernel does). Thawed
/// and removed when dropped.
struct ForeignFreezer(std::path::PathBuf);

impl ForeignFreezer {
    fn freeze(name: &str, pid: &str) -> ForeignFreezer {
        let dir = std::path::Path::new("/sys/fs/cgroup/freezer").join(name);
        std::fs::create_dir(&dir).unwrap();
        let f = ForeignFreezer(dir);
        std::fs::write(f.0.join("cgroup.procs"), pid).unwrap();
        std::fs::write(f.0.join("freezer.state"), "FROZEN").unwrap();
        for _ in 0..200 {
            if std::fs::read_to_string(f.0.join("freezer.state"))
                .unwrap()
                .trim()
                == "FROZEN"
            {
                return f;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the test's freezer cgroup did not freeze");
    }

    fn thaw(&self) {
        let _ = std::fs::write(self.0.join("freezer.state"), "THAWED");
    }
}

impl Drop for ForeignFreezer {
    fn drop(&mut self) {
        self.thaw();
        for _ in 0..300 {
            if std::fs::remove_dir(&self.0).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// `delete --force` of a container one of whose processes SIGKILL cannot end returns in bounded
/// time with an error that names those processes, keeps the state so that the next
/// `delete --force` can finish, and that one leaves nothing once they could die.
#[test]
fn delete_force_with_a_process_that_cannot_die_is_bounded() {
    let name = "delete_force_with_a_process_that_cannot_die_is_bounded";
    if !can_run(name) {
        return;
    }
    if !std::path::Path::new("/sys/fs/cgroup/freezer/cgroup.procs").exists() {
        // The v2 freezer lets SIGKILL through: no way to hold a process here.
        eprintln!("SKIP {name}: needs a cgroup v1 freezer hierarchy");
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Without a pid namespace the init dies at once; the exec'd process is the stuck one.
    let mut b = Bundle::new("rbstuck", &["sleep", "100"]);
    b.without_namespace("pid");
    assert!(b.run_detached().ok());
    let pid = b.exec_detached(&["sleep", "100"]).to_string();
    let freezer = ForeignFreezer::freeze(&format!("{}-freezer", b.id), &pid);

    let started = std::time::Instant::now();
    let del = b.rt(&["delete", "--force", &b.id]);
    let took = started.elapsed();
    assert_eq!(del.status, Some(1), "delete --force: {}", del.stderr);
    assert!(
        took < Duration::from_secs(15),
        "delete --force took {took:?}"
    );
    for want in [b.id.as_str(), pid.as_str(), "did not die on SIGKILL"] {
        assert!(del.stderr.contains(want), "no {want:?} in: {}", del.stderr);
    }
    assert!(b.state().is_some(), "the state went before its cgroup");

    freezer.thaw();
    let mut del = b.rt(&["delete", "--force", &b.id]);
    for _ in 0..50 {
        if del.ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        del = b.rt(&["delete", "--force", &b.id]);
    }
    assert!(del.ok(), "delete --force after the thaw: {}", del.stderr);
    drop(freezer);
    assert_eq!(b.leftovers(), Vec::<String>::new());
}
