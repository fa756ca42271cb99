//! OCI hooks: run each hook with the container state JSON on stdin, its own args and env,
//! and its timeout.
//!
//! A hook gets exactly the environment its `env` lists (nothing of the runtime's; a
//! startContainer hook without `env` gets the container process's, see
//! [`run_hooks_with_env`]), `args` as its
//! argv (`argv[0]` included; the path when `args` is absent), the state on a pipe that is closed
//! once written, and its stdout discarded. Its stderr is captured (the last
//! [`STDERR_TAIL`] bytes) and put in the error when it fails. Starting a hook (`spawn.rs`) and
//! watching it (`supervise.rs`) work the same in the runtime and in a forked child.
mod spawn;
mod supervise;

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use nix::errno::Errno;
use nix::sys::signal::Signal;
use oci_spec::runtime::Hook;

pub use spawn::PreparedHook;
#[cfg(test)]
use supervise::Tail;
use supervise::{supervise, ChildGuard, Supervised};

/// A point of the lifecycle where hooks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookPoint {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl HookPoint {
    /// The name the spec gives it (and the error messages use).
    pub fn name(self) -> &'static str {
        match self {
            HookPoint::Prestart => "prestart",
            HookPoint::CreateRuntime => "createRuntime",
            HookPoint::CreateContainer => "createContainer",
            HookPoint::StartContainer => "startContainer",
            HookPoint::Poststart => "poststart",
            HookPoint::Poststop => "poststop",
        }
    }
}

/// The hooks of config.json by the lifecycle point that runs them, selected once, in the plan.
/// It is saved in the state (same JSON shape as the spec's `hooks`), since the later commands
/// run the poststart and poststop hooks.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HooksPlan {
    /// In the runtime, once the namespaces and the cgroup exist (deprecated by the spec).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub prestart: Vec<Hook>,
    /// In the runtime, at the same point, after prestart.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub create_runtime: Vec<Hook>,
    /// In the container (its mount namespace, before pivot_root, cwd the rootfs).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub create_container: Vec<Hook>,
    /// In the container after start, before the user program.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub start_container: Vec<Hook>,
    /// In the runtime after start; a failure is a warning.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub poststart: Vec<Hook>,
    /// In the runtime at delete; a failure is a warning.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub poststop: Vec<Hook>,
}

impl HooksPlan {
    /// The hooks of `hooks` (config.json's), by phase.
    pub fn from_spec(hooks: Option<&oci_spec::runtime::Hooks>) -> HooksPlan {
        let take = |h: Option<&Vec<Hook>>| h.cloned().unwrap_or_default();
        let Some(h) = hooks else {
            return HooksPlan::default();
        };
        HooksPlan {
            prestart: take(h.prestart().as_ref()),
            create_runtime: take(h.create_runtime().as_ref()),
            create_container: take(h.create_container().as_ref()),
            start_container: take(h.start_container().as_ref()),
            poststart: take(h.poststart().as_ref()),
            poststop: take(h.poststop().as_ref()),
        }
    }

    /// The hooks of one point.
    pub fn at(&self, point: HookPoint) -> &[Hook] {
        match point {
            HookPoint::Prestart => &self.prestart,
            HookPoint::CreateRuntime => &self.create_runtime,
            HookPoint::CreateContainer => &self.create_container,
            HookPoint::StartContainer => &self.start_container,
            HookPoint::Poststart => &self.poststart,
            HookPoint::Poststop => &self.poststop,
        }
    }

    /// Whether the runtime has hooks to run while the init waits (prestart, createRuntime).
    pub fn runtime_side_at_create(&self) -> bool {
        !self.prestart.is_empty() || !self.create_runtime.is_empty()
    }
}

/// How much of a failing hook's stderr goes into the error message (its last bytes).
pub const STDERR_TAIL: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("error running {kind} hook #{index}: {path}: {msg}")]
    Failed {
        kind: &'static str,
        /// The hook's place in its list, from 0.
        index: usize,
        path: Box<str>,
        msg: String,
    },
    #[error("error running {kind} hook #{index}: {path}: invalid timeout {timeout}: it must be greater than zero")]
    InvalidTimeout {
        kind: &'static str,
        /// The hook's place in its list, from 0.
        index: usize,
        path: Box<str>,
        timeout: i64,
    },
    #[error("error running {kind} hook #{index}: {path}: {step}: {source}")]
    Sys {
        kind: &'static str,
        /// The hook's place in its list, from 0.
        index: usize,
        path: Box<str>,
        step: &'static str,
        source: Errno,
    },
    #[error("error running {kind} hook #{index}: {path}: timed out after {secs}s{}", stderr_suffix(.stderr))]
    Timeout {
        kind: &'static str,
        /// The hook's place in its list, from 0.
        index: usize,
        path: Box<str>,
        secs: i64,
        stderr: String,
    },
    #[error("error running {kind} hook #{index}: {path}: {status}{}", stderr_suffix(.stderr))]
    Exit {
        kind: &'static str,
        /// The hook's place in its list, from 0.
        index: usize,
        path: Box<str>,
        /// "exited with status N" or "killed by signal SIGX".
        status: String,
        stderr: String,
    },
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": stderr: {stderr}")
    }
}

/// Run `hooks` in order, each with `state_json` on its stdin. Stops at the first failure.
/// `kind` is the hook point's name as the spec spells it ("prestart", "createRuntime", ...).
pub fn run_hooks(kind: &'static str, hooks: &[Hook], state_json: &[u8]) -> Result<(), HookError> {
    run_hooks_with_env(kind, hooks, state_json, None)
}

