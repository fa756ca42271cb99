//! casulo: an OCI container runtime as a library.
//!
//! A container is made from an OCI *bundle*: a directory with a `config.json` (the runtime-spec
//! configuration, [`oci_spec::runtime::Spec`]) and a root filesystem. [`ContainerBuilder`] turns
//! a bundle into a container; [`Container`] starts, signals, reports on and deletes it, and runs
//! more processes in it. The state of every container lives under a state root
//! ([`default_root`], runc's `--root`), so that later calls, or other programs, find it by id
//! ([`Container::load`], [`list`]).
//!
//! Every error is an [`Error`] naming the container, the [`Step`] and the cause, e.g.
//! `container "web": create: mount proc on /proc: EPERM: Operation not permitted`; a failed
//! creation leaves nothing behind.
//!
//! # A program that runs containers
//!
//! Call [`prepare_process`] first thing in `main`: it protects the program's binary from the
//! containers (its docs say why). The containers' processes are the program's own children;
//! the library may be used from many threads at once.
//!
//! # Create, start, signal, delete
//!
//! The lifecycle of the runtime-spec, one call per operation, each of which may come from a
//! different process:
//!
//! ```no_run
//! use casulo::{Container, ContainerBuilder, Status};
//!
//! let c = ContainerBuilder::new("web", "/srv/bundles/web") // id, bundle directory
//!     .root("/run/casulo")                                 // state root
//!     .create()?;                                          // the init is set up and waits
//! c.start()?;                                              // the bundle's process runs
//! assert_eq!(c.state()?.status, Status::Running);
//! c.kill(libc::SIGTERM)?;
//! // Later, maybe from another program:
//! Container::load("/run/casulo", "web")?.force_delete()?;
//! # Ok::<(), casulo::Error>(())
//! ```
//!
//! # Run in the foreground
//!
//! Create, start and wait, with signals forwarded and the terminal relayed, as `casulo run`
//! does; [`Container::exec_foreground`] does the same for another process in a running
//! container:
//!
//! ```no_run
//! use casulo::{ContainerBuilder, RunOptions};
//!
//! casulo::prepare_process().expect("prepare the process");
//! let code = ContainerBuilder::new("job", "/srv/bundles/job")
//!     .run_foreground(RunOptions::default())?; // deleted once it has exited
//! std::process::exit(code);
//! # Ok::<(), casulo::Error>(())
//! ```
//!
//! # Watch
//!
//! [`Container::state`] is the runtime-spec's state; [`Container::stats`] and
//! [`Container::events`] report resource usage and OOM kills as runc's `events` does:
//!
//! ```no_run
//! use std::time::Duration;
//!
//! let c = casulo::Container::load("/run/casulo", "web")?;
//! println!("memory: {} bytes", c.stats()?.memory.usage.usage);
//! c.events(Duration::from_secs(5), |event| {
//!     println!("{}", serde_json::to_string(event).unwrap());
//!     true // keep going until the container stops
//! })?;
//! # Ok::<(), casulo::Error>(())
//! ```
//!
//! The `casulo` command line (crate `casulo-cli`) is a thin layer over this API, with runc's
//! commands and flags.

mod bundle;
mod cgroups;
mod checkpoint;
mod container;
mod error;
mod events;
mod exe;
mod features;
mod hooks;
mod lifecycle;
mod namespaces;
mod netdev;
mod options;
mod plan;
mod process;
mod rootfs;
mod rootless;
mod run;
mod security;
mod state;
mod sys;
mod template;
mod tty;

/// The OCI types of this API's signatures (`Spec`, `Process`, `LinuxResources`, ...), from the
/// version of `oci-spec` this crate is built with.
pub use oci_spec;

pub use checkpoint::{CgroupsMode, CheckpointOptions, CriuFlags, RestoreOptions};
pub use container::{default_root, force_delete, list, state_of, Container, ContainerBuilder};
pub use error::{Error, ErrorKind, Result, Step};
pub use events::{Event, EventKind};
pub use exe::{prepare_process, PrepareError};
pub use features::{features, Features, OCI_VERSION_MAX, OCI_VERSION_MIN};
pub use options::{ExecOptions, RunOptions, SpecOptions, SubCgroup};
pub use rootless::{in_user_namespace, parse_rootless, rootless_auto};
pub use state::{now_rfc3339, State, Status};
pub use stats::Stats;
pub use template::{default_spec, default_spec_json};

/// Parse a process object as `exec --process` reads it: JSON of the runtime-spec's `process`,
/// with the leniency `config.json` is read with (values spelled as the runtime-spec spells
/// them where oci-spec's types differ). The error names the field that is wrong.
///
/// ```
/// let p = casulo::parse_process(br#"{"args": ["/bin/true"], "cwd": "/"}"#).unwrap();
/// assert_eq!(p.args().as_deref(), Some(&["/bin/true".to_string()][..]));
/// assert!(casulo::parse_process(b"{").is_err());
/// ```
pub fn parse_process(json: &[u8]) -> std::result::Result<oci_spec::runtime::Process, String> {
    bundle::parse_process(json)
}

/// A container's resource usage ([`Container::stats`], the `data` of a stats [`Event`]), in
/// runc's event format.
pub mod stats {
    pub use crate::cgroups::stats::{
        Blkio, BlkioEntry, Cpu, CpuSet, CpuUsage, Hugetlb, IntelRdt, Memory, MemoryEntry,
        NetworkInterface, Pids, Stats, Throttling,
    };
}

/// Not API: the internals that the fuzz targets and the crate's own integration tests
/// exercise directly. Nothing here is stable or documented for use; it may change in any
/// release.
#[doc(hidden)]
pub mod __private {
    pub use crate::sys::alloc_check::{ChildAllocCounter, TRACE_VAR};
    pub mod bundle {
        pub use crate::bundle::{parse_spec, validate};
    }
    pub mod cgroups {
        pub use crate::cgroups::{
            default_allowed_devices, host_mode, manager, manager_at, resolve, CgroupConfig,
            CgroupError, CgroupManager, Mode,
        };
    }
    pub mod hooks {
        pub use crate::hooks::{run_hooks, run_hooks_with_env, HookError, STDERR_TAIL};
    }
    pub mod process {
        pub use crate::process::ProcessPlan;
    }
    pub mod pidfd {
        pub use crate::sys::{pidfd_open, pidfd_send_signal};
    }
    pub mod rootfs {
        pub use crate::rootfs::parse_options;
    }
    pub mod security {
        pub use crate::security::seccomp_notify::hand_over;
        pub use crate::security::{
            set_no_new_privs, switch_user, CapsPlan, RlimitsPlan, SeccompPlan, SecurityError,
        };
    }
    pub mod state {
        pub use crate::state::{parse_saved, Saved};
    }
    pub mod tty {
        pub use crate::tty::{
            copy_window_size, mount_console, open_pty, proxy_fds, recv_fd, send_fd,
            set_controlling, setup_console_at, ConsoleListener, TtyError, MASTER_MESSAGE,
        };
    }
}
