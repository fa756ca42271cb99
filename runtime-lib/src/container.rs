//! The typed API: [`ContainerBuilder`] creates, [`Container`] starts, signals, reports and
//! deletes. Running in the foreground (create, start and wait) is in `run.rs`, events and
//! stats in `events.rs`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use oci_spec::runtime::Spec;

use crate::bundle::{validate_id, Bundle};
use crate::error::{Cause, Context, Error, ErrorKind, Result, Step};
use crate::lifecycle::{create, fifo};
use crate::options::ExecOptions;
use crate::plan::CreateOptions;
use crate::state::{self, Saved, State, StateDir, Status};

/// The default state root: `/run/casulo`, or `$XDG_RUNTIME_DIR/casulo` when not root (as
/// runc, also for root in a user namespace whose `$USER` is not `root`). A user without
/// `$XDG_RUNTIME_DIR` gets `/run/user/<uid>/casulo`.
///
/// ```
/// let root = casulo::default_root();
/// assert!(root.ends_with("casulo"));
/// ```
pub fn default_root() -> PathBuf {
    let xdg = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty());
    if nix::unistd::geteuid().is_root() {
        let user_in_userns = crate::rootless::in_user_namespace()
            && std::env::var("USER").map_or(true, |u| u != "root");
        return match xdg {
            Some(d) if user_in_userns => PathBuf::from(d).join("casulo"),
            _ => PathBuf::from("/run/casulo"),
        };
    }
    match xdg {
        Some(d) => PathBuf::from(d).join("casulo"),
        None => PathBuf::from(format!("/run/user/{}/casulo", nix::unistd::geteuid())),
    }
}

/// Builds a container from a bundle: [`create`](ContainerBuilder::create) it (then
/// [`Container::start`] it), or run it at once, [in the
/// foreground](ContainerBuilder::run_foreground) or [detached](ContainerBuilder::run_detached).
///
/// ```no_run
/// use casulo::ContainerBuilder;
///
/// let c = ContainerBuilder::new("demo", "/path/to/bundle")
///     .root("/run/casulo")
///     .pid_file("/run/demo.pid")
///     .create()?;
/// c.start()?;
/// # Ok::<(), casulo::Error>(())
/// ```
///
/// A spec built in code instead of the bundle's `config.json`:
///
/// ```no_run
/// use casulo::{default_spec, ContainerBuilder, SpecOptions};
///
/// let mut spec = default_spec(SpecOptions::default());
/// let mut process = spec.process().clone().unwrap_or_default();
/// process.set_args(Some(vec!["/bin/true".into()]));
/// process.set_terminal(Some(false));
/// spec.set_process(Some(process));
/// let code = ContainerBuilder::new("demo", "/path/to/bundle")
///     .spec(spec)
///     .run_foreground(Default::default())?;
/// assert_eq!(code, 0);
/// # Ok::<(), casulo::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ContainerBuilder {
    id: String,
    bundle: PathBuf,
    spec: Option<Spec>,
    root: PathBuf,
    opts: CreateOptions,
}

