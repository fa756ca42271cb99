//! The runtime's steps of create, made for real ([`CreateSteps`] for [`Host`]): the state dir,
//! the fork, the cgroup, the id maps, the hooks, the mount sources, and their undoing.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Instant;

use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use oci_spec::runtime::LinuxNamespaceType;

use super::create::CreateSteps;
use super::fifo;
use super::pidfd::{PidfdOf, PidfdSocket};
use super::protocol::{self, Channel, ChannelError, Msg};
use super::stage::{self, ChildIo};
use crate::bundle::Bundle;
use crate::cgroups::{self, CgroupConfig, CgroupManager};
use crate::error::{Context, Result, Step};
use crate::hooks::HookPoint;
use crate::namespaces::PidNsForChildren;
use crate::plan::{CreateOptions, InitPlan};
use crate::process::{sys, ProcessError};
use crate::state::{self, Saved, StateDir, Status};
use crate::sys::{fork, Fork};

const STEP: Step = Step::Create;

/// The runtime's side of one create.
pub(super) struct Host<'a> {
    plan: &'a InitPlan,
    root: PathBuf,
    pid_file: Option<PathBuf>,
    preserve_fds: u32,
    /// None: a rootless container without a delegated cgroup has none.
    cgroup_cfg: Option<CgroupConfig>,
    /// The cgroup is made only where delegated (runc's `--rootless`).
    rootless_cgroups: bool,
    resources: oci_spec::runtime::LinuxResources,
    /// The console socket and the seccomp agent's connection, for the init: it cannot reach
    /// a host path once inside its root. Given to the child at the fork.
    console: Option<OwnedFd>,
    agent: Option<OwnedFd>,
    /// The caller's `--pidfd-socket`, connected: it gets the init's pidfd once the init
    /// exists.
    pidfd_socket: Option<PidfdSocket>,
    saved: Saved,
    dir: Option<StateDir>,
    chan: Option<Channel>,
    /// The stage, until it is reaped.
    stage: Option<i32>,
    cgroup: Option<Box<dyn CgroupManager>>,
    /// The container's network namespace (held open: it outlives the container's processes
    /// while this lives) and the devices moved into it.
    net: Option<(OwnedFd, Vec<crate::netdev::Moved>)>,
    /// The user namespaces made for idmapped mounts live until create ends.
    mapping_namespaces: crate::rootfs::MappingNamespaces,
    /// The message that has the init join the v1 hierarchies by itself, sent with the states.
    self_join: Option<Msg<'static>>,
    t0: Instant,
}

/// The state of container `id` before its init exists (pid 0: creating).
pub(crate) fn initial_saved(
    id: &str,
    bundle: &Bundle,
    plan: &InitPlan,
    cgroup: Option<CgroupConfig>,
) -> Saved {
    let linux = bundle.spec.linux().as_ref();
    Saved {
        oci_version: bundle.spec.version().clone(),
        id: id.to_string(),
        pid: 0,
        pid_start: 0,
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        annotations: bundle.spec.annotations().clone().unwrap_or_default(),
        created: state::now_rfc3339(),
        owner: state::user_name(nix::unistd::geteuid().as_raw()),
        cgroup,
        cgroup_paths: Vec::new(),
        hooks: Some(plan.hooks.clone()),
        own_pid_ns: plan.ns.creates(oci_spec::runtime::LinuxNamespaceType::Pid),
        host_mount_ns: plan.rootfs.host_mount_ns,
        process: bundle.spec.process().clone(),
        seccomp: linux.and_then(|l| l.seccomp().clone()),
        personality: linux.and_then(|l| l.personality().clone()),
        memory_policy: linux.and_then(|l| l.memory_policy().clone()),
        no_new_keyring: plan.no_new_keyring,
    }
}

/// A new manager of cgroup `cfg`; for a rootless runtime, only where it is delegated.
pub(crate) fn cgroup_manager_for(
    cfg: &CgroupConfig,
    rootless: bool,
    mounts: Option<&cgroups::CgroupMounts>,
) -> std::result::Result<Box<dyn CgroupManager>, cgroups::CgroupError> {
    if !rootless {
        return cgroups::manager_in(cfg, mounts);
    }
    cgroups::rootless::delegated_manager(cfg)?.ok_or_else(|| cgroups::CgroupError::Failed {
        path: cfg.path.clone(),
        msg: "rootless: the delegated cgroup is no longer writable".into(),
    })
}

