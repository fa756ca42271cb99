//! The public error type: every module has its own `thiserror` enum, rolled up here.
//!
//! A message always names the container, the step that failed and the cause
//! (path and errno where there is one), e.g.
//! `container "web": create: mount proc on /proc: EPERM: Operation not permitted`.

use std::fmt;

/// What went wrong, by concern.
#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
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
    /// A command-level precondition, e.g. "cannot start a container that is running".
    #[error("{0}")]
    InvalidState(String),
}

/// The lifecycle step during which an error happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Create,
    Start,
    State,
    Kill,
    Delete,
    Load,
    List,
    Run,
    Ps,
    Exec,
    Update,
    Pause,
    Resume,
    Events,
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
        })
    }
}

/// The error every public function returns: the container, the step, and the cause.
#[derive(Debug, thiserror::Error)]
#[error("container {id:?}: {step}: {kind}")]
pub struct Error {
    pub id: String,
    pub step: Step,
    #[source]
    pub kind: ErrorKind,
}

impl Error {
    pub fn new(id: impl Into<String>, step: Step, kind: impl Into<ErrorKind>) -> Self {
        Error {
            id: id.into(),
            step,
            kind: kind.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attach the container id and step to a module error.
pub(crate) trait Context<T> {
    fn ctx(self, id: &str, step: Step) -> Result<T>;
}

impl<T, E: Into<ErrorKind>> Context<T> for std::result::Result<T, E> {
    fn ctx(self, id: &str, step: Step) -> Result<T> {
        self.map_err(|e| Error::new(id, step, e))
    }
}
