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
// A failure keeps the hook's stderr tail in a fixed buffer on purpose: in a forked child,
// boxing it would allocate.
#![allow(clippy::result_large_err)]

mod spawn;
mod supervise;

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use nix::errno::Errno;
use nix::sys::signal::Signal;
use oci_spec::runtime::Hook;

pub use spawn::{DefaultEnv, PreparedHook};
use supervise::{supervise, ChildGuard, Supervised, Tail};

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

fn stderr_suffix(stderr: &str) -> StderrSuffix<'_> {
    StderrSuffix(stderr.as_bytes())
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
    let prepared = PreparedHook::all(kind, hooks)?;
    let default_env = default_env.map(|env| DefaultEnv { env, extra: None });
    let mut scratch = exec_scratch(&prepared, default_env.map_or(0, |d| d.env.len()));
    run_prepared(kind, &prepared, state_json, default_env, &mut scratch).map_err(HookError::from)
}

/// Room for the execve of any of `hooks` (see [`PreparedHook::exec_room`]).
pub fn exec_scratch(hooks: &[PreparedHook], default_envc: usize) -> crate::sys::ExecScratch {
    let (argc, envc) = hooks
        .iter()
        .map(|h| h.exec_room(default_envc))
        .fold((0, 0), |(a, e), (ha, he)| (a.max(ha), e.max(he)));
    crate::sys::ExecScratch::with_room(argc, envc)
}

/// [`run_hooks_with_env`] of hooks prepared beforehand: what a forked child runs. Nothing to
/// parse or check, no `std::process::Command` (see `spawn.rs`), no allocation: the execve's
/// arrays go in `scratch`, and a failure borrows from the hook.
pub fn run_prepared<'a>(
    kind: &'static str,
    hooks: &'a [PreparedHook],
    state_json: &[u8],
    default_env: Option<DefaultEnv<'_>>,
    scratch: &mut crate::sys::ExecScratch,
) -> Result<(), HookFailure<'a>> {
    for (index, hook) in hooks.iter().enumerate() {
        run_one(kind, index, hook, state_json, default_env, scratch)?;
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
    let prepared = PreparedHook::new(kind, index, hook)?;
    let default_env = default_env.map(|env| DefaultEnv { env, extra: None });
    let mut scratch = exec_scratch(
        std::slice::from_ref(&prepared),
        default_env.map_or(0, |d| d.env.len()),
    );
    run_one(
        kind,
        index,
        &prepared,
        state_json,
        default_env,
        &mut scratch,
    )
    .map_err(HookError::from)
}

/// How a hook failed, borrowing from it: made without allocating, in a forked child too.
/// [`HookError`] is its owned form; both read the same.
pub struct HookFailure<'a> {
    kind: &'static str,
    index: usize,
    path: &'a str,
    cause: FailureCause,
}

enum FailureCause {
    Sys(&'static str, Errno),
    Timeout(i64, Tail),
    Exit(ExitStatus, Tail),
}

impl std::fmt::Display for HookFailure<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, index, path) = (self.kind, self.index, self.path);
        write!(f, "error running {kind} hook #{index}: {path}: ")?;
        match &self.cause {
            FailureCause::Sys(step, errno) => write!(f, "{step}: {errno}"),
            FailureCause::Timeout(secs, tail) => {
                write!(f, "timed out after {secs}s{}", StderrSuffix(tail.bytes()))
            }
            FailureCause::Exit(status, tail) => {
                write!(f, "{}{}", Status(*status), StderrSuffix(tail.bytes()))
            }
        }
    }
}

