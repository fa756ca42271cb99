//! The init: the container itself, from its rootfs to the exec of the user program. It was
//! forked by the runtime (through the stage, see `stage.rs`); every failure before start is
//! sent to the runtime as text, every failure after start is the process's own.

use std::convert::Infallible;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::LinuxNamespaceType;

use super::fifo;
use super::hostproc::{open_proc, write_proc};
use super::protocol::{Channel, Msg};
use super::setup::{finish_process, recv_agent_state, AgentHandoff};
use super::stage::{expect, ChildIo};
use super::WithStep;
use crate::plan::InitPlan;
use crate::rootfs::SourceRequest;

/// The init: the container itself, up to the exec of the user program.
pub(super) fn init(plan: &InitPlan, io: &mut ChildIo) -> Result<Infallible, String> {
    let p = &plan.process;
    nix::unistd::setsid().step("setsid")?;
    let proc = open_proc().step("open /proc")?;
    // The rootfs code names fds to mount(2) as `self/fd/N` relative to this verified procfs,
    // never through a /proc the container's config controls.
    nix::unistd::fchdir(proc.as_fd()).step("enter /proc")?;
    // The runtime moves us into our cgroup while we make the mounts that do not depend on it;
    // it sends the state document when that is done. Nothing that depends on the cgroup (the
    // cgroup namespace and mounts, device nodes, hooks, the user's program) happens before.
    let notifies = plan
        .seccomp
        .as_ref()
        .is_some_and(|s| s.listener().is_some());
    let mut link = RuntimeLink {
        chan: &io.chan,
        notifies,
        states: None,
    };
    let rootfs = &plan.rootfs;
    let new_cgroupns = plan.ns.creates(LinuxNamespaceType::Cgroup);
    let root = rootfs.bind_root().step("rootfs")?;
    let split = rootfs.mounts_before_cgroup();
    rootfs
        .mount_range(root.as_fd(), 0..split, new_cgroupns, &mut |n, req| {
            link.host_source(n, req)
        })
        .step("rootfs")?;
    let States {
        state,
        agent: agent_state,
    } = link.wait_in_cgroup()?;
    plan.ns.unshare_cgroup().step("namespaces")?;
    rootfs
        .mount_range(
            root.as_fd(),
            split..rootfs.mounts.len(),
            new_cgroupns,
            &mut |n, req| link.host_source(n, req),
        )
        .step("rootfs")?;
    rootfs
        .make_devices(root.as_fd(), plan.ns.has(LinuxNamespaceType::User))
        .step("rootfs")?;
    // The createContainer hooks run in the container's rootfs, as with runc (hooks that
    // name files relative to it, `./lib/...`, rely on that).
    nix::unistd::fchdir(root.as_fd()).step("enter the rootfs")?;
    drop(root);
    let agent = AgentHandoff::pair(io.agent.take(), agent_state)?;
    if io.runtime_hooks {
        io.chan.send(&Msg::RunHooks).step("sync")?;
        expect(&io.chan, Msg::HooksDone)?;
    }
    crate::hooks::run_hooks("createContainer", &plan.hooks.create_container, &state)
        .step("hooks")?;

    if let Some(h) = &plan.hostname {
        nix::unistd::sethostname(h).step("sethostname")?;
    }
    if let Some(d) = &plan.domainname {
        crate::sys::setdomainname(d.as_bytes()).step("setdomainname")?;
    }
    for (key, value) in &plan.sysctl {
        write_proc(&proc, &Path::new("sys").join(key), value)
            .step(&format!("sysctl {}", key.display()))?;
    }
    if let Some(adj) = p.oom_score_adj {
        write_proc(&proc, Path::new("self/oom_score_adj"), &adj.to_string())
            .step("oom_score_adj")?;
    }

    crate::rootfs::pivot(
        &plan.rootfs.rootfs,
        plan.rootfs.no_pivot,
        plan.rootfs.host_mount_ns,
    )
    .step("rootfs")?;
    nix::unistd::fchdir(proc.as_fd()).step("enter /proc")?;
    if p.terminal {
        let sock = io.console.as_ref().ok_or("terminal: no console socket")?;
        let slave = crate::tty::setup_console(sock.as_fd()).step("terminal")?;
        if let Some((rows, cols)) = p.console_size {
            crate::tty::set_window_size(slave.as_fd(), rows, cols).step("terminal")?;
        }
        crate::tty::set_controlling(slave).step("terminal")?;
    }
    plan.rootfs.finalize().step("rootfs")?;

    if !plan.no_new_keyring {
        let name = std::ffi::CString::new(format!("_ses.{}", plan.id)).step("keyring")?;
        // Kernels without keyrings (or with them restricted by seccomp) are not an error,
        // as for runc: the session keyring is a hardening, not part of the spec.
        match crate::sys::join_session_keyring(&name) {
            Ok(()) | Err(nix::Error::ENOSYS) | Err(nix::Error::EPERM) | Err(nix::Error::EACCES) => {
            }
            Err(e) => return Err(format!("join session keyring: {e}")),
        }
    }
    let launch = finish_process(p, &proc, plan.seccomp.as_ref(), plan.preserve_fds, agent)?;

    io.chan.send(&Msg::Ready).step("sync")?;
    let w = fifo::wait_for_start(proc.as_fd(), io.fifo.as_fd()).step("open exec fifo")?;
    drop(proc);
    // From here on `start` only waits for the fifo to close, as runc's does: what fails now is
    // the container's process failing, reported on its own stderr (a terminal, a log) with
    // runc's exit status 255, and `start` itself succeeds.
    let fail = |msg: &str| -> ! { crate::sys::die_on_stderr(&[msg.as_bytes(), b"\n"], 255) };
    if let Err(e) = nix::unistd::write(&w, b"0") {
        fail(&format!("write exec fifo: {e}"));
    }
    // As with runc, the startContainer hooks run under the container's seccomp filter (they
    // run in the container, like its program), and, when their config has no `env`, with
    // the process's environment.
    if let Some(s) = plan
        .seccomp
        .as_ref()
        .filter(|s| s.loads_last(p.no_new_privileges))
    {
        if let Err(e) = s.load() {
            fail(&format!("seccomp: {e}"));
        }
    }
    if !plan.hooks.start_container.is_empty() {
        let env: Vec<_> = p.env.iter().cloned().chain(launch.home.clone()).collect();
        if let Err(e) = crate::hooks::run_hooks_with_env(
            "startContainer",
            &plan.hooks.start_container,
            &state,
            Some(&env),
        ) {
            fail(&e.to_string());
        }
    }
    let errno = crate::sys::execve(&launch.exe, &p.args, &p.env, launch.home.as_deref());
    let mut text = [0u8; 64];
    crate::sys::die_on_stderr(
        &[
            b"exec ",
            launch.exe.as_bytes(),
            b": ",
            crate::sys::errno_text(errno, &mut text),
            b"\n",
        ],
        255,
    )
}

