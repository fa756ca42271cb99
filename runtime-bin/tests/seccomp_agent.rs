//! SCMP_ACT_NOTIFY: the test is the seccomp agent. It listens on a unix socket in the bundle,
//! receives the container process state with the listener fd for every process whose filter
//! notifies it, and answers the notified syscalls: `mkdir` succeeds without making anything,
//! `symlink` fails with ENOMEDIUM. What the container prints shows the agent's answers.
mod common;
use common::*;

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use libseccomp::{ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags, ScmpSyscall};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use serde_json::{json, Value};

const METADATA: &str = "casulo-test=1;answer=fake";

/// The agent: a listening socket and a thread that accepts connections; each listener it
/// receives is served by a thread of its own until every process using it is gone.
struct Agent {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    states: Arc<Mutex<Vec<Value>>>,
    answered: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Agent {
    fn start(dir: &Path) -> Agent {
        let path = dir.join("agent.sock");
        let listener = UnixListener::bind(&path).expect("bind the agent's socket");
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let states = Arc::new(Mutex::new(Vec::new()));
        let answered = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (stop, states, answered) = (stop.clone(), states.clone(), answered.clone());
            std::thread::spawn(move || {
                let mut servers = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let conn = match listener.accept() {
                        Ok((conn, _)) => conn,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5));
                            continue;
                        }
                        Err(e) => panic!("agent: accept: {e}"),
                    };
                    conn.set_nonblocking(false).unwrap();
                    conn.set_read_timeout(Some(Duration::from_secs(10)))
                        .unwrap();
                    // The runtime connects before it starts the process; the state and the
                    // listener come once the filter is loaded, then the connection closes.
                    let (fd, state) = match receive(&conn) {
                        Ok(got) => got,
                        Err(e) => {
                            eprintln!("agent: a connection brought no listener: {e}");
                            continue;
                        }
                    };
                    states.lock().unwrap().push(state);
                    let (stop, answered) = (stop.clone(), answered.clone());
                    servers.push(std::thread::spawn(move || serve(fd, &stop, &answered)));
                }
                for s in servers {
                    s.join().unwrap();
                }
            })
        };
        Agent {
            path,
            stop,
            states,
            answered,
            thread: Some(thread),
        }
    }

    /// The first `n` states received, waiting up to 10 s for them.
    fn states(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.states.lock().unwrap().clone();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn answered(&self) -> usize {
        self.answered.load(Ordering::SeqCst)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let r = t.join();
            if !std::thread::panicking() {
                r.expect("agent thread");
            }
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Read one connection: exactly one fd, sent with the first bytes (SCM_RIGHTS), and the JSON
/// document, which may come in several parts. The spec wants the connection closed after it:
/// casulo's is checked for that; runc 1.1 keeps its end open while `run` waits for the
/// container, so an agent cannot wait for the end of the stream there.
fn receive(conn: &std::os::unix::net::UnixStream) -> Result<(OwnedFd, Value), String> {
    use std::io::Read;
    let (fd, mut bytes) =
        casulo::__private::tty::recv_fd(conn.as_fd()).map_err(|e| e.to_string())?;
    let state = loop {
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(v) => break v,
            Err(e) if e.is_eof() => {}
            Err(e) => return Err(format!("{e}: {}", String::from_utf8_lossy(&bytes))),
        }
        let mut buf = [0u8; 4096];
        match (&*conn).read(&mut buf) {
            Ok(0) => {
                return Err(format!(
                    "end of stream in: {}",
                    String::from_utf8_lossy(&bytes)
                ))
            }
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("read the state: {e}")),
        }
    };
    if is_casulo() {
        let mut rest = Vec::new();
        (&*conn)
            .read_to_end(&mut rest)
            .map_err(|e| format!("the connection stays open after the state: {e}"))?;
        if !rest.is_empty() {
            return Err(format!("bytes after the state: {rest:?}"));
        }
    }
    Ok((fd, state))
}

/// Answer notifications on `fd` until no process uses the filter any more (POLLHUP) or the
/// test ends.
fn serve(fd: OwnedFd, stop: &AtomicBool, answered: &AtomicUsize) {
    let mkdir = ["mkdir", "mkdirat"].map(|n| ScmpSyscall::from_name(n).unwrap());
    let symlink = ["symlink", "symlinkat"].map(|n| ScmpSyscall::from_name(n).unwrap());
    while !stop.load(Ordering::SeqCst) {
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(50u8)) {
            Ok(0) | Err(nix::Error::EINTR) => continue,
            Ok(_) => {}
            Err(e) => panic!("agent: poll: {e}"),
        }
        let revents = fds[0].revents().unwrap_or(PollFlags::empty());
        if !revents.contains(PollFlags::POLLIN) {
            if revents.intersects(PollFlags::POLLHUP | PollFlags::POLLERR) {
                return;
            }
            continue;
        }
        // The process may be gone between poll and receive, or before the answer: not ours
        // to fail on.
        let Ok(req) = ScmpNotifReq::receive(fd.as_raw_fd()) else {
            continue;
        };
        let resp = if mkdir.contains(&req.data.syscall) {
            // Success, without making the directory.
            ScmpNotifResp::new_val(req.id, 0, ScmpNotifRespFlags::empty())
        } else if symlink.contains(&req.data.syscall) {
            ScmpNotifResp::new_error(req.id, -libc::ENOMEDIUM, ScmpNotifRespFlags::empty())
        } else {
            ScmpNotifResp::new_error(req.id, -libc::ENOSYS, ScmpNotifRespFlags::empty())
        };
        if resp.respond(fd.as_raw_fd()).is_ok() {
            answered.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// A profile that notifies the agent at `listener` on mkdir and symlink.
fn profile(listener: &Path) -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": listener,
        "listenerMetadata": METADATA,
        "syscalls": [{
            "names": ["mkdir", "mkdirat", "symlink", "symlinkat"],
            "action": "SCMP_ACT_NOTIFY"
        }]
    })
}