impl From<HookFailure<'_>> for HookError {
    fn from(f: HookFailure<'_>) -> HookError {
        let (kind, index, path) = (f.kind, f.index, f.path.into());
        match f.cause {
            FailureCause::Sys(step, source) => HookError::Sys {
                kind,
                index,
                path,
                step,
                source,
            },
            FailureCause::Timeout(secs, tail) => HookError::Timeout {
                kind,
                index,
                path,
                secs,
                stderr: Lossy(trimmed(tail.bytes())).to_string(),
            },
            FailureCause::Exit(status, tail) => HookError::Exit {
                kind,
                index,
                path,
                status: Status(status).to_string(),
                stderr: Lossy(trimmed(tail.bytes())).to_string(),
            },
        }
    }
}

fn run_one<'a>(
    kind: &'static str,
    index: usize,
    hook: &'a PreparedHook,
    state_json: &[u8],
    default_env: Option<DefaultEnv<'_>>,
    scratch: &mut crate::sys::ExecScratch,
) -> Result<(), HookFailure<'a>> {
    let failed = |cause| HookFailure {
        kind,
        index,
        path: &hook.path,
        cause,
    };
    let child = spawn::spawn(hook, hook.env(default_env), scratch)
        .map_err(|(step, e)| failed(FailureCause::Sys(step, e)))?;
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
            let secs = hook.timeout.unwrap_or_default();
            return Err(failed(FailureCause::Timeout(secs, stderr)));
        }
        Err((step, errno)) => {
            drop(guard);
            return Err(failed(FailureCause::Sys(step, errno)));
        }
    };
    if status.success() {
        return Ok(());
    }
    Err(failed(FailureCause::Exit(status, stderr)))
}

/// "exited with status N", "killed by signal SIGX (meaning)".
struct Status(ExitStatus);

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = self.0;
        if let Some(code) = status.code() {
            write!(f, "exited with status {code}")
        } else if let Some(sig) = status.signal() {
            match Signal::try_from(sig) {
                Ok(s) => match signal_text(s) {
                    Some(text) => write!(f, "killed by signal {} ({text})", s.as_str()),
                    None => write!(f, "killed by signal {}", s.as_str()),
                },
                Err(_) => write!(f, "killed by signal {sig}"),
            }
        } else {
            write!(f, "ended with wait status {:#x}", status.into_raw())
        }
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

/// The hook's stderr without the whitespace around it.
fn trimmed(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

/// Bytes shown as text, invalid UTF-8 as U+FFFD, without allocating.
struct Lossy<'a>(&'a [u8]);

impl std::fmt::Display for Lossy<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for chunk in self.0.utf8_chunks() {
            f.write_str(chunk.valid())?;
            if !chunk.invalid().is_empty() {
                f.write_str("\u{FFFD}")?;
            }
        }
        Ok(())
    }
}

/// ": stderr: TEXT" after a failing hook's message, nothing when it wrote nothing.
struct StderrSuffix<'a>(&'a [u8]);

impl std::fmt::Display for StderrSuffix<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match trimmed(self.0) {
            [] => Ok(()),
            text => write!(f, ": stderr: {}", Lossy(text)),
        }
    }
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
        let bytes = t.bytes();
        assert_eq!(bytes.len(), STDERR_TAIL);
        assert!(bytes.ends_with(b"axyz"));
        let mut t = Tail::default();
        t.push(b"abc");
        t.push(&[b'b'; STDERR_TAIL + 5]);
        assert_eq!(t.bytes(), &[b'b'; STDERR_TAIL][..]);
        let mut t = Tail::default();
        t.push(b"abc");
        t.push(b"de");
        assert_eq!(t.bytes(), b"abcde");
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
        let text = |raw| Status(ExitStatus::from_raw(raw)).to_string();
        assert_eq!(text(3 << 8), "exited with status 3");
        assert_eq!(text(libc::SIGKILL), "killed by signal SIGKILL");
        assert_eq!(
            text(libc::SIGSYS),
            "killed by signal SIGSYS (bad system call)"
        );
        assert_eq!(Lossy(b"a\xffb").to_string(), "a\u{FFFD}b");
        assert_eq!(StderrSuffix(b" \n").to_string(), "");
    }
}
