//! OCI hooks: run each hook with the container state JSON on stdin, its own args and env,
//! and its timeout.
//!
//! A hook gets exactly the environment its `env` lists (nothing of the runtime's; a
//! startContainer hook without `env` gets the container process's, see
//! [`run_hooks_with_env`]), `args` as its
//! argv (`argv[0]` included; the path when `args` is absent), the state on a pipe that is closed
//! once written, and its stdout discarded. Its stderr is captured (the last
//! [`STDERR_TAIL`] bytes) and put in the error when it fails. Waiting uses a pidfd and `poll`,
//! so this works the same in the runtime and in a freshly forked, single-threaded child.
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use oci_spec::runtime::Hook;

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

/// How often to check on a hook when the kernel has no pidfd (before Linux 5.3).
const FALLBACK_TICK: Duration = Duration::from_millis(10);

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
    for (index, hook) in hooks.iter().enumerate() {
        run_hook(kind, index, hook, state_json, default_env)?;
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
    let path: Box<str> = hook.path().display().to_string().into();
    let failed = |msg: String| HookError::Failed {
        kind,
        index,
        path: path.clone(),
        msg,
    };
    let sys = |step: &'static str, source: Errno| HookError::Sys {
        kind,
        index,
        path: path.clone(),
        step,
        source,
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
        Some(t) => Some(t),
        None => None,
    };

    let mut cmd = Command::new(exec_path(hook.path()));
    match hook.args().as_deref() {
        Some([argv0, rest @ ..]) => {
            cmd.arg0(argv0).args(rest);
        }
        // No args (or an empty list): argv[0] is the path, as execv callers do by convention.
        _ => {
            cmd.arg0(hook.path());
        }
    }
    cmd.env_clear();
    match (hook.env().as_deref(), default_env) {
        (Some(list), _) => {
            for entry in list {
                let (key, value) = entry
                    .split_once('=')
                    .ok_or_else(|| failed(format!("env entry {entry:?} is not KEY=VALUE")))?;
                if key.is_empty() {
                    return Err(failed(format!("env entry {entry:?} has an empty name")));
                }
                cmd.env(key, value);
            }
        }
        (None, Some(list)) => {
            use std::os::unix::ffi::OsStrExt;
            for entry in list {
                let bytes = entry.as_bytes();
                // Checked when the process environment was prepared: NAME=value.
                if let Some(eq) = bytes.iter().position(|&b| b == b'=') {
                    let key = std::ffi::OsStr::from_bytes(&bytes[..eq]);
                    cmd.env(key, std::ffi::OsStr::from_bytes(&bytes[eq + 1..]));
                }
            }
        }
        (None, None) => {}
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());

    let mut child = cmd.spawn().map_err(|e| match e.raw_os_error() {
        Some(errno) => sys("spawn", Errno::from_raw(errno)),
        None => failed(format!("spawn: {e}")),
    })?;

    // From here on the child must not outlive a failure of ours.
    let mut guard = ChildGuard(Some(&mut child));
    let outcome = supervise(guard.child(), state_json, timeout);
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
                secs: timeout.unwrap_or_default(),
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

/// A relative path without a slash would be searched in `PATH`; the hook's path is a file path.
fn exec_path(path: &Path) -> PathBuf {
    if path.as_os_str().as_encoded_bytes().contains(&b'/') {
        path.to_path_buf()
    } else {
        Path::new(".").join(path)
    }
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

/// Kills and reaps the hook when dropped while still armed.
struct ChildGuard<'a>(Option<&'a mut Child>);

impl ChildGuard<'_> {
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("guard is armed")
    }
    fn release(&mut self) {
        self.0 = None;
    }
}

