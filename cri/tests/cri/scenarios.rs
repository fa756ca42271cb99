//! The scenarios, each given the suite and its own name (the label of its pods). Each checks
//! what the kubelet would read back and leaves its pods for the runner to remove.

use std::path::Path;
use std::time::Instant;

use k8s_cri::v1 as cri;
use k8s_cri::v1::{ContainerState, PodSandboxState};

use crate::common::engine::*;
use crate::common::*;
use crate::exec::*;
use crate::pods::*;
use crate::resources::*;
use crate::security::*;
use crate::suite::*;

/// Every scenario: its key (for `CASULO_CRI_SCENARIOS`), what it shows, and the scenario.
pub fn all() -> Vec<(&'static str, &'static str, Scenario<Suite>)> {
    vec![
        // The slowest first, so that they overlap with the rest.
        (
            "stop-kill",
            "StopContainer: SIGKILL after the grace period",
            stop_grace_kill,
        ),
        (
            "exec-sync",
            "ExecSync: output, exit code, timeout",
            exec_sync_scenario,
        ),
        (
            "streams",
            "Exec and Attach through the streaming server",
            streams,
        ),
        (
            "resize",
            "terminal resizes of Exec and Attach with a tty",
            terminal_resize,
        ),
        (
            "port-forward",
            "PortForward to a listener in a pod",
            port_forward,
        ),
        (
            "pod",
            "RunPodSandbox / StopPodSandbox / RemovePodSandbox",
            pod_lifecycle,
        ),
        (
            "runtime-class",
            "RuntimeClass: a pod on runc beside one on the default handler",
            runtime_class,
        ),
        (
            "namespaces",
            "two containers share the pod's network, IPC and UTS namespaces",
            shared_namespaces,
        ),
        (
            "share-pid",
            "shareProcessNamespace: one pid namespace, pause as pid 1",
            share_pid,
        ),
        ("logs", "container logs in the CRI format", logs),
        (
            "stop-term",
            "StopContainer: SIGTERM within the grace period",
            stop_grace_term,
        ),
        ("update", "UpdateContainerResources", update_resources),
        (
            "overhead",
            "pod overhead: the kubelet's pod cgroup limits, the sandbox's config",
            overhead,
        ),
        (
            "user",
            "runAsUser, runAsGroup, supplementalGroups, noNewPrivs",
            run_as_user,
        ),
        (
            "caps",
            "capabilities: drop ALL, add two; privileged",
            capabilities,
        ),
        ("seccomp", "seccomp RuntimeDefault and Unconfined", seccomp),
        (
            "read-only",
            "readOnlyRootFilesystem, masked and read-only paths",
            readonly_masked,
        ),
        ("sysctls", "sysctls of the pod", sysctls),
        (
            "host-paths",
            "hostPath mounts: read-only, and each propagation mode",
            host_paths,
        ),
        (
            "stats",
            "ContainerStatus, ContainerStats, ListContainerStats",
            status_and_stats,
        ),
        (
            "missing",
            "a missing program: StartError with the cause",
            missing_program,
        ),
        (
            "oom",
            "OOMKilled: a container over its memory limit",
            oom_killed,
        ),
        (
            "restart",
            "a restarted container: a new attempt in the same pod",
            restart,
        ),
    ]
}

fn readlink(p: String) -> String {
    std::fs::read_link(&p)
        .map(|t| t.to_string_lossy().into_owned())
        .unwrap_or_else(|e| format!("({p}: {e})"))
}

fn ns_of(pid: i32, kind: &str) -> String {
    readlink(format!("/proc/{pid}/ns/{kind}"))
}

/// The pid of running container `id`.
pub fn pid_of(s: &Suite, id: &str) -> Result<i32, String> {
    let (st, pid) = status(s, id)?;
    check(
        st.state == ContainerState::ContainerRunning as i32 && pid > 0,
        || format!("container {id} is not running with a pid: {st:?}"),
    )?;
    Ok(pid)
}

