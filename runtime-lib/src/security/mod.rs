//! Security settings of the container process: capabilities, rlimits, user switch,
//! no_new_privs, seccomp. Plans are built from the spec before the fork (all parsing and
//! rejection happens there); the child only applies them.
//!
//! What of this runs in the child (`CapsPlan::drop_bounding`, `switch_user`,
//! `RlimitsPlan::apply`, `CapsPlan::apply`, `set_no_new_privs`, `SeccompPlan::load`) is a
//! handful of raw syscalls on data prepared beforehand: these functions allocate nothing and
//! take no lock, and their errors (the `Apply*` variants: a `&'static str` and an errno) do not
//! either. The child's code around them (`lifecycle/`) still formats its error texts.
//!
//! The order in the child, which leaves no window with more privilege than configured:
//!
//! 1. `RlimitsPlan::apply` (raising a hard limit needs CAP_SYS_RESOURCE, still held),
//! 2. `CapsPlan::drop_bounding` (PR_CAPBSET_DROP needs CAP_SETPCAP, still held),
//! 3. `switch_user` (keeps the permitted set across the uid change),
//! 4. `CapsPlan::apply` (effective/permitted/inheritable, then ambient),
//! 5. `set_no_new_privs` if the config asks for it,
//! 6. `SeccompPlan::load` last, so the filter does not see the runtime's own setup syscalls.
//!    Without no_new_privs the kernel only accepts a filter from a task holding
//!    CAP_SYS_ADMIN; the caller must then load it before step 4 drops that capability.
//!    A filter that notifies a seccomp agent is loaded with the rest of the setup (before
//!    step 4 without no_new_privs, right after step 5 with it), not at execve: its listener
//!    must reach the agent while the container is created (`seccomp_notify`).

mod caps;
pub mod label;
mod rlimits;
pub mod seccomp;
pub mod seccomp_cache;
mod seccomp_enosys;
pub mod seccomp_notify;
mod user;

pub(crate) use self::caps::drop_unknown_json as drop_unknown_capabilities;
pub use self::caps::{known_names as known_capabilities, CapsPlan};
pub use self::rlimits::RlimitsPlan;
pub use self::seccomp::SeccompPlan;
pub use self::seccomp_cache::SeccompCache;
pub use self::user::{give_stdio_to, set_no_new_privs, switch_user};

#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// The configuration asks for something invalid; `what` names the setting.
    #[error("{what}: {msg}")]
    Invalid { what: String, msg: String },
    /// The configuration asks for something this runtime does not implement yet.
    #[error("{what}: unsupported: {msg}")]
    Unsupported { what: String, msg: String },
    /// A system call failed while preparing a plan (before the fork).
    #[error("{step}: {source}")]
    Sys { step: String, source: nix::Error },
    /// Reading a kernel interface file failed while preparing a plan.
    #[error("{step}: read {path}: {source}")]
    Io {
        step: &'static str,
        path: &'static str,
        source: std::io::Error,
    },
    /// The seccomp agent at `linux.seccomp.listenerPath` could not be reached (in the reference
    /// runtime's words, which its test suite and callers look for).
    #[error("linux.seccomp.listenerPath {path}: failed to connect with seccomp agent: {source}")]
    AgentConnect {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// libseccomp refused part of the filter while compiling it.
    #[error("seccomp: {step}: {source}")]
    Seccomp {
        step: String,
        source: libseccomp::error::SeccompError,
    },
    /// A system call failed in the child while applying a plan.
    #[error("{step}: {errno}")]
    Apply {
        step: &'static str,
        errno: nix::Error,
    },
    /// A system call failed in the child on one capability (by kernel number).
    #[error("{step} {cap}: {errno}", cap = caps::cap_name(*cap))]
    ApplyCap {
        step: &'static str,
        cap: u8,
        errno: nix::Error,
    },
    /// setrlimit failed in the child for one resource.
    #[error("setrlimit {resource}: {errno}")]
    ApplyRlimit {
        resource: &'static str,
        errno: nix::Error,
    },
}
