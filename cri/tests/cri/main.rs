//! Kubernetes' Container Runtime Interface on the runtime under test, driven as the kubelet
//! drives it.
//!
//! One test starts a private containerd 1.6 with its CRI plugin (its own config, root, state,
//! socket, CNI configuration and log directories under `/tmp/cri-<pid>`), whose `runc` runtime
//! handler (`io.containerd.runc.v2`) has `BinaryName` pointing at a small logging wrapper in
//! front of casulo (or of `CASULO_TEST_RUNTIME`, e.g. runc, to show that the suite itself is
//! right). It builds a busybox image and a pause image from the host's busybox-static, imports
//! them into the CRI's `k8s.io` namespace, and then speaks CRI v1 gRPC to the daemon: pod
//! sandboxes, containers, exec, logs, stop with a grace period, resource updates, security
//! contexts, host paths, status and stats. The scenarios run a few at a time; each prints
//! `PASS` or `FAIL` with its time, removes its pods even when it failed (and their pod cgroups,
//! the kubelet's part) and must leave nothing behind: no runtime state, bundle, cgroup, mount,
//! shim, shim socket or process of its sandboxes and containers. At the end the daemon is
//! stopped and everything it made is removed, also when the test panics.
//!
//! Without containerd, or where its CRI plugin does not start, the test prints `SKIPPED`.
//! Run alone: `cargo build -p casulo-cli && cargo test -p casulo-cri-tests` (the test runs the
//! casulo binary of its own target directory).

mod cgroups;
#[path = "../../../runtime-bin/tests/common/mod.rs"]
mod common;
mod exec;
mod pods;
mod resources;
mod scenarios;
mod security;
mod stream;
mod suite;

use std::time::Instant;

use common::engine::*;
use common::*;
use suite::{Skip, Suite};

/// How many scenarios run at once: they mostly wait on containerd, the shim and their
/// containers' sleeps.
const WORKERS: usize = 6;

/// The scenarios that `CASULO_CRI_SCENARIOS` names (keys, comma-separated; empty or unset:
/// all), for where time is short (under emulation).
fn selected(
    all: Vec<(&'static str, &'static str, Scenario<Suite>)>,
) -> Vec<(&'static str, Scenario<Suite>)> {
    let only = std::env::var("CASULO_CRI_SCENARIOS").unwrap_or_default();
    let keys: Vec<&str> = only
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .collect();
    let unknown: Vec<&&str> = keys
        .iter()
        .filter(|k| !all.iter().any(|(key, ..)| key == *k))
        .collect();
    assert!(
        unknown.is_empty(),
        "CASULO_CRI_SCENARIOS names no scenario {unknown:?}; the keys are {:?}",
        all.iter().map(|s| s.0).collect::<Vec<_>>()
    );
    if !keys.is_empty() {
        say(&format!("CRI suite: only {keys:?} (CASULO_CRI_SCENARIOS)"));
    }
    all.into_iter()
        .filter(|(key, ..)| keys.is_empty() || keys.contains(key))
        .map(|(_, what, f)| (what, f))
        .collect()
}

#[test]
fn cri_runs_pods_on_the_runtime() {
    let name = "cri_runs_pods_on_the_runtime";
    if !prerequisites(
        name,
        &["containerd", "ctr", "containerd-shim-runc-v2", "ip"],
        "containerd iproute2",
    ) {
        return;
    }
    if !runtime().exists() {
        say(&format!(
            "SKIPPED {name}: no runtime at {} (cargo build -p casulo-cli first)",
            runtime().display()
        ));
        return;
    }
    if !std::path::Path::new("/usr/lib/cni/bridge").exists() {
        say(&format!(
            "SKIPPED {name}: no CNI plugins in /usr/lib/cni (apt-get install containernetworking-plugins)"
        ));
        return;
    }
    let started = Instant::now();
    let pid = std::process::id();
    let suite = match Suite::start() {
        Ok(s) => s,
        Err(Skip(why)) => {
            say(&format!("SKIPPED {name}: {why}"));
            assert!(Suite::leftovers_after(pid).is_empty());
            return;
        }
    };
    say(&format!(
        "CRI suite: runtime {}, containerd ready with its images in {:.1} s",
        runtime().display(),
        started.elapsed().as_secs_f64()
    ));
    let list = selected(scenarios::all());
    let everything = list.len() == scenarios::all().len();
    let (passed, failed, retried) = run_scenarios_in_parallel(
        &suite,
        &format!("cri{pid}"),
        &list,
        WORKERS,
        |s, id| s.remove(id),
        |s, id| s.settled(id),
    );
    if !failed.is_empty() {
        say(&format!(
            "the end of containerd's log:\n{}",
            suite.daemon_log_tail()
        ));
    }
    // The runtime was really the one selected: its commands went through the wrapper.
    let calls = suite.calls();
    let ran = |w: &str| calls.iter().any(|c| c.contains(w));
    let mut words = vec![" create ", " start ", " delete "];
    if everything {
        words.extend([" exec ", " update "]);
    }
    if suite.systemd {
        // The shim's SystemdCgroup option reached the runtime.
        words.push("--systemd-cgroup ");
    }
    let used = words.iter().all(|w| ran(w));
    drop(suite);
    let left = Suite::leftovers_after(pid);
    say(&format!(
        "CRI suite: {passed} of {} scenarios passed ({} on a second run) in {:.1} s",
        passed + failed.len(),
        retried.len(),
        started.elapsed().as_secs_f64()
    ));
    assert!(failed.is_empty(), "failed scenarios: {failed:?}");
    assert!(
        used,
        "the runtime under test did not run every command: {calls:#?}"
    );
    assert!(
        left.is_empty(),
        "left behind after the daemon stopped: {left:#?}"
    );
}
