//! The runtime side of create. [`create`] checks everything it can without a side effect, then
//! [`run`] makes the container in the order written once here: the state dir, the fork of the
//! stage, the cgroup while the stage makes the namespaces, then the answers to the stage's and
//! the init's messages (see the sequence in the module above) until the init is ready. On a
//! failure, [`undo`] reverts every step that was begun, newest first.
//!
//! [`CreateSteps`] is one method per step; `host.rs` makes them for real, and the unit tests
//! (`create_tests.rs`) run the same order against a recording double, without root.

use std::os::fd::OwnedFd;
use std::path::Path;

use super::host::Host;
use super::protocol::Msg;
use crate::bundle::{validate_id, Bundle};
use crate::cgroups;
use crate::error::{Context, Result, Step};
use crate::hooks::HookPoint;
use crate::plan::{CreateOptions, InitPlan};
use crate::process::ProcessError;
use crate::security::SeccompCache;
use crate::state::Saved;

/// One method per step of create on the runtime's side. The `undo_*` methods are best effort
/// and may be called for a step that failed half-way.
pub(super) trait CreateSteps {
    /// The state dir, the exec fifo in it, and a first state.json: the id is then claimed;
    /// then the check that the container's cgroup holds nothing of another's.
    fn make_state_dir(&mut self) -> Result<()>;
    /// Fork the stage; returns its pid.
    fn fork_stage(&mut self) -> Result<i32>;
    fn send(&mut self, msg: Msg<'static>, fd: Option<OwnedFd>) -> Result<()>;
    /// The child's next message, and the fd that came with it.
    fn recv(&mut self) -> Result<(Msg<'static>, Option<OwnedFd>)>;
    /// The container's cgroup (empty: the init is not in it yet).
    fn make_cgroup(&mut self) -> Result<()>;
    /// uid/gid maps and time offsets of the stage's new user namespace.
    fn write_id_maps(&mut self, stage: i32) -> Result<()>;
    /// The init has this pid: reap the stage if it forked the init; note the init's start time.
    fn init_started(&mut self, init: i32, stage: i32) -> Result<()>;
    /// The init into its cgroup, the resources written.
    fn enter_cgroup(&mut self, init: i32) -> Result<()>;
    /// linux.netDevices into the init's network namespace.
    fn move_net_devices(&mut self, init: i32) -> Result<()>;
    /// The documents the init waits for once in its cgroup: the state (created), then the
    /// seccomp agent's, if its filter notifies one.
    fn states(&mut self) -> Vec<Msg<'static>>;
    fn run_hooks(&mut self, point: HookPoint) -> Result<()>;
    /// The source of bind mount `n` (opened as the runtime), or, with `idmapped`, its idmapped
    /// tree (from `fd`, a source the init opened in the rootfs, if any).
    fn mount_source(&mut self, n: u32, idmapped: bool, fd: Option<OwnedFd>) -> Result<OwnedFd>;
    /// A pidfd of the init to the caller's `--pidfd-socket`, if any.
    fn send_pidfd(&mut self) -> Result<()>;
    fn save_state(&mut self) -> Result<()>;
    fn write_pid_file(&mut self) -> Result<()>;

    /// SIGKILL the init and reap it (it is the runtime's child, see `stage::fork_if_needed`).
    fn undo_init(&mut self, pid: i32);
    fn undo_stage(&mut self, pid: i32);
    /// SIGKILL whatever else is in the cgroup.
    fn undo_cgroup_members(&mut self);
    fn undo_net_devices(&mut self);
    /// Detach the rootfs's bind mount in the host's mount namespace.
    fn undo_host_rootfs(&mut self);
    fn undo_cgroup(&mut self);
    fn undo_state_dir(&mut self);
}

/// The steps begun so far, for [`undo`].
#[derive(Debug, Default)]
pub(super) struct Begun {
    state_dir: bool,
    stage: Option<i32>,
    init: Option<i32>,
    cgroup: bool,
    net_devices: bool,
    host_rootfs: bool,
}

/// Create container `id` from `bundle` with its state under `root`. Returns once the init is
/// set up and blocked on the exec fifo.
pub fn create(id: &str, root: &Path, bundle: Bundle, opts: &CreateOptions) -> Result<Saved> {
    let step = Step::Create;
    // Everything that can be checked is checked before the first side effect.
    validate_id(id).ctx(id, step)?;
    check_preserved_fds(opts.preserve_fds).ctx(id, step)?;
    let cache = SeccompCache::in_root(root);
    let plan = InitPlan::build(id, &bundle, opts, Some(&cache))
        .map_err(|k| crate::Error::new(id, step, k))?;
    let (cgroup, rootless) = cgroup_for(id, &bundle, opts).ctx(id, step)?;
    if cgroup.is_none() && !plan.ns.creates(oci_spec::runtime::LinuxNamespaceType::Pid) {
        // Nothing then finds the processes the init starts: say so, as runc does.
        tracing::warn!(
            "container {id:?}: rootless, with no cgroup and no pid namespace of its own: kill \
             --all and delete --force reach its init only, not the processes it starts. Such \
             configuration is strongly discouraged"
        );
    }
    let mut host = Host::new(root, &bundle, &plan, opts, cgroup, rootless)?;
    #[cfg(debug_assertions)]
    if let Some(kill_at) = super::fault::Faulty::<Host>::from_env() {
        let mut faulty = super::fault::Faulty {
            inner: host,
            kill_at,
            step: 0,
        };
        return made(&mut faulty, &plan).map(|()| faulty.inner.finish());
    }
    made(&mut host, &plan).map(|()| host.finish())
}

/// [`run`], and [`undo`] if it fails.
fn made<S: CreateSteps>(s: &mut S, plan: &InitPlan) -> Result<()> {
    let mut begun = Begun::default();
    run(s, plan, &mut begun).inspect_err(|_| undo(s, &begun))
}

/// Make the container, in order. `begun` records each step before it starts, for [`undo`].
pub(super) fn run<S: CreateSteps>(s: &mut S, plan: &InitPlan, begun: &mut Begun) -> Result<()> {
    begun.state_dir = true;
    s.make_state_dir()?;
    begun.host_rootfs = plan.rootfs.host_mount_ns;
    let stage = s.fork_stage()?;
    begun.stage = Some(stage);
    // The stage joins and creates namespaces (the slow part) while we make its cgroup.
    s.send(Msg::Go, None)?;
    begun.cgroup = true;
    s.make_cgroup()?;
    loop {
        // Only NeedIdmappedTree carries an fd; one sent with any other message is closed.
        let (msg, fd) = s.recv()?;
        match msg {
            Msg::NeedMaps => {
                s.write_id_maps(stage)?;
                s.send(Msg::MapsDone, None)?;
            }
            Msg::Pid(init) => {
                let init = if init == 0 { stage } else { init };
                begun.init = Some(init);
                if init != stage {
                    // The stage forked the init and exits: init_started reaps it.
                    begun.stage = None;
                }
                s.init_started(init, stage)?;
                // As soon as the init exists, as runc's init sends it early in its setup: the
                // holder has it well before create returns.
                s.send_pidfd()?;
                // The init waits for the states before anything that depends on its cgroup;
                // it mounts meanwhile.
                s.enter_cgroup(init)?;
                if plan.net_devices.is_some() {
                    // Before the init learns the state: nothing of the container, hooks
                    // included, runs before its devices are there.
                    begun.net_devices = true;
                    s.move_net_devices(init)?;
                }
                for m in s.states() {
                    s.send(m, None)?;
                }
            }
            Msg::RunHooks => {
                s.run_hooks(HookPoint::Prestart)?;
                s.run_hooks(HookPoint::CreateRuntime)?;
                s.send(Msg::HooksDone, None)?;
            }
            Msg::NeedMountSource(n) => {
                let source = s.mount_source(n, false, None)?;
                s.send(Msg::MountSource, Some(source))?;
            }
            Msg::NeedIdmappedTree(n) => {
                let tree = s.mount_source(n, true, fd)?;
                s.send(Msg::MountSource, Some(tree))?;
            }
            Msg::Ready => break,
            Msg::Error(e) => return Err(init_error(plan, e.into_owned())),
            other => return Err(init_error(plan, format!("unexpected message {other:?}"))),
        }
    }
    s.save_state()?;
    s.write_pid_file()
}

/// Revert every step begun, newest first: the processes (so that nothing of the container
/// runs on), the devices back to the host, the rootfs's host mount, the cgroup, the state dir.
pub(super) fn undo<S: CreateSteps>(s: &mut S, begun: &Begun) {
    if let Some(init) = begun.init {
        s.undo_init(init);
    }
    if let Some(stage) = begun.stage.filter(|&p| begun.init != Some(p)) {
        s.undo_stage(stage);
    }
    if begun.cgroup {
        s.undo_cgroup_members();
    }
    if begun.net_devices {
        s.undo_net_devices();
    }
    if begun.host_rootfs {
        s.undo_host_rootfs();
    }
    if begun.cgroup {
        s.undo_cgroup();
    }
    if begun.state_dir {
        s.undo_state_dir();
    }
}

/// The container's cgroup (none for a rootless container without a delegated one), and
/// whether the runtime makes it as a rootless one.
pub(crate) fn cgroup_for(
    id: &str,
    bundle: &Bundle,
    opts: &CreateOptions,
) -> std::result::Result<(Option<cgroups::CgroupConfig>, bool), cgroups::CgroupError> {
    let linux = bundle.spec.linux().as_ref();
    let cgroup_path = linux
        .and_then(|l| l.cgroups_path().as_ref())
        .map(|p| p.to_string_lossy().into_owned());
    let cfg = cgroups::resolve(cgroup_path.as_deref(), id, opts.systemd_cgroup)?;
    let rootless = opts
        .rootless_cgroups
        .unwrap_or_else(|| crate::rootless_auto(opts.systemd_cgroup));
    let cgroup = if rootless {
        rootless_cgroup(cgroups::rootless::own(cfg), cgroup_path.is_some(), linux)?
    } else {
        Some(cfg)
    };
    Ok((cgroup, rootless))
}

/// A rootless container's cgroup: `cfg` where a cgroup is delegated to the caller; else none,
/// if the config asks for no limit and names no cgroup (`explicit`: `linux.cgroupsPath` is
/// set).
fn rootless_cgroup(
    cfg: cgroups::CgroupConfig,
    explicit: bool,
    linux: Option<&oci_spec::runtime::Linux>,
) -> std::result::Result<Option<cgroups::CgroupConfig>, cgroups::CgroupError> {
    if cgroups::rootless::delegated_manager(&cfg)?.is_some() {
        return Ok(Some(cfg));
    }
    if explicit {
        return Err(cgroups::rootless::not_delegated(&cfg.path));
    }
    cgroups::rootless::check_without_cgroup(linux.and_then(|l| l.resources().as_ref()))?;
    Ok(None)
}

fn init_error(plan: &InitPlan, msg: String) -> crate::Error {
    crate::Error::new(&plan.id, Step::Create, ProcessError::Init(msg))
}

fn check_preserved_fds(n: u32) -> std::result::Result<(), ProcessError> {
    for fd in 3..3 + n as i32 {
        if !crate::sys::fd_is_open(fd) {
            return Err(ProcessError::Invalid(format!(
                "--preserve-fds: fd {fd} is not open"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "create_tests.rs"]
mod tests;
