//! Pods and containers as the kubelet asks for them, and what the kubelet reads back.

use std::time::{Duration, Instant};

use k8s_cri::v1 as cri;
use k8s_cri::v1::security_profile::ProfileType;
use k8s_cri::v1::{ContainerState, NamespaceMode, PodSandboxState};

use crate::common::engine::*;
use crate::suite::*;

/// The kubelet's masked and read-only paths for `procMount: Default`, which it sends with every
/// container.
pub const MASKED_PATHS: [&str; 9] = [
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];
pub const READONLY_PATHS: [&str; 6] = [
    "/proc/asound",
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// How a pod differs from the default one (host network, own pid namespace per container).
#[derive(Default, Clone)]
pub struct PodOpts {
    /// A network namespace of its own, set up by CNI, instead of the host's.
    pub own_network: bool,
    /// `shareProcessNamespace`: one pid namespace for the pod, the pause process its pid 1.
    pub share_pid: bool,
    pub privileged: bool,
    pub sysctls: Vec<(&'static str, &'static str)>,
    /// The runtime handler (a RuntimeClass's `handler`); empty for containerd's default.
    pub handler: &'static str,
    /// A burstable pod (its containers have limits), not a best-effort one: its QoS class in
    /// its cgroup parent.
    pub burstable: bool,
    /// What the kubelet sends of the pod's resources: `overhead` (its RuntimeClass's) and
    /// `resources` (its containers' sum); and the limits it writes into the pod's cgroup,
    /// which it makes before `RunPodSandbox` (without them the runtime makes it).
    pub overhead: Option<cri::LinuxContainerResources>,
    pub resources: Option<cri::LinuxContainerResources>,
    pub pod_limits: Option<crate::cgroups::PodLimits>,
}

/// A running pod sandbox.
pub struct Pod {
    pub id: String,
    pub config: cri::PodSandboxConfig,
    pub scenario: String,
}

fn ns_options(opts: &PodOpts) -> cri::NamespaceOption {
    cri::NamespaceOption {
        network: if opts.own_network {
            NamespaceMode::Pod
        } else {
            NamespaceMode::Node
        } as i32,
        pid: if opts.share_pid {
            NamespaceMode::Pod
        } else {
            NamespaceMode::Container
        } as i32,
        ipc: NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

/// `RunPodSandbox` of pod `name` for scenario `scenario`: its metadata, hostname, log
/// directory and cgroup parent (the kubelet's layout, see [`crate::cgroups`]) as the kubelet
/// sets them.
pub fn run_pod(s: &Suite, scenario: &str, name: &str, opts: &PodOpts) -> Result<Pod, String> {
    let uid = format!("{scenario}-{name}");
    let log_dir = s.dir.join("pods").join(&uid);
    std::fs::create_dir_all(&log_dir).map_err(|e| format!("{}: {e}", log_dir.display()))?;
    let qos = if opts.burstable {
        "burstable"
    } else {
        "besteffort"
    };
    let cgroup_parent = s.pod_cgroup_parent(qos, &uid);
    s.record(scenario, |m| m.cgroup_parents.push(cgroup_parent.clone()));
    if let Some(limits) = opts.pod_limits {
        s.make_pod_cgroup(&cgroup_parent, limits)
            .map_err(|e| format!("the pod cgroup of {name}: {e}"))?;
    }
    let config = cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: format!("{scenario}-{name}"),
            uid: uid.clone(),
            namespace: "cri-tests".into(),
            attempt: 0,
        }),
        // The kubelet names only pods with a network of their own: a host-network pod has
        // the host's UTS namespace, where no runtime may set a hostname.
        hostname: if opts.own_network {
            name.into()
        } else {
            String::new()
        },
        log_directory: log_dir.to_str().unwrap().into(),
        labels: [(SCENARIO.to_string(), scenario.to_string())].into(),
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent,
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(ns_options(opts)),
                privileged: opts.privileged,
                ..Default::default()
            }),
            sysctls: opts
                .sysctls
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            overhead: opts.overhead.clone(),
            resources: opts.resources.clone(),
        }),
        ..Default::default()
    };
    let req = cri::RunPodSandboxRequest {
        config: Some(config.clone()),
        runtime_handler: opts.handler.into(),
    };
    let id = s
        .cri(|mut c| async move { c.run_pod_sandbox(req).await })
        .map_err(|e| format!("RunPodSandbox {name}: {e}"))?
        .pod_sandbox_id;
    s.record(scenario, |m| {
        m.ids.push(id.clone());
        m.sandboxes.push(id.clone());
    });
    Ok(Pod {
        id,
        config,
        scenario: scenario.into(),
    })
}

