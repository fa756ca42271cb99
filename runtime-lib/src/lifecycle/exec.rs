//! `exec`: a new process in a running container. The runtime forks a stage that joins every
//! namespace of the container's init (user first, mount last — joining the mount namespace
//! also moves the root and cwd to the container's root); where the container has its own pid
//! or time namespace the stage forks the process and exits. The process then gets its own
//! rlimits, scheduling, user, capabilities, no_new_privs and seccomp, exactly as an init does,
//! and execs. A process without its own scheduler or I/O priority gets the container's (as
//! with runc), and every process gets the container's personality and NUMA memory policy.
//! The sync channel is close-on-exec: the runtime reads "closed" as a successful exec. What
//! the process will be is planned first (`plan::ExecPlan`), before any side effect.

use std::convert::Infallible;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::Process;

use super::pidfd::{PidfdOf, PidfdSocket};
use super::protocol::{self, Channel, ChannelError, Msg};
use super::setup::AgentHandoff;
use super::stage::ChildMemory;
use super::text::{child_err, ChildError};
use super::WithStep;
use crate::namespaces::clone_flag;
use crate::plan::ExecPlan;
use crate::process::{sys, ProcessError};
use crate::security::SeccompCache;
use crate::state::{Saved, Status};
use crate::sys::{exit_now, fork, Fork};

/// Options of `exec` that are not part of the process config.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub console_socket: Option<PathBuf>,
    /// The unix socket that receives a pidfd of the process once it has exec'd.
    pub pidfd_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: u32,
    /// Exec into a paused container too (runc's `--ignore-paused`): the process joins the
    /// frozen cgroup and the exec completes once the container is resumed.
    pub ignore_paused: bool,
    /// Existing sub-cgroups of the container's cgroup to put the process in, as runc's
    /// `--cgroup [CONTROLLER:]PATH`: `(None, path)` for every hierarchy, `(Some(ctrl), path)`
    /// for the v1 hierarchy of `ctrl` (on cgroup v2 the controller only has to be enabled).
    pub sub_cgroups: Vec<(Option<String>, PathBuf)>,
    /// The caller receives the pty master on `console_socket` itself and relays it to its own
    /// terminal: the pty's ONLCR is then turned off before the master is sent (the caller's
    /// terminal turns `\n` into `\r\n` once), as runc does for the terminals it relays.
    pub relayed_terminal: bool,
}

/// The directories the exec'd process joins: the container's own, or the sub-cgroups asked for.
/// A sub-cgroup path is taken below the container's cgroup (`/` is the cgroup itself, `..`
/// may not climb out of it); whether it exists is found when the process is moved in.
fn exec_cgroup_dirs(
    dirs: &[PathBuf],
    subs: &[(Option<String>, PathBuf)],
) -> Result<Vec<PathBuf>, ProcessError> {
    let bad = |msg: String| ProcessError::Invalid(format!("--cgroup: {msg}"));
    let mut cleaned = Vec::new();
    for (ctrl, p) in subs {
        // runc's words: "bad sub cgroup path".
        let rel = below(p).ok_or_else(|| bad(format!("bad sub cgroup path: {}", p.display())))?;
        cleaned.push((ctrl, rel));
    }
    let v2 = |d: &PathBuf| d.join("cgroup.controllers").exists();
    let has = |d: &PathBuf, c: &str| {
        if v2(d) {
            std::fs::read_to_string(d.join("cgroup.controllers"))
                .is_ok_and(|s| s.split_whitespace().any(|x| x == c))
        } else {
            d.strip_prefix(crate::cgroups::CGROUP_ROOT)
                .ok()
                .and_then(|r| r.components().next())
                .is_some_and(|h| h.as_os_str().to_string_lossy().split(',').any(|x| x == c))
        }
    };
    for (ctrl, _) in &cleaned {
        if let Some(c) = ctrl {
            if !dirs.iter().any(|d| has(d, c)) {
                return Err(bad(format!(
                    "unknown controller {c}: the container has no cgroup of it"
                )));
            }
        }
    }
    Ok(dirs
        .iter()
        .map(|d| {
            let pick = cleaned.iter().rev().find(|(ctrl, _)| match ctrl {
                None => true,
                Some(c) => has(d, c),
            });
            match pick {
                Some((_, rel)) => d.join(rel),
                None => d.clone(),
            }
        })
        .collect())
}