impl ContainerBuilder {
    /// A container `id` from the bundle directory `bundle` (its config.json and rootfs).
    pub fn new(id: impl Into<String>, bundle: impl Into<PathBuf>) -> Self {
        ContainerBuilder {
            id: id.into(),
            bundle: bundle.into(),
            spec: None,
            root: default_root(),
            opts: CreateOptions::default(),
        }
    }
    /// Use this spec instead of reading `config.json`; relative paths in it are relative to
    /// the bundle directory.
    pub fn spec(mut self, spec: Spec) -> Self {
        self.spec = Some(spec);
        self
    }
    /// The state root directory (runc's `--root`).
    pub fn root(mut self, root: impl Into<PathBuf>) -> Self {
        self.root = root.into();
        self
    }
    /// Write the init's pid to this file once created.
    pub fn pid_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.opts.pid_file = Some(path.into());
        self
    }
    /// The unix socket that receives the pty master when `process.terminal` is true.
    pub fn console_socket(mut self, path: impl Into<PathBuf>) -> Self {
        self.opts.console_socket = Some(path.into());
        self
    }
    /// The unix socket (a listening stream socket) that receives a pidfd of the container's
    /// init (SCM_RIGHTS, with the bytes `standard`) as soon as the init exists, as runc's
    /// `--pidfd-socket`. It is connected before anything is made: a path that is missing or no
    /// socket fails the create with nothing left behind.
    pub fn pidfd_socket(mut self, path: impl Into<PathBuf>) -> Self {
        self.opts.pidfd_socket = Some(path.into());
        self
    }
    /// Pass fds 3 .. 3+n of the caller to the container.
    pub fn preserve_fds(mut self, n: u32) -> Self {
        self.opts.preserve_fds = n;
        self
    }
    /// Use chroot instead of pivot_root (for a rootfs on a ramdisk).
    pub fn no_pivot(mut self, yes: bool) -> Self {
        self.opts.no_pivot = yes;
        self
    }
    /// Keep the caller's session keyring instead of a new one.
    pub fn no_new_keyring(mut self, yes: bool) -> Self {
        self.opts.no_new_keyring = yes;
        self
    }
    /// Interpret `linux.cgroupsPath` as systemd's `slice:prefix:name`.
    pub fn systemd_cgroup(mut self, yes: bool) -> Self {
        self.opts.systemd_cgroup = yes;
        self
    }

    /// runc's `--rootless`: `Some(true)` makes the container's cgroup only in the hierarchies
    /// delegated to the caller, and none where nothing is (then a config that asks for cgroup
    /// limits is refused, naming them); `Some(false)` makes it as root does; `None`, the
    /// default, is runc's `auto`: rootless when the effective uid is not 0, or in a user
    /// namespace that does not map the host's root (see [`crate::rootless_auto`]).
    pub fn rootless_cgroups(mut self, mode: Option<bool>) -> Self {
        self.opts.rootless_cgroups = mode;
        self
    }

    /// The id of the container to be.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// Whether the caller gave a console socket.
    pub(crate) fn has_console_socket(&self) -> bool {
        self.opts.console_socket.is_some()
    }

    /// Load and validate the bundle (config.json, or the spec given), without creating
    /// anything.
    pub(crate) fn load_bundle(&self) -> Result<Bundle> {
        match &self.spec {
            Some(spec) => Bundle::from_spec(
                std::path::absolute(&self.bundle).unwrap_or(self.bundle.clone()),
                spec.clone(),
            ),
            None => Bundle::load(&self.bundle),
        }
        .ctx(&self.id, Step::Create)
    }

    /// Create the container: it exists, its init is set up and waits for [`Container::start`].
    /// The container's `process` runs once started; nothing of the bundle is left behind
    /// when creation fails.
    pub fn create(self) -> Result<Container> {
        let bundle = self.load_bundle()?;
        self.create_from(bundle)
    }

    /// The id, state root and create options, for restore.
    pub(crate) fn parts(&self) -> (String, &Path, &CreateOptions) {
        (self.id.clone(), &self.root, &self.opts)
    }

    /// Create the container from a bundle loaded with [`ContainerBuilder::load_bundle`].
    pub(crate) fn create_from(self, bundle: Bundle) -> Result<Container> {
        let id = self.id.clone();
        let saved = create::create(&id, &self.root, bundle, &self.opts)?;
        Ok(Container {
            root: self.root,
            saved,
        })
    }
}

/// A container that exists in a state root: created by [`ContainerBuilder`], or
/// [loaded](Container::load) by id by a later command.
///
/// Every method reads the container's status afresh (from its init process, never from a
/// cached value) under the state directory's lock, so several programs may work on the same
/// container.
///
/// ```no_run
/// use casulo::{Container, Status};
///
/// let c = Container::load("/run/casulo", "web")?;
/// if c.status()? == Status::Running {
///     c.kill(libc::SIGTERM)?;
/// }
/// for pid in c.processes()? {
///     println!("{pid}");
/// }
/// # Ok::<(), casulo::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Container {
    root: PathBuf,
    pub(crate) saved: Saved,
}

pub(crate) fn invalid_state(id: &str, step: Step, msg: String) -> Error {
    Error::new(id, step, Cause::InvalidState(msg))
}

impl Container {
    pub(crate) fn new(root: PathBuf, saved: Saved) -> Container {
        Container { root, saved }
    }

    /// The container `id` under the state root `root`. Fails with [`ErrorKind::NotFound`] if
    /// there is none.
    pub fn load(root: impl AsRef<Path>, id: &str) -> Result<Container> {
        validate_id(id).ctx(id, Step::Load)?;
        let root = root.as_ref().to_path_buf();
        let dir = StateDir::open(&root, id).ctx(id, Step::Load)?;
        let saved = dir.load().ctx(id, Step::Load)?;
        Ok(Container { root, saved })
    }