/// The resources written into the container's cgroup when it is made (a rootless runtime
/// cannot write device rules).
pub(crate) fn resources_for(
    linux: Option<&oci_spec::runtime::Linux>,
    rootless: bool,
) -> oci_spec::runtime::LinuxResources {
    match cgroups::resources_for_create(linux) {
        r if rootless => cgroups::rootless::without_devices(r),
        r => r,
    }
}

impl<'a> Host<'a> {
    /// Connect the sockets the init needs and prepare the state record. No side effect on the
    /// host beyond the connections.
    pub(super) fn new(
        root: &Path,
        bundle: &Bundle,
        plan: &'a InitPlan,
        opts: &CreateOptions,
        cgroup_cfg: Option<CgroupConfig>,
        rootless_cgroups: bool,
    ) -> Result<Host<'a>> {
        let id = plan.id.as_str();
        let console = crate::plan::connect_console(opts.console_socket.as_deref()).ctx(id, STEP)?;
        let pidfd_socket = PidfdSocket::connect(opts.pidfd_socket.as_deref()).ctx(id, STEP)?;
        let agent = plan
            .seccomp
            .as_ref()
            .and_then(|s| s.listener())
            .map(|l| crate::security::seccomp_notify::connect(&l.path))
            .transpose()
            .ctx(id, STEP)?;
        let linux = bundle.spec.linux().as_ref();
        let saved = initial_saved(id, bundle, plan, cgroup_cfg.clone());
        Ok(Host {
            plan,
            root: root.to_path_buf(),
            pid_file: opts.pid_file.clone(),
            preserve_fds: opts.preserve_fds,
            cgroup_cfg,
            rootless_cgroups,
            resources: resources_for(linux, rootless_cgroups),
            console,
            agent,
            pidfd_socket,
            saved,
            dir: None,
            chan: None,
            stage: None,
            cgroup: None,
            net: None,
            mapping_namespaces: Default::default(),
            self_join: None,
            t0: Instant::now(),
        })
    }

    /// The state of the created container (everything else it holds is let go: the state dir's
    /// lock, the cgroup manager, the network namespace fd).
    pub(super) fn finish(self) -> Saved {
        self.saved
    }

    fn id(&self) -> &str {
        &self.plan.id
    }

    fn timing(&self, what: &str) {
        let id = self.id();
        tracing::debug!(
            "container {id:?}: create: {what} after {:?}",
            self.t0.elapsed()
        );
    }

    /// A new manager of the container's cgroup; none for a rootless container without one.
    fn cgroup_manager(&self) -> Result<Option<Box<dyn CgroupManager>>> {
        let Some(cfg) = &self.cgroup_cfg else {
            return Ok(None);
        };
        cgroup_manager_for(cfg, self.rootless_cgroups, self.plan.cgroup_mounts.as_ref())
            .map(Some)
            .ctx(&self.plan.id, STEP)
    }

    fn fail(&self, e: impl Into<crate::error::Cause>) -> crate::Error {
        crate::Error::new(self.id(), STEP, e)
    }

    fn chan(&self) -> Result<&Channel> {
        self.chan
            .as_ref()
            .ok_or_else(|| self.fail(ProcessError::Init("no channel to the stage".into())))
    }

    /// A step that failed because the init exited: the init's own report is the cause.
    fn prefer_init(&self, e: crate::Error) -> crate::Error {
        match self.chan.as_ref().and_then(|c| c.pending_error()) {
            Some(msg) => self.fail(ProcessError::Init(msg)),
            None => e,
        }
    }

    /// How the stage (our child) ended, for the error message.
    fn exit_description(&mut self) -> String {
        let Some(pid) = self.stage.take() else {
            return match self.saved.pid {
                0 => "no status".into(),
                p => format!("init pid {p}"),
            };
        };
        match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::empty())) {
            Ok(WaitStatus::Exited(_, code)) => format!("exit status {code}"),
            Ok(WaitStatus::Signaled(_, sig, _)) => format!("killed by {sig}"),
            Ok(other) => format!("{other:?}"),
            Err(e) => format!("wait: {e}"),
        }
    }
}

