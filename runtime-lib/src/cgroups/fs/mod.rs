//! The cgroupfs driver: directories and files under `/sys/fs/cgroup`, for v1, hybrid and v2.
//!
//! Hierarchy discovery and path placement are done here (cgroups-rs only knows either the v1
//! controllers or a pure v2 tree, and places a cgroup at the same relative path in every v1
//! hierarchy, while runc places a relative path below the runtime's own cgroup per hierarchy
//! and also joins the cgroup2 tree of a hybrid host). Resource files are written with the
//! cgroups-rs controllers pointed at the directories computed here, except the v1 device
//! rules, which are written by hand because the crate turns a wildcard major/minor into 0.
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cgroups_rs::fs::freezer::FreezerController;
use oci_spec::runtime::LinuxResources;

use super::{CgroupError, CgroupManager, Mode};

mod devices;
mod hierarchy;
pub(crate) use hierarchy::CgroupMount;
pub use hierarchy::CgroupMounts;
mod resources;

/// One mounted hierarchy and the container's directory in it.
#[derive(Debug, Clone)]
struct Hier {
    /// The v1 controllers bound to it (`cpu`, `name=systemd`, ...); empty for cgroup2.
    controllers: Vec<String>,
    v2: bool,
    mount: PathBuf,
    dir: PathBuf,
    /// The topmost directory create may write in: the mount, or for a rootless container the
    /// delegated cgroup it is made in.
    base: PathBuf,
}

/// A container's cgroup on the cgroupfs driver.
#[derive(Debug, Clone)]
pub struct FsCgroup {
    mode: Mode,
    hiers: Vec<Hier>,
    /// `create` made every directory: `apply` after it does not walk them again (it is on
    /// the path of every container's start).
    created: bool,
}

fn io_err(step: &'static str, path: &Path, source: std::io::Error) -> CgroupError {
    CgroupError::Io {
        step,
        path: path.to_path_buf(),
        source,
    }
}

fn unsupported(resource: &str, reason: impl Into<String>) -> CgroupError {
    CgroupError::Unsupported {
        resource: resource.to_string(),
        reason: reason.into(),
    }
}

fn res_err(resource: &str, dir: &Path, msg: impl ToString) -> CgroupError {
    CgroupError::Resource {
        resource: resource.to_string(),
        path: dir.display().to_string(),
        msg: msg.to_string(),
    }
}

impl CgroupManager for FsCgroup {
    fn create(&mut self) -> Result<(), CgroupError> {
        for h in &self.hiers {
            self.create_in(h)?;
            if h.v2 && self.mode == Mode::Unified {
                self.enable_v2_controllers(h);
            }
        }
        self.created = true;
        Ok(())
    }

    fn apply(&mut self, pid: i32) -> Result<(), CgroupError> {
        if !self.created {
            CgroupManager::create(self)?;
        }
        join(self.hiers.iter().map(|h| h.dir.as_path()), pid)
    }

    fn apply_leaving_self_join(&mut self, pid: i32) -> Result<Vec<PathBuf>, CgroupError> {
        if !self.created {
            CgroupManager::create(self)?;
        }
        // cgroup2 has no such door: a thread moves by itself only within a threaded subtree.
        join(
            self.hiers.iter().filter(|h| h.v2).map(|h| h.dir.as_path()),
            pid,
        )?;
        Ok(self
            .hiers
            .iter()
            .filter(|h| !h.v2)
            .map(|h| h.dir.join("tasks"))
            .collect())
    }

    fn set(&mut self, resources: &LinuxResources) -> Result<(), CgroupError> {
        if let Some(h) = self.hiers.iter().find(|h| !h.dir.is_dir()) {
            return Err(CgroupError::Failed {
                path: h.dir.display().to_string(),
                msg: "cannot set resources: the cgroup does not exist (create or apply first)"
                    .to_string(),
            });
        }
        if let Some(cpu) = resources.cpu() {
            self.set_cpu(cpu)?;
        }
        if let Some(m) = resources.memory() {
            self.set_memory(m)?;
        }
        if let Some(p) = resources.pids() {
            self.set_pids(p.limit())?;
        }
        if let Some(b) = resources.block_io() {
            self.set_blkio(b)?;
        }
        if let Some(limits) = resources.hugepage_limits() {
            self.set_hugetlb(limits)?;
        }
        if let Some(n) = resources.network() {
            self.set_network(n)?;
        }
        if let Some(r) = resources.rdma() {
            self.set_rdma(r)?;
        }
        if let Some(u) = resources.unified() {
            self.set_unified(u)?;
        }
        if let Some(d) = resources.devices() {
            self.set_devices(d)?;
        }
        Ok(())
    }

    fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let mut pids = Vec::new();
        collect_procs(&self.procs_hier().dir, &mut pids)?;
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    fn destroy(&mut self) -> Result<(), CgroupError> {
        // Processes that were just killed leave their cgroups a moment later: retry the
        // hierarchies that are still busy, all together, for about 0.6 s in total.
        let mut pending: Vec<&Path> = self.hiers.iter().map(|h| h.dir.as_path()).collect();
        let mut first_err = None;
        let mut delay = Duration::from_millis(10);
        for attempt in 0..=6 {
            let last = attempt == 6;
            pending.retain(|dir| match remove_tree(dir) {
                Ok(()) => false,
                Err(e) => {
                    let busy = matches!(&e, CgroupError::Io { source, .. }
                        if source.raw_os_error() == Some(libc::EBUSY));
                    if busy && !last {
                        true
                    } else {
                        first_err.get_or_insert(e);
                        false
                    }
                }
            });
            if pending.is_empty() {
                break;
            }
            std::thread::sleep(delay);
            delay *= 2;
        }
        first_err.map_or(Ok(()), Err)
    }

