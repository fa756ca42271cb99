//! Resources: limits and their update in the container's cgroup, the status and stats the
//! kubelet reads, and the OOM killer's verdict.

use std::path::Path;

use k8s_cri::v1 as cri;
use k8s_cri::v1::ContainerState;

use crate::cgroups::PodLimits;
use crate::common::engine::*;
use crate::pods::*;
use crate::scenarios::pid_of;
use crate::suite::*;

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

pub fn update_resources(s: &Suite, id: &str) -> Result<(), String> {
    let pod = run_pod(s, id, "update", &PodOpts::default())?;
    let mut cfg = pod.container("c", &["sleep", "1000"]);
    cfg.linux.as_mut().unwrap().resources = Some(resources(64 << 20, 20_000));
    let c = pod.run(s, cfg)?;
    let pid = pid_of(s, &c)?;
    // The kubelet's layout: the container's cgroup in its pod's, named by its id.
    let want = s.container_cgroup(&pod.config.linux.as_ref().unwrap().cgroup_parent, &c);
    let got = cgroup_of(pid, "memory").or_else(|| cgroup_of(pid, ""));
    check(got.as_deref() == Some(want.as_str()), || {
        format!("the container's cgroup: want {want}, got {got:?}")
    })?;
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

pub fn status_and_stats(s: &Suite, id: &str) -> Result<(), String> {
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

/// A container that goes over its memory limit while it runs: exit 137, reason `OOMKilled`.
///
/// containerd's runc shim starts watching the container's cgroup for OOM kills only once the
/// runtime's `start` has returned (on cgroup v2 an inotify watch on its `memory.events`). A
/// program that is killed within that moment goes unseen, and with the systemd driver its
/// scope is even gone before the watch (systemd removes an empty scope): containerd then
/// reports reason `Error`, with runc as with casulo. Under emulation `dd` fills 32 MiB within
/// that moment. So the program allocates only after StartContainer has returned, by when the
/// shim watches: it waits for a file that an ExecSync creates, as a real workload runs a while
/// before it outgrows its limit.
pub fn oom_killed(s: &Suite, id: &str) -> Result<(), String> {
    let pod = run_pod(s, id, "oom", &PodOpts::default())?;
    let mut cfg = pod.container(
        "c",
        &[
            "sh",
            "-c",
            "until [ -e /tmp/go ]; do sleep 0.1; done; \
             exec dd if=/dev/zero of=/dev/null bs=128M count=1",
        ],
    );
    cfg.linux.as_mut().unwrap().resources = Some(resources(32 << 20, 0));
    let c = pod.run(s, cfg)?;
    sh(s, &c, "touch /tmp/go")?;
    let st = wait_exited(s, &c)?;
    check(st.exit_code == 137 && st.reason == "OOMKilled", || {
        format!("exit {} reason {:?}", st.exit_code, st.reason)
    })
}

/// The OCI config containerd gave the runtime for container (or sandbox) `id`: its bundle's
/// `config.json`, while it exists.
fn bundle_spec(s: &Suite, id: &str) -> Result<serde_json::Value, String> {
    let p = s
        .dir
        .join("state/io.containerd.runtime.v2.task")
        .join(NS)
        .join(id)
        .join("config.json");
    let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))
}

