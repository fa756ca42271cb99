//! The init: the container itself, from its rootfs to the exec of the user program. It was
//! forked by the runtime (through the stage, see `stage.rs`); every failure before start is
//! sent to the runtime as text, every failure after start is the process's own.
//!
//! [`build`] and [`after_start`] are the order of the steps, written once; [`InitSteps`] is one
//! method per step. [`Kernel`] does them for real; the unit tests (`init_tests.rs`) run the same
//! order against a recording double, without root.

use std::convert::Infallible;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::LinuxNamespaceType;

use super::fifo;
use super::hostproc::{open_proc, write_proc};
use super::protocol::Msg;
use super::setup::{finish_process, recv_agent_state, AgentHandoff, Launch};
use super::stage::{expect, join_cgroup, keep, unexpected, ChildIo, ChildMemory};
use super::text::{child_err, ChildError};
use super::WithStep;
use crate::hooks::HookPoint;
use crate::plan::InitPlan;
use crate::rootfs::SourceRequest;

/// One method per step of the init, in the words of [`build`]. Errors are the text the runtime
/// shows ("step: cause"), made without allocating.
pub(super) trait InitSteps {
    /// Propagation and the bind mount of the rootfs.
    fn bind_root(&mut self) -> Result<(), ChildError>;
    /// Mount number `n` of the plan.
    fn mount(&mut self, n: usize) -> Result<(), ChildError>;
    /// Wait until the runtime has put the init in its cgroup (it then sends the state).
    fn wait_in_cgroup(&mut self) -> Result<(), ChildError>;
    /// A new cgroup namespace, rooted at the init's cgroup.
    fn unshare_cgroup(&mut self) -> Result<(), ChildError>;
    /// Device nodes (mknod) and the `/dev` symlinks.
    fn make_devices(&mut self) -> Result<(), ChildError>;
    /// Let the runtime run the prestart and createRuntime hooks, and wait for them.
    fn runtime_hooks(&mut self) -> Result<(), ChildError>;
    /// The hooks of `point` that run in the container.
    fn run_hooks(&mut self, point: HookPoint) -> Result<(), ChildError>;
    /// hostname, domainname, sysctl, oom_score_adj.
    fn set_kernel_settings(&mut self) -> Result<(), ChildError>;
    /// pivot_root (or chroot).
    fn pivot_root(&mut self) -> Result<(), ChildError>;
    /// The console: a pty whose master goes to the console socket.
    fn terminal(&mut self) -> Result<(), ChildError>;
    /// Read-only mounts and paths, masked paths, read-only root, propagation of `/`.
    fn finalize_rootfs(&mut self) -> Result<(), ChildError>;
    /// A new session keyring.
    fn join_keyring(&mut self) -> Result<(), ChildError>;
    /// The process setup (see `setup::finish_process`): rlimits to seccomp.
    fn process_setup(&mut self) -> Result<(), ChildError>;
    /// Tell the runtime the container is created.
    fn ready(&mut self) -> Result<(), ChildError>;
    /// Block until `start` opens the exec fifo.
    fn wait_for_start(&mut self) -> Result<(), ChildError>;
    /// A seccomp filter that had to wait for no_new_privs and the last syscalls before it.
    fn late_seccomp(&mut self) -> Result<(), ChildError>;
    /// execve the user program: returns only on failure.
    fn exec(&mut self) -> Result<(), ChildError>;
}

/// The init up to start, in the order that matters:
/// - the mounts before the first cgroup mount are made while the runtime puts the init in its
///   cgroup; the cgroup namespace, the cgroup mounts and the device nodes only once it is
///   there (a cgroup mount shows the init's own cgroup; mknod obeys the device cgroup);
/// - the runtime's create hooks, then the createContainer hooks, once every mount and device
///   exists and before pivot_root (they see the rootfs from outside, cwd the rootfs);
/// - kernel settings before pivot_root (through the host's procfs), the console after it (the
///   container's devpts), masked and read-only paths after the console (`/dev/console` is
///   a mount), the process setup last, then ready.
pub(super) fn build<S: InitSteps>(s: &mut S, plan: &InitPlan) -> Result<(), ChildError> {
    s.bind_root()?;
    let mounts = plan.rootfs.mounts.len();
    let split = plan.rootfs.mounts_before_cgroup();
    for n in 0..split {
        s.mount(n)?;
    }
    s.wait_in_cgroup()?;
    s.unshare_cgroup()?;
    for n in split..mounts {
        s.mount(n)?;
    }
    s.make_devices()?;
    if plan.hooks.runtime_side_at_create() {
        s.runtime_hooks()?;
    }
    if !plan.hooks.create_container.is_empty() {
        s.run_hooks(HookPoint::CreateContainer)?;
    }
    s.set_kernel_settings()?;
    s.pivot_root()?;
    if plan.process.terminal {
        s.terminal()?;
    }
    s.finalize_rootfs()?;
    if !plan.no_new_keyring {
        s.join_keyring()?;
    }
    s.process_setup()?;
    s.ready()?;
    s.wait_for_start()
}

