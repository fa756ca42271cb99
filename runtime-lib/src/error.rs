//! The public error type: every module has its own `thiserror` enum, rolled up here.
//!
//! A message always names the container, the step that failed and the cause
//! (path and errno where there is one), e.g.
//! `container "web": create: mount proc on /proc: EPERM: Operation not permitted`.

use std::fmt;

/// What went wrong, by concern: what a caller matches on to act on a failure. The message
/// ([`Error`]'s `Display`) and [`std::error::Error::source`] carry the detail.
///
/// ```no_run
/// use casulo::{Container, ErrorKind};
///
/// match Container::load("/run/casulo", "web") {
///     Ok(c) => c.force_delete()?,
///     Err(e) if e.kind() == ErrorKind::NotFound => {} // nothing to delete
///     Err(e) => return Err(e),
/// }
/// # Ok::<(), casulo::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No container with this id under the state root.
    NotFound,
    /// A container with this id exists already under the state root.
    AlreadyExists,
    /// The container's status does not allow the operation, e.g. starting a running
    /// container or pausing a stopped one.
    InvalidState,
    /// The bundle: `config.json` unreadable or invalid, a setting this runtime does not
    /// support, or an invalid container id.
    Bundle,
    /// The state directory could not be read or written, or its `state.json` is corrupt.
    State,
    /// Forking, joining or waiting for the container's processes, or the process config.
    Process,
    /// The container's cgroup: creating, limiting, freezing, reading or removing it.
    Cgroup,
    /// An OCI hook failed or timed out.
    Hook,
    /// The container's terminal or the console socket.
    Terminal,
    /// Capabilities, rlimits, the user switch, no_new_privs, seccomp or an LSM label.
    Security,
    /// The container's root filesystem and mounts.
    Rootfs,
    /// Creating or joining a namespace, or writing its id maps.
    Namespace,
    /// Moving a network device into the container.
    Network,
    /// Checkpoint or restore: CRIU, its images, its options.
    Checkpoint,
}

