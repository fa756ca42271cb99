//! The stage: the first process forked by the runtime. It joins and creates the namespaces
//! and, where a pid or time namespace needs it, forks the init and exits, so that one
//! process remains. Runs in a forked copy of the runtime; every failure is sent to the runtime
//! as text and ends the process.

use std::convert::Infallible;
use std::ffi::CStr;
use std::os::fd::OwnedFd;

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::LinuxNamespaceType;

use super::protocol::{Channel, Msg, MAX};
use super::text::{child_err, ChildError};
use super::WithStep;
use crate::plan::InitPlan;
use crate::sys::{exit_now, fork_sibling, ArgArea, ExecScratch, Fork};

/// What the runtime hands to the forked child besides the plan.
pub struct ChildIo {
    pub chan: Channel,
    /// An O_PATH fd of the exec fifo, opened by the runtime: the state directory may not be
    /// reachable from inside a user namespace.
    pub fifo: OwnedFd,
    pub console: Option<OwnedFd>,
    /// The connection to the seccomp agent, when the filter notifies one.
    pub agent: Option<OwnedFd>,
    pub mem: ChildMemory,
}

/// The memory a forked child works in, reserved by the runtime before the fork: the child
/// allocates nothing (see the module above).
pub struct ChildMemory {
    /// One message of the channel as it arrives ([`MAX`] bytes).
    pub rx: Vec<u8>,
    /// The state document for the hooks that run in the container.
    pub state: Vec<u8>,
    /// The container process state for the seccomp agent.
    pub agent_state: Vec<u8>,
    /// The argv and envp arrays of the execve of the user program and of the hooks.
    pub exec: ExecScratch,
    /// The runtime's argument area, which the child overwrites (`sys::hide_cmdline`).
    pub args: Option<ArgArea>,
}

impl ChildMemory {
    /// Room for the messages, and for execs of up to `argc` arguments and `envc` environment
    /// entries. Large buffers come from the allocator as untouched pages: they cost address
    /// space, not memory, until used.
    pub fn new(argc: usize, envc: usize) -> ChildMemory {
        ChildMemory {
            rx: vec![0; MAX],
            state: Vec::with_capacity(MAX),
            agent_state: Vec::with_capacity(MAX),
            exec: ExecScratch::with_room(argc, envc),
            args: ArgArea::of_self(),
        }
    }

    /// The next message, borrowing `rx`.
    pub fn recv<'b>(rx: &'b mut [u8], chan: &Channel) -> Result<Msg<'b>, ChildError> {
        chan.recv_in(rx).map(|(m, _)| m).step("wait for runtime")
    }
}

/// Copy `doc` into `into`, whose capacity was reserved for the largest message.
pub(super) fn keep(into: &mut Vec<u8>, doc: &[u8]) {
    into.clear();
    into.extend_from_slice(&doc[..doc.len().min(into.capacity())]);
}

/// Entry point of the forked child. Never returns.
pub fn run(plan: &InitPlan, mut io: ChildIo) -> ! {
    let result = stage(plan, &mut io);
    let msg = match result {
        Ok(never) => match never {},
        Err(msg) => msg,
    };
    let _ = io.chan.send(&Msg::Error(msg.as_str().into()));
    exit_now(1)
}

/// Wait for `want`; an error from the runtime is ours.
pub(super) fn expect(chan: &Channel, rx: &mut [u8], want: Msg<'_>) -> Result<(), ChildError> {
    match ChildMemory::recv(rx, chan)? {
        m if m == want => Ok(()),
        other => Err(unexpected(&want, other)),
    }
}

