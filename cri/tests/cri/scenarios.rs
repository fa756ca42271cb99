//! The scenarios, each given the suite and its own name (the label of its pods). Each checks
//! what the kubelet would read back and leaves its pods for the runner to remove.

use std::path::Path;
use std::time::Instant;

use k8s_cri::v1 as cri;
use k8s_cri::v1::security_profile::ProfileType;
use k8s_cri::v1::{ContainerState, MountPropagation, PodSandboxState};

use crate::common::engine::*;
use crate::common::*;
use crate::pods::*;
use crate::suite::*;

pub fn all() -> Vec<(&'static str, Scenario<Suite>)> {
    vec![
        // The slowest first, so that they overlap with the rest.
        (
            "StopContainer: SIGKILL after the grace period",
            stop_grace_kill,
        ),
        ("ExecSync: output, exit code, timeout", exec_sync_scenario),
        (
            "RunPodSandbox / StopPodSandbox / RemovePodSandbox",
            pod_lifecycle,
        ),
        (
            "two containers share the pod's network, IPC and UTS namespaces",
            shared_namespaces,
        ),
        (
            "shareProcessNamespace: one pid namespace, pause as pid 1",
            share_pid,
        ),
        ("container logs in the CRI format", logs),
        (
            "StopContainer: SIGTERM within the grace period",
            stop_grace_term,
        ),
        ("UpdateContainerResources", update_resources),
        (
            "runAsUser, runAsGroup, supplementalGroups, noNewPrivs",
            run_as_user,
        ),
        ("capabilities: drop ALL, add two; privileged", capabilities),
        ("seccomp RuntimeDefault and Unconfined", seccomp),
        (
            "readOnlyRootFilesystem, masked and read-only paths",
            readonly_masked,
        ),
        ("sysctls of the pod", sysctls),
        (
            "hostPath mounts: read-only, and each propagation mode",
            host_paths,
        ),
        (
            "ContainerStatus, ContainerStats, ListContainerStats",
            status_and_stats,
        ),
        (
            "a missing program: StartError with the cause",
            missing_program,
        ),
        ("OOMKilled: a container over its memory limit", oom_killed),
        (
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
fn pid_of(s: &Suite, id: &str) -> Result<i32, String> {
    let (st, pid) = status(s, id)?;
    check(
        st.state == ContainerState::ContainerRunning as i32 && pid > 0,
        || format!("container {id} is not running with a pid: {st:?}"),
    )?;
    Ok(pid)
}

/// A container that runs `sleep 1000` (as `sleep` itself, the container's pid 1).
fn sleeper(s: &Suite, pod: &Pod, name: &str) -> Result<String, String> {
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
    let want = format!(
        "{}/{}",
        pod.config.linux.as_ref().unwrap().cgroup_parent,
        pod.id
    );
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
    })
}

fn exec_sync_scenario(s: &Suite, id: &str) -> Result<(), String> {
    let pod = run_pod(s, id, "exec", &PodOpts::default())?;
    let c = sleeper(s, &pod, "c")?;
    let r = exec_sync(
        s,
        &c,
        &["sh", "-c", "echo out-$CRI_TEST; echo err >&2; exit 3"],
        10,
    )?;
    check(
        r.exit_code == 3 && r.stdout == "out-c\n" && r.stderr == "err\n",
        || {
            format!(
                "exit {}, stdout {:?}, stderr {:?}",
                r.exit_code, r.stdout, r.stderr
            )
        },
    )?;
    let missing = exec_sync(s, &c, &["/no/such/program"], 10);
    check(
        missing
            .as_ref()
            .is_err_and(|e| e.contains("/no/such/program")),
        || {
            format!(
                "exec of a missing program: {:?}",
                missing
                    .as_ref()
                    .map(|r| (r.exit_code, &r.stdout, &r.stderr))
            )
        },
    )?;
    // The kubelet's probes have a timeout: past it the call fails and the process is killed.
    let t = Instant::now();
    let r = exec_sync(s, &c, &["sleep", "30"], 1);
    let secs = t.elapsed().as_secs_f64();
    check(r.is_err() && secs < 15.0, || {
        format!(
            "ExecSync past its 1 s timeout: after {secs:.1} s: {:?}",
            r.as_ref().map(|r| r.exit_code)
        )
    })?;
    let e = r.err().unwrap_or_default();
    check(e.contains("timeout") || e.contains("deadline"), || {
        format!("the timeout's error: {e}")
    })?;
    let mut ps = String::new();
    wait_until("the timed-out exec is killed", || {
        ps = sh(s, &c, "ps -o args").unwrap_or_default();
        !ps.contains("sleep 30")
    })
    .map_err(|e| format!("{e}: {ps}"))?;
    check(state(s, &c)? == ContainerState::ContainerRunning, || {
        "the container stopped after the execs".into()
    })
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

/// A signal set (`SigIgn`, `SigCgt`, ...) of process `pid`.
fn signal_mask(pid: i32, set: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{set}:")))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0)
}

/// The memory limit and the CPU quota of `pid`'s cgroup, read on the host.
fn host_limits(pid: i32) -> Result<(String, String), String> {
    let read = |p: String| {
        std::fs::read_to_string(&p)
            .map(|v| v.trim().to_string())
            .map_err(|e| format!("{p}: {e}"))
    };
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        let cg = cgroup_of(pid, "").ok_or("no cgroup")?;
        let mem = read(format!("/sys/fs/cgroup{cg}/memory.max"))?;
        let cpu = read(format!("/sys/fs/cgroup{cg}/cpu.max"))?;
        Ok((mem, cpu.split(' ').next().unwrap_or("").to_string()))
    } else {
        let mem = cgroup_of(pid, "memory").ok_or("no memory cgroup")?;
        let cpu = cgroup_of(pid, "cpu").ok_or("no cpu cgroup")?;
        Ok((
            read(format!("/sys/fs/cgroup/memory{mem}/memory.limit_in_bytes"))?,
            read(format!("/sys/fs/cgroup/cpu{cpu}/cpu.cfs_quota_us"))?,
        ))
    }
}

fn resources(memory: i64, quota: i64) -> cri::LinuxContainerResources {
    cri::LinuxContainerResources {
        cpu_period: 100_000,
        cpu_quota: quota,
        cpu_shares: 256,
        memory_limit_in_bytes: memory,
        oom_score_adj: 1000,
        ..Default::default()
    }
}

fn update_resources(s: &Suite, id: &str) -> Result<(), String> {
    let pod = run_pod(s, id, "update", &PodOpts::default())?;
    let mut cfg = pod.container("c", &["sleep", "1000"]);
    cfg.linux.as_mut().unwrap().resources = Some(resources(64 << 20, 20_000));
    let c = pod.run(s, cfg)?;
    let pid = pid_of(s, &c)?;
    let (mem, cpu) = host_limits(pid)?;
    check(mem == (64u64 << 20).to_string() && cpu == "20000", || {
        format!("limits at start: memory {mem}, CPU quota {cpu}")
    })?;
    let req = cri::UpdateContainerResourcesRequest {
        container_id: c.clone(),
        linux: Some(resources(96 << 20, 50_000)),
        ..Default::default()
    };
    s.cri(|mut cl| async move { cl.update_container_resources(req).await })
        .map_err(|e| format!("UpdateContainerResources: {e}"))?;
    let (mem, cpu) = host_limits(pid)?;
    check(mem == (96u64 << 20).to_string() && cpu == "50000", || {
        format!("limits after the update: memory {mem}, CPU quota {cpu}")
    })?;
    // What the container itself reads.
    let inside = sh(s, &c, SHOW_LIMITS)?;
    let inside: Vec<&str> = inside.lines().collect();
    check(
        inside.first() == Some(&(96u64 << 20).to_string().as_str())
            && inside.get(1) == Some(&"50000"),
        || format!("limits seen in the container: {inside:?}"),
    )
}

fn run_as_user(s: &Suite, id: &str) -> Result<(), String> {
    let pod = run_pod(s, id, "user", &PodOpts::default())?;
    let mut cfg = pod.container("c", &["sleep", "1000"]);
    let sc = cfg
        .linux
        .as_mut()
        .unwrap()
        .security_context
        .as_mut()
        .unwrap();
    sc.run_as_user = Some(cri::Int64Value { value: 1000 });
    sc.run_as_group = Some(cri::Int64Value { value: 2000 });
    sc.supplemental_groups = vec![3000];
    sc.no_new_privs = true;
    let c = pod.run(s, cfg)?;
    let got = sh(
        s,
        &c,
        "id -u; id -g; id -G; grep NoNewPrivs /proc/self/status",
    )?;
    let got: Vec<&str> = got.lines().map(str::trim).collect();
    check(
        got.len() == 4
            && got[0] == "1000"
            && got[1] == "2000"
            && got[2].split(' ').any(|g| g == "3000")
            && got[3].split_whitespace().eq(["NoNewPrivs:", "1"]),
        || format!("id and NoNewPrivs: {got:?}"),
    )?;
    // The container's own process too, not only the exec.
    let pid = pid_of(s, &c)?;
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let uid = st.lines().find(|l| l.starts_with("Uid:")).unwrap_or("");
    check(uid.split_whitespace().nth(1) == Some("1000"), || {
        format!("the container's process: {uid:?}")
    })
}

fn capabilities(s: &Suite, id: &str) -> Result<(), String> {
    let pod = run_pod(s, id, "caps", &PodOpts::default())?;
    let mut cfg = pod.container("c", &["sleep", "1000"]);
    cfg.linux
        .as_mut()
        .unwrap()
        .security_context
        .as_mut()
        .unwrap()
        .capabilities = Some(cri::Capability {
        drop_capabilities: vec!["ALL".into()],
        add_capabilities: vec!["NET_BIND_SERVICE".into(), "NET_RAW".into()],
        ..Default::default()
    });
    let c = pod.run(s, cfg)?;
    let st = std::fs::read_to_string(format!("/proc/{}/status", pid_of(s, &c)?))
        .map_err(|e| e.to_string())?;
    // CAP_NET_BIND_SERVICE is 10, CAP_NET_RAW 13.
    let want = (1u64 << 10) | (1u64 << 13);
    for set in ["CapEff", "CapPrm", "CapBnd"] {
        check(cap_field(&st, set) == want, || {
            format!("{set}: {:#x}, want {want:#x}", cap_field(&st, set))
        })?;
    }
    // A privileged container in a privileged pod: every capability the host's root has.
    let privileged = PodOpts {
        privileged: true,
        ..Default::default()
    };
    let pod = run_pod(s, id, "priv", &privileged)?;
    let c = sleeper(s, &pod, "p")?;
    let st = std::fs::read_to_string(format!("/proc/{}/status", pid_of(s, &c)?))
        .map_err(|e| e.to_string())?;
    let host = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    check(
        cap_field(&st, "CapEff") == cap_field(&host, "CapBnd"),
        || {
            format!(
                "privileged CapEff {:#x}, the host's bounding set {:#x}",
                cap_field(&st, "CapEff"),
                cap_field(&host, "CapBnd")
            )
        },
    )?;
    let sys = sh(s, &c, "grep ' /sys ' /proc/self/mountinfo")?;
    check(
        sys.split(' ').nth(5).is_some_and(|o| o.starts_with("rw")),
        || format!("/sys of a privileged container: {sys:?}"),
    )
}

fn seccomp(s: &Suite, id: &str) -> Result<(), String> {
    let pod = run_pod(s, id, "seccomp", &PodOpts::default())?;
    for (name, profile, mode) in [
        ("default", ProfileType::RuntimeDefault, "2"),
        ("unconfined", ProfileType::Unconfined, "0"),
    ] {
        let mut cfg = pod.container(name, &["sleep", "1000"]);
        cfg.linux
            .as_mut()
            .unwrap()
            .security_context
            .as_mut()
            .unwrap()
            .seccomp = Some(cri::SecurityProfile {
            profile_type: profile as i32,
            ..Default::default()
        });
        let c = pod.run(s, cfg)?;
        let st = std::fs::read_to_string(format!("/proc/{}/status", pid_of(s, &c)?))
            .map_err(|e| e.to_string())?;
        let got = st
            .lines()
            .find_map(|l| l.strip_prefix("Seccomp:"))
            .map(str::trim);
        check(got == Some(mode), || {
            format!("{profile:?}: Seccomp {got:?}, want {mode}")
        })?;
    }
    Ok(())
}

fn readonly_masked(s: &Suite, id: &str) -> Result<(), String> {
    let pod = run_pod(s, id, "ro", &PodOpts::default())?;
    let mut cfg = pod.container("c", &["sleep", "1000"]);
    cfg.linux
        .as_mut()
        .unwrap()
        .security_context
        .as_mut()
        .unwrap()
        .readonly_rootfs = true;
    let c = pod.run(s, cfg)?;
    let r = exec_sync(
        s,
        &c,
        &["sh", "-c", "touch /new-file 2>&1; echo touch=$?"],
        10,
    )?;
    check(
        r.stdout.contains("Read-only file system") && r.stdout.contains("touch=1"),
        || format!("the root is writable: {:?}", r.stdout),
    )?;
    // The CRI's own files are still there.
    let _ = sh(
        s,
        &c,
        "test -s /etc/hosts && test -f /etc/resolv.conf && test -s /etc/hostname",
    )?;
    // Each masked path the host has reads empty in the container: a file as /dev/null, a
    // directory as an empty read-only tmpfs.
    let mut masked = 0;
    for p in MASKED_PATHS {
        let host = Path::new(p);
        let (script, full_on_host) = if host.is_dir() {
            (
                format!("ls -A {p} | wc -l"),
                std::fs::read_dir(host).is_ok_and(|mut d| d.next().is_some()),
            )
        } else if host.exists() {
            (
                format!("wc -c < {p}"),
                std::fs::read(host).is_ok_and(|b| !b.is_empty()),
            )
        } else {
            continue;
        };
        let got = sh(s, &c, &script)?;
        check(got == "0", || format!("masked {p}: {script} says {got:?}"))?;
        masked += usize::from(full_on_host);
    }
    check(masked > 0, || {
        "no masked path has content on this host: nothing was shown".into()
    })?;
    let sys = sh(s, &c, "grep ' /proc/sys ' /proc/self/mountinfo")?;
    check(
        sys.split(' ').nth(5).is_some_and(|o| o.starts_with("ro")),
        || format!("/proc/sys is not read-only: {sys:?}"),
    )?;
    let r = exec_sync(
        s,
        &c,
        &["sh", "-c", "echo 1 > /proc/sys/kernel/shm_rmid_forced"],
        10,
    )?;
    check(r.exit_code != 0, || "/proc/sys is writable".into())
}

fn sysctls(s: &Suite, id: &str) -> Result<(), String> {
    let opts = PodOpts {
        own_network: true,
        sysctls: vec![
            ("kernel.shm_rmid_forced", "1"),
            ("net.ipv4.ip_unprivileged_port_start", "80"),
        ],
        ..Default::default()
    };
    let pod = run_pod(s, id, "sysctl", &opts)?;
    let c = sleeper(s, &pod, "c")?;
    let got = sh(
        s,
        &c,
        "cat /proc/sys/kernel/shm_rmid_forced /proc/sys/net/ipv4/ip_unprivileged_port_start",
    )?;
    check(got.split_whitespace().eq(["1", "80"]), || {
        format!("sysctls in the container: {got:?}")
    })?;
    let host = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .unwrap_or_default();
    check(host.trim() != "80", || "the host's sysctl changed".into())
}

/// A host directory made a mount point of its own with `propagation` (`shared` or `slave`
/// needs one), noted for the cleanup.
fn host_mount_point(
    s: &Suite,
    scenario: &str,
    dir: &Path,
    propagation: &str,
) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    s.record(scenario, |m| m.host_mounts.push(dir.to_path_buf()));
    for args in [
        vec!["--bind", dir.to_str().unwrap(), dir.to_str().unwrap()],
        vec![propagation, dir.to_str().unwrap()],
    ] {
        let st = std::process::Command::new("mount")
            .args(&args)
            .status()
            .map_err(|e| e.to_string())?;
        check(st.success(), || format!("mount {args:?}"))?;
    }
    Ok(())
}