/// A container that runs `sleep 1000` (as `sleep` itself, the container's pid 1).
pub fn sleeper(s: &Suite, pod: &Pod, name: &str) -> Result<String, String> {
    pod.run(s, pod.container(name, &["sleep", "1000"]))
}

fn pod_lifecycle(s: &Suite, id: &str) -> Result<(), String> {
    let pod = run_pod(s, id, "life", &PodOpts::default())?;
    check(pod.state(s)? == PodSandboxState::SandboxReady, || {
        "the new sandbox is not ready".into()
    })?;
    let pause = pod.pause_pid(s)?;
    check(alive(pause) && cmdline(pause).contains("trap"), || {
        format!("the pause process {pause}: {:?}", cmdline(pause))
    })?;
    // The kubelet's cgroup layout: the sandbox under its pod's cgroup.
    let want = s.container_cgroup(&pod.config.linux.as_ref().unwrap().cgroup_parent, &pod.id);
    let got = cgroup_of(pause, "memory").or_else(|| cgroup_of(pause, ""));
    check(got.as_deref() == Some(want.as_str()), || {
        format!("the sandbox's cgroup: want {want}, got {got:?}")
    })?;
    check(
        s.runtime_status(&pod.id).as_deref() == Some("running"),
        || {
            format!(
                "runtime state of the sandbox: {:?}",
                s.runtime_status(&pod.id)
            )
        },
    )?;
    // hostNetwork: the host's network namespace; a pid namespace of its own.
    let me = std::process::id() as i32;
    check(ns_of(pause, "net") == ns_of(me, "net"), || {
        "a host-network sandbox has a network namespace of its own".into()
    })?;
    check(ns_of(pause, "pid") != ns_of(me, "pid"), || {
        "the sandbox shares the host's pid namespace".into()
    })?;
    pod.stop(s)?;
    check(pod.state(s)? == PodSandboxState::SandboxNotready, || {
        "the stopped sandbox is still ready".into()
    })?;
    wait_until("the pause process ends", || !alive(pause))?;
    check(s.runtime_status(&pod.id).is_none(), || {
        "the runtime still knows the stopped sandbox".into()
    })?;
    // The kubelet repeats both calls; they must succeed again.
    pod.stop(s)?;
    pod.remove(s)?;
    let gone = pod.status(s);
    check(gone.as_ref().is_err_and(|e| e.contains("NotFound")), || {
        format!(
            "status of the removed sandbox: {:?}",
            gone.map(|g| g.status)
        )
    })?;
    pod.remove(s)
}

fn shared_namespaces(s: &Suite, id: &str) -> Result<(), String> {
    let opts = PodOpts {
        own_network: true,
        ..Default::default()
    };
    let pod = run_pod(s, id, "net", &opts)?;
    let ip = pod
        .status(s)?
        .status
        .and_then(|st| st.network)
        .map(|n| n.ip)
        .unwrap_or_default();
    check(!ip.is_empty(), || "the pod got no IP address".into())?;
    let a = sleeper(s, &pod, "a")?;
    let b = pod.run(s, pod.container("b", &["sleep", "1001"]))?;
    let pause = pod.pause_pid(s)?;
    let (pa, pb) = (pid_of(s, &a)?, pid_of(s, &b)?);
    for kind in ["net", "ipc", "uts"] {
        for (name, p) in [("a", pa), ("b", pb)] {
            check(ns_of(p, kind) == ns_of(pause, kind), || {
                format!("container {name} is not in the pod's {kind} namespace")
            })?;
        }
    }
    let me = std::process::id() as i32;
    check(ns_of(pause, "net") != ns_of(me, "net"), || {
        "the pod has the host's network namespace".into()
    })?;
    check(
        ns_of(pa, "pid") != ns_of(pause, "pid") && ns_of(pa, "pid") != ns_of(pb, "pid"),
        || "the containers share a pid namespace without shareProcessNamespace".into(),
    )?;
    let host = sh(s, &b, "hostname")?;
    check(host == "net", || format!("hostname: {host:?}"))?;
    let addr = sh(s, &a, "ip -o -4 addr show eth0")?;
    check(addr.contains(&format!("inet {ip}/")), || {
        format!("eth0 in the container: {addr:?}, the CRI's pod IP {ip}")
    })?;
    // What one container serves on the pod's loopback the other reaches.
    let _ = sh(s, &a, "nc -l -p 8080 -e echo served-by-a >/dev/null 2>&1 &")?;
    let mut got = String::new();
    wait_until("b reaches a's server on localhost:8080", || {
        got = sh(s, &b, "nc 127.0.0.1 8080 </dev/null 2>&1 || true").unwrap_or_default();
        got.contains("served-by-a")
    })
    .map_err(|e| format!("{e}: {got:?}"))
}

