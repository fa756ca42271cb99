//! The process setup that an init and an exec'd process share, applied in one documented
//! order by [`finish_process`], and the hand-over of a seccomp listener to its agent.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::hostproc::write_label;
use super::protocol::{Channel, Msg};
use super::stage::{keep, unexpected, ChildMemory};
use super::text::{child_err, CPath, ChildError};
use super::WithStep;
use crate::process::env::HOME_MAX;

/// What the container process sends its seccomp agent once the filter is loaded: the
/// connection the runtime made and the container process state it sent.
pub(super) struct AgentHandoff<'a> {
    pub socket: OwnedFd,
    pub state: &'a [u8],
}

impl<'a> AgentHandoff<'a> {
    /// Pair the runtime's connection with the state document; both or neither must be there.
    pub(super) fn pair(
        socket: Option<OwnedFd>,
        state: Option<&'a [u8]>,
    ) -> Result<Option<AgentHandoff<'a>>, ChildError> {
        match (socket, state) {
            (Some(socket), Some(state)) => Ok(Some(AgentHandoff { socket, state })),
            (None, None) => Ok(None),
            _ => Err(child_err!(
                "seccomp agent: the connection and the process state do not match"
            )),
        }
    }
}

/// Receive the container process state for the seccomp agent into `mem.agent_state`.
pub(super) fn recv_agent_state(chan: &Channel, mem: &mut ChildMemory) -> Result<(), ChildError> {
    match ChildMemory::recv(&mut mem.rx, chan)? {
        Msg::AgentState(doc) => {
            keep(&mut mem.agent_state, &doc);
            Ok(())
        }
        other => Err(unexpected(&"the seccomp agent's state", other)),
    }
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

/// `HOME=` and a home directory.
const HOME_ENTRY: usize = HOME_MAX + 8;

/// What [`finish_process`] leaves for the execve.
pub(super) struct Launch {
    /// The executable's path, found with the process's PATH.
    exe: CPath<{ crate::process::EXE_MAX }>,
    /// `HOME=...` from the container's /etc/passwd (`HOME=/` without an entry), where
    /// process.env has no non-empty HOME of its own.
    home: Option<CPath<HOME_ENTRY>>,
}

impl Launch {
    pub fn exe(&self) -> &std::ffi::CStr {
        self.exe.as_cstr()
    }

    pub fn home(&self) -> Option<&std::ffi::CStr> {
        self.home.as_ref().map(|h| h.as_cstr())
    }
}

/// Enter the process cwd, resolved inside the container.
fn enter_cwd(cwd: &Path) -> Result<(), nix::Error> {
    let fd = open_inside(cwd)?;
    nix::unistd::fchdir(fd.as_fd())
}

/// `HOME=<home of uid>` from the container's /etc/passwd, `HOME=/` without an entry.
fn home_env(uid: u32) -> Option<CPath<HOME_ENTRY>> {
    let mut home = [0u8; HOME_MAX];
    let found = crate::process::env::home_of(uid, &mut home);
    found
        .and_then(|len| CPath::concat(&[b"HOME=", &home[..len]]))
        .or_else(|| CPath::concat(&[b"HOME=/"]))
}

/// The part of the process setup that an init and an exec'd process share, in the order that
/// leaves no window of extra privilege: rlimits (raising needs CAP_SYS_RESOURCE); the
/// scheduler, I/O priority, personality and NUMA memory policy (a real-time policy, a lower nice value and the
/// real-time I/O class need CAP_SYS_NICE, or the RLIMIT_RTPRIO / RLIMIT_NICE just set); the LSM
/// exec label; umask; the cwd entered with the runtime's privileges (as runc: a directory only
/// they can reach still works; if they are refused, it is entered again as the user, after the
/// switch, for a directory only the user can reach); the executable looked up; `HOME` looked up
/// if needed; stdio given to the user; the fds and signals the program inherits; whether a joined
/// user namespace denies setgroups (all of these
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
    agent: Option<AgentHandoff<'_>>,
) -> Result<Launch, ChildError> {
    let mut agent = agent;
    p.rlimits.apply().step("rlimits")?;
    p.scheduling.apply().map_err(|e| child_err!("{e}"))?;
    if let Some(persona) = &p.personality {
        persona.apply().map_err(|e| child_err!("{e}"))?;
    }
    if let Some(policy) = &p.memory_policy {
        policy.apply().map_err(|e| child_err!("{e}"))?;
    }
    if let Some(l) = &p.label {
        write_label(proc, l)?;
    }
    if let Some(mask) = p.umask {
        nix::sys::stat::umask(Mode::from_bits_truncate(mask));
    }
    let cwd_as_user = match enter_cwd(&p.cwd) {
        Ok(()) => false,
        Err(nix::Error::EACCES | nix::Error::EPERM) => true,
        Err(e) => return Err(child_err!("cwd {}: {e}", p.cwd.display())),
    };
    let exe = crate::process::find_executable(&p.args[0], &p.path_dirs)?;
    let home = if p.needs_home { home_env(p.uid) } else { None };
    crate::security::give_stdio_to(p.uid).step("user")?;
    // Only stdio and the preserved fds reach the user program.
    let first_closed = 3 + preserve_fds;
    for fd in 3..first_closed {
        crate::sys::clear_cloexec(fd as i32).step(format_args!("preserve fd {fd}"))?;
    }
    crate::sys::cloexec_from(first_closed).step("close_range")?;
    crate::sys::reset_signals();
    // Until the execve, which gives them their default back: an init of a pid namespace would
    // otherwise ignore them (a created container that SIGTERM does not stop).
    crate::sys::exit_on_stop_signals();
    let denied = p.setgroups_denied || (p.setgroups_from_joined_ns && denies_setgroups(proc)?);
    let set_groups = !denied;
    if !set_groups && !p.additional_gids.is_empty() && p.setgroups_from_joined_ns {
        return Err(child_err!(
            "process.user.additionalGids: the joined user namespace denies setgroups"
        ));
    }
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN, which the user's capability
    // sets may not keep: load it now, while the runtime still has it.
    if let Some(s) = seccomp.filter(|_| !p.no_new_privileges) {
        load_seccomp(s, agent.take())?;
    }
    p.caps.drop_bounding().step("capabilities")?;
    crate::security::switch_user(p.uid, p.gid, &p.additional_gids, set_groups).step("user")?;
    p.caps.apply().step("capabilities")?;
    if cwd_as_user {
        enter_cwd(&p.cwd).step(format_args!("cwd {}", p.cwd.display()))?;
    }
    if p.no_new_privileges {
        crate::security::set_no_new_privs().step("no_new_privileges")?;
        if let Some(s) = seccomp.filter(|s| !s.loads_last(true)) {
            load_seccomp(s, agent.take())?;
        }
    }
    Ok(Launch { exe, home })
}

/// Whether the user namespace this process is in denies setgroups(2) (a rootless
/// container's, which maps its user's gid alone), read through the host's `proc`.
fn denies_setgroups(proc: &OwnedFd) -> Result<bool, ChildError> {
    let fd = nix::fcntl::openat(
        proc.as_fd(),
        "self/setgroups",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .step("open /proc/self/setgroups")?;
    let mut buf = [0u8; 16];
    let n = nix::unistd::read(&fd, &mut buf).step("read /proc/self/setgroups")?;
    Ok(buf[..n].starts_with(b"deny"))
}

/// Load the filter; hand its listener, if it has one, to the seccomp agent at once.
fn load_seccomp(
    s: &crate::security::SeccompPlan,
    agent: Option<AgentHandoff<'_>>,
) -> Result<(), ChildError> {
    let listener = s.load().step("seccomp")?;
    match (listener, agent) {
        (None, _) => Ok(()),
        (Some(listener), Some(a)) => {
            crate::security::seccomp_notify::hand_over(a.socket, a.state, listener)
                .step("seccomp agent")
        }
        (Some(_), None) => Err(child_err!(
            "seccomp agent: the filter has a listener but no agent connection"
        )),
    }
}