/// [`run_hooks`], where a hook whose config has no `env` at all gets `default_env` (`NAME=value`
/// entries) instead of an empty environment. The startContainer hooks get the container
/// process's environment this way, as they have with runc (the spec leaves it open).
pub fn run_hooks_with_env(
    kind: &'static str,
    hooks: &[Hook],
    state_json: &[u8],
    default_env: Option<&[std::ffi::CString]>,
) -> Result<(), HookError> {
    run_prepared(
        kind,
        &PreparedHook::all(kind, hooks)?,
        state_json,
        default_env,
    )
}

/// [`run_hooks_with_env`] of hooks prepared beforehand: what a forked child runs (nothing to
/// parse or check, no `std::process::Command`: see `spawn.rs`).
pub fn run_prepared(
    kind: &'static str,
    hooks: &[PreparedHook],
    state_json: &[u8],
    default_env: Option<&[std::ffi::CString]>,
) -> Result<(), HookError> {
    for (index, hook) in hooks.iter().enumerate() {
        run_one(kind, index, hook, state_json, default_env)?;
    }
    Ok(())
}

/// Run one hook, the `index`th of its list, to completion (or until its timeout).
pub fn run_hook(
    kind: &'static str,
    index: usize,
    hook: &Hook,
    state_json: &[u8],
    default_env: Option<&[std::ffi::CString]>,
) -> Result<(), HookError> {
    run_one(
        kind,
        index,
        &PreparedHook::new(kind, index, hook)?,
        state_json,
        default_env,
    )
}

fn run_one(
    kind: &'static str,
    index: usize,
    hook: &PreparedHook,
    state_json: &[u8],
    default_env: Option<&[std::ffi::CString]>,
) -> Result<(), HookError> {
    let path = hook.path.clone();
    let sys = |step: &'static str, source: Errno| HookError::Sys {
        kind,
        index,
        path: path.clone(),
        step,
        source,
    };
    let child = spawn::spawn(hook, hook.env(default_env)).map_err(|(step, e)| sys(step, e))?;
    // From here on the child must not outlive a failure of ours.
    let mut guard = ChildGuard(Some(child));
    let outcome = supervise(guard.child(), state_json, hook.timeout);
    let (status, stderr) = match outcome {
        Ok(Supervised::Exited(status, stderr)) => {
            guard.release();
            (status, stderr)
        }
        Ok(Supervised::TimedOut(stderr)) => {
            drop(guard); // kills and reaps
            return Err(HookError::Timeout {
                kind,
                index,
                path,
                secs: hook.timeout.unwrap_or_default(),
                stderr: tail_text(&stderr),
            });
        }
        Err((step, errno)) => {
            drop(guard);
            return Err(sys(step, errno));
        }
    };
    if status.success() {
        return Ok(());
    }
    Err(HookError::Exit {
        kind,
        index,
        path,
        status: describe_status(status),
        stderr: tail_text(&stderr),
    })
}

fn describe_status(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        format!("exited with status {code}")
    } else if let Some(sig) = status.signal() {
        match Signal::try_from(sig) {
            Ok(s) => match signal_text(s) {
                Some(text) => format!("killed by signal {} ({text})", s.as_str()),
                None => format!("killed by signal {}", s.as_str()),
            },
            Err(_) => format!("killed by signal {sig}"),
        }
    } else {
        format!("ended with wait status {:#x}", status.into_raw())
    }
}

/// What the signals that usually end a failing hook mean, in the C library's words: a hook
/// that a seccomp filter stops is "killed by signal SIGSYS (bad system call)".
fn signal_text(s: Signal) -> Option<&'static str> {
    Some(match s {
        Signal::SIGSYS => "bad system call",
        Signal::SIGSEGV => "segmentation fault",
        Signal::SIGBUS => "bus error",
        Signal::SIGABRT => "aborted",
        Signal::SIGILL => "illegal instruction",
        Signal::SIGFPE => "floating point exception",
        _ => return None,
    })
}

fn tail_text(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.trim().to_string()
}

/// Run every hook of `hooks`, as the spec wants for poststart and poststop: a failure is
/// logged as a warning and the remaining hooks still run.
pub fn run_hooks_warn(kind: &'static str, hooks: &[Hook], state_json: &[u8], id: &str) {
    for (index, hook) in hooks.iter().enumerate() {
        if let Err(e) = run_hook(kind, index, hook, state_json, None) {
            tracing::warn!("container {id:?}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn hooks_tail_keeps_last_bytes() {
        let mut t = Tail::default();
        t.push(&vec![b'a'; STDERR_TAIL]);
        t.push(b"xyz");
        let bytes = t.into_bytes();
        assert_eq!(bytes.len(), STDERR_TAIL);
        assert!(bytes.ends_with(b"axyz"));
    }

    #[test]
    fn hooks_exec_path_never_searches_path() {
        assert_eq!(
            spawn::exec_path(Path::new("/bin/true")),
            Path::new("/bin/true")
        );
        assert_eq!(spawn::exec_path(Path::new("true")), Path::new("./true"));
        assert_eq!(spawn::exec_path(Path::new("a/b")), Path::new("a/b"));
    }

    #[test]
    fn hooks_status_descriptions() {
        assert_eq!(
            describe_status(ExitStatus::from_raw(3 << 8)),
            "exited with status 3"
        );
        assert_eq!(
            describe_status(ExitStatus::from_raw(libc::SIGKILL)),
            "killed by signal SIGKILL"
        );
        assert_eq!(
            describe_status(ExitStatus::from_raw(libc::SIGSYS)),
            "killed by signal SIGSYS (bad system call)"
        );
    }
}