/// A burstable pod with a RuntimeClass overhead, as the kubelet runs it: it sends the
/// overhead and its containers' sum in the `PodSandboxConfig`, and it has made the pod's
/// cgroup with their sum as its limits. What containerd 1.6 passes on to the runtime for the
/// sandbox, and that the pod cgroup keeps the kubelet's limits with the pod's sandbox and
/// container in it, each in its own cgroup there with its own limits.
pub fn overhead(s: &Suite, id: &str) -> Result<(), String> {
    let container = cri::LinuxContainerResources {
        oom_score_adj: 0,
        ..resources(64 << 20, 20_000)
    };
    let overhead = cri::LinuxContainerResources {
        cpu_period: 100_000,
        cpu_quota: 10_000,
        cpu_shares: 102,
        memory_limit_in_bytes: 32 << 20,
        ..Default::default()
    };
    let limits = PodLimits {
        memory: (64 + 32) << 20,
        cpu_quota: 20_000 + 10_000,
    };
    let opts = PodOpts {
        burstable: true,
        overhead: Some(overhead),
        resources: Some(container.clone()),
        pod_limits: Some(limits),
        ..Default::default()
    };
    let pod = run_pod(s, id, "overhead", &opts)?;
    let parent = pod.config.linux.as_ref().unwrap().cgroup_parent.clone();
    // containerd 1.6 passes the containers' sum on as annotations only, and the overhead
    // not at all; the sandbox's own resources are its default CPU shares (2) and the device
    // rule: nothing for the runtime to apply to the pod.
    let spec = bundle_spec(s, &pod.id)?;
    let annotation =
        |k: &str| spec["annotations"][format!("io.kubernetes.cri.sandbox-{k}")].clone();
    let res = &spec["linux"]["resources"];
    check(
        annotation("cpu-period") == "100000"
            && annotation("cpu-quota") == "20000"
            && annotation("cpu-shares") == "256"
            && annotation("memory") == (64u64 << 20).to_string().as_str()
            && res["cpu"] == serde_json::json!({"shares": 2})
            && res["memory"].is_null(),
        || {
            format!(
                "the sandbox's annotations {} and resources {res}",
                spec["annotations"]
            )
        },
    )?;
    let overhead_values = [(32u64 << 20).to_string(), "10000".into(), "102".into()];
    let annotations = spec["annotations"].as_object().cloned().unwrap_or_default();
    check(
        !annotations.iter().any(|(k, v)| {
            k.contains("overhead") || overhead_values.iter().any(|o| v == o.as_str())
        }),
        || format!("the overhead is in the sandbox's annotations after all: {annotations:?}"),
    )?;
    let pause = pod.pause_pid(s)?;
    let want = s.container_cgroup(&parent, &pod.id);
    let got = cgroup_of(pause, "memory").or_else(|| cgroup_of(pause, ""));
    check(got.as_deref() == Some(want.as_str()), || {
        format!("the sandbox's cgroup: want {want}, got {got:?}")
    })?;
    // The sandbox's cgroup has no limit of its own: the pod's bounds it.
    let (mem, cpu) = host_limits(pause)?;
    check(
        (mem == "max" || mem.parse::<u64>().is_ok_and(|m| m > 1 << 60))
            && (cpu == "max" || cpu == "-1"),
        || format!("the sandbox's own limits: memory {mem}, CPU quota {cpu}"),
    )?;
    let kept = s.pod_limits(&parent)?;
    check(kept == limits, || {
        format!("the pod cgroup's limits after RunPodSandbox: {kept:?}, the kubelet's {limits:?}")
    })?;
    let mut cfg = pod.container("c", &["sleep", "1000"]);
    cfg.linux.as_mut().unwrap().resources = Some(container);
    let c = pod.run(s, cfg)?;
    let pid = pid_of(s, &c)?;
    let want = s.container_cgroup(&parent, &c);
    let got = cgroup_of(pid, "memory").or_else(|| cgroup_of(pid, ""));
    check(got.as_deref() == Some(want.as_str()), || {
        format!("the container's cgroup: want {want}, got {got:?}")
    })?;
    let (mem, cpu) = host_limits(pid)?;
    check(mem == (64u64 << 20).to_string() && cpu == "20000", || {
        format!("the container's limits: memory {mem}, CPU quota {cpu}")
    })?;
    let kept = s.pod_limits(&parent)?;
    check(kept == limits, || {
        format!("the pod cgroup's limits with its container: {kept:?}, the kubelet's {limits:?}")
    })
}