    /// The container's id.
    pub fn id(&self) -> &str {
        &self.saved.id
    }

    /// The init's pid in the runtime's pid namespace.
    pub fn pid(&self) -> i32 {
        self.saved.pid
    }

    /// The bundle directory the container was created from, absolute.
    pub fn bundle(&self) -> &Path {
        &self.saved.bundle
    }

    pub(crate) fn lock(&self, step: Step) -> Result<StateDir> {
        StateDir::open(&self.root, &self.saved.id).ctx(&self.saved.id, step)
    }

    /// The container's cgroup, reopened where create made it.
    pub(crate) fn cgroup(
        &self,
    ) -> std::result::Result<
        Option<Box<dyn crate::cgroups::CgroupManager>>,
        crate::cgroups::CgroupError,
    > {
        match &self.saved.cgroup {
            Some(cfg) => crate::cgroups::manager_at(cfg, &self.saved.cgroup_paths).map(Some),
            None => Ok(None),
        }
    }

    /// The OCI state, with the status derived from the init process now (as [`state_of`]:
    /// without waiting for another command that holds the container).
    pub fn state(&self) -> Result<State> {
        StateDir::peek(&self.root, self.id()).ctx(self.id(), Step::State)
    }

    /// The status now.
    pub fn status(&self) -> Result<Status> {
        Ok(self.state()?.status)
    }

    /// Start a created container: let the init run the config's program, then run the
    /// poststart hooks. Fails if the container is not `created`.
    pub fn start(&self) -> Result<()> {
        let id = self.id();
        let step = Step::Start;
        let dir = self.lock(step)?;
        let status = dir.status(&self.saved);
        if status != Status::Created {
            return Err(invalid_state(
                id,
                step,
                format!("cannot start a container that is {status}"),
            ));
        }
        // The pidfd first: after the release the program may exit and be reaped at once.
        let pidfd = self.init_pidfd(step, "the container's init exited before start")?;
        let released = fifo::release(&dir.fifo(), std::os::fd::AsFd::as_fd(&pidfd));
        let _ = std::fs::remove_file(dir.fifo());
        released.ctx(id, step)?;
        let hooks = self
            .saved
            .hooks
            .as_ref()
            .map(|h| h.poststart.clone())
            .unwrap_or_default();
        if !hooks.is_empty() {
            let st = serde_json::to_vec(&self.saved.oci_state(Status::Running)).unwrap_or_default();
            // The spec: a failing poststart hook is logged, and the lifecycle goes on.
            crate::hooks::run_hooks_warn("poststart", &hooks, &st, id);
        }
        Ok(())
    }

    /// Send signal number `sig` to the container's init (SIGKILL to a container without its
    /// own pid namespace goes to every process of its cgroup, as the init's death would not
    /// take them along). Signal 0 checks that the container is running. Fails if it is not.
    pub fn kill(&self, sig: i32) -> Result<()> {
        self.signal(sig, false)
    }

    /// Send signal number `sig` to every process of the container's cgroup (runc's
    /// `kill --all`). Unlike [`Container::kill`] it does not fail on a stopped container.
    pub fn kill_all(&self, sig: i32) -> Result<()> {
        self.signal(sig, true)
    }

    fn signal(&self, sig: i32, all: bool) -> Result<()> {
        let id = self.id();
        let step = Step::Kill;
        let dir = self.lock(step)?;
        let status = dir.status(&self.saved);
        // "container not running" is runc's wording, and what containerd's runc shim looks for
        // to report a kill of an exited task as "process already finished" (not found) rather
        // than an unknown error.
        let not_running = || {
            invalid_state(
                id,
                step,
                format!("container not running (it is {status}): nothing to signal"),
            )
        };
        let stopped = matches!(status, Status::Stopped | Status::Creating);
        // Without its own pid namespace the init's death does not take the other processes
        // along: SIGKILL goes to every process of the cgroup, as with runc, even when the init
        // is already gone.
        let every = all || (sig == libc::SIGKILL && !self.saved.own_pid_ns);
        if every {
            if let Some(mut cg) = self.cgroup().ctx(id, step)? {
                let pids = cg.pids().ctx(id, step)?;
                if !all && stopped && pids.is_empty() {
                    return Err(not_running());
                }
                match Signal::try_from(sig) {
                    Ok(s) => cg.kill_all(s).ctx(id, step)?,
                    // Real-time signals and 0 have no nix name: signal the members one by one.
                    Err(_) => pids.into_iter().for_each(|p| crate::sys::kill(p, sig)),
                }
                return Ok(());
            }
        }
        if stopped && !all {
            return Err(not_running());
        }
        if all && status == Status::Stopped {
            // Without a cgroup (rootless) a stopped container has nothing left to signal:
            // --all does not fail on it, as where its cgroup is empty.
            return Ok(());
        }
        let pidfd = self.init_pidfd(
            step,
            "container not running (it is stopped): nothing to signal",
        )?;
        crate::sys::pidfd_send_signal(std::os::fd::AsFd::as_fd(&pidfd), sig)
            .map_err(crate::process::sys(format!("signal {sig}")))
            .ctx(id, step)?;
        if sig == libc::SIGKILL && status == Status::Paused {
            // A frozen task acts on SIGKILL only once thawed (cgroup v1): thaw, so that the
            // container dies now, as runc does.
            if let Some(mut cg) = self.cgroup().ctx(id, step)? {
                cg.freeze(false).ctx(id, step)?;
            }
        }
        Ok(())
    }