impl Drop for ChildGuard<'_> {
    fn drop(&mut self) {
        if let Some(child) = self.0.take() {
            // The child is ours and not yet reaped, so its pid cannot have been reused.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

enum Supervised {
    Exited(ExitStatus, Vec<u8>),
    TimedOut(Vec<u8>),
}

/// Feed stdin, collect the stderr tail and wait for the exit, all within the timeout.
fn supervise(
    child: &mut Child,
    input: &[u8],
    timeout: Option<i64>,
) -> Result<Supervised, (&'static str, Errno)> {
    let start = Instant::now();
    // A deadline past what the clock can represent is no deadline at all.
    let deadline =
        timeout.and_then(|secs| start.checked_add(Duration::from_secs(secs.unsigned_abs())));

    let mut stdin: Option<OwnedFd> = child.stdin.take().map(OwnedFd::from);
    let mut stderr: Option<OwnedFd> = child.stderr.take().map(OwnedFd::from);
    for fd in stdin.iter().chain(stderr.iter()) {
        set_nonblocking(fd).map_err(|e| ("set pipe non-blocking", e))?;
    }
    if input.is_empty() {
        stdin = None;
    }
    let pidfd = pidfd_open(child.id()).map_err(|e| ("pidfd_open", e))?;

    let mut written = 0usize;
    let mut tail = Tail::default();
    loop {
        if let Some(status) = child.try_wait().map_err(|e| ("wait", io_errno(&e)))? {
            if let Some(fd) = &stderr {
                tail.drain(fd);
            }
            return Ok(Supervised::Exited(status, tail.into_bytes()));
        }

        let mut wait = match deadline {
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    if let Some(fd) = &stderr {
                        tail.drain(fd);
                    }
                    return Ok(Supervised::TimedOut(tail.into_bytes()));
                }
                Some(d - now)
            }
            None => None,
        };
        if pidfd.is_none() {
            wait = Some(wait.map_or(FALLBACK_TICK, |w| w.min(FALLBACK_TICK)));
        }
        let poll_timeout = match wait {
            // Round up so that a sub-millisecond rest does not spin.
            Some(w) => {
                PollTimeout::try_from(w.as_millis().saturating_add(1).min(i32::MAX as u128) as i32)
                    .unwrap_or(PollTimeout::MAX)
            }
            None => PollTimeout::NONE,
        };

        let mut fds = Vec::with_capacity(3);
        let mut idx_stdin = None;
        let mut idx_stderr = None;
        if let Some(fd) = &pidfd {
            fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
        }
        if let Some(fd) = &stdin {
            idx_stdin = Some(fds.len());
            fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLOUT));
        }
        if let Some(fd) = &stderr {
            idx_stderr = Some(fds.len());
            fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, poll_timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(("poll", e)),
        }
        let ready = |i: Option<usize>| {
            i.and_then(|i| fds[i].revents())
                .is_some_and(|r| !r.is_empty())
        };
        let stdin_ready = ready(idx_stdin);
        let stderr_ready = ready(idx_stderr);
        drop(fds);

        if stdin_ready {
            if let Some(fd) = &stdin {
                match write_no_sigpipe(fd, &input[written..]) {
                    Ok(n) => written += n,
                    Err(Errno::EAGAIN) | Err(Errno::EINTR) => {}
                    // The hook closed its stdin without reading it all: that is its business.
                    Err(Errno::EPIPE) => written = input.len(),
                    Err(e) => return Err(("write state to stdin", e)),
                }
                if written >= input.len() {
                    stdin = None; // close: the hook sees EOF
                }
            }
        }
        if stderr_ready {
            if let Some(fd) = &stderr {
                if tail.read_some(fd).map_err(|e| ("read stderr", e))? {
                    stderr = None;
                }
            }
        }
    }
}

fn io_errno(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

fn set_nonblocking(fd: &OwnedFd) -> Result<(), Errno> {
    let flags = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// A pidfd for our own unreaped child, or `None` when the kernel predates pidfds.
fn pidfd_open(pid: u32) -> Result<Option<OwnedFd>, Errno> {
    match crate::sys::pidfd_open(pid as i32) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::ENOSYS) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Write with SIGPIPE blocked in this thread, so that a hook that closed its stdin yields EPIPE
/// instead of killing a process that does not ignore SIGPIPE. A SIGPIPE raised by this write is
/// consumed; one that was already pending is left alone.
fn write_no_sigpipe(fd: &OwnedFd, buf: &[u8]) -> Result<usize, Errno> {
    let mut pipe_set = SigSet::empty();
    pipe_set.add(Signal::SIGPIPE);
    let old = pipe_set.thread_swap_mask(SigmaskHow::SIG_BLOCK)?;
    let was_pending = sigpipe_pending();
    let result = nix::unistd::write(fd, buf);
    if result == Err(Errno::EPIPE) && !was_pending && sigpipe_pending() {
        // Returns at once: the signal is pending and blocked.
        let _ = pipe_set.wait();
    }
    let _ = old.thread_set_mask();
    result
}

fn sigpipe_pending() -> bool {
    crate::sys::signal_pending(libc::SIGPIPE)
}

/// The last [`STDERR_TAIL`] bytes of a stream.
#[derive(Default)]
struct Tail {
    buf: Vec<u8>,
}

impl Tail {
    fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
        if self.buf.len() > STDERR_TAIL {
            let excess = self.buf.len() - STDERR_TAIL;
            self.buf.drain(..excess);
        }
    }

    /// Read what is available now; `Ok(true)` at end of stream.
    fn read_some(&mut self, fd: &OwnedFd) -> Result<bool, Errno> {
        let mut chunk = [0u8; 4096];
        loop {
            match nix::unistd::read(fd, &mut chunk) {
                Ok(0) => return Ok(true),
                Ok(n) => self.push(&chunk[..n]),
                Err(Errno::EAGAIN) => return Ok(false),
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// After the hook exited: take what is buffered without waiting for EOF (a background
    /// process the hook left behind may hold the pipe open).
    fn drain(&mut self, fd: &OwnedFd) {
        let _ = self.read_some(fd);
    }

    fn into_bytes(self) -> Vec<u8> {
        self.buf
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
        assert_eq!(exec_path(Path::new("/bin/true")), Path::new("/bin/true"));
        assert_eq!(exec_path(Path::new("true")), Path::new("./true"));
        assert_eq!(exec_path(Path::new("a/b")), Path::new("a/b"));
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
