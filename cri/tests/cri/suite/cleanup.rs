//! The suite's cleanup: a scenario's pods removed as the kubelet removes them, what they may
//! leave behind, and the end of the daemon with everything it made.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_cri::v1 as cri;

use super::*;

impl Suite {
    /// Remove every pod of scenario `scenario` (its containers go with it), as the kubelet
    /// does when a pod is deleted, then the pod cgroups, which the kubelet owns.
    pub fn remove(&self, scenario: &str) {
        let filter = cri::PodSandboxFilter {
            label_selector: [(SCENARIO.to_string(), scenario.to_string())].into(),
            ..Default::default()
        };
        let pods = self
            .cri(|mut c| async move {
                c.list_pod_sandbox(cri::ListPodSandboxRequest {
                    filter: Some(filter),
                })
                .await
            })
            .map(|r| r.items)
            .unwrap_or_default();
        for p in pods {
            let id = p.id.clone();
            let _ = self.cri(|mut c| async move {
                c.stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: id })
                    .await
            });
            let _ = self.cri(|mut c| async move {
                c.remove_pod_sandbox(cri::RemovePodSandboxRequest {
                    pod_sandbox_id: p.id,
                })
                .await
            });
        }
        let made = self.made(scenario);
        for m in made.host_mounts.iter().rev() {
            let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
        }
        for parent in &made.cgroup_parents {
            self.remove_pod_cgroup(parent);
        }
    }

    /// What scenario `scenario` left behind: pods or containers the CRI still lists, and for
    /// each id it made, the runtime's state, the bundle, mounts, cgroups, processes and the
    /// shim's socket; its pod cgroups; its host mounts.
    fn leftovers(&self, scenario: &str) -> Vec<String> {
        let mut left = Vec::new();
        let label: HashMap<String, String> = [(SCENARIO.to_string(), scenario.to_string())].into();
        let l = label.clone();
        match self.cri(|mut c| async move {
            c.list_pod_sandbox(cri::ListPodSandboxRequest {
                filter: Some(cri::PodSandboxFilter {
                    label_selector: l,
                    ..Default::default()
                }),
            })
            .await
        }) {
            Ok(r) => left.extend(r.items.iter().map(|p| format!("pod sandbox {}", p.id))),
            Err(e) => left.push(format!("ListPodSandbox: {e}")),
        }
        match self.cri(|mut c| async move {
            c.list_containers(cri::ListContainersRequest {
                filter: Some(cri::ContainerFilter {
                    label_selector: label,
                    ..Default::default()
                }),
            })
            .await
        }) {
            Ok(r) => left.extend(r.containers.iter().map(|c| format!("container {}", c.id))),
            Err(e) => left.push(format!("ListContainers: {e}")),
        }
        let made = self.made(scenario);
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for id in &made.ids {
            let bundle = self
                .dir
                .join("state/io.containerd.runtime.v2.task")
                .join(NS)
                .join(id);
            left.extend(leftovers_of(id, &self.runc_root.join(NS), &bundle));
            left.extend(self.scope_leftovers(id));
            if let Some((_, root)) = &self.reference {
                let state = root.join(NS).join(id);
                if state.exists() {
                    left.push(format!("state dir {}", state.display()));
                }
            }
            if bundle.exists() {
                left.push(format!("bundle {}", bundle.display()));
            }
            // The sandbox's /dev/shm and network namespace mounts are elsewhere.
            left.extend(
                mountinfo
                    .lines()
                    .filter(|l| l.contains(id.as_str()) && !l.contains(bundle.to_str().unwrap()))
                    .map(|l| format!("mount {l}")),
            );
        }
        for id in &made.sandboxes {
            if self.shim_socket(id).exists() {
                left.push(format!("shim socket {}", self.shim_socket(id).display()));
            }
        }
        for parent in &made.cgroup_parents {
            left.extend(self.pod_cgroup_leftovers(parent));
        }
        for m in &made.host_mounts {
            if mountinfo.lines().any(|l| l.split(' ').nth(4) == m.to_str()) {
                left.push(format!("host mount {}", m.display()));
            }
        }
        left
    }

    /// Wait (at most 30 s: a shim exits after containerd's removal returns) until scenario
    /// `scenario` left nothing behind.
    pub fn settled(&self, scenario: &str) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = self.leftovers(scenario);
            if left.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("scenario {scenario} left behind: {left:#?}"));
            }
            // The pod cgroups go only once the containers' cgroups are gone.
            self.remove(scenario);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Everything the whole run could have left once the daemon is stopped and `Drop` ran:
    /// its directory, mounts under it, the pods' cgroup tree, the CNI bridge, processes of its
    /// daemon, shims or containers.
    pub fn leftovers_after(pid: u32) -> Vec<String> {
        let mut left = Vec::new();
        let dir = PathBuf::from(format!("/tmp/cri-{pid}"));
        if dir.exists() {
            left.push(format!("directory {}", dir.display()));
        }
        left.extend(mounts_under(&dir).into_iter().map(|m| format!("mount {m}")));
        for systemd in [false, true] {
            left.extend(
                cgroup_trees(&Suite::kubepods_top(pid, systemd))
                    .into_iter()
                    .map(|t| format!("cgroup {}", t.display())),
            );
        }
        if Path::new("/sys/class/net")
            .join(format!("cri{pid}br"))
            .exists()
        {
            left.push(format!("network bridge cri{pid}br"));
        }
        let results = std::fs::read_dir(Path::new(CNI_CACHE).join("results"));
        left.extend(
            results
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with(&format!("cri{pid}-"))
                })
                .map(|e| format!("CNI result {}", e.path().display())),
        );
        let dir = dir.to_str().unwrap().to_string();
        left.extend(
            processes_where(|a| a.iter().any(|x| x.contains(&dir)))
                .into_iter()
                .map(|(p, a)| format!("process {p}: {}", a.join(" "))),
        );
        left
    }
}

