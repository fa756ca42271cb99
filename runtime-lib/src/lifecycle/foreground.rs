//! A container in the foreground: wait for its init, forwarding signals to it, and turn its end
//! into an exit status as a shell reports it.

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::process::{sys, ProcessError};

/// The signals forwarded to the container: all that a process can catch, but the ones that
/// describe this process's own faults or children.
fn forwarded() -> SigSet {
    let mut set = SigSet::all();
    for s in [
        Signal::SIGKILL,
        Signal::SIGSTOP,
        Signal::SIGSEGV,
        Signal::SIGBUS,
        Signal::SIGILL,
        Signal::SIGFPE,
        Signal::SIGTRAP,
        Signal::SIGABRT,
        Signal::SIGSYS,
    ] {
        set.remove(s);
    }
    set
}

/// Block the forwarded signals (and SIGCHLD) in the calling thread, so that none is lost
/// between create and [`wait`]. The container's init unblocks everything before exec.
pub fn block_signals() -> Result<(), ProcessError> {
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&forwarded()), None)
        .map_err(sys("sigprocmask"))
}

/// The exit status of a process as a shell reports it.
pub fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

/// Wait for `pid` (our child: see `stage::fork_if_needed`). With `forward`, every
/// blocked signal received meanwhile is sent to it; other children that end are reaped.
pub fn wait(pid: i32, forward: bool) -> Result<i32, ProcessError> {
    wait_with(pid, forward, None)
}

/// [`wait`], calling `on_winch` instead of forwarding SIGWINCH (a terminal the caller proxies
/// is resized rather than signalled).
pub fn wait_with(
    pid: i32,
    forward: bool,
    on_winch: Option<&dyn Fn()>,
) -> Result<i32, ProcessError> {
    if !forward {
        loop {
            match waitpid(Pid::from_raw(pid), None) {
                Ok(st) => {
                    if let Some(code) = exit_code(st) {
                        return Ok(code);
                    }
                }
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(sys(format!("wait for pid {pid}"))(e)),
            }
        }
    }
    let set = forwarded();
    loop {
        // Reap first: the child may have ended before we got here.
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => break,
                Ok(st) => {
                    if st.pid() == Some(Pid::from_raw(pid)) {
                        if let Some(code) = exit_code(st) {
                            return Ok(code);
                        }
                    }
                }
                Err(nix::Error::EINTR) => continue,
                Err(nix::Error::ECHILD) => {
                    return Err(ProcessError::Invalid(format!(
                        "pid {pid} is not a child of this process"
                    )))
                }
                Err(e) => return Err(sys("wait")(e)),
            }
        }
        let sig = set.wait().map_err(sys("sigwait"))?;
        match (sig, on_winch) {
            (Signal::SIGCHLD, _) => {}
            (Signal::SIGWINCH, Some(f)) => f(),
            _ => {
                let _ = nix::sys::signal::kill(Pid::from_raw(pid), sig);
            }
        }
    }
}