/// What the container runs: a notified mkdir that "succeeds", a notified symlink that fails,
/// and a plain write that is not notified.
const SCRIPT: &str = "mkdir /out/made && echo MKDIR_OK; \
    if [ -d /out/made ]; then echo EXISTS; else echo ABSENT; fi; \
    ln -s target /out/link 2>&1 || echo LN_FAILED; \
    echo written > /out/plain && echo PLAIN_OK";

fn check_output(out: &str, fd_dir: &Path) {
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.contains(&"MKDIR_OK"), "mkdir reported success: {out}");
    assert!(
        lines.contains(&"ABSENT"),
        "the agent made no directory: {out}"
    );
    assert!(lines.contains(&"LN_FAILED"), "symlink failed: {out}");
    assert!(
        out.contains("No medium found"),
        "with the agent's errno: {out}"
    );
    assert!(lines.contains(&"PLAIN_OK"), "other syscalls run: {out}");
    assert!(!fd_dir.join("made").exists() && !fd_dir.join("link").exists());
    assert_eq!(
        std::fs::read_to_string(fd_dir.join("plain")).unwrap(),
        "written\n"
    );
}

fn check_process_state(doc: &Value, id: &str, status: &str, pid: i64, init_pid: i64) {
    assert_eq!(doc["fds"], json!(["seccompFd"]), "{doc}");
    assert!(pid > 0);
    assert_eq!(doc["pid"], pid, "{doc}");
    assert_eq!(doc["metadata"], METADATA, "{doc}");
    assert!(doc["ociVersion"]
        .as_str()
        .is_some_and(|v| v.starts_with("1.")));
    assert_eq!(doc["state"]["id"], id, "{doc}");
    assert_eq!(doc["state"]["status"], status, "{doc}");
    assert_eq!(doc["state"]["pid"], init_pid, "{doc}");
}

#[test]
fn create_start_hands_the_listener_to_the_agent() {
    if !can_run("create_start_hands_the_listener_to_the_agent") {
        return;
    }
    let mut b = Bundle::new(
        "agentrun",
        &["sh", "-c", &format!("{{ {SCRIPT}; }} > /out/r")],
    );
    let out = b.with_out_dir();
    let agent = Agent::start(&b.dir);
    // Without no_new_privs the filter is loaded before the capabilities go.
    b.config["process"]["noNewPrivileges"] = false.into();
    b.config["linux"]["seccomp"] = profile(&agent.path);
    b.save();

    let r = b.create();
    assert!(r.ok(), "create: {}", r.stderr);
    let states = agent.states(1);
    assert_eq!(states.len(), 1, "one state for the init: {states:?}");
    let init_pid = b.state().expect("state")["pid"].as_i64().unwrap();
    // The init is the process; the container is being created.
    check_process_state(&states[0], &b.id, "creating", init_pid, init_pid);
    assert_eq!(states[0]["state"]["bundle"], b.dir.to_str().unwrap());

    let r = b.rt(&["start", &b.id]);
    assert!(r.ok(), "start: {}", r.stderr);
    assert!(b.wait_status("stopped"), "the container ends");
    check_output(&std::fs::read_to_string(out.join("r")).unwrap(), &out);
    assert!(
        agent.answered() >= 2,
        "the agent answered mkdir and symlink"
    );
}

#[test]
fn run_with_no_new_privileges() {
    if !can_run("run_with_no_new_privileges") {
        return;
    }
    let mut b = Bundle::new("agentnnp", &["sh", "-c", SCRIPT]);
    let out = b.with_out_dir();
    let agent = Agent::start(&b.dir);
    b.config["process"]["noNewPrivileges"] = true.into();
    b.config["linux"]["seccomp"] = profile(&agent.path);
    b.save();
    let r = b.run();
    assert!(r.ok(), "run: {} {}", r.stdout, r.stderr);
    check_output(&r.stdout, &out);
    let states = agent.states(1);
    assert_eq!(states.len(), 1, "{states:?}");
    let pid = states[0]["pid"].as_i64().unwrap();
    check_process_state(&states[0], &b.id, "creating", pid, pid);
}

