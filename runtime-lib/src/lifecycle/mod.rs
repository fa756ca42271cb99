//! The lifecycle: how a container comes to life and how a process joins it, read top to
//! bottom. Everything here applies a plan ([`crate::plan`]) made before the first side effect.
//!
//! Processes. The *runtime* is the caller of the library (the `casulo` command, or a program
//! that links the crate). For create it forks the *stage*, which joins and creates the
//! namespaces; where a new or joined pid or time namespace needs it, the stage forks the
//! *init* and exits, so one process remains: the init builds the container and waits on the
//! exec fifo until `start`, then execs the user program. The common case takes one fork: a new
//! pid namespace without a user or time namespace, for a runtime in the host's user namespace,
//! is made by the runtime, which forks the stage into it (`NamespacePlan::runtime_makes_pid_ns`),
//! and the stage is the init. `exec` forks a stage the same way (`stage.rs`) that joins the
//! init's namespaces.
//!
//! The runtime and its child talk over a SOCK_SEQPACKET socketpair ([`protocol`]). Create:
//!
//! ```text
//!  runtime (create.rs)                         stage → init (stage.rs, init.rs)
//!  state dir, exec fifo, fork ───────────────▶ waits
//!  Go ───────────────────────────────────────▶ join, unshare namespaces
//!  (makes the cgroup meanwhile)
//!                                   NeedMaps ◀ (new user namespace only)
//!  writes uid/gid maps, time offsets
//!  MapsDone ─────────────────────────────────▶ setresuid(0); fork the init if needed
//!                                   Pid(pid) ◀ the init's pid (0: the stage is the init)
//!  its pidfd to --pidfd-socket, if given
//!  init into its cgroup, resources, network
//!  devices; [JoinCgroup(files) ──────────────▶] mounts before the cgroup ones meanwhile;
//!  State(created) ───────────────────────────▶ joins the v1 hierarchies itself if told;
//!  [AgentState(doc) ─────────────────────────▶] now in its cgroup: cgroup ns, other mounts,
//!                                                 devices
//!                NeedMountSource(n) / NeedIdmappedTree(n) ◀ (a source it cannot reach)
//!  MountSource + fd ─────────────────────────▶
//!                                   RunHooks ◀ (prestart/createRuntime hooks only)
//!  runs them; HooksDone ─────────────────────▶ createContainer hooks, sysctl, pivot_root,
//!                                               terminal, masked paths, process setup
//!                                      Ready ◀ then blocks opening the exec fifo
//!  state.json, pid file; create returns
//!  Error(text) may come from either side at any point; the other side then gives up.
//! ```
//!
//! Without a user namespace the init joins the cgroup v1 hierarchies by itself, writing `0`
//! to their `tasks` files (`JoinCgroup`): a thread that moves itself takes none of the cgroup
//! core's global locks, where the runtime's write of the init's pid would wait for an RCU
//! grace period whenever no cgroup move happened in the last one (see
//! `CgroupManager::apply_leaving_self_join`). Every other hierarchy the runtime joins for it.
//!
//! Start ([`fifo::release`]): the runtime opens the exec fifo, which releases the init; the
//! init writes `0`, loads a late seccomp filter, runs the startContainer hooks and execs;
//! the fifo closes on exec and `start` returns. A failure after the release is the process's
//! own: one line on its stderr, exit status 255.
//!
//! Exec ([`exec`]): runtime forks the stage; it moves the stage into the cgroup and sends `Go`;
//! the stage joins the namespaces, forks if needed and sends `Pid`; [`AgentState`]; the process
//! applies its setup and execs; the channel closing on exec is success, `Error` is failure.
//!
//! Code in a forked child (the stage, the init, the exec'd process) works on prepared data and
//! allocates nothing: the program that forked may have other threads, one of which may have
//! held the allocator's lock at the fork. Its errors are fixed-size text ([`text`]), messages
//! are received into buffers reserved before the fork ([`stage::ChildIo`]).
//!
//! [`AgentState`]: protocol::Msg::AgentState

// A forked child's errors are fixed buffers on purpose: boxing them would allocate.
#![allow(clippy::result_large_err)]

pub mod create;
pub(crate) use create::cgroup_for;
pub(crate) use host::{cgroup_manager_for, initial_saved, resources_for};
pub mod exec;
#[cfg(debug_assertions)]
mod fault;
pub mod fifo;
pub mod foreground;
mod host;
mod hostproc;
mod init;
pub(crate) mod keyring;
pub mod pidfd;
pub mod protocol;
mod setup;
mod stage;
#[cfg(test)]
mod test_plan;
pub(crate) mod text;

use text::{child_err, ChildError};

/// In a forked child, errors are text for the runtime: "step: cause". `what` is formatted
/// only on failure (pass `format_args!` for a step with a variable name).
trait WithStep<T> {
    fn step(self, what: impl std::fmt::Display) -> Result<T, ChildError>;
}

impl<T, E: std::fmt::Display> WithStep<T> for Result<T, E> {
    fn step(self, what: impl std::fmt::Display) -> Result<T, ChildError> {
        self.map_err(|e| child_err!("{what}: {e}"))
    }
}
