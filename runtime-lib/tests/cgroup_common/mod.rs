//! Shared by the cgroup integration tests: a unique cgroup per test with its processes, removed
//! by a guard even when the test fails, and small readers of cgroup files.
#![allow(dead_code)]
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, Ordering};

use casulo::__private::cgroups::{self, CgroupConfig, CgroupManager};
use oci_spec::runtime::{LinuxDeviceCgroupBuilder, LinuxDeviceType};

/// Whether the test can run here; prints why not.
pub fn can_run(test: &str) -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP {test}: needs root to create cgroups");
        return false;
    }
    if !Path::new("/sys/fs/cgroup").exists() {
        eprintln!("SKIP {test}: /sys/fs/cgroup is absent");
        return false;
    }
    true
}

pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "casulo-test-{tag}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Owns the child and the cgroup; kills the one and removes the other on drop.
pub struct Guard {
    pub mgr: Box<dyn CgroupManager>,
    pub children: Vec<Child>,
    pub dirs: Vec<PathBuf>,
}

impl Guard {
    pub fn new(cfg: &CgroupConfig) -> Self {
        let mgr = cgroups::manager(cfg).expect("manager");
        let dirs = mgr.paths();
        Guard {
            mgr,
            children: Vec::new(),
            dirs,
        }
    }

    pub fn spawn_sleeper(&mut self) -> i32 {
        let child = Command::new("sleep")
            .arg("1000")
            .spawn()
            .expect("spawn sleep");
        let pid = child.id() as i32;
        self.children.push(child);
        pid
    }

    pub fn reap(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.children.clear();
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.reap();
        let _ = self.mgr.freeze(false);
        let _ = self.mgr.destroy();
    }
}

pub fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.join(file).display()))
}

/// The directory of the hierarchy mounted at /sys/fs/cgroup/<name>.
pub fn dir_in(dirs: &[PathBuf], mount: &str) -> PathBuf {
    let prefix = Path::new("/sys/fs/cgroup").join(mount);
    dirs.iter()
        .find(|d| d.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no cgroup directory under {}: {dirs:?}", prefix.display()))
        .clone()
}

/// Every hierarchy this process belongs to, as "controllers:path" lines.
pub fn proc_cgroup(pid: i32) -> Vec<(String, String)> {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap()
        .lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            it.next()?;
            Some((it.next()?.to_string(), it.next()?.to_string()))
        })
        .collect()
}

pub fn device_rule(
    allow: bool,
    typ: LinuxDeviceType,
    major: i64,
    minor: i64,
    access: &str,
) -> oci_spec::runtime::LinuxDeviceCgroup {
    LinuxDeviceCgroupBuilder::default()
        .allow(allow)
        .typ(typ)
        .major(major)
        .minor(minor)
        .access(access)
        .build()
        .unwrap()
}
