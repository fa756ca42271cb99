//! The stage: the first process forked by the runtime. It joins and creates the namespaces
//! and, where a pid or time namespace needs it, forks the init and exits, so that one
//! process remains. Runs in a forked copy of the runtime; every failure is sent to the runtime
//! as text and ends the process.

use std::convert::Infallible;
use std::os::fd::OwnedFd;

use nix::unistd::{Gid, Uid};
use oci_spec::runtime::LinuxNamespaceType;

use super::protocol::{Channel, Msg};
use super::WithStep;
use crate::plan::InitPlan;
use crate::sys::{exit_now, fork_sibling, Fork};

/// What the runtime hands to the forked child besides the plan.
pub struct ChildIo {
    pub chan: Channel,
    /// An O_PATH fd of the exec fifo, opened by the runtime: the state directory may not be
    /// reachable from inside a user namespace.
    pub fifo: OwnedFd,
    pub console: Option<OwnedFd>,
    /// The connection to the seccomp agent, when the filter notifies one.
    pub agent: Option<OwnedFd>,
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

pub(super) fn expect(chan: &Channel, want: Msg) -> Result<(), String> {
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
        // A runtime that is not root writes our maps (itself, or newuidmap on its behalf)
        // through our /proc files, which are its own only while we are dumpable.
        let dumpable = plan.ns.unprivileged;
        if dumpable {
            nix::sys::prctl::set_dumpable(true).step("prctl(PR_SET_DUMPABLE 1)")?;
        }
        io.chan.send(&Msg::NeedMaps).step("sync")?;
        expect(&io.chan, Msg::MapsDone)?;
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
    fork_if_needed(plan.ns.needs_fork(), &io.chan)?;
    super::init::init(plan, io)
}

/// Where a new or joined pid or time namespace needs it (it applies to children only), fork:
/// the stage reports the child's pid and exits, and the child goes on. The child is the
/// runtime's (CLONE_PARENT): the runtime reaps the stage and waits for the child directly.
/// Otherwise report our own pid. Shared by create and exec.
pub(super) fn fork_if_needed(needs_fork: bool, chan: &Channel) -> Result<(), String> {
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