    /// A pidfd of the container's init. The pidfd pins a process; it is checked to be the init
    /// (pid and start time) after it is opened, so a reused pid is never signalled or watched.
    pub(crate) fn init_pidfd(&self, step: Step, if_stopped: &str) -> Result<std::os::fd::OwnedFd> {
        let id = self.id();
        let pidfd = crate::sys::pidfd_open(self.saved.pid)
            .map_err(crate::process::sys(format!(
                "pidfd_open {}",
                self.saved.pid
            )))
            .ctx(id, step)?;
        if !self.saved.init_alive() {
            return Err(invalid_state(id, step, if_stopped.into()));
        }
        Ok(pidfd)
    }

    /// The container's process config, the starting point of [`Container::exec`].
    pub fn process_config(&self) -> Option<&oci_spec::runtime::Process> {
        self.saved.process.as_ref()
    }

    /// Start `process` inside the running container: it joins the init's namespaces and
    /// cgroup, gets its own user, capabilities, rlimits and no_new_privs and the container's
    /// seccomp profile. Returns its pid once it has exec'd; the process runs on by itself
    /// ([`Container::exec_foreground`] waits for it).
    ///
    /// ```no_run
    /// use casulo::{Container, ExecOptions};
    ///
    /// let c = Container::load("/run/casulo", "web")?;
    /// let mut process = c.process_config().cloned().unwrap_or_default();
    /// process.set_args(Some(vec!["/bin/sleep".into(), "60".into()]));
    /// process.set_terminal(Some(false));
    /// let pid = c.exec(&process, &ExecOptions::default())?;
    /// println!("started {pid}");
    /// # Ok::<(), casulo::Error>(())
    /// ```
    pub fn exec(&self, process: &oci_spec::runtime::Process, opts: &ExecOptions) -> Result<i32> {
        self.exec_with(process, &opts.to_internal())
    }

    pub(crate) fn exec_with(
        &self,
        process: &oci_spec::runtime::Process,
        opts: &crate::lifecycle::exec::ExecOptions,
    ) -> Result<i32> {
        let id = self.id();
        let step = Step::Exec;
        let mut dir = Some(self.lock(step)?);
        let status = dir
            .as_ref()
            .map_or(Status::Stopped, |d| d.status(&self.saved));
        let paused_ok = status == Status::Paused && opts.ignore_paused;
        if !matches!(status, Status::Running | Status::Created) && !paused_ok {
            // runc's words (clients match them): "cannot exec in a paused container (use
            // --ignore-paused to override)".
            let hint = if status == Status::Paused {
                " (resume it first, or use --ignore-paused to override)"
            } else {
                ""
            };
            return Err(invalid_state(
                id,
                step,
                format!("cannot exec in a {status} container{hint}"),
            ));
        }
        // In a paused container the process is frozen once in the cgroup, until a resume,
        // which needs the lock: it is let go from there on.
        let in_cgroup = || {
            if paused_ok {
                dir.take();
            }
        };
        let cache = crate::security::SeccompCache::in_root(&self.root);
        let pid =
            crate::lifecycle::exec::exec(&self.saved, status, process, opts, &cache, in_cgroup)
                .map_err(|k| Error::new(id, step, k))?;
        drop(dir);
        Ok(pid)
    }