fn tmpfs_on_host(s: &Suite, scenario: &str, at: &Path) -> Result<(), String> {
    std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
    s.record(scenario, |m| m.host_mounts.push(at.to_path_buf()));
    nix::mount::mount(
        Some("tmpfs"),
        at,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|e| format!("mount tmpfs at {}: {e}", at.display()))
}

fn mount_of(host: &Path, at: &str, ro: bool, p: MountPropagation) -> cri::Mount {
    cri::Mount {
        container_path: at.into(),
        host_path: host.to_str().unwrap().into(),
        readonly: ro,
        propagation: p as i32,
        ..Default::default()
    }
}

fn host_paths(s: &Suite, id: &str) -> Result<(), String> {
    let base = s.dir.join("hostpath").join(id);
    let (data, ro, h2c, bidir) = (
        base.join("data"),
        base.join("ro"),
        base.join("h2c"),
        base.join("bidir"),
    );
    for d in [&data, &ro] {
        std::fs::create_dir_all(d).map_err(|e| e.to_string())?;
        std::fs::write(d.join("file"), "from-host").map_err(|e| e.to_string())?;
    }
    host_mount_point(s, id, &h2c, "--make-rshared")?;
    host_mount_point(s, id, &bidir, "--make-rshared")?;
    // Bidirectional propagation is for privileged containers (the kubelet refuses it for
    // others): the container mounts, the host sees it.
    let opts = PodOpts {
        privileged: true,
        ..Default::default()
    };
    let pod = run_pod(s, id, "hostpath", &opts)?;
    let mut cfg = pod.container("c", &["sleep", "1000"]);
    cfg.mounts = vec![
        mount_of(&data, "/data", false, MountPropagation::PropagationPrivate),
        mount_of(&ro, "/ro", true, MountPropagation::PropagationPrivate),
        mount_of(
            &h2c,
            "/h2c",
            false,
            MountPropagation::PropagationHostToContainer,
        ),
        mount_of(
            &bidir,
            "/bidir",
            false,
            MountPropagation::PropagationBidirectional,
        ),
    ];
    let c = pod.run(s, cfg)?;
    let got = sh(
        s,
        &c,
        "cat /data/file; echo; cat /ro/file; echo from-container > /data/out",
    )?;
    check(
        got.split_whitespace().eq(["from-host", "from-host"]),
        || format!("the host's files in the container: {got:?}"),
    )?;
    let out = std::fs::read_to_string(data.join("out")).unwrap_or_default();
    check(out.trim() == "from-container", || {
        format!("the container's write on the host: {out:?}")
    })?;
    let r = exec_sync(s, &c, &["sh", "-c", "touch /ro/new 2>&1"], 10)?;
    check(r.exit_code != 0 && r.stdout.contains("Read-only"), || {
        format!("a read-only host path is writable: {:?}", r.stdout)
    })?;
    // Host to container: a mount made on the host afterwards shows in the container; the
    // private mount's does not.
    tmpfs_on_host(s, id, &h2c.join("sub"))?;
    tmpfs_on_host(s, id, &data.join("sub"))?;
    let mut seen = String::new();
    wait_until("the host's new mount shows at /h2c/sub", || {
        seen = sh(s, &c, "grep -c ' /h2c/sub ' /proc/self/mountinfo || true").unwrap_or_default();
        seen == "1"
    })
    .map_err(|e| format!("{e}: {seen:?}"))?;
    let private = sh(s, &c, "grep -c ' /data/sub ' /proc/self/mountinfo || true")?;
    check(private == "0", || {
        "a host mount reached a private host path".into()
    })?;
    // Bidirectional: the container's mount shows on the host.
    let sub = bidir.join("sub");
    s.record(id, |m| m.host_mounts.push(sub.clone()));
    let _ = sh(
        s,
        &c,
        "mkdir -p /bidir/sub && mount -t tmpfs tmpfs /bidir/sub",
    )?;
    wait_until("the container's mount shows on the host", || {
        mounts_under(&bidir).iter().any(|m| Path::new(m) == sub)
    })
}

