//! The systemd driver: a transient scope (or slice) unit created over D-Bus by cgroups-rs'
//! `SystemdManager`, plus cgroupfs writes for what systemd properties cannot express
//! (device rules, hugetlb, blkio, ...), as runc's systemd driver also does.
//!
//! A rootless container's unit is its user's manager's instead, over the session bus
//! (`systemd_user.rs`), in the subtree systemd delegates to that manager: by default in its
//! `user.slice`, at `<manager's cgroup>/user.slice/<unit>`, as runc puts it.
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

use super::systemd_user::{self, UserBus};
use super::{CgroupError, CgroupManager, FsCgroup};

/// How long systemd may take to run a start or stop job of the unit (runc allows 30 s).
const JOB_TIMEOUT: Duration = Duration::from_secs(30);

/// The manager that owns the unit.
enum Owner {
    /// The system's, through cgroups-rs.
    System(Box<SystemdManager<'static>>),
    /// The user's own (a rootless container): connected on first use when the cgroup was
    /// reopened from its saved directories (an exec needs no D-Bus call).
    User {
        bus: Option<UserBus>,
        slice: String,
        unit: String,
    },
}

/// A container's cgroup managed by systemd.
pub struct SystemdCgroup {
    path: String,
    owner: Owner,
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
            .field("unit", &self.unit())
            .field("user", &matches!(self.owner, Owner::User { .. }))
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

/// runc's test for a systemd-booted host; without it every D-Bus call would fail later.
fn check_systemd(path: &str) -> Result<(), CgroupError> {
    if std::path::Path::new("/run/systemd/system").is_dir() {
        return Ok(());
    }
    Err(CgroupError::Systemd {
        unit: path.to_string(),
        step: "check that systemd is running",
        msg: "systemd is not the init system here (no /run/systemd/system); use the cgroupfs \
              driver"
            .into(),
    })
}

/// The parent slice and the unit name of `slice:prefix:name` for a user's manager: a scope
/// `prefix-name.scope` (`name.scope` without a prefix) unless the name is a slice's.
fn user_unit(path: &str) -> (String, String) {
    let mut parts = path.splitn(3, ':');
    let (slice, prefix, name) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let slice = if slice.is_empty() {
        systemd_user::DEFAULT_SLICE
    } else {
        slice
    };
    let unit = match (prefix, name) {
        (_, n) if n.ends_with(".slice") => n.to_string(),
        ("", n) => format!("{n}.scope"),
        (p, n) => format!("{p}-{n}.scope"),
    };
    (slice.to_string(), unit)
}

/// The user's manager, connected now if it was not yet.
fn connected<'a>(bus: &'a mut Option<UserBus>, unit: &str) -> Result<&'a UserBus, CgroupError> {
    if bus.is_none() {
        *bus = Some(UserBus::connect().map_err(|msg| CgroupError::Systemd {
            unit: unit.to_string(),
            step: "connect to the user's systemd manager",
            msg,
        })?);
    }
    Ok(bus.as_ref().expect("connected just now"))
}

