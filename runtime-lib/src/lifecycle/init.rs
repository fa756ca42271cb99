//! The child side of create: the stage (joins and creates namespaces) and the init (builds the
//! container and waits for start). Runs in a forked copy of the runtime: only prepared data,
//! plain syscalls, no locks another thread of the parent could hold. Every failure is sent to
//! the runtime as text and ends the process.

use std::convert::Infallible;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::LinuxNamespaceType;

use super::fifo;
use super::protocol::{Channel, Msg};
use crate::plan::InitPlan;
use crate::rootfs::SourceRequest;
use crate::sys::{exit_now, fork, Fork};

/// Context for the messages of the child: "step: cause".
pub(super) trait Step<T> {
    fn step(self, what: &str) -> Result<T, String>;
}

impl<T, E: std::fmt::Display> Step<T> for Result<T, E> {
    fn step(self, what: &str) -> Result<T, String> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}

/// What the runtime hands to the forked child besides the plan.
pub struct ChildIo {
    pub chan: Channel,
    /// An O_PATH fd of the exec fifo, opened by the runtime: the state directory may not be
    /// reachable from inside a user namespace.
    pub fifo: OwnedFd,
    pub console: Option<OwnedFd>,
    /// Whether the runtime has prestart/createRuntime hooks to run mid-way.
    pub runtime_hooks: bool,
    /// The connection to the seccomp agent, when the filter notifies one.
    pub agent: Option<OwnedFd>,
}

/// What the container process sends its seccomp agent once the filter is loaded: the
/// connection the runtime made and the container process state it sent.
pub(super) struct AgentHandoff {
    pub socket: OwnedFd,
    pub state: Vec<u8>,
}

impl AgentHandoff {
    /// Pair the runtime's connection with the state document; both or neither must be there.
    pub(super) fn pair(
        socket: Option<OwnedFd>,
        state: Option<Vec<u8>>,
    ) -> Result<Option<AgentHandoff>, String> {
        match (socket, state) {
            (Some(socket), Some(state)) => Ok(Some(AgentHandoff { socket, state })),
            (None, None) => Ok(None),
            _ => Err("seccomp agent: the connection and the process state do not match".into()),
        }
    }
}

/// Receive the container process state for the seccomp agent.
pub(super) fn recv_agent_state(chan: &Channel) -> Result<Vec<u8>, String> {
    match chan.recv().step("wait for runtime")? {
        Msg::AgentState(doc) => Ok(doc),
        Msg::Error(e) => Err(e),
        other => Err(format!(
            "sync: expected the seccomp agent's state, got {other:?}"
        )),
    }
}

/// Entry point of the forked child. Never returns.
pub fn run(plan: &InitPlan, mut io: ChildIo) -> ! {
    let result = stage(plan, &mut io);
    let msg = match result {
        Ok(never) => match never {},
        Err(msg) => msg,
    };
    let _ = io.chan.send(&Msg::Error(msg));
    exit_now(1)
}

fn expect(chan: &Channel, want: Msg) -> Result<(), String> {
    match chan.recv().step("wait for runtime")? {
        m if m == want => Ok(()),
        Msg::Error(e) => Err(e),
        other => Err(format!("sync: expected {want:?}, got {other:?}")),
    }
}

/// The stage: namespaces, then (for a pid or time namespace) the fork of the init.
fn stage(plan: &InitPlan, io: &mut ChildIo) -> Result<Infallible, String> {
    nix::sys::prctl::set_dumpable(false).step("prctl(PR_SET_DUMPABLE)")?;
    crate::sys::hide_cmdline(b"casulo init");
    expect(&io.chan, Msg::Go)?;
    plan.ns.join_all().step("namespaces")?;
    plan.ns.unshare_all().step("namespaces")?;
    if plan.ns.creates(LinuxNamespaceType::User) {
        io.chan.send(&Msg::NeedMaps).step("sync")?;
        expect(&io.chan, Msg::MapsDone)?;
    }
    // In a user namespace, new or joined, the init is its root: files it makes (mount points
    // in a tmpfs of the namespace) need owners that the namespace maps.
    if plan.ns.has(LinuxNamespaceType::User) {
        nix::unistd::setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
            .step("setresgid(0) in user namespace")?;
        nix::unistd::setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
            .step("setresuid(0) in user namespace")?;
    }
    // With a new user namespace, the runtime wrote them with the id maps.
    if !plan.ns.time_offsets.is_empty() && !plan.ns.creates(LinuxNamespaceType::User) {
        std::fs::write("/proc/self/timens_offsets", plan.ns.time_offsets.as_bytes())
            .step("write timens_offsets")?;
    }
    if plan.ns.needs_fork() {
        match fork().step("fork init")? {
            Fork::Parent(pid) => {
                let _ = io.chan.send(&Msg::Pid(pid));
                exit_now(0)
            }
            Fork::Child => {}
        }
    } else {
        io.chan
            .send(&Msg::Pid(nix::unistd::getpid().as_raw()))
            .step("sync")?;
    }
    init(plan, io)
}

