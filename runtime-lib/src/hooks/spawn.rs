//! Starting a hook without `std::process::Command`. The init runs the createContainer and
//! startContainer hooks from a forked copy of the runtime, which may have had other threads:
//! std's process spawning takes its environment lock, which one of those threads may have held
//! at the fork, and would never get it. Here the hook's argv and envp are C strings prepared
//! beforehand (their pointer arrays laid out in room reserved beforehand), and starting it takes
//! pipe2, fork, dup2, sigprocmask, signal and execve only: no allocation, no lock.

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use oci_spec::runtime::Hook;

use super::HookError;
use crate::sys::{exit_now, fork, Fork};

/// One hook, ready to start: everything the child needs is made here.
#[derive(Debug, Clone)]
pub struct PreparedHook {
    /// The path as config.json gives it, for messages.
    pub path: Box<str>,
    exe: CString,
    argv: Vec<CString>,
    /// `None`: the hook's config has no `env` (the caller may give a default).
    env: Option<Vec<CString>>,
    pub timeout: Option<i64>,
}

impl PreparedHook {
    /// Check and prepare the `index`th hook of point `kind`.
    pub fn new(kind: &'static str, index: usize, hook: &Hook) -> Result<PreparedHook, HookError> {
        let path: Box<str> = hook.path().display().to_string().into();
        let failed = |msg: String| HookError::Failed {
            kind,
            index,
            path: path.clone(),
            msg,
        };
        let timeout = match hook.timeout() {
            Some(t) if t <= 0 => {
                return Err(HookError::InvalidTimeout {
                    kind,
                    index,
                    path: path.clone(),
                    timeout: t,
                })
            }
            t => t,
        };
        let cstr = |what: &str, bytes: &[u8]| {
            CString::new(bytes).map_err(|_| failed(format!("{what} contains a NUL byte")))
        };
        let exe = cstr("path", exec_path(hook.path()).as_os_str().as_bytes())?;
        let argv = match hook.args().as_deref() {
            Some(args) if !args.is_empty() => args
                .iter()
                .map(|a| cstr("args", a.as_bytes()))
                .collect::<Result<_, _>>()?,
            // No args (or an empty list): argv[0] is the path, as execv callers do by convention.
            _ => vec![cstr("path", hook.path().as_os_str().as_bytes())?],
        };
        let env = match hook.env().as_deref() {
            Some(list) => Some(
                list.iter()
                    .map(|entry| match entry.split_once('=') {
                        None => Err(failed(format!("env entry {entry:?} is not KEY=VALUE"))),
                        Some(("", _)) => {
                            Err(failed(format!("env entry {entry:?} has an empty name")))
                        }
                        Some(_) => cstr("env", entry.as_bytes()),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            None => None,
        };
        Ok(PreparedHook {
            path,
            exe,
            argv,
            env,
            timeout,
        })
    }

    /// Prepare every hook of a point.
    pub fn all(kind: &'static str, hooks: &[Hook]) -> Result<Vec<PreparedHook>, HookError> {
        (0..)
            .zip(hooks)
            .map(|(i, h)| PreparedHook::new(kind, i, h))
            .collect()
    }

    /// The environment the hook gets: its own `env`, else `default` (else nothing).
    pub fn env<'a>(&'a self, default: Option<DefaultEnv<'a>>) -> DefaultEnv<'a> {
        match (&self.env, default) {
            (Some(own), _) => DefaultEnv {
                env: own,
                extra: None,
            },
            (None, Some(d)) => d,
            (None, None) => DefaultEnv {
                env: &[],
                extra: None,
            },
        }
    }

    /// The room its execve needs: (arguments, environment entries) with `default_envc`
    /// entries for a hook without an `env` of its own.
    pub fn exec_room(&self, default_envc: usize) -> (usize, usize) {
        let envc = self.env.as_ref().map_or(default_envc, Vec::len);
        (self.argv.len(), envc)
    }
}

/// The environment of a hook whose config has no `env`: prepared entries and one made in the
/// child (the container process's `HOME`).
#[derive(Debug, Clone, Copy)]
pub struct DefaultEnv<'a> {
    pub env: &'a [CString],
    pub extra: Option<&'a std::ffi::CStr>,
}

/// A relative path without a slash would be searched in `PATH`; the hook's path is a file path.
pub(super) fn exec_path(path: &Path) -> PathBuf {
    if path.as_os_str().as_encoded_bytes().contains(&b'/') {
        path.to_path_buf()
    } else {
        Path::new(".").join(path)
    }
}

/// A started hook: our child, not yet reaped.
pub(super) struct HookChild {
    pub pid: i32,
    pub stdin: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

impl HookChild {
    /// The exit status, if it has ended (it is then reaped).
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, Errno> {
        loop {
            return match waitpid(Pid::from_raw(self.pid), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => Ok(None),
                Ok(WaitStatus::Exited(_, code)) => Ok(Some(ExitStatus::from_raw(code << 8))),
                Ok(WaitStatus::Signaled(_, sig, core)) => Ok(Some(ExitStatus::from_raw(
                    sig as i32 | if core { 0x80 } else { 0 },
                ))),
                Ok(_) => continue,
                Err(Errno::EINTR) => continue,
                Err(e) => Err(e),
            };
        }
    }

    pub fn kill_and_reap(&mut self) {
        crate::sys::kill(self.pid, libc::SIGKILL);
        let _ = waitpid(Pid::from_raw(self.pid), None);
    }
}

/// Start `hook` with `envp`: stdin and stderr on pipes, stdout on /dev/null, the signal
/// dispositions and mask reset. An exec that fails comes back as `("spawn", errno)`. The
/// child lays its execve's arrays out in `scratch`, reserved by the caller.
pub(super) fn spawn(
    hook: &PreparedHook,
    envp: DefaultEnv<'_>,
    scratch: &mut crate::sys::ExecScratch,
) -> Result<HookChild, (&'static str, Errno)> {
    let pipe = || nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| ("pipe", e));
    let (in_r, in_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    // Carries the errno of a failed execve; closed by a successful one (close-on-exec).
    let (status_r, status_w) = pipe()?;
    let null = nix::fcntl::open(
        "/dev/null",
        OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| ("open /dev/null", e))?;
    let pid = match fork().map_err(|e| ("fork", e))? {
        Fork::Child => {
            let ready = nix::unistd::dup2_stdin(&in_r)
                .and_then(|()| nix::unistd::dup2_stdout(&null))
                .and_then(|()| nix::unistd::dup2_stderr(&err_w));
            let errno = match ready {
                Ok(()) => {
                    crate::sys::reset_signals();
                    crate::sys::execve(&hook.exe, &hook.argv, envp.env, envp.extra, scratch)
                }
                Err(e) => e,
            };
            let _ = nix::unistd::write(&status_w, &(errno as i32).to_ne_bytes());
            exit_now(127)
        }
        Fork::Parent(pid) => pid,
    };
    drop((in_r, err_w, status_w, null));
    let mut child = HookChild {
        pid,
        stdin: Some(in_w),
        stderr: Some(err_r),
    };
    let mut got = [0u8; 4];
    loop {
        match nix::unistd::read(status_r.as_fd(), &mut got) {
            Ok(0) => return Ok(child),
            Ok(4) => {
                child.kill_and_reap();
                return Err(("spawn", Errno::from_raw(i32::from_ne_bytes(got))));
            }
            Ok(_) => {
                child.kill_and_reap();
                return Err(("spawn", Errno::EIO));
            }
            Err(Errno::EINTR) => continue,
            Err(e) => {
                child.kill_and_reap();
                return Err(("spawn", e));
            }
        }
    }
}
