//! The systemd driver: a transient scope (or slice) unit created over D-Bus by cgroups-rs'
//! `SystemdManager`, plus cgroupfs writes for what systemd properties cannot express
//! (device rules, hugetlb, blkio, ...), as runc's systemd driver also does.
//!
//! systemd answers `StartTransientUnit` and `StopUnit` once it has queued the job, before the
//! job has run: [`SystemdCgroup::apply`] waits until the pid is in the unit's cgroup, and
//! [`SystemdCgroup::destroy`] until the unit is gone, so that callers see the same
//! synchronous behaviour as with the cgroupfs driver (runc waits for the job, too).
//!
//! A process that joins a running container (`exec`) is written into the unit's cgroup
//! directly, as runc does: the scope is delegated (`Delegate=yes`), and a D-Bus round trip per
//! exec would cost more than the exec itself.
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cgroups_rs::manager::SystemdManager;
use cgroups_rs::systemd::SystemdClient;
use cgroups_rs::{CgroupPid, FreezerState, Manager};
use oci_spec::runtime::LinuxResources;

use super::{CgroupError, CgroupManager, FsCgroup};

/// How long systemd may take to run a start or stop job of the unit (runc allows 30 s).
const JOB_TIMEOUT: Duration = Duration::from_secs(30);

/// A container's cgroup managed by systemd.
pub struct SystemdCgroup {
    path: String,
    inner: SystemdManager<'static>,
    fs: FsCgroup,
    /// Set by `create`: the next `apply` starts the unit rather than joining its cgroup.
    starting: bool,
    /// Set by `create` when the unit name is taken: the unit is someone else's, and the
    /// cleanup of the failed create must neither kill its processes nor stop it.
    taken: bool,
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
            starting: false,
            taken: false,
        })
    }

    fn err(&self, step: &'static str, e: impl std::fmt::Display) -> CgroupError {
        CgroupError::Systemd {
            unit: self.inner.unit().to_string(),
            step,
            msg: e.to_string(),
        }
    }

    /// A client for queries about the unit (not for starting it: it carries no properties).
    fn client(&self) -> SystemdClient<'static> {
        SystemdClient::new(self.inner.unit(), Vec::new())
            .expect("a client without properties cannot fail")
    }

    /// Poll `done` with a growing delay (1 ms to 50 ms) until it holds or `JOB_TIMEOUT` passes.
    fn wait(mut done: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + JOB_TIMEOUT;
        let mut delay = Duration::from_millis(1);
        loop {
            if done() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_millis(50));
        }
    }
}

impl CgroupManager for SystemdCgroup {
    fn apply(&mut self, pid: i32) -> Result<(), CgroupError> {
        let unsigned = u64::try_from(pid).map_err(|_| CgroupError::Failed {
            path: self.path.clone(),
            msg: format!("invalid pid {pid}"),
        })?;
        if !self.starting {
            // A process joining the running unit (exec): straight into its cgroup.
            let dirs = self.fs.paths();
            if dirs.iter().all(|d| d.is_dir()) {
                return super::join(dirs.iter().map(PathBuf::as_path), pid);
            }
            // Never start a new unit for a joining process. Where systemd made the scope in
            // some hierarchies only (v1), it attaches the process itself.
            if !self.client().exists() {
                return Err(self.err(
                    "join the unit",
                    "the unit is gone: its processes have all exited",
                ));
            }
            return self
                .inner
                .add_proc(CgroupPid { pid: unsigned })
                .map_err(|e| self.err("attach the pid to the unit", e));
        }
        self.starting = false;
        self.inner
            .add_proc(CgroupPid { pid: unsigned })
            .map_err(|e| self.err("start the transient unit with the pid", e))?;
        // The start job runs after the call returned: the pid is in the unit's cgroup only
        // once it has.
        let mut gone = false;
        let placed = Self::wait(|| {
            if self.fs.pids().is_ok_and(|p| p.contains(&pid)) {
                return true;
            }
            // Exited, or a zombie (the init is the runtime's child until it is reaped): systemd
            // will never move it, so waiting out the job timeout would only delay the error.
            gone = crate::sys::proc_start_time(pid).is_none_or(|(_, st)| matches!(st, 'Z' | 'X'));
            gone
        });
        if placed && !gone {
            return Ok(());
        }
        let why = if gone {
            format!("pid {pid} exited before systemd moved it into the unit")
        } else {
            format!(
                "pid {pid} is not in {} after {} s",
                self.fs.paths()[0].display(),
                JOB_TIMEOUT.as_secs()
            )
        };
        Err(self.err("start the transient unit with the pid", why))
    }

