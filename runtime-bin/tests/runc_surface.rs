//! The rest of runc's command surface: every flag runc's help lists is accepted, `--pidfd-socket`
//! of `create`, `run` and `exec` (a pidfd of the init or of the exec'd process over a unix
//! socket, as runc sends it), `exec --ignore-paused`, `run --no-subreaper`, and a created
//! container that SIGTERM stops before its start (what a `--pidfd-socket` holder relies on).
mod common;
use common::*;

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// runc's subcommands and the flags its `--help` lists for each (runc 1.2 and later), and
/// runc's global flags.
const RUNC_FLAGS: &[(&str, &[&str])] = &[
    (
        "create",
        &[
            "--bundle",
            "--console-socket",
            "--pidfd-socket",
            "--pid-file",
            "--no-pivot",
            "--no-new-keyring",
            "--preserve-fds",
        ],
    ),
    (
        "run",
        &[
            "--bundle",
            "--console-socket",
            "--pidfd-socket",
            "--detach",
            "--keep",
            "--pid-file",
            "--no-subreaper",
            "--no-pivot",
            "--no-new-keyring",
            "--preserve-fds",
        ],
    ),
    (
        "exec",
        &[
            "--console-socket",
            "--pidfd-socket",
            "--cwd",
            "--env",
            "--tty",
            "--user",
            "--additional-gids",
            "--process",
            "--detach",
            "--pid-file",
            "--process-label",
            "--apparmor",
            "--no-new-privs",
            "--cap",
            "--preserve-fds",
            "--cgroup",
            "--ignore-paused",
        ],
    ),
    ("delete", &["--force"]),
    ("list", &["--format", "--quiet"]),
    ("ps", &["--format"]),
    ("events", &["--interval", "--stats"]),
    ("spec", &["--bundle", "--rootless"]),
    (
        "update",
        &[
            "--resources",
            "--blkio-weight",
            "--cpu-period",
            "--cpu-quota",
            "--cpu-burst",
            "--cpu-share",
            "--cpu-rt-period",
            "--cpu-rt-runtime",
            "--cpuset-cpus",
            "--cpuset-mems",
            "--memory",
            "--cpu-idle",
            "--memory-reservation",
            "--memory-swap",
            "--pids-limit",
            "--l3-cache-schema",
            "--mem-bw-schema",
        ],
    ),
    ("start", &[]),
    ("state", &[]),
    ("kill", &[]),
    ("pause", &[]),
    ("resume", &[]),
    ("features", &[]),
];

const RUNC_GLOBAL_FLAGS: &[&str] = &[
    "--debug",
    "--log",
    "--log-format",
    "--root",
    "--systemd-cgroup",
    "--rootless",
    "--version",
];

fn help(args: &[&str]) -> Run {
    let mut c = std::process::Command::new(runtime());
    c.args(args);
    output_within(c, Duration::from_secs(10))
}

/// Every command and flag of runc's help is in ours (each is implemented, or refused by name
/// when used); `h` is `help`, as runc's.
#[test]
fn every_command_and_flag_of_runcs_help_is_accepted() {
    let top = help(&["--help"]);
    assert!(top.ok(), "{}", top.stderr);
    for flag in RUNC_GLOBAL_FLAGS {
        assert!(
            top.stdout.contains(flag),
            "--help lacks {flag}: {}",
            top.stdout
        );
    }
    for (sub, flags) in RUNC_FLAGS {
        assert!(
            top.stdout.contains(sub),
            "--help lacks {sub}: {}",
            top.stdout
        );
        let r = help(&[sub, "--help"]);
        assert!(r.ok(), "{sub} --help: {}", r.stderr);
        for flag in *flags {
            // A whole flag: --pid-file is not --pidfd-socket's prefix, nor the reverse.
            let listed = r
                .stdout
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .any(|w| w == *flag);
            assert!(listed, "{sub} --help lacks {flag}: {}", r.stdout);
        }
    }
    let h = help(&["h"]);
    assert!(h.ok(), "h: {}", h.stderr);
    assert!(h.stdout.contains("exec"), "h: {}", h.stdout);
    let h = help(&["h", "exec"]);
    assert!(
        h.ok() && h.stdout.contains("--ignore-paused"),
        "h exec: {}",
        h.stdout
    );
}