    /// Every process of the container (its cgroup's members), in the runtime's pid namespace.
    pub fn processes(&self) -> Result<Vec<i32>> {
        let id = self.id();
        let step = Step::Ps;
        let dir = self.lock(step)?;
        let status = dir.status(&self.saved);
        if status == Status::Stopped {
            return Ok(Vec::new());
        }
        match self.cgroup().ctx(id, step)? {
            Some(cg) => cg.pids().ctx(id, step),
            None => Ok(vec![self.saved.pid]),
        }
    }

    /// Change the resource limits of a live container (the device rules fixed at create
    /// excepted).
    ///
    /// ```no_run
    /// use casulo::oci_spec::runtime::{LinuxMemoryBuilder, LinuxResourcesBuilder};
    ///
    /// let memory = LinuxMemoryBuilder::default().limit(256 << 20).build().unwrap();
    /// let resources = LinuxResourcesBuilder::default().memory(memory).build().unwrap();
    /// casulo::Container::load("/run/casulo", "web")?.update(&resources)?;
    /// # Ok::<(), casulo::Error>(())
    /// ```
    pub fn update(&self, resources: &oci_spec::runtime::LinuxResources) -> Result<()> {
        let id = self.id();
        let step = Step::Update;
        let dir = self.lock(step)?;
        let status = dir.status(&self.saved);
        if matches!(status, Status::Stopped | Status::Creating) {
            return Err(invalid_state(
                id,
                step,
                format!("cannot update a container that is {status}"),
            ));
        }
        let mut cg = self
            .cgroup()
            .ctx(id, step)?
            .ok_or_else(|| invalid_state(id, step, crate::cgroups::rootless::NO_CGROUP.into()))?;
        // As runc: update changes limits, never the device rules fixed at create.
        let mut resources = resources.clone();
        if resources.devices().is_some() {
            tracing::debug!("container {id:?}: update: linux.resources.devices is not updated");
        }
        resources.set_devices(None);
        cg.set(&resources).ctx(id, step)
    }

    /// Freeze every process of the container (status `paused`) until
    /// [`resume`](Container::resume).
    pub fn pause(&self) -> Result<()> {
        self.freeze(Step::Pause, true)
    }

    /// Thaw a paused container.
    pub fn resume(&self) -> Result<()> {
        self.freeze(Step::Resume, false)
    }

    fn freeze(&self, step: Step, frozen: bool) -> Result<()> {
        let id = self.id();
        let dir = self.lock(step)?;
        let status = dir.status(&self.saved);
        let ok = if frozen {
            matches!(status, Status::Running | Status::Created)
        } else {
            status == Status::Paused
        };
        if !ok {
            let what = if frozen { "pause" } else { "resume" };
            return Err(invalid_state(
                id,
                step,
                format!("cannot {what} a container that is {status}"),
            ));
        }
        let mut cg = self
            .cgroup()
            .ctx(id, step)?
            .ok_or_else(|| invalid_state(id, step, crate::cgroups::rootless::NO_CGROUP.into()))?;
        cg.freeze(frozen).ctx(id, step)
    }

    /// Delete a stopped container: run its poststop hooks, remove its cgroup and state. A
    /// container that is not stopped is left untouched, and an error says so.
    pub fn delete(self) -> Result<()> {
        self.remove(false)
    }

    /// Delete a container whatever its status (runc's `delete --force`): kill its processes
    /// first (thawing a paused one), then as [`Container::delete`].
    pub fn force_delete(self) -> Result<()> {
        // Before the lock, which a checkpoint in progress holds for as long as its dump lasts.
        crate::checkpoint::stop_dump(&self.root.join(self.id()));
        self.remove(true)
    }