/// The documents the runtime sends once the init is in its cgroup.
struct States {
    /// The state (status created), for the hooks that run in the container.
    state: Vec<u8>,
    /// The container process state for the seccomp agent, when the filter notifies one.
    agent: Option<Vec<u8>>,
}

/// The init's side of the conversation with the runtime while it builds the rootfs. The
/// runtime sends the states as soon as the init is in its cgroup, so they may arrive before the
/// answer to a request for a mount source: they are kept until the init asks for them.
struct RuntimeLink<'a> {
    chan: &'a Channel,
    notifies: bool,
    states: Option<States>,
}

impl RuntimeLink<'_> {
    fn keep_states(&mut self, state: Vec<u8>) -> Result<(), String> {
        let agent = if self.notifies {
            Some(recv_agent_state(self.chan)?)
        } else {
            None
        };
        self.states = Some(States { state, agent });
        Ok(())
    }

    /// Wait until the runtime has put the init in its cgroup.
    fn wait_in_cgroup(&mut self) -> Result<States, String> {
        if self.states.is_none() {
            match self.chan.recv().step("wait for runtime")? {
                Msg::State(doc) => self.keep_states(doc)?,
                Msg::Error(e) => return Err(e),
                other => return Err(format!("sync: expected the state, got {other:?}")),
            }
        }
        self.states.take().ok_or_else(|| "sync: no state".into())
    }

    /// Ask the runtime for the source of bind mount number `n` (see `RootfsPlan::mount_range`).
    fn host_source(&mut self, n: u32, req: SourceRequest<'_>) -> Result<OwnedFd, String> {
        match req {
            SourceRequest::Open => self.chan.send(&Msg::NeedMountSource(n)),
            SourceRequest::Idmapped(Some(fd)) => self.chan.send_fd(&Msg::NeedIdmappedTree(n), fd),
            SourceRequest::Idmapped(None) => self.chan.send(&Msg::NeedIdmappedTree(n)),
        }
        .step("sync")?;
        loop {
            match self.chan.recv_fd().step("wait for runtime")? {
                (Msg::MountSource, Some(fd)) => return Ok(fd),
                (Msg::State(doc), _) if self.states.is_none() => self.keep_states(doc)?,
                (Msg::Error(e), _) => return Err(e),
                (other, _) => return Err(format!("sync: expected a mount source, got {other:?}")),
            }
        }
    }
}