impl Pod {
    /// The container config the kubelet sends for container `name` running `args` in this pod:
    /// the busybox image, the pod's namespaces, unconfined seccomp (a pod that names no
    /// profile), the default masked and read-only paths, a log file
    /// `<log dir>/<name>/<attempt>.log`.
    pub fn container(&self, name: &str, args: &[&str]) -> cri::ContainerConfig {
        let sc = self
            .config
            .linux
            .as_ref()
            .unwrap()
            .security_context
            .as_ref()
            .unwrap();
        cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(cri::ImageSpec {
                image: BUSYBOX.into(),
                ..Default::default()
            }),
            command: args.iter().map(|a| a.to_string()).collect(),
            envs: vec![cri::KeyValue {
                key: "CRI_TEST".into(),
                value: name.into(),
            }],
            labels: [(SCENARIO.to_string(), self.scenario.clone())].into(),
            log_path: format!("{name}/0.log"),
            linux: Some(cri::LinuxContainerConfig {
                resources: Some(cri::LinuxContainerResources {
                    cpu_shares: 2,
                    oom_score_adj: 1000,
                    ..Default::default()
                }),
                security_context: Some(cri::LinuxContainerSecurityContext {
                    namespace_options: sc.namespace_options.clone(),
                    privileged: sc.privileged,
                    seccomp: Some(cri::SecurityProfile {
                        profile_type: ProfileType::Unconfined as i32,
                        ..Default::default()
                    }),
                    masked_paths: if sc.privileged {
                        Vec::new()
                    } else {
                        MASKED_PATHS.iter().map(|p| p.to_string()).collect()
                    },
                    readonly_paths: if sc.privileged {
                        Vec::new()
                    } else {
                        READONLY_PATHS.iter().map(|p| p.to_string()).collect()
                    },
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }
    }

    /// `CreateContainer` of `config` in this pod (the kubelet makes its log directory first).
    pub fn create(&self, s: &Suite, config: cri::ContainerConfig) -> Result<String, String> {
        let name = config.metadata.as_ref().unwrap().name.clone();
        let log_dir = std::path::Path::new(&self.config.log_directory).join(&name);
        std::fs::create_dir_all(&log_dir).map_err(|e| format!("{}: {e}", log_dir.display()))?;
        let req = cri::CreateContainerRequest {
            pod_sandbox_id: self.id.clone(),
            config: Some(config),
            sandbox_config: Some(self.config.clone()),
        };
        let id = s
            .cri(|mut c| async move { c.create_container(req).await })
            .map_err(|e| format!("CreateContainer {name}: {e}"))?
            .container_id;
        s.record(&self.scenario, |m| m.ids.push(id.clone()));
        Ok(id)
    }

    /// `CreateContainer` then `StartContainer`.
    pub fn run(&self, s: &Suite, config: cri::ContainerConfig) -> Result<String, String> {
        let id = self.create(s, config)?;
        start(s, &id)?;
        Ok(id)
    }

    /// `PodSandboxStatus`, verbose (its info has the pause process's pid).
    pub fn status(&self, s: &Suite) -> Result<cri::PodSandboxStatusResponse, String> {
        let req = cri::PodSandboxStatusRequest {
            pod_sandbox_id: self.id.clone(),
            verbose: true,
        };
        s.cri(|mut c| async move { c.pod_sandbox_status(req).await })
    }

    /// The pid of the pause process, from the verbose status.
    pub fn pause_pid(&self, s: &Suite) -> Result<i32, String> {
        let st = self.status(s)?;
        info_pid(&st.info).ok_or_else(|| format!("no pid in the sandbox's info: {:?}", st.info))
    }

    pub fn state(&self, s: &Suite) -> Result<PodSandboxState, String> {
        let st = self.status(s)?.status.ok_or("no sandbox status")?;
        PodSandboxState::try_from(st.state).map_err(|e| e.to_string())
    }

    pub fn stop(&self, s: &Suite) -> Result<(), String> {
        let id = self.id.clone();
        s.cri(|mut c| async move {
            c.stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: id })
                .await
        })
        .map(|_| ())
        .map_err(|e| format!("StopPodSandbox: {e}"))
    }

    pub fn remove(&self, s: &Suite) -> Result<(), String> {
        let id = self.id.clone();
        s.cri(|mut c| async move {
            c.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: id })
                .await
        })
        .map(|_| ())
        .map_err(|e| format!("RemovePodSandbox: {e}"))
    }
}