fn status_and_stats(s: &Suite, id: &str) -> Result<(), String> {
    let pod = run_pod(s, id, "stats", &PodOpts::default())?;
    let c = pod.run(
        s,
        pod.container(
            "c",
            &[
                "sh",
                "-c",
                "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; exec sleep 1000",
            ],
        ),
    )?;
    let (st, pid) = status(s, &c)?;
    check(
        st.state == ContainerState::ContainerRunning as i32
            && st.started_at >= st.created_at
            && st.created_at > 0
            && st.finished_at == 0
            && pid > 0,
        || format!("status of the running container: {st:?}"),
    )?;
    check(
        st.image.as_ref().map(|i| i.image.as_str()) == Some(BUSYBOX)
            && st.image_ref.starts_with("sha256:")
            && st.metadata.as_ref().map(|m| m.name.as_str()) == Some("c")
            && st.labels.get(SCENARIO).map(String::as_str) == Some(id),
        || format!("image, metadata and labels: {st:?}"),
    )?;
    let filter = cri::ContainerStatsFilter {
        pod_sandbox_id: pod.id.clone(),
        ..Default::default()
    };
    let mut stats = None;
    wait_until("ListContainerStats reports CPU and memory use", || {
        let f = filter.clone();
        let r = s.cri(|mut cl| async move {
            cl.list_container_stats(cri::ListContainerStatsRequest { filter: Some(f) })
                .await
        });
        stats = r.ok().and_then(|r| {
            r.stats
                .into_iter()
                .find(|x| x.attributes.as_ref().is_some_and(|a| a.id == c))
        });
        stats.as_ref().is_some_and(used_cpu_and_memory)
    })
    .map_err(|e| format!("{e}: {stats:?}"))?;
    let cid = c.clone();
    let one = s
        .cri(|mut cl| async move {
            cl.container_stats(cri::ContainerStatsRequest { container_id: cid })
                .await
        })?
        .stats;
    check(one.as_ref().is_some_and(used_cpu_and_memory), || {
        format!("ContainerStats: {one:?}")
    })?;
    stop(s, &c, 0)?;
    let st = wait_exited(s, &c)?;
    check(
        st.exit_code == 137 && st.finished_at >= st.started_at,
        || format!("status of the stopped container: {st:?}"),
    )
}

fn used_cpu_and_memory(x: &cri::ContainerStats) -> bool {
    let cpu = x
        .cpu
        .as_ref()
        .and_then(|c| c.usage_core_nano_seconds)
        .map_or(0, |v| v.value);
    let mem = x
        .memory
        .as_ref()
        .and_then(|m| m.working_set_bytes)
        .map_or(0, |v| v.value);
    cpu > 0 && mem > 0
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

fn oom_killed(s: &Suite, id: &str) -> Result<(), String> {
    let pod = run_pod(s, id, "oom", &PodOpts::default())?;
    let mut cfg = pod.container(
        "c",
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=128M", "count=1"],
    );
    cfg.linux.as_mut().unwrap().resources = Some(resources(32 << 20, 0));
    let c = pod.run(s, cfg)?;
    let st = wait_exited(s, &c)?;
    check(st.exit_code == 137 && st.reason == "OOMKilled", || {
        format!("exit {} reason {:?}", st.exit_code, st.reason)
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