impl Drop for Suite {
    fn drop(&mut self) {
        // Pods first, through the CRI, while the daemon is up.
        let daemon_up = self
            .daemon
            .lock()
            .unwrap()
            .as_mut()
            .is_some_and(|d| d.is_up());
        if daemon_up {
            let scenarios: Vec<String> = self.made.lock().unwrap().keys().cloned().collect();
            for s in scenarios {
                self.remove(&s);
            }
        }
        // Whatever the runtimes still hold.
        let mut runtimes = vec![(runtime(), self.runc_root.join(NS))];
        runtimes.extend(self.reference.iter().map(|(b, r)| (b.clone(), r.join(NS))));
        for (bin, root) in runtimes {
            for e in std::fs::read_dir(&root).into_iter().flatten().flatten() {
                let mut c = Command::new(&bin);
                c.arg("--root")
                    .arg(&root)
                    .arg("delete")
                    .arg("--force")
                    .arg(e.file_name());
                let _ = try_output_within(c, Duration::from_secs(20));
            }
        }
        // The daemon, then its shims.
        if let Some(d) = self.daemon.lock().unwrap().as_mut() {
            d.stop();
        }
        if self.systemd {
            // The slices of the pods' QoS classes, which the kubelet keeps while it runs.
            crate::cgroups::stop_unit(&self.kubepods);
        }
        remove_cgroup_trees(&self.kubepods);
        umount_all_under(&self.dir);
        let sandboxes: Vec<String> = self
            .made
            .lock()
            .unwrap()
            .values()
            .flat_map(|m| m.sandboxes.clone())
            .collect();
        for id in sandboxes {
            let _ = std::fs::remove_file(self.shim_socket(&id));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        if Path::new("/sys/class/net").join(&self.bridge).exists() {
            let _ = Command::new("ip")
                .args(["link", "delete", &self.bridge])
                .status();
        }
        if !self.had_cni_cache {
            let _ = std::fs::remove_dir(Path::new(CNI_CACHE).join("results"));
            let _ = std::fs::remove_dir(CNI_CACHE);
        }
    }
}