fn share_pid(s: &Suite, id: &str) -> Result<(), String> {
    let opts = PodOpts {
        share_pid: true,
        ..Default::default()
    };
    let pod = run_pod(s, id, "pidns", &opts)?;
    let _a = pod.run(s, pod.container("a", &["sleep", "1001"]))?;
    let b = pod.run(s, pod.container("b", &["sleep", "1002"]))?;
    let ps = sh(s, &b, "ps -o pid,args")?;
    check(
        ps.contains("sleep 1001") && ps.contains("sleep 1002"),
        || format!("b does not see both containers' processes: {ps}"),
    )?;
    let init = sh(s, &b, "tr '\\0' ' ' < /proc/1/cmdline")?;
    check(init.contains("trap"), || {
        format!("pid 1 of the pod is not the pause process: {init:?}")
    })?;
    // An orphan goes to the pause, which reaps it: no zombie stays.
    let _ = sh(s, &b, "(sleep 0.1 &); true")?;
    let mut zombies = String::new();
    wait_until("the pause reaps an orphan", || {
        zombies = sh(s, &b, "grep -l 'State:.*Z' /proc/[0-9]*/status || true").unwrap_or_default();
        zombies.is_empty()
    })
    .map_err(|e| format!("{e}: {zombies}"))
}

/// The lines of a CRI log file: `<RFC 3339 time> <stream> <P|F> <text>`.
fn log_lines(path: &str) -> Result<Vec<(String, String, String)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("log {path}: {e}"))?;
    text.lines()
        .map(|l| {
            let f: Vec<&str> = l.splitn(4, ' ').collect();
            let ok = f.len() == 4
                && f[0].contains('T')
                && (f[0].ends_with('Z') || f[0].contains('+'))
                && ["stdout", "stderr"].contains(&f[1])
                && ["P", "F"].contains(&f[2]);
            if ok {
                Ok((f[1].to_string(), f[2].to_string(), f[3].to_string()))
            } else {
                Err(format!("not a CRI log line: {l:?} in {text:?}"))
            }
        })
        .collect()
}

fn logs(s: &Suite, id: &str) -> Result<(), String> {
    let pod = run_pod(s, id, "logs", &PodOpts::default())?;
    let c = pod.run(
        s,
        pod.container(
            "c",
            &[
                "sh",
                "-c",
                "echo line-1; echo line-2 >&2; echo line-3; printf no-newline",
            ],
        ),
    )?;
    let st = wait_exited(s, &c)?;
    check(st.exit_code == 0 && st.reason == "Completed", || {
        format!("exit {} reason {:?}", st.exit_code, st.reason)
    })?;
    let want_path = Path::new(&pod.config.log_directory).join("c/0.log");
    check(Path::new(&st.log_path) == want_path, || {
        format!("log path {:?}, want {}", st.log_path, want_path.display())
    })?;
    let lines = log_lines(&st.log_path)?;
    let stdout: Vec<&str> = lines
        .iter()
        .filter(|l| l.0 == "stdout")
        .map(|l| l.2.as_str())
        .collect();
    let stderr: Vec<&str> = lines
        .iter()
        .filter(|l| l.0 == "stderr")
        .map(|l| l.2.as_str())
        .collect();
    check(
        stdout == ["line-1", "line-3", "no-newline"] && stderr == ["line-2"],
        || format!("log lines: {lines:?}"),
    )?;
    check(
        lines
            .iter()
            .filter(|l| l.2.starts_with("line-"))
            .all(|l| l.1 == "F"),
        || format!("a whole line is not tagged F: {lines:?}"),
    )
}

