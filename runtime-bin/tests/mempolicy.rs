//! linux.memoryPolicy: the NUMA policy the container's processes (init and exec'd) run with,
//! as the kernel shows it in /proc/PID/numa_maps, and the refusals of bad values.
mod common;
use common::*;
use serde_json::json;

/// Whether the test can run here; runc 1.1 ignores linux.memoryPolicy, and a kernel without
/// NUMA support has no policies to set.
fn can_run_mempolicy(test: &str) -> bool {
    if !can_run(test) {
        return false;
    }
    if !is_casulo() {
        eprintln!("SKIPPED {test}: runc 1.1 lacks linux.memoryPolicy");
        return false;
    }
    if !std::path::Path::new("/sys/devices/system/node/online").exists() {
        eprintln!("SKIPPED {test}: this kernel has no NUMA support");
        return false;
    }
    true
}

/// The shell prints the policy of its first mapping: the second field of numa_maps.
const SHOW_POLICY: &str = "head -n 1 /proc/self/numa_maps | cut -d' ' -f2";

/// The policy field of a host process's first mapping.
fn host_policy(pid: i64) -> String {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/numa_maps")).unwrap();
    maps.lines()
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn policies_seen_from_inside() {
    if !can_run_mempolicy("policies_seen_from_inside") {
        return;
    }
    for (policy, want) in [
        (json!({"mode": "MPOL_BIND", "nodes": "0"}), "bind:0"),
        (
            json!({"mode": "MPOL_INTERLEAVE", "nodes": "0"}),
            "interleave:0",
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]}),
            "bind=static:0",
        ),
        (json!({"mode": "MPOL_PREFERRED", "nodes": "0"}), "prefer:0"),
        (json!({"mode": "MPOL_LOCAL"}), "local"),
        (json!({"mode": "MPOL_DEFAULT"}), "default"),
    ] {
        let mut b = Bundle::new("mpol", &["sh", "-c", SHOW_POLICY]);
        b.config["linux"]["memoryPolicy"] = policy.clone();
        b.save();
        let r = b.run();
        assert!(r.ok(), "{policy}: {}", r.stderr);
        assert_eq!(r.stdout.trim(), want, "{policy}");
    }
}

/// The created init has the policy before `start`; an exec'd process gets it too.
#[test]
fn created_init_and_exec() {
    if !can_run_mempolicy("created_init_and_exec") {
        return;
    }
    let mut b = Bundle::new("mpolexec", &["sleep", "100"]);
    b.config["linux"]["memoryPolicy"] =
        json!({"mode": "MPOL_PREFERRED", "nodes": "0", "flags": ["MPOL_F_RELATIVE_NODES"]});
    b.save();
    let r = b.create();
    assert!(r.ok(), "{}", r.stderr);
    let pid = b.state().unwrap()["pid"].as_i64().unwrap();
    assert_eq!(host_policy(pid), "prefer=relative:0");
    let r = b.rt(&["exec", &b.id, "sh", "-c", SHOW_POLICY]);
    assert!(r.ok(), "{}", r.stderr);
    assert_eq!(r.stdout.trim(), "prefer=relative:0");
}

#[test]
fn bad_policies_refused() {
    if !can_run_mempolicy("bad_policies_refused") {
        return;
    }
    for (policy, want) in [
        (
            json!({"mode": "MPOL_BIND", "nodes": "99"}),
            "linux.memoryPolicy.nodes: node 99 is not online",
        ),
        (
            json!({"mode": "MPOL_DEFAULT", "nodes": "0-7"}),
            "mode requires 0 nodes but got 8",
        ),
        (
            json!({"mode": "MPOL_INTERLEAVE"}),
            "linux.memoryPolicy.nodes: MPOL_INTERLEAVE needs at least one node",
        ),
        (
            json!({"nodes": "0-7"}),
            "linux.memoryPolicy.mode: invalid memory policy mode",
        ),
        (
            json!({"mode": "INTERLEAVE", "nodes": "0"}),
            "linux.memoryPolicy.mode: invalid memory policy mode",
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_RELATIVE_NODES", "badflag"]}),
            "linux.memoryPolicy.flags[1]: invalid memory policy flag",
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": "0-9876543210"}),
            "linux.memoryPolicy.nodes: invalid memory policy node",
        ),
    ] {
        let mut b = Bundle::new("mpolbad", &["true"]);
        b.config["linux"]["memoryPolicy"] = policy.clone();
        b.save();
        let r = b.run();
        fails_cleanly(&b, &r, want);
    }
}