/// A listening socket for `--pidfd-socket` in the bundle, reachable by the runtime's user.
fn pidfd_listener(b: &Bundle, name: &str) -> (UnixListener, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let path = b.dir.join(name);
    let l = UnixListener::bind(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
    (l, path)
}

/// The pidfd the runtime sent (it is queued: the runtime does not wait for the accept) and the
/// name that came with it.
fn receive_pidfd(l: &UnixListener) -> (OwnedFd, String) {
    let (conn, _) = l.accept().unwrap();
    let (fd, name) = casulo::__private::tty::recv_fd(conn.as_fd()).expect("a pidfd");
    (fd, String::from_utf8_lossy(&name).into_owned())
}

/// The pid a pidfd refers to, as the kernel reports it.
fn pidfd_pid(fd: &OwnedFd) -> i32 {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .unwrap_or_else(|| panic!("not a pidfd: {info}"))
        .trim()
        .parse()
        .unwrap()
}

/// Whether the process behind `fd` exits within `limit` (a pidfd polls readable then).
fn pidfd_exits(fd: &OwnedFd, limit: Duration) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    let ms = PollTimeout::try_from(limit.as_millis() as i32).unwrap();
    matches!(poll(&mut fds, ms), Ok(n) if n > 0)
}

fn signal(fd: &OwnedFd, sig: i32) {
    casulo::__private::pidfd::pidfd_send_signal(fd.as_fd(), sig).expect("pidfd_send_signal");
}

fn init_pid(b: &Bundle) -> i32 {
    b.state().expect("state")["pid"].as_i64().unwrap() as i32
}

/// `create --pidfd-socket`: the socket gets a pidfd of the init (named `standard`, as runc
/// names it) before create returns; SIGTERM through it stops the created container.
#[test]
fn create_sends_a_pidfd_of_the_init() {
    if !can_run("create_sends_a_pidfd_of_the_init") {
        return;
    }
    let b = Bundle::new("srfcreate", &["sleep", "100"]);
    let (l, sock) = pidfd_listener(&b, "pidfd.sock");
    let r = b.rt(&[
        "create",
        "--pidfd-socket",
        sock.to_str().unwrap(),
        "--bundle",
        b.dir.to_str().unwrap(),
        &b.id,
    ]);
    assert!(r.ok(), "{}", r.stderr);
    let (fd, name) = receive_pidfd(&l);
    assert_eq!(name, "standard");
    assert_eq!(pidfd_pid(&fd), init_pid(&b));
    assert_eq!(b.status().as_deref(), Some("created"));
    signal(&fd, libc::SIGTERM);
    assert!(
        pidfd_exits(&fd, Duration::from_secs(5)),
        "SIGTERM did not stop the init"
    );
    assert!(b.wait_status("stopped"), "status {:?}", b.status());
}

/// `run --detach --pidfd-socket`: a pidfd of the running init; SIGKILL through it stops it.
#[test]
fn run_sends_a_pidfd_of_the_init() {
    if !can_run("run_sends_a_pidfd_of_the_init") {
        return;
    }
    let b = Bundle::new("srfrun", &["sleep", "100"]);
    let (l, sock) = pidfd_listener(&b, "pidfd.sock");
    let r = b.rt(&[
        "run",
        "--detach",
        "--pidfd-socket",
        sock.to_str().unwrap(),
        "--bundle",
        b.dir.to_str().unwrap(),
        &b.id,
    ]);
    assert!(r.ok(), "{}", r.stderr);
    let (fd, name) = receive_pidfd(&l);
    assert_eq!(name, "standard");
    assert_eq!(pidfd_pid(&fd), init_pid(&b));
    assert_eq!(b.status().as_deref(), Some("running"));
    signal(&fd, libc::SIGKILL);
    assert!(pidfd_exits(&fd, Duration::from_secs(5)));
    assert!(b.wait_status("stopped"), "status {:?}", b.status());
}