/// `p` as a relative path below a directory, `..` resolved lexically; None if it climbs out.
fn below(p: &std::path::Path) -> Option<PathBuf> {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(n) => out.push(n),
            Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Start `process` in the container described by `saved` (whose init must be alive and whose
/// status is `status`). Returns the new process's pid once it has exec'd. `in_cgroup` is called
/// once the process is in the container's cgroup: in a paused container it is frozen from then
/// on, until someone resumes the container.
pub fn exec(
    saved: &Saved,
    status: Status,
    process: &Process,
    opts: &ExecOptions,
    seccomp_cache: &SeccompCache,
    in_cgroup: impl FnOnce(),
) -> Result<i32, crate::error::Cause> {
    let plan = ExecPlan::build(saved, process, opts, Some(seccomp_cache))?;
    let console = crate::plan::connect_console(opts.console_socket.as_deref())?;
    let pidfd_socket = PidfdSocket::connect(opts.pidfd_socket.as_deref())?;
    // The runtime sends the pidfd: the process never holds the connection.
    let pidfd_socket_fd = pidfd_socket.as_ref().map(|s| s.as_raw());
    // The process cannot reach a host path once inside the container: connect for it.
    let listener = plan.seccomp.as_ref().and_then(|s| s.listener());
    let agent = listener
        .map(|l| crate::security::seccomp_notify::connect(&l.path))
        .transpose()?;
    let mut cgroup = match &saved.cgroup {
        Some(cfg) => Some(crate::cgroups::manager_at(cfg, &saved.cgroup_paths)?),
        None => None,
    };
    let sub_dirs = if opts.sub_cgroups.is_empty() {
        Vec::new()
    } else {
        let dirs = cgroup.as_ref().map(|c| c.paths()).unwrap_or_default();
        exec_cgroup_dirs(&dirs, &opts.sub_cgroups)?
    };
    // The caller's own fds (beyond stdio and the preserved ones) never reach the container.
    let inherited = crate::sys::inherited_fds(3 + opts.preserve_fds as i32).map_err(|source| {
        ProcessError::Io {
            what: "list the open fds (/proc/self/fd)".into(),
            source,
        }
    })?;
    let (chan, child_chan) = protocol::pair().map_err(sys("socketpair"))?;
    let p = &plan.process;
    let mut mem = ChildMemory::new(p.args.len(), p.env.len() + 1);
    // Matched directly: the child must not even drop an error-mapping closure (a free).
    let stage = match fork() {
        Err(e) => return Err(sys("fork")(e).into()),
        Ok(Fork::Child) => {
            crate::sys::close_fds(&inherited);
            crate::sys::close_inherited(chan.as_raw());
            if let Some(fd) = pidfd_socket_fd {
                crate::sys::close_inherited(fd);
            }
            child(&plan, child_chan, console, agent, &mut mem)
        }
        Ok(Fork::Parent(pid)) => pid,
    };
    drop(mem);
    drop(child_chan);
    drop(console);
    // Only the process holds the agent's connection: it closes it once the listener is sent.
    drop(agent);
    let kill_stage = |e: crate::error::Cause| {
        crate::sys::kill(stage, libc::SIGKILL);
        let _ = waitpid(Pid::from_raw(stage), None);
        e
    };
    let affinity = &plan.process.affinity;
    affinity
        .before_cgroup(stage)
        .map_err(|e| kill_stage(e.into()))?;
    if let Ok(mask) = crate::process::affinity::CpuMask::of(stage) {
        // The affinity the process joins the container with, in the words the reference
        // runtime's test suite looks for (its namespace-joining stage is called "nsexec").
        tracing::debug!("exec: nsexec process {stage}: affinity: {}", mask.hex());
    }
    // Before Go the stage still has the runtime's credentials, whatever the container's
    // namespaces: it can join the v1 hierarchies by itself (see
    // `CgroupManager::apply_leaving_self_join`), unless an affinity must follow the join, or
    // the container is paused (the stage would stop half-way through the hierarchies, at the
    // freezer's, out of reach of `kill --all` until a resume).
    let mut self_join = None;
    if !opts.sub_cgroups.is_empty() {
        crate::cgroups::join(sub_dirs.iter().map(|d| d.as_path()), stage)
            .map_err(|e| kill_stage(e.into()))?;
    } else if let Some(cg) = cgroup.as_mut() {
        if affinity.is_empty() && status != Status::Paused {
            let files = cg
                .apply_leaving_self_join(stage)
                .map_err(|e| kill_stage(e.into()))?;
            self_join = Msg::join_cgroup(&files);
        } else {
            cg.apply(stage).map_err(|e| kill_stage(e.into()))?;
        }
    }
    if let Some(m) = self_join {
        chan.send(&m)
            .map_err(|e| kill_stage(ProcessError::from(e).into()))?;
    }
    in_cgroup();
    affinity
        .after_cgroup(stage)
        .map_err(|e| kill_stage(e.into()))?;
    chan.send(&Msg::Go)
        .map_err(|e| kill_stage(ProcessError::from(e).into()))?;
    // runc's debug words at the same points, which its tests and scripts look for (as in
    // create).
    let id = &saved.id;
    tracing::debug!(
        "container {id:?}: exec: nsexec container setup: the stage joins the container's namespaces"
    );
    let pid = match chan.recv() {
        Ok(Msg::Pid(pid)) => {
            tracing::debug!("container {id:?}: exec: child process in init(): pid {pid}");
            pid
        }
        Ok(Msg::Error(e)) => return Err(kill_stage(ProcessError::Init(e.into_owned()).into())),
        Ok(other) => {
            return Err(kill_stage(
                ProcessError::Init(format!("unexpected message {other:?}")).into(),
            ))
        }
        Err(e) => return Err(kill_stage(ProcessError::from(e).into())),
    };
    if pid != stage {
        let _ = waitpid(Pid::from_raw(stage), None);
    }
    // As soon as the process exists, as the reference runtime's sends it before the execve:
    // the holder has it well before exec returns.
    if let Some(s) = &pidfd_socket {
        if let Err(e) = s.send(pid, PidfdOf::Exec) {
            super::pidfd::kill_and_reap(pid);
            return Err(e.into());
        }
    }
    // The process waits for its container process state before it loads a filter that
    // notifies an agent. If it cannot take it, it failed: its error follows on the channel.
    let mut state_sent = true;
    if let Some(l) = listener {
        // As the reference runtime: the exec'd process is the process; the state is the
        // container's, with its init's pid.
        let doc = crate::security::seccomp_notify::process_state(
            pid,
            l.metadata.as_deref(),
            &saved.oci_state(status),
        );
        state_sent = chan.send(&Msg::AgentState(doc.into())).is_ok();
    }
    match chan.recv() {
        Err(ChannelError::Closed) if !state_sent => {
            super::pidfd::kill_and_reap(pid);
            return Err(ProcessError::Init(
                "exited before it got the seccomp agent's state".into(),
            )
            .into());
        }
        Err(ChannelError::Closed) => {
            tracing::debug!(
                "container {id:?}: exec: setns_init: about to exec (the process reached its execve)"
            );
        }
        Ok(Msg::Error(e)) => {
            super::pidfd::kill_and_reap(pid);
            return Err(ProcessError::Init(e.into_owned()).into());
        }
        Ok(other) => return Err(ProcessError::Init(format!("unexpected message {other:?}")).into()),
        Err(e) => return Err(ProcessError::from(e).into()),
    }
    if let Some(pf) = &opts.pid_file {
        crate::state::write_atomic(pf, pid.to_string().as_bytes(), 0o644).map_err(|source| {
            ProcessError::Io {
                what: format!("pid file {}", pf.display()),
                source,
            }
        })?;
    }
    Ok(pid)
}

fn child(
    plan: &ExecPlan,
    chan: Channel,
    console: Option<OwnedFd>,
    agent: Option<OwnedFd>,
    mem: &mut ChildMemory,
) -> ! {
    let msg = match child_steps(plan, &chan, console, agent, mem) {
        Ok(never) => match never {},
        Err(msg) => msg,
    };
    let _ = chan.send(&Msg::Error(msg.as_str().into()));
    exit_now(1)
}

fn child_steps(
    plan: &ExecPlan,
    chan: &Channel,
    console: Option<OwnedFd>,
    agent: Option<OwnedFd>,
    mem: &mut ChildMemory,
) -> Result<Infallible, ChildError> {
    nix::sys::prctl::set_dumpable(false).step("prctl(PR_SET_DUMPABLE)")?;
    crate::sys::hide_cmdline(mem.args, b"casulo init");
    super::stage::expect_go(chan, &mut mem.rx)?;
    // The host's procfs, before the container's mounts are ours: label writes go through it.
    let proc = super::hostproc::open_proc()?;
    for j in &plan.joins {
        nix::sched::setns(j.fd.as_fd(), clone_flag(j.typ)).step(format_args!(
            "join {} namespace",
            crate::namespaces::ns_name(j.typ)
        ))?;
    }
    if let Some(root) = &plan.root {
        nix::unistd::fchdir(root.as_fd()).step("enter the container's root")?;
        nix::unistd::chroot(".").step("chroot")?;
        nix::unistd::chdir("/").step("chdir /")?;
    }
    super::stage::fork_if_needed(plan.needs_fork, chan)?;
    if agent.is_some() {
        super::setup::recv_agent_state(chan, mem)?;
    }
    let state = agent.is_some().then_some(&mem.agent_state[..]);
    let agent = AgentHandoff::pair(agent, state)?;
    let p = &plan.process;
    if let Some(name) = &plan.keyring {
        // runc's exec joins the container's session keyring by name, as the init made it.
        super::keyring::join(name.as_cstr(), p.key_label.as_ref(), &proc, 0)?;
    }
    nix::unistd::setsid().step("setsid")?;
    if p.terminal {
        let sock = console
            .as_ref()
            .ok_or_else(|| child_err!("terminal: no console socket"))?;
        let slave = crate::tty::open_terminal(sock.as_fd(), p.console_size, plan.relayed_terminal)
            .step("terminal")?;
        crate::tty::set_controlling(slave).step("terminal")?;
    }
    let launch =
        super::setup::finish_process(p, &proc, plan.seccomp.as_ref(), plan.preserve_fds, agent)?;
    drop(proc);
    if let Some(s) = plan
        .seccomp
        .as_ref()
        .filter(|s| s.loads_last(p.no_new_privileges))
    {
        s.load().step("seccomp")?;
    }
    let exe = launch.exe();
    let errno = crate::sys::execve(exe, &p.args, &p.env, launch.home(), &mut mem.exec);
    let mut text = [0u8; 64];
    let why = crate::sys::errno_text(errno, &mut text);
    Err(child_err!(
        "exec {}: {}",
        exe.to_string_lossy(),
        String::from_utf8_lossy(why)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_sub_cgroup_paths_stay_below() {
        let ok = |p: &str| below(std::path::Path::new(p)).map(|b| b.display().to_string());
        assert_eq!(ok("sub"), Some("sub".into()));
        assert_eq!(ok("/"), Some("".into()));
        assert_eq!(ok("./a//b/"), Some("a/b".into()));
        assert_eq!(ok("a/../b"), Some("b".into()));
        assert_eq!(ok("/a/b"), Some("a/b".into()));
        assert_eq!(ok(".."), None);
        assert_eq!(ok("a/../.."), None);
        assert_eq!(ok("/../x"), None);
    }

    #[test]
    fn exec_sub_cgroup_words() {
        let dirs = [PathBuf::from("/sys/fs/cgroup/pids/c1")];
        let err = |subs: &[(Option<String>, PathBuf)]| {
            exec_cgroup_dirs(&dirs, subs).unwrap_err().to_string()
        };
        assert!(err(&[(None, "..".into())]).contains("bad sub cgroup path: .."));
        assert!(err(&[(Some("whaaat".into()), "/".into())]).contains("unknown controller whaaat"));
        let got = exec_cgroup_dirs(&dirs, &[(Some("pids".into()), "s".into())]).unwrap();
        assert_eq!(got, [PathBuf::from("/sys/fs/cgroup/pids/c1/s")]);
    }
}