#[test]
fn exec_hands_its_own_listener_to_the_agent() {
    if !can_run("exec_hands_its_own_listener_to_the_agent") {
        return;
    }
    let mut b = Bundle::new("agentexec", &["sleep", "100"]);
    let out = b.with_out_dir();
    let agent = Agent::start(&b.dir);
    b.config["process"]["noNewPrivileges"] = false.into();
    b.config["linux"]["seccomp"] = profile(&agent.path);
    b.save();
    let r = b.run_detached();
    assert!(r.ok(), "run: {}", r.stderr);
    let init_pid = b.state().expect("state")["pid"].as_i64().unwrap();
    assert_eq!(agent.states(1).len(), 1);

    // The exec'd process has the container's profile, and no_new_privs of its own.
    let process = json!({
        "terminal": false,
        "user": {"uid": 0, "gid": 0},
        "args": ["sh", "-c", SCRIPT],
        "env": ["PATH=/bin:/sbin:/usr/bin"],
        "cwd": "/",
        "noNewPrivileges": true
    });
    let process_file = b.dir.join("process.json");
    std::fs::write(&process_file, process.to_string()).unwrap();
    let pid_file = b.dir.join("exec.pid");
    let r = b.rt(&[
        "exec",
        "--process",
        process_file.to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        &b.id,
    ]);
    assert!(r.ok(), "exec: {} {}", r.stdout, r.stderr);
    check_output(&r.stdout, &out);
    let states = agent.states(2);
    assert_eq!(states.len(), 2, "one state per process: {states:?}");
    let exec_pid: i64 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_ne!(exec_pid, init_pid);
    // The exec'd process is the process; the state is the running container's.
    check_process_state(&states[1], &b.id, "running", exec_pid, init_pid);
    let r = b.rt(&["kill", &b.id, "KILL"]);
    assert!(r.ok(), "kill: {}", r.stderr);
    assert!(b.wait_status("stopped"));
}

/// [`fails_cleanly`], and the cause in the message of either runtime.
fn fails_cleanly_naming(b: &Bundle, r: &Run, cause: &str) {
    fails_cleanly(b, r, cause);
    assert!(
        r.stderr.contains(cause),
        "expected {cause:?} in: {}",
        r.stderr
    );
}

#[test]
fn notify_without_listener_path_fails() {
    if !can_run("notify_without_listener_path_fails") {
        return;
    }
    let mut b = Bundle::new("agentnopath", &["true"]);
    let mut p = profile(Path::new("/unused"));
    p.as_object_mut().unwrap().remove("listenerPath");
    p.as_object_mut().unwrap().remove("listenerMetadata");
    b.config["linux"]["seccomp"] = p;
    b.save();
    let r = b.run();
    fails_cleanly_naming(&b, &r, "listenerPath");
}

#[test]
fn listener_path_nobody_listens_on_fails() {
    if !can_run("listener_path_nobody_listens_on_fails") {
        return;
    }
    let mut b = Bundle::new("agentnobody", &["true"]);
    let path = b.dir.join("nobody.sock");
    b.config["linux"]["seccomp"] = profile(&path);
    b.save();
    let r = b.run();
    fails_cleanly_naming(&b, &r, path.to_str().unwrap());
}

#[test]
fn notify_on_write_is_refused() {
    if !can_run("notify_on_write_is_refused") {
        return;
    }
    let mut b = Bundle::new("agentwrite", &["true"]);
    let agent = Agent::start(&b.dir);
    let mut p = profile(&agent.path);
    p["syscalls"][0]["names"] = json!(["write"]);
    b.config["linux"]["seccomp"] = p;
    b.save();
    let r = b.run();
    fails_cleanly_naming(&b, &r, "write syscall");
    // Anything the runtime sent before failing reaches the agent's thread within moments.
    std::thread::sleep(Duration::from_millis(200));
    assert!(agent.states(0).is_empty());
}

#[test]
fn wait_killable_recv() {
    if !can_run("wait_killable_recv") {
        return;
    }
    if !is_casulo() {
        eprintln!(
            "SKIPPED: wait_killable_recv: runc 1.1 refuses every seccomp flag \
             (\"seccomp flags are not yet supported by runc\")"
        );
        return;
    }
    let mut b = Bundle::new("agentkillable", &["sh", "-c", SCRIPT]);
    let out = b.with_out_dir();
    let agent = Agent::start(&b.dir);
    let mut p = profile(&agent.path);
    p["flags"] = json!(["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]);
    b.config["linux"]["seccomp"] = p;
    b.save();
    let r = b.run();
    if !r.ok() && r.stderr.contains("5.19") {
        eprintln!(
            "SKIPPED: wait_killable_recv: the kernel lacks the flag: {}",
            r.stderr
        );
        return;
    }
    assert!(r.ok(), "run: {} {}", r.stdout, r.stderr);
    check_output(&r.stdout, &out);
    assert_eq!(agent.states(1).len(), 1);
}
