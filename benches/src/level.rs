//! The kernel state one runtime's command leaves to the next, made the same for every runtime.
//!
//! Moving a process into a cgroup (a write to `cgroup.procs`) takes the cgroup core's
//! threadgroup lock for writing, and the first writer after a quiet spell waits for an RCU
//! grace period (4-8 ms on the project's VM); a writer within a grace period of the last one
//! does not. In rounds, a runtime that writes `cgroup.procs` was then fast or slow depending on
//! the runtime before it: fast after runc, which writes it too, slow after casulo, whose init
//! joins its v1 cgroups by itself and takes no such lock (crun's median `run` was 5.9 ms
//! without casulo in the rounds and 12.4 ms with it, in the same hour).
//!
//! So before each timed command the benchmark moves a parked process of its own from one of
//! its two cgroups to the other: every command starts as right after a cgroup move, the case
//! that favours the runtimes that move pids. `paced` idles after it, and shows the other case.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

struct Parked {
    child: Child,
    /// The two cgroups' directories; the process is in `dirs[next ^ 1]`.
    dirs: [PathBuf; 2],
    next: usize,
}

static PARKED: Mutex<Option<Parked>> = Mutex::new(None);

/// Park a process in a cgroup of the first hierarchy mounted where this process can make
/// two; from now on [`level`] moves it. Where there is none, [`level`] does nothing and the
/// reason is returned.
pub fn start() -> Result<(), String> {
    let hierarchy = hierarchy()?;
    let dirs = [
        hierarchy.join(format!("casulo-bench-level-{}-a", std::process::id())),
        hierarchy.join(format!("casulo-bench-level-{}-b", std::process::id())),
    ];
    for d in &dirs {
        std::fs::create_dir(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let child = Command::new("sleep")
        .arg("1000000")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("sleep: {e}"));
    let child = match child {
        Ok(c) => c,
        Err(e) => {
            dirs.iter().for_each(|d| drop(std::fs::remove_dir(d)));
            return Err(e);
        }
    };
    let mut parked = Parked {
        child,
        dirs,
        next: 0,
    };
    let first = parked.move_once();
    *PARKED.lock().unwrap() = Some(parked);
    if let Err(e) = first {
        stop();
        return Err(e);
    }
    Ok(())
}

/// Move the parked process to its other cgroup (nothing if none is parked).
pub fn level() {
    if let Some(p) = PARKED.lock().unwrap().as_mut() {
        if let Err(e) = p.move_once() {
            eprintln!("lifecycle-bench: level: {e}");
        }
    }
}

/// Kill the parked process and remove its cgroups.
pub fn stop() {
    if let Some(mut p) = PARKED.lock().unwrap().take() {
        let _ = p.child.kill();
        let _ = p.child.wait();
        for d in &p.dirs {
            let _ = std::fs::remove_dir(d);
        }
    }
}

impl Parked {
    fn move_once(&mut self) -> Result<(), String> {
        let procs = self.dirs[self.next].join("cgroup.procs");
        std::fs::write(&procs, self.child.id().to_string())
            .map_err(|e| format!("{}: {e}", procs.display()))?;
        self.next ^= 1;
        Ok(())
    }
}

/// The mount point of the first cgroup hierarchy (v1 or v2) in this mount namespace. (The
/// lock is one for all hierarchies.)
fn hierarchy() -> Result<PathBuf, String> {
    let mounts = procfs::process::Process::myself()
        .and_then(|p| p.mountinfo())
        .map_err(|e| format!("/proc/self/mountinfo: {e}"))?;
    mounts
        .into_iter()
        .find(|m| {
            (m.fs_type == "cgroup" || m.fs_type == "cgroup2")
                && m.mount_point.join("cgroup.procs").exists()
        })
        .map(|m| m.mount_point)
        .ok_or_else(|| "no cgroup hierarchy is mounted".into())
}