/// After start, as with runc: a late seccomp filter, then the startContainer hooks under it
/// (they run in the container, like its program), then the exec. Returns only on failure.
pub(super) fn after_start<S: InitSteps>(s: &mut S, plan: &InitPlan) -> Result<(), ChildError> {
    s.late_seccomp()?;
    if !plan.hooks.start_container.is_empty() {
        s.run_hooks(HookPoint::StartContainer)?;
    }
    s.exec()
}

/// The init: the container itself, up to the exec of the user program.
pub(super) fn init(plan: &InitPlan, io: &mut ChildIo) -> Result<Infallible, ChildError> {
    nix::unistd::setsid().step("setsid")?;
    let proc = open_proc()?;
    // The rootfs code names fds to mount(2) as `self/fd/N` relative to this verified procfs,
    // never through a /proc the container's config controls.
    nix::unistd::fchdir(proc.as_fd()).step("enter /proc")?;
    let notifies = plan
        .seccomp
        .as_ref()
        .is_some_and(|s| s.listener().is_some());
    let mut k = Kernel {
        plan,
        io,
        proc: Some(proc),
        notifies,
        root: None,
        states: false,
        launch: None,
        fifo: None,
    };
    build(&mut k, plan)?;
    // From here on `start` only waits for the fifo to close, as runc's does: what fails now is
    // the container's process failing, reported on its own stderr (a terminal, a log) with
    // runc's exit status 255, and `start` itself succeeds.
    let e = match after_start(&mut k, plan) {
        Err(e) => e,
        Ok(()) => child_err!("exec: returned"),
    };
    crate::sys::die_on_stderr(&[e.as_str().as_bytes(), b"\n"], 255)
}

/// The init's steps for real.
struct Kernel<'a> {
    plan: &'a InitPlan,
    io: &'a mut ChildIo,
    /// The host's procfs, until the exec fifo is opened.
    proc: Option<OwnedFd>,
    /// The filter notifies a seccomp agent: the runtime sends its state after the init's.
    notifies: bool,
    /// The rootfs, between its bind mount and the hooks that run in it.
    root: Option<OwnedFd>,
    /// The documents the runtime sends once the init is in its cgroup have arrived (maybe
    /// while the init waited for a mount source): the state (status created) for the hooks in
    /// `io.mem.state`, the seccomp agent's in `io.mem.agent_state`.
    states: bool,
    launch: Option<Launch>,
    /// The write end of the exec fifo, once start opened it.
    fifo: Option<OwnedFd>,
}

impl Kernel<'_> {
    /// A runtime that is not root can enter a created container (`exec` before `start`) only
    /// through the init's /proc files, which are its own only while the init is dumpable, as
    /// runc's init is then. So the init becomes dumpable, but never while it holds the host's
    /// /proc: the wait for start goes through the container's own procfs instead. Where the
    /// container has no procfs, or a filter is loaded already (it might not allow prctl), or
    /// a user switch reset the flag, the init stays undumpable and such an exec is refused
    /// (EACCES on /proc/PID/root) until start.
    fn become_enterable(&mut self) {
        let plan = self.plan;
        let filtered = plan
            .seccomp
            .as_ref()
            .is_some_and(|s| !s.loads_last(plan.process.no_new_privileges));
        if !plan.ns.unprivileged || filtered {
            return;
        }
        // After pivot_root: this is the container's /proc, checked to be a procfs.
        if let Ok(own) = open_proc() {
            self.proc = Some(own);
            let _ = nix::sys::prctl::set_dumpable(true);
        }
    }

    fn proc(&self) -> Result<&OwnedFd, ChildError> {
        self.proc
            .as_ref()
            .ok_or_else(|| child_err!("/proc: closed"))
    }

    fn root(&self) -> Result<std::os::fd::BorrowedFd<'_>, ChildError> {
        self.root
            .as_ref()
            .map(|r| r.as_fd())
            .ok_or_else(|| child_err!("rootfs: not bound"))
    }

    /// The state arrived (in `io.mem.state`); the seccomp agent's follows when there is one.
    fn keep_states(&mut self) -> Result<(), ChildError> {
        if self.notifies {
            recv_agent_state(&self.io.chan, &mut self.io.mem)?;
        }
        self.states = true;
        Ok(())
    }

    /// Ask the runtime for the source of bind mount number `n` (see `RootfsPlan::mount_range`).
    /// The states may arrive first: they are kept until the init asks for them.
    fn host_source(&mut self, n: u32, req: SourceRequest<'_>) -> Result<OwnedFd, ChildError> {
        let chan = &self.io.chan;
        match req {
            SourceRequest::Open => chan.send(&Msg::NeedMountSource(n)),
            SourceRequest::Idmapped(Some(fd)) => chan.send_fd(&Msg::NeedIdmappedTree(n), fd),
            SourceRequest::Idmapped(None) => chan.send(&Msg::NeedIdmappedTree(n)),
        }
        .step("sync")?;
        loop {
            let mem = &mut self.io.mem;
            match self.io.chan.recv_in(&mut mem.rx).step("wait for runtime")? {
                (Msg::MountSource, Some(fd)) => return Ok(fd),
                (Msg::JoinCgroup(files), _) => join_cgroup(&files)?,
                (Msg::State(doc), _) if !self.states => {
                    keep(&mut mem.state, &doc);
                    self.keep_states()?
                }
                (other, _) => return Err(unexpected(&"a mount source", other)),
            }
        }
    }
}