/// The init: the container itself, up to the exec of the user program.
fn init(plan: &InitPlan, io: &mut ChildIo) -> Result<Infallible, String> {
    let p = &plan.process;
    nix::unistd::setsid().step("setsid")?;
    let proc = fifo::open_proc().step("open /proc")?;
    // The rootfs code names fds to mount(2) as `self/fd/N` relative to this verified procfs,
    // never through a /proc the container's config controls.
    nix::unistd::fchdir(proc.as_fd()).step("enter /proc")?;
    // The runtime moves us into our cgroup while we mount; it sends the state document when
    // that is done. Nothing that depends on the cgroup (the cgroup namespace and mount, hooks,
    // the user's program) happens before. A filter that notifies a seccomp agent also gets
    // the container process state for it, right after.
    let notifies = plan
        .seccomp
        .as_ref()
        .is_some_and(|s| s.listener().is_some());
    let mut states: Option<(Vec<u8>, Option<Vec<u8>>)> = None;
    let chan = &io.chan;
    let mut in_cgroup = || -> Result<(), String> {
        if states.is_some() {
            return Ok(());
        }
        let state = match chan.recv().step("wait for runtime")? {
            Msg::State(doc) => doc,
            Msg::Error(e) => return Err(e),
            other => return Err(format!("sync: expected the state, got {other:?}")),
        };
        let agent_state = if notifies {
            Some(recv_agent_state(chan)?)
        } else {
            None
        };
        states = Some((state, agent_state));
        plan.ns.unshare_cgroup().step("namespaces")
    };

    let mut host_source = |n: u32, req: SourceRequest<'_>| -> Result<OwnedFd, String> {
        match req {
            SourceRequest::Open => chan.send(&Msg::NeedMountSource(n)),
            SourceRequest::Idmapped(Some(fd)) => chan.send_fd(&Msg::NeedIdmappedTree(n), fd),
            SourceRequest::Idmapped(None) => chan.send(&Msg::NeedIdmappedTree(n)),
        }
        .step("sync")?;
        match chan.recv_fd().step("wait for runtime")? {
            (Msg::MountSource, Some(fd)) => Ok(fd),
            (Msg::Error(e), _) => Err(e),
            (other, _) => Err(format!("sync: expected a mount source, got {other:?}")),
        }
    };
    let in_userns = plan.ns.has(LinuxNamespaceType::User);
    let root = plan
        .rootfs
        .prepare(
            in_userns,
            plan.ns.creates(LinuxNamespaceType::Cgroup),
            &mut in_cgroup,
            &mut host_source,
        )
        .step("rootfs")?;
    in_cgroup()?;
    // The createContainer hooks run in the container's rootfs, as with runc (hooks that
    // name files relative to it, `./lib/...`, rely on that).
    nix::unistd::fchdir(root.as_fd()).step("enter the rootfs")?;
    drop(root);
    let (state, agent_state) = states.take().ok_or("sync: no state")?;
    let agent = AgentHandoff::pair(io.agent.take(), agent_state)?;
    if io.runtime_hooks {
        io.chan.send(&Msg::RunHooks).step("sync")?;
        expect(&io.chan, Msg::HooksDone)?;
    }
    crate::hooks::run_hooks("createContainer", &plan.create_container_hooks, &state)
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
    if !plan.start_container_hooks.is_empty() {
        let env: Vec<_> = p.env.iter().cloned().chain(launch.home.clone()).collect();
        if let Err(e) = crate::hooks::run_hooks_with_env(
            "startContainer",
            &plan.start_container_hooks,
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

/// Write `value` to a file of the host's /proc (opened before pivot_root and checked to be
/// procfs), so that nothing the container mounts can redirect the write.
fn write_proc(proc: &OwnedFd, rel: &Path, value: &str) -> Result<(), nix::Error> {
    let fd = nix::fcntl::openat(
        proc.as_fd(),
        rel,
        OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::empty(),
    )?;
    let fs = nix::sys::statfs::fstatfs(fd.as_fd())?;
    if fs.filesystem_type() != nix::sys::statfs::PROC_SUPER_MAGIC {
        return Err(nix::Error::EXDEV);
    }
    nix::unistd::write(&fd, value.as_bytes()).map(drop)
}

/// The process cwd, resolved inside the container's root (no magic links, no escape).
fn open_inside(cwd: &Path) -> Result<OwnedFd, nix::Error> {
    let root = nix::fcntl::open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    crate::rootfs::paths::open_in_root(root.as_fd(), cwd, OFlag::O_PATH | OFlag::O_DIRECTORY)
}

/// What [`finish_process`] leaves for the execve.
pub(super) struct Launch {
    /// The executable's path, found with the process's PATH.
    pub exe: std::ffi::CString,
    /// `HOME=...` from the container's /etc/passwd (`HOME=/` without an entry), where
    /// process.env has no non-empty HOME of its own.
    pub home: Option<std::ffi::CString>,
}

/// Enter the process cwd, resolved inside the container.
fn enter_cwd(cwd: &Path) -> Result<(), nix::Error> {
    let fd = open_inside(cwd)?;
    nix::unistd::fchdir(fd.as_fd())
}

/// `HOME=<home of uid>` from the container's /etc/passwd, `HOME=/` without an entry.
fn home_env(uid: u32) -> std::ffi::CString {
    let mut home = [0u8; crate::process::env::HOME_MAX];
    let found =
        crate::process::env::home_of(uid, &mut home).filter(|&len| !home[..len].contains(&0));
    let value: &[u8] = match found {
        Some(len) => &home[..len],
        None => b"/",
    };
    let mut entry = Vec::with_capacity(b"HOME=".len() + value.len() + 1);
    entry.extend_from_slice(b"HOME=");
    entry.extend_from_slice(value);
    std::ffi::CString::new(entry).unwrap_or_else(|_| c"HOME=/".to_owned())
}

/// The part of the process setup that an init and an exec'd process share, in the order that
/// leaves no window of extra privilege: rlimits (raising needs CAP_SYS_RESOURCE); the
/// scheduler, I/O priority, personality and NUMA memory policy (a real-time policy, a lower nice value and the
/// real-time I/O class need CAP_SYS_NICE, or the RLIMIT_RTPRIO / RLIMIT_NICE just set); the LSM
/// exec label; umask; the cwd entered with the runtime's privileges (as runc: a directory only
/// they can reach still works; if they are refused, it is entered again as the user, after the
/// switch, for a directory only the user can reach); the executable looked up; `HOME` looked up
/// if needed; stdio given to the user; the fds and signals the program inherits (all of these
/// before any seccomp filter: a profile may not allow the syscalls they use); the seccomp
/// filter when it cannot wait for no_new_privs; the bounding set, the user switch, the other
/// capability sets; no_new_privs, then a filter that notifies a seccomp agent under
/// no_new_privs. Any other filter under no_new_privs is loaded by the caller
/// ([`SeccompPlan::loads_last`](crate::security::SeccompPlan::loads_last)). A filter that
/// notifies an agent is handed to it (`agent`) as soon as it is loaded.
pub(super) fn finish_process(
    p: &crate::process::ProcessPlan,
    proc: &OwnedFd,
    seccomp: Option<&crate::security::SeccompPlan>,
    preserve_fds: u32,
    agent: Option<AgentHandoff>,
) -> Result<Launch, String> {
    let mut agent = agent;
    p.rlimits.apply().step("rlimits")?;
    p.scheduling.apply().map_err(|e| e.to_string())?;
    if let Some(persona) = &p.personality {
        persona.apply().map_err(|e| e.to_string())?;
    }
    if let Some(policy) = &p.memory_policy {
        policy.apply().map_err(|e| e.to_string())?;
    }
    if let Some(l) = &p.label {
        write_proc(proc, &l.rel, &l.value).step(&format!("LSM label {}", l.rel.display()))?;
    }
    if let Some(mask) = p.umask {
        nix::sys::stat::umask(Mode::from_bits_truncate(mask));
    }
    let cwd_as_user = match enter_cwd(&p.cwd) {
        Ok(()) => false,
        Err(nix::Error::EACCES | nix::Error::EPERM) => true,
        Err(e) => return Err(format!("cwd {}: {e}", p.cwd.display())),
    };
    let exe = crate::process::find_executable(&p.args[0], &p.path_dirs)?;
    let home = p.needs_home.then(|| home_env(p.uid));
    crate::security::give_stdio_to(p.uid).step("user")?;
    // Only stdio and the preserved fds reach the user program.
    let first_closed = 3 + preserve_fds;
    for fd in 3..first_closed {
        crate::sys::clear_cloexec(fd as i32).step(&format!("preserve fd {fd}"))?;
    }
    crate::sys::cloexec_from(first_closed).step("close_range")?;
    crate::sys::reset_signals();
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN, which the user's capability
    // sets may not keep: load it now, while the runtime still has it.
    if let Some(s) = seccomp.filter(|_| !p.no_new_privileges) {
        load_seccomp(s, agent.take())?;
    }
    p.caps.drop_bounding().step("capabilities")?;
    crate::security::switch_user(p.uid, p.gid, &p.additional_gids, true).step("user")?;
    p.caps.apply().step("capabilities")?;
    if cwd_as_user {
        enter_cwd(&p.cwd).step(&format!("cwd {}", p.cwd.display()))?;
    }
    if p.no_new_privileges {
        crate::security::set_no_new_privs().step("no_new_privileges")?;
        if let Some(s) = seccomp.filter(|s| !s.loads_last(true)) {
            load_seccomp(s, agent.take())?;
        }
    }
    Ok(Launch { exe, home })
}

/// Load the filter; hand its listener, if it has one, to the seccomp agent at once.
fn load_seccomp(
    s: &crate::security::SeccompPlan,
    agent: Option<AgentHandoff>,
) -> Result<(), String> {
    let listener = s.load().step("seccomp")?;
    match (listener, agent) {
        (None, _) => Ok(()),
        (Some(listener), Some(a)) => {
            crate::security::seccomp_notify::hand_over(a.socket, &a.state, listener)
                .step("seccomp agent")
        }
        (Some(_), None) => {
            Err("seccomp agent: the filter has a listener but no agent connection".into())
        }
    }
}

/// For an exec'd process with a terminal: a new pty of the container's devpts (no
/// /dev/console: that is the init's), its master sent over `socket` (with ONLCR off first
/// when the runtime relays it, see [`ExecOptions::relayed_terminal`]); returns the slave.
///
/// [`ExecOptions::relayed_terminal`]: super::exec::ExecOptions::relayed_terminal
pub(super) fn open_terminal(
    socket: std::os::fd::BorrowedFd<'_>,
    size: Option<(u16, u16)>,
    relayed: bool,
) -> Result<OwnedFd, crate::tty::TtyError> {
    let dev = nix::fcntl::open(
        "/dev",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|source| crate::tty::TtyError::Sys {
        step: "open /dev",
        source,
    })?;
    let pty = crate::tty::open_pty(dev.as_fd())?;
    if let Some((rows, cols)) = size {
        crate::tty::set_window_size(pty.slave.as_fd(), rows, cols)?;
    }
    if relayed {
        crate::tty::disable_onlcr(pty.master.as_fd())?;
    }
    crate::tty::send_fd(socket, crate::tty::MASTER_MESSAGE, pty.master.as_fd())?;
    Ok(pty.slave)
}