/// `exec --pidfd-socket`: a pidfd of the exec'd process (named `setns`), the pid of
/// `--pid-file`; killing it leaves the container running.
#[test]
fn exec_sends_a_pidfd_of_the_process() {
    if !can_run("exec_sends_a_pidfd_of_the_process") {
        return;
    }
    let b = Bundle::new("srfexec", &["sleep", "100"]);
    assert!(b.run_detached().ok());
    let (l, sock) = pidfd_listener(&b, "pidfd.sock");
    let pid_file = b.dir.join("exec.pid");
    let r = b.rt(&[
        "exec",
        "--detach",
        "--pid-file",
        pid_file.to_str().unwrap(),
        "--pidfd-socket",
        sock.to_str().unwrap(),
        &b.id,
        "sleep",
        "100",
    ]);
    assert!(r.ok(), "{}", r.stderr);
    let (fd, name) = receive_pidfd(&l);
    assert_eq!(name, "setns");
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pidfd_pid(&fd), pid);
    assert_ne!(pid, init_pid(&b));
    signal(&fd, libc::SIGKILL);
    assert!(pidfd_exits(&fd, Duration::from_secs(5)));
    assert_eq!(b.status().as_deref(), Some("running"));
}

/// The processes of the container now.
fn processes(b: &Bundle) -> Vec<i64> {
    let ps = b.rt(&["ps", "--format", "json", &b.id]);
    assert!(ps.ok(), "{}", ps.stderr);
    serde_json::from_str(&ps.stdout).expect("ps JSON")
}

/// A `--pidfd-socket` that is missing or no socket: create fails naming it, exit 1, nothing
/// left; exec fails (exit 255) and starts nothing.
#[test]
fn a_bad_pidfd_socket_fails_cleanly() {
    if !can_run("a_bad_pidfd_socket_fails_cleanly") {
        return;
    }
    let b = Bundle::new("srfbadsock", &["sleep", "100"]);
    let missing = b.dir.join("missing.sock");
    let file = b.dir.join("config.json");
    let bundle = b.dir.to_str().unwrap();
    for (path, cause) in [(&missing, "missing.sock"), (&file, "not a socket")] {
        let r = b.rt(&[
            "create",
            "--pidfd-socket",
            path.to_str().unwrap(),
            "--bundle",
            bundle,
            &b.id,
        ]);
        fails_cleanly(&b, &r, cause);
    }
    assert!(b.run_detached().ok());
    let before = processes(&b);
    for (path, cause) in [(&missing, "missing.sock"), (&file, "not a socket")] {
        let r = b.rt(&[
            "exec",
            "--pidfd-socket",
            path.to_str().unwrap(),
            &b.id,
            "sleep",
            "100",
        ]);
        assert_eq!(r.status, Some(255), "{}", r.stderr);
        if is_casulo() {
            for want in [b.id.as_str(), "exec", cause] {
                assert!(r.stderr.contains(want), "expected {want:?}: {}", r.stderr);
            }
        }
        assert_eq!(processes(&b), before, "the failed exec left a process");
    }
}

/// A holder that hangs up before the pidfd is sent: create fails (exit 1, the socket named)
/// and leaves nothing. The holder shuts its end as soon as the runtime connects; casulo sends
/// once the init exists, later than that, and runc after the createRuntime hooks, which here
/// wait for the hang-up. A create that sent before the hang-up all the same (a test thread
/// held up that long) is not a failure of the runtime: it is deleted and tried again.
#[test]
fn a_pidfd_socket_that_hangs_up_fails_cleanly() {
    if !can_run("a_pidfd_socket_that_hangs_up_fails_cleanly") {
        return;
    }
    let mut b = Bundle::new("srfhangup", &["sleep", "100"]);
    let closed = b.dir.join("closed");
    let wait = format!(
        "i=0; while [ ! -e '{}' ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done",
        closed.display()
    );
    b.config["hooks"] =
        serde_json::json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", wait]}]});
    b.save();
    for attempt in 1..=3 {
        let _ = std::fs::remove_file(&closed);
        let (l, sock) = pidfd_listener(&b, &format!("pidfd{attempt}.sock"));
        let holder = std::thread::spawn({
            let closed = closed.clone();
            move || {
                let (conn, _) = l.accept().unwrap();
                conn.shutdown(std::net::Shutdown::Both).unwrap();
                std::fs::write(closed, b"").unwrap();
                conn
            }
        });
        let r = b.rt(&[
            "create",
            "--pidfd-socket",
            sock.to_str().unwrap(),
            "--bundle",
            b.dir.to_str().unwrap(),
            &b.id,
        ]);
        drop(holder.join().unwrap());
        if r.ok() {
            eprintln!("attempt {attempt}: the pidfd went out before the hang-up; again");
            assert!(b.rt(&["delete", "--force", &b.id]).ok());
            continue;
        }
        fails_cleanly(&b, &r, &format!("pidfd{attempt}.sock"));
        return;
    }
    panic!("every create sent its pidfd before the holder hung up");
}