fn stop_grace_term(s: &Suite, id: &str) -> Result<(), String> {
    let pod = run_pod(s, id, "term", &PodOpts::default())?;
    let c = pod.run(
        s,
        pod.container(
            "c",
            &[
                "sh",
                "-c",
                "trap 'echo got-term; exit 3' TERM; while :; do sleep 1 & wait $!; done",
            ],
        ),
    )?;
    wait_catches(pid_of(s, &c)?, libc::SIGTERM)?;
    let t = Instant::now();
    stop(s, &c, 30).map_err(|e| format!("StopContainer: {e}"))?;
    let secs = t.elapsed().as_secs_f64();
    check(secs < 10.0, || {
        format!("StopContainer of a container that exits on SIGTERM took {secs:.1} s")
    })?;
    let st = wait_exited(s, &c)?;
    check(st.exit_code == 3 && st.reason == "Error", || {
        format!("exit {} reason {:?}", st.exit_code, st.reason)
    })?;
    let log = std::fs::read_to_string(&st.log_path).unwrap_or_default();
    check(log.contains("got-term"), || format!("log: {log:?}"))
}

fn stop_grace_kill(s: &Suite, id: &str) -> Result<(), String> {
    let pod = run_pod(s, id, "kill", &PodOpts::default())?;
    let c = pod.run(
        s,
        pod.container(
            "c",
            &["sh", "-c", "trap '' TERM; while :; do sleep 1; done"],
        ),
    )?;
    let pid = pid_of(s, &c)?;
    wait_until("the container ignores SIGTERM", || {
        signal_mask(pid, "SigIgn") & (1 << (libc::SIGTERM - 1)) != 0
    })?;
    let t = Instant::now();
    stop(s, &c, 2).map_err(|e| format!("StopContainer: {e}"))?;
    let secs = t.elapsed().as_secs_f64();
    check((2.0..15.0).contains(&secs), || {
        format!("StopContainer with a 2 s grace period took {secs:.1} s")
    })?;
    let st = wait_exited(s, &c)?;
    check(st.exit_code == 137 && st.reason == "Error", || {
        format!("exit {} reason {:?}", st.exit_code, st.reason)
    })
}

fn missing_program(s: &Suite, id: &str) -> Result<(), String> {
    let pod = run_pod(s, id, "missing", &PodOpts::default())?;
    let c = pod.create(s, pod.container("c", &["/no/such/program"]))?;
    let r = start(s, &c);
    check(
        r.as_ref().is_err_and(|e| e.contains("/no/such/program")),
        || format!("StartContainer of a missing program: {r:?}"),
    )?;
    let (st, _) = status(s, &c)?;
    check(
        st.state == ContainerState::ContainerExited as i32
            && st.exit_code == 128
            && st.reason == "StartError"
            && st.message.contains("/no/such/program"),
        || format!("status after the failed start: {st:?}"),
    )?;
    remove_container(s, &c)?;
    check(pod.state(s)? == PodSandboxState::SandboxReady, || {
        "the pod is not ready after its container failed".into()
    })
}