/// The module error behind an [`Error`]; its message is the cause part of the error's.
#[derive(Debug, thiserror::Error)]
pub enum Cause {
    #[error(transparent)]
    Bundle(#[from] crate::bundle::BundleError),
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error(transparent)]
    Process(#[from] crate::process::ProcessError),
    #[error(transparent)]
    Cgroup(#[from] crate::cgroups::CgroupError),
    #[error(transparent)]
    Hook(#[from] crate::hooks::HookError),
    #[error(transparent)]
    Tty(#[from] crate::tty::TtyError),
    #[error(transparent)]
    Security(#[from] crate::security::SecurityError),
    #[error(transparent)]
    Rootfs(#[from] crate::rootfs::RootfsError),
    #[error(transparent)]
    Namespace(#[from] crate::namespaces::NamespaceError),
    #[error(transparent)]
    NetDev(#[from] crate::netdev::NetDevError),
    #[error(transparent)]
    Prepare(#[from] crate::exe::PrepareError),
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
    /// A command-level precondition, e.g. "cannot start a container that is running".
    #[error("{0}")]
    InvalidState(String),
}

impl Cause {
    fn kind(&self) -> ErrorKind {
        use crate::state::StateError;
        match self {
            Cause::Bundle(_) => ErrorKind::Bundle,
            Cause::State(StateError::NotFound) => ErrorKind::NotFound,
            Cause::State(StateError::Exists) => ErrorKind::AlreadyExists,
            Cause::State(_) => ErrorKind::State,
            Cause::Process(_) | Cause::Prepare(_) => ErrorKind::Process,
            Cause::Cgroup(_) => ErrorKind::Cgroup,
            Cause::Hook(_) => ErrorKind::Hook,
            Cause::Tty(_) => ErrorKind::Terminal,
            Cause::Security(_) => ErrorKind::Security,
            Cause::Rootfs(_) => ErrorKind::Rootfs,
            Cause::Namespace(_) => ErrorKind::Namespace,
            Cause::NetDev(_) => ErrorKind::Network,
            Cause::InvalidState(_) => ErrorKind::InvalidState,
            Cause::Checkpoint(_) => ErrorKind::Checkpoint,
        }
    }
}

/// The lifecycle step during which an error happened: the operation that failed, as the
/// error's message names it.
///
/// ```no_run
/// use casulo::{Container, Step};
///
/// let err = Container::load("/run/casulo", "web")?.start().unwrap_err();
/// assert_eq!(err.step, Step::Start);
/// assert!(err.to_string().starts_with(r#"container "web": start: "#));
/// # Ok::<(), casulo::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Step {
    /// [`ContainerBuilder::create`](crate::ContainerBuilder::create).
    Create,
    /// [`Container::start`](crate::Container::start).
    Start,
    /// [`Container::state`](crate::Container::state) and `status`.
    State,
    /// [`Container::kill`](crate::Container::kill) and `kill_all`.
    Kill,
    /// [`Container::delete`](crate::Container::delete) and `force_delete`.
    Delete,
    /// [`Container::load`](crate::Container::load).
    Load,
    /// [`list`](crate::list).
    List,
    /// Running in the foreground: `run_foreground`, [`Container::wait`](crate::Container::wait).
    Run,
    /// [`Container::processes`](crate::Container::processes).
    Ps,
    /// [`Container::exec`](crate::Container::exec) and `exec_foreground`.
    Exec,
    /// [`Container::update`](crate::Container::update).
    Update,
    /// [`Container::pause`](crate::Container::pause).
    Pause,
    /// [`Container::resume`](crate::Container::resume).
    Resume,
    /// [`Container::stats`](crate::Container::stats) and `events`.
    Events,
    /// [`Container::checkpoint`](crate::Container::checkpoint).
    Checkpoint,
    /// [`ContainerBuilder::restore`](crate::ContainerBuilder::restore).
    Restore,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Create => "create",
            Step::Start => "start",
            Step::State => "state",
            Step::Kill => "kill",
            Step::Delete => "delete",
            Step::Load => "load",
            Step::List => "list",
            Step::Run => "run",
            Step::Ps => "ps",
            Step::Exec => "exec",
            Step::Update => "update",
            Step::Pause => "pause",
            Step::Resume => "resume",
            Step::Events => "events",
            Step::Checkpoint => "checkpoint",
            Step::Restore => "restore",
        })
    }
}

/// The error every public function returns: the container, the step, and the cause.
///
/// ```no_run
/// let err = casulo::Container::load("/run/casulo", "nope").unwrap_err();
/// assert_eq!(err.kind(), casulo::ErrorKind::NotFound);
/// assert_eq!(err.to_string(), r#"container "nope": load: container does not exist"#);
/// ```
#[derive(Debug, thiserror::Error)]
#[error("container {id:?}: {step}: {cause}")]
pub struct Error {
    /// The container's id (empty for an error about no container in particular).
    pub id: String,
    /// The step that failed. A caller that loads a container as the first part of its own
    /// command may set it to that command's step, so that the message names the command.
    pub step: Step,
    #[source]
    cause: Cause,
}

impl Error {
    pub(crate) fn new(id: impl Into<String>, step: Step, cause: impl Into<Cause>) -> Self {
        Error {
            id: id.into(),
            step,
            cause: cause.into(),
        }
    }

    /// What went wrong, by concern.
    pub fn kind(&self) -> ErrorKind {
        self.cause.kind()
    }
}

/// `Result` with casulo's [`Error`].
///
/// ```
/// fn root_of_demo() -> casulo::Result<std::path::PathBuf> {
///     Ok(casulo::default_root().join("demo"))
/// }
/// # root_of_demo().unwrap();
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attach the container id and step to a module error.
pub(crate) trait Context<T> {
    fn ctx(self, id: &str, step: Step) -> Result<T>;
}

impl<T, E: Into<Cause>> Context<T> for std::result::Result<T, E> {
    fn ctx(self, id: &str, step: Step) -> Result<T> {
        self.map_err(|e| Error::new(id, step, e))
    }
}