/// The `pid` of a verbose status's `info` JSON.
fn info_pid(info: &std::collections::HashMap<String, String>) -> Option<i32> {
    let v: serde_json::Value = serde_json::from_str(info.get("info")?).ok()?;
    v["pid"].as_i64().map(|p| p as i32).filter(|p| *p > 0)
}

pub fn start(s: &Suite, id: &str) -> Result<(), String> {
    let id = id.to_string();
    s.cri(|mut c| async move {
        c.start_container(cri::StartContainerRequest { container_id: id })
            .await
    })
    .map(|_| ())
}

pub fn stop(s: &Suite, id: &str, timeout: i64) -> Result<(), String> {
    let id = id.to_string();
    s.cri(|mut c| async move {
        c.stop_container(cri::StopContainerRequest {
            container_id: id,
            timeout,
        })
        .await
    })
    .map(|_| ())
}

pub fn remove_container(s: &Suite, id: &str) -> Result<(), String> {
    let id = id.to_string();
    s.cri(|mut c| async move {
        c.remove_container(cri::RemoveContainerRequest { container_id: id })
            .await
    })
    .map(|_| ())
}

/// `ContainerStatus`, verbose, and the pid of its process from the info (0 when none).
pub fn status(s: &Suite, id: &str) -> Result<(cri::ContainerStatus, i32), String> {
    let req = cri::ContainerStatusRequest {
        container_id: id.to_string(),
        verbose: true,
    };
    let r = s.cri(|mut c| async move { c.container_status(req).await })?;
    let pid = info_pid(&r.info).unwrap_or(0);
    Ok((r.status.ok_or("no container status")?, pid))
}

pub fn state(s: &Suite, id: &str) -> Result<ContainerState, String> {
    let st = status(s, id)?.0;
    ContainerState::try_from(st.state).map_err(|e| e.to_string())
}

/// Wait (at most 30 s) until container `id` has exited; its status then.
pub fn wait_exited(s: &Suite, id: &str) -> Result<cri::ContainerStatus, String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (st, _) = status(s, id)?;
        if st.state == ContainerState::ContainerExited as i32 {
            return Ok(st);
        }
        if Instant::now() > deadline {
            return Err(format!("container {id} has not exited after 30 s: {st:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The result of an `ExecSync`.
pub struct Exec {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: i32,
}

/// `ExecSync` of `cmd` in container `id` with `timeout` seconds (0: none).
pub fn exec_sync(s: &Suite, id: &str, cmd: &[&str], timeout: i64) -> Result<Exec, String> {
    let req = cri::ExecSyncRequest {
        container_id: id.to_string(),
        cmd: cmd.iter().map(|c| c.to_string()).collect(),
        timeout,
    };
    let r = s.cri(|mut c| async move { c.exec_sync(req).await })?;
    Ok(Exec {
        stdout: String::from_utf8_lossy(&r.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&r.stderr).into_owned(),
        exit_code: r.exit_code,
    })
}

/// `sh -c script` in container `id`, which must exit 0; its stdout, trimmed.
pub fn sh(s: &Suite, id: &str, script: &str) -> Result<String, String> {
    let r = exec_sync(s, id, &["sh", "-c", script], 30)?;
    check(r.exit_code == 0, || {
        format!(
            "{script:?}: exit {}, stdout {:?}, stderr {:?}",
            r.exit_code, r.stdout, r.stderr
        )
    })?;
    Ok(r.stdout.trim().to_string())
}

/// The path of `pid`'s cgroup in hierarchy `controller` (v1) from /proc/<pid>/cgroup.
pub fn cgroup_of(pid: i32, controller: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
        ctrls
            .split(',')
            .any(|c| c == controller)
            .then(|| path.to_string())
    })
}