/// A paused container refuses exec (saying how to override, in runc's words); with
/// `--ignore-paused` the process joins the frozen container and runs once it is resumed, and
/// the container can be looked at and resumed meanwhile.
#[test]
fn exec_ignore_paused_runs_once_resumed() {
    if !can_run("exec_ignore_paused_runs_once_resumed")
        || !runs_rootless(
            "exec_ignore_paused_runs_once_resumed",
            "no freezer without a delegated cgroup",
        )
    {
        return;
    }
    let b = Bundle::new("srfpaused", &["sleep", "100"]);
    assert!(b.run_detached().ok());
    assert!(b.rt(&["pause", &b.id]).ok());
    let r = b.rt(&["exec", &b.id, "echo", "ok"]);
    assert_eq!(r.status, Some(255), "{}", r.stderr);
    assert!(r.stderr.contains("--ignore-paused"), "{}", r.stderr);
    let delay = Duration::from_millis(1500);
    let t0 = Instant::now();
    let (r, status_meanwhile) = std::thread::scope(|s| {
        let exec = s.spawn(|| b.rt(&["exec", "--ignore-paused", &b.id, "echo", "ok"]));
        std::thread::sleep(delay);
        let status = b.status();
        let resume = b.rt(&["resume", &b.id]);
        assert!(resume.ok(), "{}", resume.stderr);
        (exec.join().unwrap(), status)
    });
    assert!(r.ok(), "{}", r.stderr);
    assert_eq!(r.stdout, "ok\n");
    assert!(
        t0.elapsed() >= delay,
        "the exec ran in the frozen container"
    );
    assert_eq!(status_meanwhile.as_deref(), Some("paused"));
    // In a running container the flag changes nothing.
    let r = b.rt(&["exec", "--ignore-paused", &b.id, "echo", "again"]);
    assert!(r.ok(), "{}", r.stderr);
    assert_eq!(r.stdout, "again\n");
}

/// A created container's init ends on SIGTERM before its start, as runc's does, and not on
/// SIGUSR1.
#[test]
fn a_created_container_stops_on_sigterm() {
    if !can_run("a_created_container_stops_on_sigterm") {
        return;
    }
    let b = Bundle::new("srfterm", &["sleep", "100"]);
    assert!(b.create().ok());
    assert!(b.rt(&["kill", &b.id, "USR1"]).ok());
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(b.status().as_deref(), Some("created"));
    assert!(b.rt(&["kill", &b.id, "TERM"]).ok());
    assert!(b.wait_status("stopped"), "status {:?}", b.status());
}

/// `run --no-subreaper` runs the container in the foreground as `run` does (casulo is never a
/// child subreaper: there is nothing to turn off).
#[test]
fn run_no_subreaper_runs() {
    if !can_run("run_no_subreaper_runs") {
        return;
    }
    let b = Bundle::new("srfnosub", &["sh", "-c", "echo hi; exit 3"]);
    let r = b.rt(&[
        "run",
        "--no-subreaper",
        "--bundle",
        b.dir.to_str().unwrap(),
        &b.id,
    ]);
    assert_eq!(r.status, Some(3), "{}", r.stderr);
    assert_eq!(r.stdout, "hi\n");
}
