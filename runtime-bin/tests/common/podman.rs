//! What the podman suites (`podman.rs`, as root; `podman_rootless.rs`, as a user) share: the
//! calls every scenario makes on a private podman world, and the check that a scenario left
//! nothing behind. A suite says how to run podman in its world, where the runtime keeps its
//! state there, and what else a scenario could leave.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::engine::{check, describe, wait_until};
use super::Run;

/// The image every scenario runs, imported by the suite.
pub const IMAGE: &str = "localhost/casulo.test/busybox:latest";

/// A private podman world: its own storage, run root and configuration.
pub trait PodmanWorld {
    /// `podman ARGS` in this world.
    fn podman(&self, args: &[&str]) -> Run;

    /// Flags every `podman run` of the suite gets before the scenario's own.
    fn run_flags(&self) -> Vec<&str> {
        Vec::new()
    }

    /// The runtime's state root as podman's runtime calls use it in this world.
    fn runtime_root(&self) -> PathBuf;

    /// What a scenario can leave besides containers podman lists and runtime state: cgroups,
    /// mounts, processes.
    fn other_leftovers(&self) -> Vec<String>;

    /// `podman run --name NAME [suite flags] FLAGS IMAGE CMD`.
    fn run(&self, name: &str, flags: &[&str], cmd: &[&str]) -> Run {
        let mut a = vec!["run", "--name", name];
        a.extend(self.run_flags());
        a.extend_from_slice(flags);
        a.push(IMAGE);
        a.extend_from_slice(cmd);
        self.podman(&a)
    }

    /// A detached container running `sh -c cmd`, once its log shows `ready` (so that its
    /// shell has set its traps).
    fn run_detached(
        &self,
        name: &str,
        flags: &[&str],
        cmd: &str,
        ready: &str,
    ) -> Result<(), String> {
        let mut f = vec!["-d"];
        f.extend_from_slice(flags);
        let r = self.run(name, &f, &["sh", "-c", cmd]);
        check(r.ok(), || format!("podman run -d: {}", describe(&r)))?;
        wait_until(&format!("{name} logs {ready:?}"), || {
            self.podman(&["logs", name]).stdout.contains(ready)
        })
    }

    /// `podman inspect --format FORMAT NAME`, trimmed.
    fn inspect(&self, name: &str, format: &str) -> Result<String, String> {
        let r = self.podman(&["inspect", "--format", format, name]);
        check(r.ok(), || format!("podman inspect: {}", describe(&r)))?;
        Ok(r.stdout.trim().to_string())
    }

    /// The containers podman lists whose names start with `prefix`.
    fn containers(&self, prefix: &str) -> Vec<String> {
        let r = self.podman(&["ps", "-a", "--format", "{{.Names}}"]);
        r.stdout
            .lines()
            .map(str::trim)
            .filter(|n| n.starts_with(prefix))
            .map(str::to_string)
            .collect()
    }

    /// Remove every container of a scenario, whatever state it is in.
    fn remove(&self, prefix: &str) {
        for name in self.containers(prefix) {
            let _ = self.podman(&["rm", "--force", "--time", "0", &name]);
        }
    }

    /// What a scenario left behind. Scenarios run one at a time, so once one has removed its
    /// containers there must be none of anything.
    fn leftovers(&self, prefix: &str) -> Vec<String> {
        let mut left: Vec<String> = self
            .containers(prefix)
            .into_iter()
            .map(|n| format!("podman still lists container {n}"))
            .collect();
        if let Ok(entries) = std::fs::read_dir(self.runtime_root()) {
            left.extend(
                entries
                    .flatten()
                    // casulo's compiled seccomp programs, kept for the next container: the
                    // root's, not a container's.
                    .filter(|e| e.file_name() != ".seccomp~cache")
                    .map(|e| format!("runtime state {}", e.path().display())),
            );
        }
        left.extend(self.other_leftovers());
        left
    }

    /// Wait (at most 30 s: conmon runs podman's cleanup after the container exits) until the
    /// scenario left nothing behind.
    fn wait_no_leftovers(&self, prefix: &str) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = self.leftovers(prefix);
            if left.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("{prefix} left behind: {left:#?}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
