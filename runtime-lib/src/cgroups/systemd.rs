//! The systemd driver: a transient scope (or slice) unit created over D-Bus by cgroups-rs'
//! `SystemdManager`, plus cgroupfs writes for what systemd properties cannot express
//! (device rules, hugetlb, blkio, ...), as runc's systemd driver also does.
use std::path::PathBuf;

use cgroups_rs::manager::SystemdManager;
use cgroups_rs::{CgroupPid, FreezerState, Manager};
use oci_spec::runtime::LinuxResources;

use super::{CgroupError, CgroupManager, FsCgroup};

/// A container's cgroup managed by systemd.
pub struct SystemdCgroup {
    path: String,
    inner: SystemdManager<'static>,
    fs: FsCgroup,
}

impl std::fmt::Debug for SystemdCgroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemdCgroup")
            .field("path", &self.path)
            .field("unit", &self.inner.unit())
            .finish()
    }
}

/// `a-b.slice` lives at `a.slice/a-b.slice` in the cgroup tree; `-.slice` is the root.
fn expand_slice(slice: &str) -> String {
    let stem = slice.trim_end_matches(".slice");
    if stem == "-" {
        return String::new();
    }
    let mut out = Vec::new();
    let mut prefix = String::new();
    for part in stem.split('-') {
        out.push(format!("{prefix}{part}.slice"));
        prefix.push_str(part);
        prefix.push('-');
    }
    out.join("/")
}

impl SystemdCgroup {
    /// Connect to systemd for the unit described by `slice:prefix:name` (already validated).
    pub fn new(path: &str) -> Result<Self, CgroupError> {
        let err = |step: &'static str, e: &dyn std::fmt::Display| CgroupError::Systemd {
            unit: path.to_string(),
            step,
            msg: e.to_string(),
        };
        // runc's test for a systemd-booted host; without it every D-Bus call would fail later.
        if !std::path::Path::new("/run/systemd/system").is_dir() {
            return Err(err(
                "check that systemd is running",
                &"systemd is not the init system here (no /run/systemd/system); \
                  use the cgroupfs driver",
            ));
        }
        let inner = SystemdManager::new(path).map_err(|e| err("prepare the systemd unit", &e))?;
        let cg_path =
            format!("/{}/{}", expand_slice(inner.slice()), inner.unit()).replace("//", "/");
        let fs = FsCgroup::new(&cg_path)?;
        Ok(Self {
            path: path.to_string(),
            inner,
            fs,
        })
    }

    fn err(&self, step: &'static str, e: cgroups_rs::manager::Error) -> CgroupError {
        CgroupError::Systemd {
            unit: self.inner.unit().to_string(),
            step,
            msg: e.to_string(),
        }
    }
}

impl CgroupManager for SystemdCgroup {
    fn apply(&mut self, pid: i32) -> Result<(), CgroupError> {
        let pid = u64::try_from(pid).map_err(|_| CgroupError::Failed {
            path: self.path.clone(),
            msg: format!("invalid pid {pid}"),
        })?;
        self.inner
            .add_proc(CgroupPid { pid })
            .map_err(|e| self.err("start the transient unit with the pid", e))
    }

    fn create(&mut self) -> Result<(), CgroupError> {
        Err(CgroupError::Unsupported {
            resource: "cgroupsPath".to_string(),
            reason: "the systemd driver creates its transient unit together with the first \
                     process; use apply(pid)"
                .to_string(),
        })
    }

    fn set(&mut self, resources: &LinuxResources) -> Result<(), CgroupError> {
        // Unit properties first (so that systemd does not undo them on reload), then the
        // files systemd has no property for.
        self.inner
            .set(resources)
            .map_err(|e| self.err("set unit properties", e))?;
        self.fs.set(resources)
    }

    fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        self.fs.pids()
    }

    fn destroy(&mut self) -> Result<(), CgroupError> {
        if let Err(e) = self.inner.destroy() {
            // Stopping a unit that is already gone is not an error.
            if self.fs.paths().iter().any(|p| p.exists()) {
                return Err(self.err("stop the transient unit", e));
            }
        }
        self.fs.destroy()
    }

    fn freeze(&mut self, frozen: bool) -> Result<(), CgroupError> {
        let state = if frozen {
            FreezerState::Frozen
        } else {
            FreezerState::Thawed
        };
        self.inner
            .freeze(state)
            .map_err(|e| self.err("freeze/thaw the unit", e))
    }

    fn paths(&self) -> Vec<PathBuf> {
        self.fs.paths()
    }
}

#[cfg(test)]
mod tests {
    use super::expand_slice;

    #[test]
    fn cgroups_expand_slice() {
        assert_eq!(expand_slice("system.slice"), "system.slice");
        assert_eq!(expand_slice("a-b-c.slice"), "a.slice/a-b.slice/a-b-c.slice");
        assert_eq!(expand_slice("-.slice"), "");
    }
}