impl SystemdCgroup {
    /// Connect to systemd for the unit described by `slice:prefix:name` (already validated).
    pub fn new(path: &str) -> Result<Self, CgroupError> {
        let err = |step: &'static str, e: &dyn std::fmt::Display| CgroupError::Systemd {
            unit: path.to_string(),
            step,
            msg: e.to_string(),
        };
        check_systemd(path)?;
        let inner = SystemdManager::new(path).map_err(|e| err("prepare the systemd unit", &e))?;
        let cg_path =
            format!("/{}/{}", expand_slice(inner.slice()), inner.unit()).replace("//", "/");
        let fs = FsCgroup::new(&cg_path)?;
        Ok(Self {
            path: path.to_string(),
            owner: Owner::System(Box::new(inner)),
            fs,
            starting: false,
            taken: false,
        })
    }

    /// The unit described by `slice:prefix:name` (already validated) of the caller's own
    /// systemd manager, on its session bus (a rootless container's). An empty slice is the
    /// manager's `user.slice`. `saved`: the cgroup's directory as `paths` reported it when the
    /// container was made (a later command finds it there without asking the manager).
    pub fn new_user(path: &str, saved: &[PathBuf]) -> Result<Self, CgroupError> {
        let err = |step: &'static str, e: &dyn std::fmt::Display| CgroupError::Systemd {
            unit: path.to_string(),
            step,
            msg: e.to_string(),
        };
        check_systemd(path)?;
        if super::host_mode() != super::Mode::Unified {
            return Err(err(
                "check the cgroup version",
                &"a rootless container's systemd cgroup needs a pure cgroup v2 host (a user's \
                  systemd manager is delegated a cgroup v2 subtree only); use the cgroupfs \
                  driver",
            ));
        }
        let (slice, unit) = user_unit(path);
        let (bus, fs) = match saved {
            [dir] if dir.file_name().is_some_and(|n| *n == *unit) => {
                (None, FsCgroup::from_dirs(saved)?)
            }
            [] => {
                let bus = UserBus::connect()
                    .map_err(|e| err("connect to the user's systemd manager", &e))?;
                let base = bus
                    .control_group()
                    .map_err(|e| err("find the user manager's cgroup", &e))?;
                let cg = format!("{base}/{}/{unit}", expand_slice(&slice)).replace("//", "/");
                (Some(bus), FsCgroup::new(&cg)?)
            }
            _ => {
                return Err(CgroupError::InvalidPath {
                    path: format!("{saved:?}"),
                    reason: format!(
                        "a saved cgroup of the user's systemd manager is one directory, named \
                         after the unit {unit}"
                    ),
                })
            }
        };
        Ok(Self {
            path: path.to_string(),
            owner: Owner::User { bus, slice, unit },
            fs,
            starting: false,
            taken: false,
        })
    }

    fn unit(&self) -> &str {
        match &self.owner {
            Owner::System(m) => m.unit(),
            Owner::User { unit, .. } => unit,
        }
    }

    /// Whether the manager has the unit loaded (a manager that cannot be reached has none).
    fn exists(&mut self) -> bool {
        match &mut self.owner {
            Owner::System(m) => SystemdClient::new(m.unit(), Vec::new()).is_ok_and(|c| c.exists()),
            Owner::User { bus, unit, .. } => connected(bus, unit).is_ok_and(|b| b.exists(unit)),
        }
    }

    /// Start the unit with `pid` as its first process.
    fn start(&mut self, pid: u32) -> Result<(), CgroupError> {
        let res = match &mut self.owner {
            Owner::System(m) => m
                .add_proc(CgroupPid { pid: pid.into() })
                .map_err(|e| e.to_string()),
            Owner::User { bus, slice, unit } => connected(bus, unit)?
                .start(slice, unit, pid)
                .map_err(|e| e.to_string()),
        };
        res.map_err(|e| self.err("start the transient unit with the pid", e))
    }

    /// Have systemd put `pid` in the running unit.
    fn attach(&mut self, pid: u32) -> Result<(), CgroupError> {
        let res = match &mut self.owner {
            Owner::System(m) => m
                .add_proc(CgroupPid { pid: pid.into() })
                .map_err(|e| e.to_string()),
            Owner::User { bus, unit, .. } => connected(bus, unit)?
                .attach(unit, pid)
                .map_err(|e| e.to_string()),
        };
        res.map_err(|e| self.err("attach the pid to the unit", e))
    }

    /// Stop the unit, and reset it if it stays loaded, failed.
    fn stop(&mut self) -> Result<(), String> {
        match &mut self.owner {
            Owner::System(m) => m.destroy().map_err(|e| e.to_string()),
            Owner::User { bus, unit, .. } => connected(bus, unit)
                .map_err(|e| e.to_string())?
                .stop(unit)
                .map_err(|e| e.to_string()),
        }
    }

    /// Set the unit properties of `resources` (cpu, memory, pids).
    fn set_properties(&mut self, resources: &LinuxResources) -> Result<(), CgroupError> {
        let res = match &mut self.owner {
            Owner::System(m) => m.set(resources).map_err(|e| e.to_string()),
            Owner::User { bus, unit, .. } => match systemd_user::resource_properties(resources) {
                Ok(props) if props.is_empty() => Ok(()),
                Ok(props) => connected(bus, unit)?
                    .set_properties(unit, props)
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e),
            },
        };
        res.map_err(|e| self.err("set unit properties", e))
    }

    fn err(&self, step: &'static str, e: impl std::fmt::Display) -> CgroupError {
        CgroupError::Systemd {
            unit: self.unit().to_string(),
            step,
            msg: e.to_string(),
        }
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
        let unsigned = u32::try_from(pid).map_err(|_| CgroupError::Failed {
            path: self.path.clone(),
            msg: format!("invalid pid {pid}"),
        })?;
        if !self.starting {
            // A process joining the running unit (exec): straight into its cgroup.
            let dirs = self.fs.paths();
            if dirs.iter().all(|d| d.is_dir()) {
                let joined = super::join(dirs.iter().map(PathBuf::as_path), pid);
                // A user may write only into a cgroup whose common ancestor with the process's
                // cgroup is delegated to it: an exec from a login session's scope (the system's)
                // is not. Its manager then moves the process, asking the system's (runc's
                // exec falls back on systemd the same way).
                return match joined {
                    Err(e) if matches!(self.owner, Owner::User { .. }) => {
                        self.attach(unsigned).map_err(|by_bus| {
                            self.err(
                                "join the unit",
                                format!("{e}; and through the user's manager: {by_bus}"),
                            )
                        })
                    }
                    other => other,
                };
            }
            // Never start a new unit for a joining process. Where systemd made the scope in
            // some hierarchies only (v1), it attaches the process itself.
            if !self.exists() {
                return Err(self.err(
                    "join the unit",
                    "the unit is gone: its processes have all exited",
                ));
            }
            return self.attach(unsigned);
        }
        self.starting = false;
        self.start(unsigned)?;
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
        if self.exists() {
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
            self.set_properties(resources)?;
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
        // Once its processes have all exited, systemd stops the scope and removes its cgroup
        // by itself: a delete after the container exited usually finds both gone, and one look
        // at the unit is then enough. Each D-Bus call below is a connection of its own, which
        // on a busy host costs more than the rest of the delete.
        let dirs = self.fs.paths();
        if dirs.iter().all(|d| !d.exists()) && !self.exists() {
            return self.fs.destroy();
        }
        // StopUnit, and ResetFailedUnit when the unit is still loaded right after.
        if let Err(e) = self.stop() {
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
        if !Self::wait(|| dirs.iter().all(|d| !d.exists())) {
            let why = format!(
                "{} still exists {} s after the stop",
                dirs[0].display(),
                JOB_TIMEOUT.as_secs()
            );
            return Err(self.err("stop the transient unit", why));
        }
        let mut last_err = None;
        let mut polls = 0u32;
        let gone = Self::wait(|| {
            if !self.exists() {
                return true;
            }
            polls += 1;
            if polls % 8 == 0 {
                last_err = self.stop().err();
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

    /// Through the cgroup's own files, as runc's systemd driver does (its freezer is the
    /// cgroupfs one on cgroup v2): the unit is delegated, and systemd's FreezeUnit and
    /// ThawUnit, a D-Bus connection each, fail anyway on a unit that is gone. containerd's
    /// shim runs `kill --all` each time the init of a container without its own pid namespace
    /// exits (every container of a pod, by default), so this is on the path of every stop.
    fn kill_all(&mut self, sig: nix::sys::signal::Signal) -> Result<(), CgroupError> {
        if self.taken {
            return Ok(());
        }
        match self.fs.kill_all(sig) {
            // SIGKILL empties the scope, and systemd may remove its cgroup before the thaw
            // (reading it then fails with ENOENT or ENODEV): nothing is left to thaw or signal.
            Err(_) if self.fs.paths().iter().all(|d| !d.exists()) => Ok(()),
            other => other,
        }
    }

    fn freeze(&mut self, frozen: bool) -> Result<(), CgroupError> {
        let state = if frozen {
            FreezerState::Frozen
        } else {
            FreezerState::Thawed
        };
        let res = match &self.owner {
            Owner::System(m) => m.freeze(state).map_err(|e| e.to_string()),
            // runc freezes a unit of the user's manager through the cgroup's own
            // cgroup.freeze: the scope is delegated to the user.
            Owner::User { .. } => self.fs.freeze(frozen).map_err(|e| e.to_string()),
        };
        match res {
            Ok(()) => Ok(()),
            // Nothing is left to thaw in a unit that is gone: its processes all exited (killed
            // while frozen, by `kill --all` say) and systemd dropped it.
            Err(_) if !frozen && !self.exists() => Ok(()),
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
