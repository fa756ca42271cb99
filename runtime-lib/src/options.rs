//! The options of the public API's operations that are not part of the OCI config.

use std::path::PathBuf;

/// Options of [`Container::exec`](crate::Container::exec) and
/// [`Container::exec_foreground`](crate::Container::exec_foreground) (runc's `exec` flags that
/// are not part of the process config). The default is none of them.
///
/// ```no_run
/// use casulo::{Container, ExecOptions, SubCgroup};
///
/// let c = Container::load("/run/casulo", "web")?;
/// let opts = ExecOptions {
///     pid_file: Some("/run/web-exec.pid".into()),
///     sub_cgroups: vec![SubCgroup { controller: None, path: "/batch".into() }],
///     ..ExecOptions::default()
/// };
/// let mut process = c.process_config().cloned().unwrap_or_default();
/// process.set_args(Some(vec!["/bin/true".into()]));
/// process.set_terminal(Some(false));
/// let code = c.exec_foreground(&process, &opts)?;
/// # Ok::<(), casulo::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOptions {
    /// The unix socket that receives the pty master when the process has a terminal. Required
    /// for a terminal with [`Container::exec`](crate::Container::exec);
    /// [`Container::exec_foreground`](crate::Container::exec_foreground) relays the terminal
    /// to this process's stdio when there is none.
    pub console_socket: Option<PathBuf>,
    /// The unix socket (a listening stream socket) that receives a pidfd of the process
    /// (SCM_RIGHTS, with the bytes `setns`) as soon as it exists, before the call returns, as runc's
    /// `--pidfd-socket`; a failed send kills the process.
    pub pidfd_socket: Option<PathBuf>,
    /// Write the process's pid to this file once it has started.
    pub pid_file: Option<PathBuf>,
    /// Pass fds 3 .. 3+n of the caller to the process.
    pub preserve_fds: u32,
    /// Existing sub-cgroups of the container's cgroup to put the process in (runc's
    /// `exec --cgroup`); empty for the container's own cgroup.
    pub sub_cgroups: Vec<SubCgroup>,
    /// Exec into a paused container too, as runc's `--ignore-paused` (without it a paused
    /// container is refused): the process joins the frozen cgroup, and the call returns once
    /// the container is resumed and the process has exec'd.
    pub ignore_paused: bool,
}

/// An existing cgroup below the container's, for an exec'd process (runc's
/// `--cgroup [CONTROLLER:]PATH`).
///
/// ```
/// // `--cgroup cpu:/batch`: the cpu hierarchy's /batch below the container's cgroup (v1).
/// let sub = casulo::SubCgroup { controller: Some("cpu".into()), path: "/batch".into() };
/// # let _ = sub;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubCgroup {
    /// On cgroup v1, the controller whose hierarchy `path` is in; `None` for every hierarchy.
    /// On cgroup v2 the controller only has to be enabled in the container's cgroup.
    pub controller: Option<String>,
    /// The path below the container's cgroup (`/` is the cgroup itself; it may not climb out
    /// of it with `..`).
    pub path: PathBuf,
}

impl ExecOptions {
    /// The lifecycle's options: the public ones, the terminal not relayed.
    pub(crate) fn to_internal(&self) -> crate::lifecycle::exec::ExecOptions {
        crate::lifecycle::exec::ExecOptions {
            console_socket: self.console_socket.clone(),
            pidfd_socket: self.pidfd_socket.clone(),
            pid_file: self.pid_file.clone(),
            preserve_fds: self.preserve_fds,
            sub_cgroups: self
                .sub_cgroups
                .iter()
                .map(|s| (s.controller.clone(), s.path.clone()))
                .collect(),
            relayed_terminal: false,
            ignore_paused: self.ignore_paused,
        }
    }
}

/// Options of [`ContainerBuilder::run_foreground`](crate::ContainerBuilder::run_foreground).
/// The default deletes the container once its process has exited.
///
/// ```no_run
/// use casulo::{ContainerBuilder, RunOptions};
///
/// let code = ContainerBuilder::new("job", "/srv/bundles/job")
///     .run_foreground(RunOptions { keep: true })?;
/// println!("exited with {code}; the stopped container is still there");
/// # Ok::<(), casulo::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// Keep the stopped container's state (runc's `run --keep`) instead of deleting it.
    pub keep: bool,
}

/// Options of [`default_spec`](crate::default_spec) and
/// [`default_spec_json`](crate::default_spec_json).
///
/// ```
/// let spec = casulo::default_spec(casulo::SpecOptions { rootless: true });
/// assert!(spec.linux().as_ref().unwrap().uid_mappings().is_some());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpecOptions {
    /// A template for an unprivileged user (runc's `spec --rootless`): a user namespace that
    /// maps root in the container to the caller, no network namespace, `/sys` bound from the
    /// host, no `gid=5` on devpts and no device cgroup rules.
    pub rootless: bool,
}