impl CreateSteps for Host<'_> {
    fn make_state_dir(&mut self) -> Result<()> {
        let dir = StateDir::create(&self.root, self.id(), &self.saved).ctx(self.id(), STEP)?;
        self.dir = Some(dir);
        // The id is ours now (a create racing ours for it fails above with "already exists"):
        // its cgroup must not hold anything of someone else's.
        let Some(cg) = self.cgroup_manager()? else {
            return Ok(());
        };
        cgroups::check_unused(cg.as_ref()).ctx(&self.plan.id, STEP)?;
        // A systemd manager is made again after the fork, so that the forked child holds
        // nothing of its bus connection; the cgroupfs one is plain data, and is kept.
        if self.cgroup_cfg.as_ref().is_some_and(|c| !c.systemd) {
            self.cgroup = Some(cg);
        }
        Ok(())
    }

    fn fork_stage(&mut self) -> Result<i32> {
        let id = self.id().to_string();
        let dir = self
            .dir
            .as_ref()
            .ok_or_else(|| self.fail(ProcessError::Init("no state dir".into())))?;
        let lock_fd = dir.as_fd().as_raw_fd();
        // The runtime sends the pidfd: the container's processes never hold the connection.
        let pidfd_socket_fd = self.pidfd_socket.as_ref().map(|s| s.as_raw());
        let (chan, child_chan) = protocol::pair().map_err(sys("socketpair")).ctx(&id, STEP)?;
        let fifo_fd = fifo::open_path(&dir.fifo()).ctx(&id, STEP)?;
        // The caller's own fds (beyond stdio and the preserved ones) never reach the container.
        let inherited = crate::sys::inherited_fds(3 + self.preserve_fds as i32)
            .map_err(|source| ProcessError::Io {
                what: "list the open fds (/proc/self/fd)".into(),
                source,
            })
            .ctx(&id, STEP)?;
        self.timing("validated and state dir made");
        let console = self.console.take();
        // Only the container holds the agent's connection: it closes it once the listener is
        // sent.
        let agent = self.agent.take();
        let (argc, envc) = self.plan.exec_room();
        let mem = stage::ChildMemory::new(argc, envc);
        let pid_ns = if self.plan.ns.runtime_makes_pid_ns() {
            Some(PidNsForChildren::new().ctx(&id, STEP)?)
        } else {
            None
        };
        let own_pid_ns_fd = pid_ns.as_ref().and_then(|ns| ns.own_fd());
        // Matched directly: the child must not even drop an error-mapping closure (a free).
        let stage = match fork() {
            Err(e) => return Err(sys("fork")(e)).ctx(&id, STEP),
            Ok(Fork::Child) => {
                crate::sys::close_fds(&inherited);
                crate::sys::close_inherited(lock_fd);
                crate::sys::close_inherited(chan.as_raw());
                for fd in pidfd_socket_fd.into_iter().chain(own_pid_ns_fd) {
                    crate::sys::close_inherited(fd);
                }
                stage::run(
                    self.plan,
                    ChildIo {
                        chan: child_chan,
                        fifo: fifo_fd,
                        console,
                        agent,
                        mem,
                    },
                )
            }
            Ok(Fork::Parent(pid)) => pid,
        };
        self.chan = Some(chan);
        self.stage = Some(stage);
        if let Some(ns) = pid_ns {
            // What the runtime forks next (hooks, helpers) must not land in the container.
            if let Err(e) = ns.restore() {
                self.stage = None;
                super::pidfd::kill_and_reap(stage);
                return Err(e).ctx(&id, STEP);
            }
        }
        Ok(stage)
    }

    fn send(&mut self, msg: Msg<'static>, fd: Option<OwnedFd>) -> Result<()> {
        let chan = self.chan()?;
        let sent = match &fd {
            Some(fd) => chan.send_fd(&msg, fd.as_fd()),
            None => chan.send(&msg),
        };
        if msg == Msg::Go {
            // The debug lines of the steps of the child say what runc's say at the same
            // points ("nsexec container setup", "child process in init()", "init: closing the
            // pipe to signal completion"): its test suite and scripts look for them.
            let id = self.id();
            tracing::debug!("container {id:?}: create: nsexec container setup: the stage joins and makes the namespaces");
        }
        sent.map_err(|e| self.prefer_init(self.fail(ProcessError::from(e))))
    }

    fn recv(&mut self) -> Result<(Msg<'static>, Option<OwnedFd>)> {
        let got = self.chan()?.recv_fd();
        match got {
            Ok((Msg::Ready, fd)) => {
                let id = self.id();
                tracing::debug!("container {id:?}: create: init: closing the pipe to signal completion (set up, it waits for start)");
                self.timing("init ready");
                Ok((Msg::Ready, fd))
            }
            Ok(m) => Ok(m),
            // A peer that closes with our message unread makes the first recv fail with
            // ECONNRESET although its own report is still queued: read that report first.
            Err(ChannelError::Closed) => {
                let how = self.exit_description();
                let e = self.fail(ProcessError::Init(format!("exited during setup ({how})")));
                Err(self.prefer_init(e))
            }
            Err(e) => Err(self.fail(ProcessError::from(e))),
        }
    }

    fn make_cgroup(&mut self) -> Result<()> {
        if self.cgroup.is_none() {
            self.cgroup = self.cgroup_manager()?;
        }
        let Some(cg) = self.cgroup.as_mut() else {
            return Ok(());
        };
        cg.create().ctx(&self.plan.id, STEP)?;
        self.timing("cgroup made");
        Ok(())
    }

    fn write_id_maps(&mut self, stage: i32) -> Result<()> {
        let ns = &self.plan.ns;
        crate::namespaces::write_id_maps(stage, &ns.uid_map, &ns.gid_map).ctx(self.id(), STEP)?;
        if !ns.time_offsets.is_empty() {
            crate::namespaces::write_time_offsets(stage, &ns.time_offsets).ctx(self.id(), STEP)?;
        }
        Ok(())
    }

    fn init_started(&mut self, init: i32, stage: i32) -> Result<()> {
        let id = self.id();
        tracing::debug!("container {id:?}: create: child process in init(): pid {init}");
        if init != stage {
            let _ = waitpid(Pid::from_raw(stage), None);
            self.stage = None;
        }
        self.saved.pid = init;
        match crate::sys::proc_start_time(init) {
            Some((start, _)) => {
                self.saved.pid_start = start;
                Ok(())
            }
            None => {
                Err(self.prefer_init(self.fail(ProcessError::Init("exited during setup".into()))))
            }
        }
    }

    fn enter_cgroup(&mut self, init: i32) -> Result<()> {
        let id = self.plan.id.as_str();
        let Some(cg) = self.cgroup.as_mut() else {
            if self.cgroup_cfg.is_some() {
                return Err(self.fail(ProcessError::Init("no cgroup".into())));
            }
            crate::process::affinity::reset(init);
            return Ok(());
        };
        // Where the init has the runtime's credentials (no user namespace), it joins the v1
        // hierarchies by itself once their limits are written (see
        // `CgroupManager::apply_leaving_self_join`); in a user namespace it could not.
        let by_itself = !self.plan.ns.has(LinuxNamespaceType::User);
        let placed = if by_itself {
            cg.apply_leaving_self_join(init)
        } else {
            cg.apply(init).map(|()| Vec::new())
        };
        let placed = placed.ctx(id, STEP).and_then(|files| {
            self.saved.cgroup_paths = cg.paths();
            cg.set(&self.resources).ctx(id, STEP)?;
            Ok(files)
        });
        let files = placed.map_err(|e| self.prefer_init(e))?;
        self.self_join = Msg::join_cgroup(&files);
        // Every CPU of the container's cpuset, not the runtime's own affinity
        // (`taskset -c 0 casulo run`): the spec's execCPUAffinity is not for the init.
        crate::process::affinity::reset(init);
        self.timing("init in its cgroup");
        Ok(())
    }

    fn move_net_devices(&mut self, init: i32) -> Result<()> {
        let Some(devices) = &self.plan.net_devices else {
            return Ok(());
        };
        let id = self.plan.id.as_str();
        let netns = crate::netdev::open_netns(init, self.saved.pid_start).ctx(id, STEP)?;
        let (netns, moved) = self.net.insert((netns, Vec::new()));
        devices.move_in(netns.as_fd(), moved).ctx(id, STEP)?;
        self.timing("network devices moved");
        Ok(())
    }

    fn states(&mut self) -> Vec<Msg<'static>> {
        let created =
            serde_json::to_vec(&self.saved.oci_state(Status::Created)).unwrap_or_default();
        let mut out: Vec<Msg<'static>> = self.self_join.take().into_iter().collect();
        out.push(Msg::State(created.into()));
        if let Some(l) = self.plan.seccomp.as_ref().and_then(|s| s.listener()) {
            // As the spec's example and the reference runtime: the init is the process, and
            // the container is still being created.
            out.push(Msg::AgentState(
                crate::security::seccomp_notify::process_state(
                    self.saved.pid,
                    l.metadata.as_deref(),
                    &self.saved.oci_state(Status::Creating),
                )
                .into(),
            ));
        }
        out
    }

    fn run_hooks(&mut self, point: HookPoint) -> Result<()> {
        // The spec's lifecycle: the environment exists (step 2 is over), so the container is
        // "created" for prestart, createRuntime and createContainer.
        let st = serde_json::to_vec(&self.saved.oci_state(Status::Created)).unwrap_or_default();
        crate::hooks::run_hooks(point.name(), self.plan.hooks.at(point), &st).ctx(self.id(), STEP)
    }

    fn mount_source(&mut self, n: u32, idmapped: bool, fd: Option<OwnedFd>) -> Result<OwnedFd> {
        let rootfs = &self.plan.rootfs;
        let source = if idmapped {
            rootfs.idmapped_tree(n, self.saved.pid, fd, &mut self.mapping_namespaces)
        } else {
            rootfs.open_host_source(n, self.saved.pid)
        };
        source.ctx(&self.plan.id, STEP)
    }

    fn send_pidfd(&mut self) -> Result<()> {
        match &self.pidfd_socket {
            Some(s) => s.send(self.saved.pid, PidfdOf::Init).ctx(self.id(), STEP),
            None => Ok(()),
        }
    }

    fn save_state(&mut self) -> Result<()> {
        match &self.dir {
            Some(dir) => dir.save(&self.saved).ctx(self.id(), STEP),
            None => Err(self.fail(ProcessError::Init("no state dir".into()))),
        }
    }

    fn write_pid_file(&mut self) -> Result<()> {
        let Some(pf) = &self.pid_file else {
            return Ok(());
        };
        state::write_atomic(pf, self.saved.pid.to_string().as_bytes(), 0o644)
            .map_err(|source| ProcessError::Io {
                what: format!("pid file {}", pf.display()),
                source,
            })
            .ctx(self.id(), STEP)
    }

    fn undo_init(&mut self, pid: i32) {
        super::pidfd::kill_and_reap(pid);
    }

    fn undo_stage(&mut self, pid: i32) {
        if self.stage.take().is_some() {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(pid), None);
        }
    }

    fn undo_cgroup_members(&mut self) {
        if let Some(cg) = &self.cgroup {
            for p in cg.pids().unwrap_or_default() {
                let _ = nix::sys::signal::kill(Pid::from_raw(p), Signal::SIGKILL);
            }
        }
    }

    fn undo_net_devices(&mut self) {
        if let Some((netns, moved)) = self.net.take() {
            // Nothing of the container can touch the devices now; the namespace lives on
            // through our fd.
            for e in crate::netdev::move_back(&moved, netns.as_fd()) {
                tracing::warn!("cleanup: {e}");
            }
        }
    }

    fn undo_host_rootfs(&mut self) {
        if let Err(e) = crate::rootfs::detach_host_mounts(&self.plan.rootfs.rootfs) {
            tracing::warn!("cleanup: {e}");
        }
    }

    fn undo_cgroup(&mut self) {
        if let Some(mut cg) = self.cgroup.take() {
            if let Err(e) = cg.destroy() {
                tracing::warn!("cleanup: {e}");
            }
        }
    }

    fn undo_state_dir(&mut self) {
        if let Some(dir) = self.dir.take() {
            if let Err(e) = dir.remove() {
                tracing::warn!("cleanup: {e}");
            }
        }
    }
}