impl InitSteps for Kernel<'_> {
    fn bind_root(&mut self) -> Result<(), ChildError> {
        self.root = Some(self.plan.rootfs.bind_root().step("rootfs")?);
        Ok(())
    }

    fn mount(&mut self, n: usize) -> Result<(), ChildError> {
        let plan = self.plan;
        let root = self
            .root
            .take()
            .ok_or_else(|| child_err!("rootfs: not bound"))?;
        let new_cgroupns = plan.ns.creates(LinuxNamespaceType::Cgroup);
        let result = plan
            .rootfs
            .mount_range(root.as_fd(), n..n + 1, new_cgroupns, &mut |n, req| {
                self.host_source(n, req)
            })
            .step("rootfs");
        self.root = Some(root);
        result
    }

    fn wait_in_cgroup(&mut self) -> Result<(), ChildError> {
        if !self.states {
            let mem = &mut self.io.mem;
            loop {
                match ChildMemory::recv(&mut mem.rx, &self.io.chan)? {
                    Msg::JoinCgroup(files) => join_cgroup(&files)?,
                    Msg::State(doc) => {
                        keep(&mut mem.state, &doc);
                        break;
                    }
                    other => return Err(unexpected(&"the state", other)),
                }
            }
            self.keep_states()?;
        }
        if self.io.agent.is_some() != self.notifies {
            return Err(child_err!(
                "seccomp agent: the connection and the process state do not match"
            ));
        }
        Ok(())
    }

    fn unshare_cgroup(&mut self) -> Result<(), ChildError> {
        self.plan.ns.unshare_cgroup().step("namespaces")
    }

    fn make_devices(&mut self) -> Result<(), ChildError> {
        let in_userns = self.plan.ns.binds_devices();
        self.plan
            .rootfs
            .make_devices(self.root()?, in_userns)
            .step("rootfs")
    }

    fn runtime_hooks(&mut self) -> Result<(), ChildError> {
        self.io.chan.send(&Msg::RunHooks).step("sync")?;
        expect(&self.io.chan, &mut self.io.mem.rx, Msg::HooksDone)
    }

    fn run_hooks(&mut self, point: HookPoint) -> Result<(), ChildError> {
        let result = match point {
            // In the container's rootfs, as with runc (hooks that name files relative to it,
            // `./lib/...`, rely on that).
            HookPoint::CreateContainer => {
                nix::unistd::fchdir(self.root()?).step("enter the rootfs")?;
                let hooks = &self.plan.create_container_hooks;
                let mem = &mut self.io.mem;
                let r = crate::hooks::run_prepared(
                    point.name(),
                    hooks,
                    &mem.state,
                    None,
                    &mut mem.exec,
                );
                nix::unistd::fchdir(self.proc()?.as_fd()).step("enter /proc")?;
                r
            }
            // With the process's environment when their config has no `env`, as with runc.
            _ => {
                let p = &self.plan.process;
                let home = self.launch.as_ref().and_then(|l| l.home());
                let env = crate::hooks::DefaultEnv {
                    env: &p.env,
                    extra: home,
                };
                let hooks = &self.plan.start_container_hooks;
                let mem = &mut self.io.mem;
                crate::hooks::run_prepared(
                    point.name(),
                    hooks,
                    &mem.state,
                    Some(env),
                    &mut mem.exec,
                )
            }
        };
        result.map_err(|e| child_err!("{e}"))
    }

    fn set_kernel_settings(&mut self) -> Result<(), ChildError> {
        let plan = self.plan;
        if let Some(h) = &plan.hostname {
            nix::unistd::sethostname(h).step("sethostname")?;
        }
        if let Some(d) = &plan.domainname {
            crate::sys::setdomainname(d.as_bytes()).step("setdomainname")?;
        }
        let proc = self.proc()?;
        for (key, value) in &plan.sysctl {
            write_proc(proc, key, value.as_bytes()).step(format_args!(
                "sysctl {}",
                key.strip_prefix("sys").unwrap_or(key).display()
            ))?;
        }
        if let Some(adj) = plan.process.oom_score_adj {
            let text = super::text::Text::<16>::of(format_args!("{adj}"));
            write_proc(
                proc,
                Path::new("self/oom_score_adj"),
                text.as_str().as_bytes(),
            )
            .step("oom_score_adj")?;
        }
        Ok(())
    }

    fn pivot_root(&mut self) -> Result<(), ChildError> {
        let r = &self.plan.rootfs;
        self.root = None;
        crate::rootfs::pivot(&r.rootfs, r.no_pivot, r.host_mount_ns).step("rootfs")?;
        if r.setup_dev {
            crate::rootfs::reopen_null_stdio().step("rootfs")?;
        }
        nix::unistd::fchdir(self.proc()?.as_fd()).step("enter /proc")
    }

    fn terminal(&mut self) -> Result<(), ChildError> {
        let p = &self.plan.process;
        let sock = self
            .io
            .console
            .as_ref()
            .ok_or_else(|| child_err!("terminal: no console socket"))?;
        let slave = crate::tty::setup_console(sock.as_fd()).step("terminal")?;
        if let Some((rows, cols)) = p.console_size {
            crate::tty::set_window_size(slave.as_fd(), rows, cols).step("terminal")?;
        }
        crate::tty::set_controlling(slave).step("terminal")
    }

    fn finalize_rootfs(&mut self) -> Result<(), ChildError> {
        self.plan.rootfs.finalize().step("rootfs")
    }

    fn join_keyring(&mut self) -> Result<(), ChildError> {
        let name = super::keyring::name(&self.plan.id)
            .ok_or_else(|| child_err!("keyring: the container id does not fit a key name"))?;
        let search = super::keyring::search_bit(self.plan.ns.has(LinuxNamespaceType::User));
        let key_label = self.plan.process.key_label.as_ref();
        super::keyring::join(name.as_cstr(), key_label, self.proc()?, search)
    }

    fn process_setup(&mut self) -> Result<(), ChildError> {
        let plan = self.plan;
        let state = self.notifies.then_some(&self.io.mem.agent_state[..]);
        let agent = AgentHandoff::pair(self.io.agent.take(), state)?;
        let launch = finish_process(
            &plan.process,
            self.proc()?,
            plan.seccomp.as_ref(),
            plan.preserve_fds,
            agent,
        )?;
        self.launch = Some(launch);
        self.become_enterable();
        Ok(())
    }

    fn ready(&mut self) -> Result<(), ChildError> {
        self.io.chan.send(&Msg::Ready).step("sync")
    }

    fn wait_for_start(&mut self) -> Result<(), ChildError> {
        let w = fifo::wait_for_start(self.proc()?.as_fd(), self.io.fifo.as_fd())
            .step("open exec fifo")?;
        self.proc = None;
        if let Err(e) = nix::unistd::write(&w, b"0") {
            // Released: a failure is the process's own from here on (see `init`).
            crate::sys::die_on_stderr(&[b"write exec fifo: ", e.desc().as_bytes(), b"\n"], 255);
        }
        self.fifo = Some(w);
        Ok(())
    }

    fn late_seccomp(&mut self) -> Result<(), ChildError> {
        let p = &self.plan.process;
        match self
            .plan
            .seccomp
            .as_ref()
            .filter(|s| s.loads_last(p.no_new_privileges))
        {
            Some(s) => s.load().map(drop).step("seccomp"),
            None => Ok(()),
        }
    }

    fn exec(&mut self) -> Result<(), ChildError> {
        let p = &self.plan.process;
        let launch = self
            .launch
            .as_ref()
            .ok_or_else(|| child_err!("exec: no process setup"))?;
        let exe = launch.exe();
        let errno = crate::sys::execve(exe, &p.args, &p.env, launch.home(), &mut self.io.mem.exec);
        // Written from prepared pieces: nothing to allocate once the exec failed.
        let mut text = [0u8; 64];
        crate::sys::die_on_stderr(
            &[
                b"exec ",
                exe.to_bytes(),
                b": ",
                crate::sys::errno_text(errno, &mut text),
                b"\n",
            ],
            255,
        )
    }
}

#[cfg(test)]
#[path = "init_tests.rs"]
mod tests;