    fn remove(self, force: bool) -> Result<()> {
        let id = self.id().to_string();
        let step = Step::Delete;
        let dir = self.lock(step)?;
        let status = dir.status(&self.saved);
        if status != Status::Stopped && status != Status::Creating {
            if !force {
                return Err(invalid_state(
                    &id,
                    step,
                    format!("cannot delete a container that is {status}: stop it or use --force"),
                ));
            }
            if status == Status::Paused {
                // Frozen tasks cannot act on SIGKILL on cgroup v1: kill_all signals every
                // process while the cgroup is frozen (nothing can fork away), then thaws it.
                if let Some(mut cg) = self.cgroup().ctx(&id, step)? {
                    cg.kill_all(Signal::SIGKILL).ctx(&id, step)?;
                }
            }
            if let Ok(fd) = crate::sys::pidfd_open(self.saved.pid) {
                if self.saved.init_alive() {
                    let _ =
                        crate::sys::pidfd_send_signal(std::os::fd::AsFd::as_fd(&fd), libc::SIGKILL);
                    crate::lifecycle::pidfd::wait_pidfd(&fd, Duration::from_secs(10));
                }
            }
        }
        if let Some(mut cg) = self.cgroup().ctx(&id, step)? {
            // Without its own pid namespace, the init's death does not take the rest along.
            for pid in cg.pids().unwrap_or_default() {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
            }
            // Bounded: a process that SIGKILL cannot end keeps its cgroup busy; the state stays
            // for a later delete --force, and the error names the processes.
            if let Err(e) = cg.destroy() {
                let stuck = cg.pids().unwrap_or_default();
                let e = if stuck.is_empty() {
                    e
                } else {
                    crate::cgroups::CgroupError::Stuck {
                        pids: stuck,
                        source: Box::new(e),
                    }
                };
                return Err(e).ctx(&id, step);
            }
        }
        if self.saved.host_mount_ns {
            crate::rootfs::detach_host_mounts(&self.saved.rootfs).ctx(&id, step)?;
        }
        let hooks = self
            .saved
            .hooks
            .as_ref()
            .map(|h| h.poststop.clone())
            .unwrap_or_default();
        if !hooks.is_empty() {
            let st = serde_json::to_vec(&self.saved.oci_state(Status::Stopped)).unwrap_or_default();
            crate::hooks::run_hooks_warn("poststop", &hooks, &st, &id);
        }
        dir.remove().ctx(&id, step)
    }
}

/// Every container under `root` with its state now, sorted by id. Containers whose state
/// cannot be read are skipped.
///
/// ```no_run
/// for state in casulo::list(casulo::default_root())? {
///     println!("{} {} {}", state.id, state.pid, state.status);
/// }
/// # Ok::<(), casulo::Error>(())
/// ```
pub fn list(root: impl AsRef<Path>) -> Result<Vec<State>> {
    let root = root.as_ref();
    let ids = state::list_ids(root).map_err(|e| Error::new("", Step::List, e))?;
    let mut out = Vec::new();
    for id in ids {
        // One read of state.json per container, without its lock (see `state_of`): list is
        // called with thousands of them, and must answer while one is being checkpointed.
        if let Err(e) = validate_id(&id).ctx(&id, Step::List) {
            tracing::warn!("list: {e}");
            continue;
        }
        let state = StateDir::peek(root, &id);
        match state.ctx(&id, Step::List) {
            Ok(s) => out.push(s),
            // Deleted meanwhile.
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            // As runc: a container whose state cannot be read is named and skipped.
            Err(e) => tracing::warn!("list: {e}"),
        }
    }
    Ok(out)
}

/// The OCI state of container `id` under the state root `root` (runc's `state`), read
/// without waiting for the container's lock: state.json is only ever replaced whole, and
/// another command may hold the container for long (a checkpoint, for as long as CRIU dumps;
/// a lazy migration's dump until its last page is fetched), as it may while `create` runs,
/// which then reads as `creating`.
pub fn state_of(root: impl AsRef<Path>, id: &str) -> Result<State> {
    validate_id(id).ctx(id, Step::State)?;
    StateDir::peek(root.as_ref(), id).ctx(id, Step::State)
}

/// `delete --force` of `id` whatever is left of it: a container is force-deleted
/// ([`Container::force_delete`]); a state directory whose `state.json` is missing or
/// unreadable is removed with a warning that names the cause (its cgroup and processes cannot
/// be found without it); what a create killed before its state directory was in place left is
/// removed; a container that does not exist is not an error, as with runc.
///
/// ```no_run
/// casulo::force_delete("/run/casulo", "web")?;
/// # Ok::<(), casulo::Error>(())
/// ```
pub fn force_delete(root: impl AsRef<Path>, id: &str) -> Result<()> {
    let root = root.as_ref();
    validate_id(id).ctx(id, Step::Delete)?;
    state::remove_stale(root, id);
    // Before the load, which waits for the container's lock.
    crate::checkpoint::stop_dump(&root.join(id));
    match Container::load(root, id) {
        Ok(c) => c.remove(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == ErrorKind::State => {
            let dir = StateDir::open(root, id).ctx(id, Step::Delete)?;
            tracing::warn!("{e}: removing the state directory without it");
            dir.remove().ctx(id, Step::Delete)
        }
        Err(mut e) => {
            e.step = Step::Delete;
            Err(e)
        }
    }
}
