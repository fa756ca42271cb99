//! A runtime killed in the middle of create, as an engine's timeout kills it: at every step
//! (casulo's debug builds SIGKILL themselves as step N begins, `CASULO_TEST_KILL_AT_STEP`) and
//! at random moments from outside. Afterwards `state` answers (never a crash or a hang) with an
//! honest status, `list` shows what `state` knows, and `delete --force` leaves nothing: no state
//! dir, cgroup, mount or process.
//!
//! One test function, run serially: it makes itself a child subreaper so that the processes a
//! killed runtime leaves are reparented to it and can be counted.
mod common;

use std::process::Command;
use std::time::Duration;

use common::{can_run, is_casulo, output_within, Bundle, Run};
use serde_json::json;

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

/// What the runtime says of a container a kill left half made: `state` exits 0 with an honest
/// status or says it does not exist, `list` agrees, `delete --force` succeeds.
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
                ["creating", "created", "stopped"].contains(&status),
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
fn killed_mid_create_leaves_nothing_after_delete_force() {
    if !can_run("killed_mid_create_leaves_nothing_after_delete_force") {
        return;
    }
    nix::sys::prctl::set_child_subreaper(true).unwrap();
    reap();
    if is_casulo() {
        // At every step of create, for a plain config and for one with every kind of step.
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
        eprintln!("SKIP the killed-at-every-step part: it is casulo's fault injection");
    }
    // At random moments, from outside.
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
    let _ = Command::new("true").status();
}