/// Join the cgroup in the hierarchies whose files `files` names ([`Msg::JoinCgroup`]): `0`
/// written to a v1 `tasks` file moves the calling thread, which is the whole process (the
/// init, or exec's stage).
pub(super) fn join_cgroup(files: &[u8]) -> Result<(), ChildError> {
    let mut rest = files;
    while !rest.is_empty() {
        let file = CStr::from_bytes_until_nul(rest)
            .map_err(|_| child_err!("join cgroup: a path without its end"))?;
        rest = &rest[file.to_bytes_with_nul().len()..];
        // The path is spelled only on failure (a lossy spelling may allocate).
        let fd = nix::fcntl::open(file, OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|e| child_err!("join cgroup: open {}: {e}", file.to_string_lossy()))?;
        nix::unistd::write(&fd, b"0")
            .map_err(|e| child_err!("join cgroup: write 0 to {}: {e}", file.to_string_lossy()))?;
    }
    Ok(())
}

/// Wait for `Go`, joining the cgroup first where the runtime says so (exec's stage).
pub(super) fn expect_go(chan: &Channel, rx: &mut [u8]) -> Result<(), ChildError> {
    loop {
        match ChildMemory::recv(rx, chan)? {
            Msg::JoinCgroup(files) => join_cgroup(&files)?,
            Msg::Go => return Ok(()),
            other => return Err(unexpected(&Msg::Go, other)),
        }
    }
}

/// The error for `got` where `want` was due: the runtime's own error, if that is what came.
pub(super) fn unexpected(want: &dyn std::fmt::Debug, got: Msg<'_>) -> ChildError {
    match got {
        Msg::Error(e) => child_err!("{e}"),
        other => child_err!("sync: expected {want:?}, got {other:?}"),
    }
}

/// The stage: namespaces, then (for a pid or time namespace) the fork of the init.
fn stage(plan: &InitPlan, io: &mut ChildIo) -> Result<Infallible, ChildError> {
    nix::sys::prctl::set_dumpable(false).step("prctl(PR_SET_DUMPABLE)")?;
    crate::sys::hide_cmdline(io.mem.args, b"casulo init");
    expect(&io.chan, &mut io.mem.rx, Msg::Go)?;
    plan.ns.join_all().step("namespaces")?;
    plan.ns.unshare_all().step("namespaces")?;
    if plan.ns.creates(LinuxNamespaceType::User) {
        // A runtime that is not root writes our maps (itself, or newuidmap on its behalf)
        // through our /proc files, which are its own only while we are dumpable.
        let dumpable = plan.ns.unprivileged;
        if dumpable {
            nix::sys::prctl::set_dumpable(true).step("prctl(PR_SET_DUMPABLE 1)")?;
        }
        io.chan.send(&Msg::NeedMaps).step("sync")?;
        expect(&io.chan, &mut io.mem.rx, Msg::MapsDone)?;
        if dumpable {
            nix::sys::prctl::set_dumpable(false).step("prctl(PR_SET_DUMPABLE 0)")?;
        }
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
    if plan.ns.runtime_makes_pid_ns() {
        // The runtime forked us into the new pid namespace, so we are the init; it knows our
        // pid, which we see as 1.
        io.chan.send(&Msg::Pid(0)).step("sync")?;
    } else {
        fork_if_needed(plan.ns.needs_fork(), &io.chan)?;
    }
    super::init::init(plan, io)
}

/// Where a new or joined pid or time namespace needs it (it applies to children only), fork:
/// the stage reports the child's pid and exits, and the child goes on. The child is the
/// runtime's (CLONE_PARENT): the runtime reaps the stage and waits for the child directly.
/// Otherwise report our own pid. Shared by create and exec.
pub(super) fn fork_if_needed(needs_fork: bool, chan: &Channel) -> Result<(), ChildError> {
    if needs_fork {
        match fork_sibling().step("fork")? {
            Fork::Parent(pid) => {
                let _ = chan.send(&Msg::Pid(pid));
                exit_now(0)
            }
            Fork::Child => Ok(()),
        }
    } else {
        chan.send(&Msg::Pid(nix::unistd::getpid().as_raw()))
            .step("sync")
    }
}
