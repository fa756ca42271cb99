//! The runtime side of create: the checks, the state dir and the fork, then the message loop
//! that answers the stage and the init (see the sequence in the module above) until it is ready.

use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::time::Instant;

use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::fifo;
use super::protocol::{self, Msg};
use super::stage::{self, ChildIo};
use super::undo::Undo;
use crate::bundle::{validate_id, Bundle};
use crate::cgroups;
use crate::error::{Context, Result, Step};
use crate::plan::{CreateOptions, InitPlan};
use crate::process::{sys, ProcessError};
use crate::state::{self, Saved, StateDir, Status};
use crate::sys::{fork, Fork};

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

/// Create container `id` from `bundle` with its state under `root`. Returns once the init is
/// set up and blocked on the exec fifo.
pub fn create(id: &str, root: &Path, bundle: Bundle, opts: &CreateOptions) -> Result<Saved> {
    let step = Step::Create;
    let t0 = Instant::now();
    let timing =
        |what: &str| tracing::debug!("container {id:?}: create: {what} after {:?}", t0.elapsed());
    // Everything that can be checked is checked before the first side effect.
    validate_id(id).ctx(id, step)?;
    check_preserved_fds(opts.preserve_fds).ctx(id, step)?;
    let plan = InitPlan::build(id, &bundle, opts).map_err(|k| crate::Error::new(id, step, k))?;
    let linux = bundle.spec.linux().as_ref();
    let cgroup_path = linux
        .and_then(|l| l.cgroups_path().as_ref())
        .map(|p| p.to_string_lossy().into_owned());
    let cgroup_cfg =
        cgroups::resolve(cgroup_path.as_deref(), id, opts.systemd_cgroup).ctx(id, step)?;
    let resources = cgroups::resources_for_create(linux);
    let console = crate::plan::connect_console(opts.console_socket.as_deref()).ctx(id, step)?;
    // The init cannot reach a host path once inside its root: connect for it.
    let listener = plan.seccomp.as_ref().and_then(|s| s.listener());
    let agent = listener
        .map(|l| crate::security::seccomp_notify::connect(&l.path))
        .transpose()
        .ctx(id, step)?;
    let mut saved = Saved {
        oci_version: bundle.spec.version().clone(),
        id: id.to_string(),
        pid: 0,
        pid_start: 0,
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        annotations: bundle.spec.annotations().clone().unwrap_or_default(),
        created: state::now_rfc3339(),
        owner: state::user_name(nix::unistd::geteuid().as_raw()),
        cgroup: Some(cgroup_cfg.clone()),
        cgroup_paths: Vec::new(),
        hooks: Some(plan.hooks.clone()),
        own_pid_ns: plan.ns.creates(oci_spec::runtime::LinuxNamespaceType::Pid),
        host_mount_ns: plan.rootfs.host_mount_ns,
        process: bundle.spec.process().clone(),
        seccomp: linux.and_then(|l| l.seccomp().clone()),
        personality: linux.and_then(|l| l.personality().clone()),
        memory_policy: linux.and_then(|l| l.memory_policy().clone()),
    };

    // The cgroup of a container that already exists is its own: StateDir::create reports
    // that. The manager is made again after the fork, so that the forked child holds nothing
    // of it.
    if !root.join(id).exists() {
        let cg = cgroups::manager(&cgroup_cfg).ctx(id, step)?;
        cgroups::check_unused(cg.as_ref()).ctx(id, step)?;
    }

    // Side effects from here on; `undo` reverts them unless create succeeds.
    let dir = StateDir::create(root, id).ctx(id, step)?;
    let mut undo = Undo {
        net: None,
        host_rootfs: plan
            .rootfs
            .host_mount_ns
            .then(|| plan.rootfs.rootfs.clone()),
        dir: None,
        stage: None,
        init: None,
        cgroup: None,
    };
    let fifo_path = dir.fifo();
    let lock_fd = dir.as_fd().as_raw_fd();
    undo.dir = Some(dir);
    let dir = undo.dir.as_ref().expect("state dir");
    fifo::create(&fifo_path).ctx(id, step)?;
    dir.save(&saved).ctx(id, step)?;
    let (chan, child_chan) = protocol::pair().map_err(sys("socketpair")).ctx(id, step)?;
    let fifo_fd = fifo::open_path(&fifo_path).ctx(id, step)?;

    // The caller's own fds (beyond stdio and the preserved ones) never reach the container.
    let inherited = crate::sys::inherited_fds(3 + opts.preserve_fds as i32)
        .map_err(|source| ProcessError::Io {
            what: "list the open fds (/proc/self/fd)".into(),
            source,
        })
        .ctx(id, step)?;
    timing("validated and state dir made");
    let stage = match fork().map_err(sys("fork")).ctx(id, step)? {
        Fork::Child => {
            crate::sys::close_fds(&inherited);
            crate::sys::close_inherited(lock_fd);
            crate::sys::close_inherited(chan.as_raw());
            stage::run(
                &plan,
                ChildIo {
                    chan: child_chan,
                    fifo: fifo_fd,
                    console,
                    agent,
                },
            )
        }
        Fork::Parent(pid) => pid,
    };
    drop(child_chan);
    drop(console);
    // Only the container holds the agent's connection: it closes it once the listener is sent.
    drop(agent);
    drop(fifo_fd);
    undo.stage = Some(stage);

    // The stage joins and creates namespaces (the slow part) while we make its cgroup.
    chan.send(&Msg::Go)
        .map_err(ProcessError::from)
        .ctx(id, step)?;
    // The debug lines of the steps of the child say what runc's say at the same points
    // ("nsexec container setup", "child process in init()", "init: closing the pipe to signal
    // completion"): its test suite and scripts look for them in --debug output.
    tracing::debug!("container {id:?}: create: nsexec container setup: the stage joins and makes the namespaces");
    undo.cgroup = Some(cgroups::manager(&cgroup_cfg).ctx(id, step)?);
    undo.cgroup
        .as_mut()
        .expect("cgroup")
        .create()
        .ctx(id, step)?;
    timing("cgroup made");

    let fail = |e: ProcessError| crate::Error::new(id, step, e);
    // A step that failed because the init exited: the init's own report is the cause.
    let prefer_init = |e: crate::Error| match chan.pending_error() {
        Some(msg) => fail(ProcessError::Init(msg)),
        None => e,
    };
    // The user namespaces made for idmapped mounts live until create ends.
    let mut mapping_namespaces = crate::rootfs::MappingNamespaces::default();
    loop {
        // Only NeedIdmappedTree carries an fd; one sent with any other message is closed.
        let (msg, msg_fd) = match chan.recv_fd() {
            Ok(m) => m,
            // A peer that closes with our message unread makes the first recv fail with
            // ECONNRESET although its own report is still queued: read that report first.
            Err(protocol::ChannelError::Closed) => {
                return Err(prefer_init(fail(ProcessError::Init(format!(
                    "exited during setup ({})",
                    exit_description(undo.stage.take(), undo.init)
                )))))
            }
            Err(e) => return Err(fail(e.into())),
        };
        match msg {
            Msg::NeedMaps => {
                crate::namespaces::write_id_maps(stage, &plan.ns.uid_map, &plan.ns.gid_map)
                    .ctx(id, step)?;
                if !plan.ns.time_offsets.is_empty() {
                    crate::namespaces::write_time_offsets(stage, &plan.ns.time_offsets)
                        .ctx(id, step)?;
                }
                chan.send(&Msg::MapsDone)
                    .map_err(|e| prefer_init(fail(e.into())))?;
            }
            Msg::Pid(pid) => {
                tracing::debug!("container {id:?}: create: child process in init(): pid {pid}");
                undo.init = Some(pid);
                if pid != stage {
                    // The stage forked the init and exits: reap it.
                    let _ = waitpid(Pid::from_raw(stage), None);
                    undo.stage = None;
                }
                saved.pid = pid;
                saved.pid_start = crate::sys::proc_start_time(pid)
                    .map(|(s, _)| s)
                    .ok_or_else(|| {
                        prefer_init(fail(ProcessError::Init("exited during setup".into())))
                    })?;
                // The init waits for the state below before anything that depends on its
                // cgroup; it mounts meanwhile.
                let cg = undo.cgroup.as_mut().expect("cgroup");
                cg.apply(pid).ctx(id, step).map_err(prefer_init)?;
                saved.cgroup_paths = cg.paths();
                cg.set(&resources).ctx(id, step).map_err(prefer_init)?;
                // Every CPU of the container's cpuset, not the runtime's own affinity
                // (`taskset -c 0 casulo run`): the spec's execCPUAffinity is not for the init.
                crate::process::affinity::reset(pid);
                timing("init in its cgroup");
                if let Some(devices) = &plan.net_devices {
                    // Before the init learns the state: nothing of the container, hooks
                    // included, runs before its devices are there.
                    let netns = crate::netdev::open_netns(pid, saved.pid_start).ctx(id, step)?;
                    let (netns, moved) = undo.net.insert((netns, Vec::new()));
                    devices.move_in(netns.as_fd(), moved).ctx(id, step)?;
                    timing("network devices moved");
                }
                let created =
                    serde_json::to_vec(&saved.oci_state(Status::Created)).unwrap_or_default();
                chan.send(&Msg::State(created))
                    .map_err(|e| prefer_init(fail(e.into())))?;
                if let Some(l) = listener {
                    // As the spec's example and the reference runtime: the init is the
                    // process, and the container is still being created.
                    let doc = crate::security::seccomp_notify::process_state(
                        pid,
                        l.metadata.as_deref(),
                        &saved.oci_state(Status::Creating),
                    );
                    chan.send(&Msg::AgentState(doc))
                        .map_err(|e| prefer_init(fail(e.into())))?;
                }
            }
            Msg::RunHooks => {
                // The spec's lifecycle: the environment exists (step 2 is over), so the
                // container is "created" for prestart, createRuntime and createContainer.
                let st = serde_json::to_vec(&saved.oci_state(Status::Created)).unwrap_or_default();
                crate::hooks::run_hooks("prestart", &plan.hooks.prestart, &st).ctx(id, step)?;
                crate::hooks::run_hooks("createRuntime", &plan.hooks.create_runtime, &st)
                    .ctx(id, step)?;
                chan.send(&Msg::HooksDone)
                    .map_err(|e| prefer_init(fail(e.into())))?;
            }
            Msg::NeedMountSource(n) => {
                let fd = plan.rootfs.open_host_source(n, saved.pid).ctx(id, step)?;
                chan.send_fd(&Msg::MountSource, fd.as_fd())
                    .map_err(|e| prefer_init(fail(e.into())))?;
            }
            Msg::NeedIdmappedTree(n) => {
                let tree = plan
                    .rootfs
                    .idmapped_tree(n, saved.pid, msg_fd, &mut mapping_namespaces)
                    .ctx(id, step)?;
                chan.send_fd(&Msg::MountSource, tree.as_fd())
                    .map_err(|e| prefer_init(fail(e.into())))?;
            }
            Msg::Ready => {
                tracing::debug!("container {id:?}: create: init: closing the pipe to signal completion (set up, it waits for start)");
                timing("init ready");
                break;
            }
            Msg::Error(e) => return Err(fail(ProcessError::Init(e))),
            other => {
                return Err(fail(ProcessError::Init(format!(
                    "unexpected message {other:?}"
                ))))
            }
        }
    }
    dir.save(&saved).ctx(id, step)?;
    if let Some(pf) = &opts.pid_file {
        state::write_atomic(pf, saved.pid.to_string().as_bytes(), 0o644)
            .map_err(|source| ProcessError::Io {
                what: format!("pid file {}", pf.display()),
                source,
            })
            .ctx(id, step)?;
    }
    undo.disarm();
    Ok(saved)
}

/// How the stage (our child) ended, for the error message.
fn exit_description(stage: Option<i32>, init: Option<i32>) -> String {
    let Some(pid) = stage else {
        return match init {
            Some(p) => format!("init pid {p}"),
            None => "no status".into(),
        };
    };
    match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::empty())) {
        Ok(WaitStatus::Exited(_, code)) => format!("exit status {code}"),
        Ok(WaitStatus::Signaled(_, sig, _)) => format!("killed by {sig}"),
        Ok(other) => format!("{other:?}"),
        Err(e) => format!("wait: {e}"),
    }
}
