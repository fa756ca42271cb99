//! In the foreground, as `casulo run` and `casulo exec` without `--detach`: create (or exec)
//! and start, then wait for the process, forwarding this process's signals to it and, when it
//! has a terminal and the caller gave no console socket, relaying its terminal to this
//! process's stdio.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use oci_spec::runtime::Process;

use crate::container::{Container, ContainerBuilder};
use crate::error::{Context, Error, Result, Step};
use crate::lifecycle::foreground;
use crate::process::ProcessError;
use crate::tty::{self, ConsoleListener};
use crate::{ExecOptions, RunOptions};

/// How long the container may take to send its pty master over the console socket.
const MASTER_TIMEOUT: Duration = Duration::from_secs(10);

impl ContainerBuilder {
    /// Create and start the container, and return without waiting for it (runc's
    /// `run --detach`). A container that fails to start is deleted.
    ///
    /// ```no_run
    /// let c = casulo::ContainerBuilder::new("web", "/srv/bundles/web").run_detached()?;
    /// println!("{} runs as pid {}", c.id(), c.pid());
    /// # Ok::<(), casulo::Error>(())
    /// ```
    pub fn run_detached(self) -> Result<Container> {
        let c = self.create()?;
        if let Err(e) = c.start() {
            let _ = c.clone().force_delete();
            return Err(e);
        }
        Ok(c)
    }

    /// Create and start the container, wait for its process to exit and return its exit
    /// status as a shell reports it (128+N when killed by signal N); then delete the container
    /// unless [`RunOptions::keep`] (runc's `run`).
    ///
    /// Meanwhile every signal this process receives is forwarded to the container's process
    /// (all that can be caught but those about this process's own faults), and a terminal
    /// (`process.terminal`) without a console socket of the caller's is relayed to this
    /// process's stdin and stdout, resized with it. To that end this call blocks those signals
    /// in the calling thread, for good.
    ///
    /// ```no_run
    /// use casulo::{ContainerBuilder, RunOptions};
    ///
    /// casulo::prepare_process().expect("prepare");
    /// let code = ContainerBuilder::new("job", "/srv/bundles/job")
    ///     .root("/run/casulo")
    ///     .run_foreground(RunOptions::default())?;
    /// std::process::exit(code);
    /// # Ok::<(), casulo::Error>(())
    /// ```
    pub fn run_foreground(mut self, opts: RunOptions) -> Result<i32> {
        let id = self.id().to_string();
        let step = Step::Run;
        let bundle = self.load_bundle()?;
        let terminal = bundle
            .spec
            .process()
            .as_ref()
            .and_then(|p| p.terminal())
            .unwrap_or(false);
        let listener = if terminal && !self.has_console_socket() {
            let l = ConsoleListener::new().ctx(&id, step)?;
            self = self.console_socket(l.path());
            Some(l)
        } else {
            None
        };
        prepare_wait(&id, step)?;
        let c = self.create_from(bundle)?;
        let master = match &listener {
            Some(l) => match l.recv_master(MASTER_TIMEOUT).and_then(|m| {
                // Before start: the program's first line already comes without `\r`.
                tty::disable_onlcr(m.as_fd())?;
                Ok(m)
            }) {
                Ok(m) => Some(m),
                Err(e) => {
                    let _ = c.clone().force_delete();
                    return Err(Error::new(&id, step, e));
                }
            },
            None => None,
        };
        drop(listener);
        if let Err(e) = c.start() {
            let _ = c.clone().force_delete();
            return Err(e);
        }
        let code = wait_relaying(c.pid(), master);
        if !opts.keep {
            if let Err(e) = c.clone().force_delete() {
                tracing::warn!("{e}");
            }
        }
        code.ctx(&id, step)
    }
}

impl Container {
    /// Start `process` in the container as [`Container::exec`] does, wait for it and return
    /// its exit status as a shell reports it (128+N when killed by signal N) (runc's `exec`).
    ///
    /// As [`ContainerBuilder::run_foreground`], it forwards this process's signals to it and
    /// relays its terminal when it has one and `opts` names no console socket; it blocks the
    /// forwarded signals in the calling thread.
    ///
    /// ```no_run
    /// use casulo::{Container, ExecOptions};
    ///
    /// let c = Container::load("/run/casulo", "web")?;
    /// let mut process = c.process_config().cloned().unwrap_or_default();
    /// process.set_args(Some(vec!["/bin/sh".into()]));
    /// process.set_terminal(Some(true));
    /// let code = c.exec_foreground(&process, &ExecOptions::default())?;
    /// # Ok::<(), casulo::Error>(())
    /// ```
    pub fn exec_foreground(&self, process: &Process, opts: &ExecOptions) -> Result<i32> {
        let id = self.id();
        let step = Step::Exec;
        let mut inner = opts.to_internal();
        let terminal = process.terminal().unwrap_or(false);
        let listener = if terminal && inner.console_socket.is_none() {
            let l = ConsoleListener::new().ctx(id, step)?;
            inner.console_socket = Some(l.path().to_path_buf());
            // Relayed to our own terminal: `\n` must reach it as `\n`.
            inner.relayed_terminal = true;
            Some(l)
        } else {
            None
        };
        prepare_wait(id, step)?;
        let pid = self.exec_with(process, &inner)?;
        let master = match listener {
            Some(l) => Some(l.recv_master(MASTER_TIMEOUT).ctx(id, step)?),
            None => None,
        };
        wait_relaying(pid, master).ctx(id, step)
    }

    /// Wait for the container's init to exit and return its exit status as a shell reports it
    /// (128+N when killed by signal N). The init is this process's child (also where it was
    /// forked in its own pid namespace), so no process-wide setting is needed.
    ///
    /// ```no_run
    /// casulo::prepare_process().expect("prepare");
    /// let c = casulo::ContainerBuilder::new("job", "/srv/bundles/job").create()?;
    /// c.start()?;
    /// let code = c.wait()?;
    /// c.delete()?;
    /// # let _ = code;
    /// # Ok::<(), casulo::Error>(())
    /// ```
    pub fn wait(&self) -> Result<i32> {
        foreground::wait(self.pid(), false).ctx(self.id(), Step::Run)
    }
}

/// Hold every forwarded signal until the wait forwards it, so that none is lost.
pub(crate) fn prepare_wait(id: &str, step: Step) -> Result<()> {
    foreground::block_signals().ctx(id, step)
}

/// Wait for `pid` in the foreground, forwarding signals; with a pty `master`, relay it to our
/// stdio meanwhile and resize it on SIGWINCH instead of forwarding that signal.
pub(crate) fn wait_relaying(
    pid: i32,
    master: Option<OwnedFd>,
) -> std::result::Result<i32, ProcessError> {
    let Some(master) = master else {
        return foreground::wait_with(pid, true, None);
    };
    let winch_master = master.try_clone().map_err(|source| ProcessError::Io {
        what: "duplicate the pty master".into(),
        source,
    })?;
    let resize = move || {
        let _ = tty::copy_window_size(std::io::stdin().as_fd(), winch_master.as_fd());
    };
    resize();
    let relay = std::thread::spawn(move || tty::proxy(master));
    let code = foreground::wait_with(pid, true, Some(&resize));
    let _ = relay.join();
    code
}