    /// The unit, and with it the cgroup, comes into being with its first process in
    /// [`SystemdCgroup::apply`] (a scope cannot be started empty): here only check that the
    /// name is free, as runc's driver fails when systemd answers that the unit exists, rather
    /// than joining the processes of another container.
    fn create(&mut self) -> Result<(), CgroupError> {
        if self.client().exists() {
            self.taken = true;
            return Err(self.err(
                "check that the unit name is free",
                "the unit already exists (another container, or a failed one: \
                 `systemctl stop` or `systemctl reset-failed` it)",
            ));
        }
        self.starting = true;
        Ok(())
    }

    fn set(&mut self, resources: &LinuxResources) -> Result<(), CgroupError> {
        // Unit properties first (so that systemd does not undo them on reload), then the
        // files systemd has no property for. cgroups-rs makes properties of the cpu, memory
        // and pids resources only: without them, no D-Bus round trip.
        if resources.cpu().is_some() || resources.memory().is_some() || resources.pids().is_some() {
            self.inner
                .set(resources)
                .map_err(|e| self.err("set unit properties", e))?;
        }
        self.fs.set(resources)
    }

    fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        if self.taken {
            return Ok(Vec::new());
        }
        self.fs.pids()
    }

    fn destroy(&mut self) -> Result<(), CgroupError> {
        if self.taken {
            return Ok(());
        }
        // StopUnit, and ResetFailedUnit when the unit is still loaded right after.
        if let Err(e) = self.inner.destroy() {
            // Stopping a unit that is already gone is not an error.
            if self.fs.paths().iter().any(|p| p.exists()) {
                return Err(self.err("stop the transient unit", e));
            }
        }
        // The stop job runs after the call returned: wait until systemd has dropped the unit,
        // so that its name is free for a new container at once. First until the unit's cgroup
        // is gone, which systemd removes once the unit has stopped (a look at the filesystem
        // costs nothing, a D-Bus call a connection), then until the unit itself is. A unit
        // that ends up failed stays loaded until it is reset: stopping it again resets it.
        let dirs = self.fs.paths();
        if !Self::wait(|| dirs.iter().all(|d| !d.exists())) {
            let why = format!(
                "{} still exists {} s after the stop",
                dirs[0].display(),
                JOB_TIMEOUT.as_secs()
            );
            return Err(self.err("stop the transient unit", why));
        }
        let client = self.client();
        let mut last_err = None;
        let mut polls = 0u32;
        let gone = Self::wait(|| {
            if !client.exists() {
                return true;
            }
            polls += 1;
            if polls % 8 == 0 {
                last_err = client.stop().err().map(|e| e.to_string());
            }
            false
        });
        if !gone {
            let why = last_err.unwrap_or_else(|| {
                format!("still loaded {} s after the stop", JOB_TIMEOUT.as_secs())
            });
            return Err(self.err("stop the transient unit", why));
        }
        self.fs.destroy()
    }

    fn freeze(&mut self, frozen: bool) -> Result<(), CgroupError> {
        let state = if frozen {
            FreezerState::Frozen
        } else {
            FreezerState::Thawed
        };
        match self.inner.freeze(state) {
            Ok(()) => Ok(()),
            // Nothing is left to thaw in a unit that is gone: its processes all exited (killed
            // while frozen, by `kill --all` say) and systemd dropped it.
            Err(_) if !frozen && !self.client().exists() => Ok(()),
            Err(e) => Err(self.err("freeze/thaw the unit", e)),
        }
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