    fn freeze(&mut self, frozen: bool) -> Result<(), CgroupError> {
        let (dir, v2) = self.freezer()?;
        let c = FreezerController::new(dir.to_path_buf(), PathBuf::from("/"), v2);
        let act = |c: &FreezerController| if frozen { c.freeze() } else { c.thaw() };
        act(&c).map_err(|e| res_err("freezer", dir, e))?;
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut tries = 0u32;
        loop {
            let reached = if v2 {
                let ev = std::fs::read_to_string(dir.join("cgroup.events"))
                    .map_err(|e| io_err("read", &dir.join("cgroup.events"), e))?;
                let want = if frozen { "frozen 1" } else { "frozen 0" };
                ev.lines().any(|l| l.trim() == want)
            } else {
                let st = std::fs::read_to_string(dir.join("freezer.state"))
                    .map_err(|e| io_err("read", &dir.join("freezer.state"), e))?;
                st.trim() == if frozen { "FROZEN" } else { "THAWED" }
            };
            if reached {
                return Ok(());
            }
            if Instant::now() > deadline {
                if frozen {
                    // Leave the cgroup runnable rather than half-frozen.
                    let _ = c.thaw();
                }
                return Err(res_err(
                    "freezer",
                    dir,
                    format!(
                        "timed out waiting for the cgroup to become {}",
                        if frozen { "frozen" } else { "thawed" }
                    ),
                ));
            }
            tries += 1;
            // A v1 freeze can stall on a task in an uninterruptible sleep: ask again.
            if !v2 && tries % 50 == 0 {
                act(&c).map_err(|e| res_err("freezer", dir, e))?;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn paths(&self) -> Vec<PathBuf> {
        self.hiers.iter().map(|h| h.dir.clone()).collect()
    }
}

/// Move `pid` into each of `dirs` (existing cgroup directories), in order.
pub(crate) fn join<'a>(
    dirs: impl IntoIterator<Item = &'a Path>,
    pid: i32,
) -> Result<(), CgroupError> {
    for dir in dirs {
        let procs = dir.join("cgroup.procs");
        write_file(&procs, &pid.to_string()).map_err(|e| CgroupError::Failed {
            path: procs.display().to_string(),
            msg: format!("adding pid {pid}: {e}"),
        })?;
    }
    Ok(())
}

/// One write(2) of `value` to an existing cgroup file.
fn write_file(path: &Path, value: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.write_all(value.as_bytes())
}

fn write_existing(dir: &Path, file: &str, value: &str, resource: &str) -> Result<(), CgroupError> {
    let path = dir.join(file);
    if !path.exists() {
        return Err(unsupported(
            resource,
            format!("{} does not exist", path.display()),
        ));
    }
    write_file(&path, value)
        .map_err(|e| res_err(resource, dir, format!("writing {value:?} to {file}: {e}")))
}

fn read_u64(dir: &Path, file: &str) -> Result<u64, CgroupError> {
    let path = dir.join(file);
    let s = std::fs::read_to_string(&path).map_err(|e| io_err("read", &path, e))?;
    s.trim().parse().map_err(|e| CgroupError::Failed {
        path: path.display().to_string(),
        msg: format!("cannot parse {:?}: {e}", s.trim()),
    })
}

/// Pids in cgroup.procs of `dir` and of every cgroup below it; a missing cgroup has none.
fn collect_procs(dir: &Path, out: &mut Vec<i32>) -> Result<(), CgroupError> {
    let procs = dir.join("cgroup.procs");
    match std::fs::read_to_string(&procs) {
        Ok(s) => {
            for l in s.lines() {
                out.push(l.trim().parse().map_err(|e| CgroupError::Failed {
                    path: procs.display().to_string(),
                    msg: format!("bad pid {l:?}: {e}"),
                })?);
            }
        }
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("read", &procs, e)),
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("list", dir, e)),
    };
    for ent in entries {
        let ent = ent.map_err(|e| io_err("list", dir, e))?;
        if ent.file_type().is_ok_and(|t| t.is_dir()) {
            collect_procs(&ent.path(), out)?;
        }
    }
    Ok(())
}

/// rmdir `dir` after its sub-cgroups; a cgroup that is already gone is not an error. A cgroup
/// without sub-cgroups (the usual container's) is removed without listing it first: a cgroup
/// directory lists every control file, and a container has one per hierarchy.
fn remove_tree(dir: &Path) -> Result<(), CgroupError> {
    match std::fs::remove_dir(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        // Busy: sub-cgroups (removed below, then the rmdir again) or processes.
        Err(_) => {}
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("list", dir, e)),
    };
    for ent in entries {
        let ent = ent.map_err(|e| io_err("list", dir, e))?;
        if ent.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&ent.path())?;
        }
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("remove", dir, e)),
    }
}