fn restart(s: &Suite, id: &str) -> Result<(), String> {
    let pod = run_pod(s, id, "restart", &PodOpts::default())?;
    let first = pod.run(
        s,
        pod.container("r", &["sh", "-c", "echo attempt-$CRI_TEST-0; exit 1"]),
    )?;
    let st = wait_exited(s, &first)?;
    check(st.exit_code == 1 && st.reason == "Error", || {
        format!(
            "first attempt: exit {} reason {:?}",
            st.exit_code, st.reason
        )
    })?;
    // The kubelet's restart: the same container, attempt 1, a log file of its own.
    let mut cfg = pod.container(
        "r",
        &["sh", "-c", "echo attempt-$CRI_TEST-1; exec sleep 1000"],
    );
    cfg.metadata.as_mut().unwrap().attempt = 1;
    cfg.log_path = "r/1.log".into();
    let second = pod.run(s, cfg)?;
    check(second != first, || {
        "the restart reused the container id".into()
    })?;
    let pid = pid_of(s, &second)?;
    check(alive(pid), || "the second attempt is not running".into())?;
    let list = |pod_id: String| {
        s.cri(|mut cl| async move {
            cl.list_containers(cri::ListContainersRequest {
                filter: Some(cri::ContainerFilter {
                    pod_sandbox_id: pod_id,
                    ..Default::default()
                }),
            })
            .await
        })
        .map(|r| {
            let mut v: Vec<(u32, i32)> = r
                .containers
                .iter()
                .map(|c| (c.metadata.as_ref().map_or(99, |m| m.attempt), c.state))
                .collect();
            v.sort();
            v
        })
    };
    let both = list(pod.id.clone())?;
    let want = vec![
        (0, ContainerState::ContainerExited as i32),
        (1, ContainerState::ContainerRunning as i32),
    ];
    check(both == want, || format!("the pod's containers: {both:?}"))?;
    let dir = Path::new(&pod.config.log_directory).join("r");
    let logs = (
        std::fs::read_to_string(dir.join("0.log")).unwrap_or_default(),
        std::fs::read_to_string(dir.join("1.log")).unwrap_or_default(),
    );
    check(
        logs.0.contains("attempt-r-0") && logs.1.contains("attempt-r-1"),
        || format!("the attempts' logs: {logs:?}"),
    )?;
    // The kubelet's garbage collection removes the dead attempt.
    remove_container(s, &first)?;
    let left = list(pod.id.clone())?;
    check(
        left == [(1, ContainerState::ContainerRunning as i32)],
        || format!("after removing the first attempt: {left:?}"),
    )?;
    Ok(())
}

/// A signal set (`SigIgn`, `SigCgt`, ...) of process `pid`.
fn signal_mask(pid: i32, set: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{set}:")))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0)
}

/// Whether runtime `bin` with state root `root` knows container `id`.
fn known_to(bin: &Path, root: &Path, id: &str) -> bool {
    let mut c = std::process::Command::new(bin);
    c.arg("--root").arg(root).args(["state", id]);
    output_within(c, std::time::Duration::from_secs(20)).ok()
}

/// The RuntimeClass example of docs/kubernetes.md: the default handler (the runtime under
/// test) and a second one, runc, in one containerd, each pod on the one it names.
fn runtime_class(s: &Suite, id: &str) -> Result<(), String> {
    let Some((runc, runc_root)) = s.reference.clone() else {
        say(&format!("SKIP {id}: no runc for the second handler"));
        return Ok(());
    };
    let default = run_pod(s, id, "default", &PodOpts::default())?;
    let on_runc = PodOpts {
        handler: REF_HANDLER,
        ..Default::default()
    };
    let other = run_pod(s, id, "runc", &on_runc)?;
    let c0 = sleeper(s, &default, "c")?;
    let c1 = sleeper(s, &other, "c")?;
    let handler = other.status(s)?.status.map(|st| st.runtime_handler);
    check(handler.as_deref() == Some(REF_HANDLER), || {
        format!("the sandbox's handler: {handler:?}")
    })?;
    let (ours, theirs) = (s.runc_root.join(NS), runc_root.join(NS));
    for (what, c, bin, root, other_root) in [
        ("default", &c0, runtime(), &ours, &theirs),
        (REF_HANDLER, &c1, runc, &theirs, &ours),
    ] {
        check(
            known_to(&bin, root, c) && !other_root.join(c).exists(),
            || format!("the {what} pod's container is not where its handler keeps it"),
        )?;
    }
    let calls = s.calls();
    check(
        calls.iter().any(|l| l.contains(&c0)) && !calls.iter().any(|l| l.contains(&c1)),
        || "the wrapper of the default handler ran the other handler's container".into(),
    )
}
