//! checkpoint and restore through CRIU: a container counting into a bind-mounted file is
//! checkpointed and restored and counts on from where it stopped; `--leave-running` and a
//! restore under a new id; a pre-dump then a dump on top of it (`--parent-path`); a restore
//! from a damaged image fails naming CRIU's log and leaves nothing behind; a container with a
//! terminal restored with its new pty master handed to `--console-socket` (and refused
//! without one). Where CRIU cannot work (`criu check` fails: the CRIU of the test hosts does
//! on their kernel, see the README), those print a SKIP with CRIU's own reason; what needs no
//! CRIU (refusals) runs everywhere.
//!
//! An established TCP connection in the container's own network namespace is checkpointed
//! and restored with `--tcp-established`. The other containers use the host's network, which
//! CRIU leaves alone: dumping a network namespace takes its conntrack table over ctnetlink,
//! which answers EINVAL where the kernel's `nf_conntrack_netlink` is not loaded.
mod common;
use common::*;

use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

/// A runtime command whose stdio are pipes, as an engine's are (CRIU dumps and restores a
/// container's pipes; a file of the host's it could not): the pipes live as long as this.
struct Piped {
    child: Child,
}

impl Piped {
    fn spawn(mut cmd: Command) -> Piped {
        let child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn runtime");
        Piped { child }
    }

    /// Wait (at most 60 s) for the runtime to exit; its status and what it wrote to stderr
    /// (read without waiting for the container, which keeps the pipe open).
    fn finish(&mut self) -> (Option<i32>, String) {
        let status = exit_within(&mut self.child, Duration::from_secs(60))
            .expect("the runtime did not finish")
            .code();
        let mut err = String::new();
        if let Some(e) = self.child.stderr.as_mut() {
            let fd = e.as_raw_fd();
            let fl = nix::fcntl::fcntl(&*e, nix::fcntl::FcntlArg::F_GETFL).unwrap();
            let fl = nix::fcntl::OFlag::from_bits_truncate(fl) | nix::fcntl::OFlag::O_NONBLOCK;
            nix::fcntl::fcntl(&*e, nix::fcntl::FcntlArg::F_SETFL(fl)).unwrap();
            let mut buf = [0u8; 65536];
            if let Ok(n) = e.read(&mut buf) {
                err = String::from_utf8_lossy(&buf[..n]).into_owned();
            }
            let _ = fd;
        }
        (status, err)
    }
}

/// `child`'s exit status, once it has exited; `None` if it has not within `limit`.
fn exit_within(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return Some(st);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A counting container on the host's network, writing its count to `<out>/count`.
fn counter(name: &str) -> (Bundle, PathBuf) {
    let mut b = Bundle::new(
        name,
        &[
            "sh",
            "-c",
            "i=0; while true; do i=$((i+1)); echo $i > /out/count; sleep 0.05; done",
        ],
    );
    b.without_namespace("network");
    let out = b.with_out_dir();
    (b, out)
}

fn count(out: &Path) -> u64 {
    std::fs::read_to_string(out.join("count"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn wait_count_above(out: &Path, n: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let c = count(out);
        if c > n {
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "the count stays at {c}, not above {n}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A counting container running (`run -d` with pipes), counted past 3: the bundle, its out
/// dir, the pipes (kept open for the container) and the image directory to use.
fn counting(name: &str) -> (Bundle, PathBuf, Piped, PathBuf) {
    let (b, out) = counter(name);
    let pipes = run_piped(&b, &b.id);
    wait_count_above(&out, 3);
    let images = b.dir.join("img");
    (b, out, pipes, images)
}

/// `checkpoint EXTRA... --image-path IMAGES ID`, which must succeed.
fn checkpoint(b: &Bundle, images: &Path, extra: &[&str]) {
    let mut args = vec!["checkpoint"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--image-path", images.to_str().unwrap(), &b.id]);
    let r = b.rt(&args);
    assert!(r.ok(), "checkpoint {extra:?}: {}", r.stderr);
}

/// `run -d` with pipes; the pipes are returned (kept open for the container).
fn run_piped(b: &Bundle, id: &str) -> Piped {
    let mut p = Piped::spawn(b.cmd(&["run", "-d", "--bundle", b.dir.to_str().unwrap(), id]));
    let (st, err) = p.finish();
    assert_eq!(st, Some(0), "run -d: {err}");
    p
}

fn restore_piped(
    b: &Bundle,
    id: &str,
    images: &Path,
    extra: &[&str],
) -> (Piped, Option<i32>, String) {
    let mut args = vec![
        "restore",
        "-d",
        "--bundle",
        b.dir.to_str().unwrap(),
        "--image-path",
        images.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args.push(id);
    let mut p = Piped::spawn(b.cmd(&args));
    let (st, err) = p.finish();
    (p, st, err)
}

/// The count stands still (the processes are gone or stopped).
fn assert_stopped_counting(out: &Path) -> u64 {
    let c = count(out);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(count(out), c, "the container still counts");
    c
}

#[test]
fn checkpoint_then_restore_counts_on() {
    if !criu_works("checkpoint_then_restore_counts_on") {
        return;
    }
    let (b, out, _pipes, images) = counting("crcount");
    checkpoint(&b, &images, &[]);
    // runc's way: without --leave-running the container is gone.
    assert!(
        b.state().is_none(),
        "the container is gone after checkpoint"
    );
    let stopped = assert_stopped_counting(&out);
    assert!(images.join("descriptors.json").exists());

    let (_rp, st, err) = restore_piped(&b, &b.id, &images, &[]);
    assert_eq!(st, Some(0), "restore: {err}");
    let s = b.state().expect("state after restore");
    assert_eq!(s["status"], "running", "{s}");
    let first = wait_count_above(&out, stopped);
    assert!(
        first <= stopped + 40,
        "the count went on from {stopped} (got {first}), it did not start again"
    );
    wait_count_above(&out, first + 3);
}

#[test]
fn leave_running_then_restore_under_a_new_id() {
    if !criu_works("leave_running_then_restore_under_a_new_id") {
        return;
    }
    let (b, out, _pipes, images) = counting("crleave");
    checkpoint(&b, &images, &["--leave-running"]);
    assert_eq!(b.status().as_deref(), Some("running"));
    let c = count(&out);
    wait_count_above(&out, c + 2);
    let d = b.rt(&["delete", "--force", &b.id]);
    assert!(d.ok(), "{}", d.stderr);
    let stopped = assert_stopped_counting(&out);

    let new_id = format!("{}-again", b.id);
    let (_rp, st, err) = restore_piped(&b, &new_id, &images, &[]);
    let cleanup = || {
        let _ = b.rt(&["delete", "--force", &new_id]);
    };
    if st != Some(0) {
        cleanup();
        panic!("restore under a new id: {err}");
    }
    let s = b.rt(&["state", &new_id]);
    assert!(s.stdout.contains("\"running\""), "{}", s.stdout);
    wait_count_above(&out, stopped);
    cleanup();
    let left = leftovers_of(&new_id, &b.root, &b.dir);
    assert!(left.is_empty(), "left behind: {left:#?}");
}

/// runc's nested bind mounts case: a bind mount below another (`/test/for/nested` below
/// `/test`) has its mount point in the outer mount's source, where create made it. Removed
/// there after the checkpoint, it is made again there by restore, which CRIU needs to mount on.
#[test]
fn nested_bind_mount_points_are_made_again_in_their_sources() {
    if !criu_works("nested_bind_mount_points_are_made_again_in_their_sources") {
        return;
    }
    let (mut b, out) = counter("crnest");
    let rootfs = b.own_rootfs();
    let (outer, inner) = (b.dir.join("outer"), b.dir.join("inner"));
    for (dir, dest) in [(&outer, "/test"), (&inner, "/test/for/nested")] {
        std::fs::create_dir_all(dir).unwrap();
        let m =
            json!({"destination": dest, "type": "bind", "source": dir, "options": ["bind", "rw"]});
        b.config["mounts"].as_array_mut().unwrap().push(m);
    }
    b.save();
    let _pipes = run_piped(&b, &b.id);
    wait_count_above(&out, 3);
    assert!(
        outer.join("for/nested").is_dir(),
        "create made the mount point in the source"
    );
    let images = b.dir.join("img");
    checkpoint(&b, &images, &[]);
    let stopped = assert_stopped_counting(&out);
    std::fs::remove_dir_all(outer.join("for")).unwrap();
    let (_rp, st, err) = restore_piped(&b, &b.id, &images, &[]);
    let cleanup = || {
        let _ = b.rt(&["delete", "--force", &b.id]);
    };
    if st != Some(0) {
        cleanup();
        panic!("restore: {err}");
    }
    wait_count_above(&out, stopped);
    assert!(
        outer.join("for/nested").is_dir(),
        "restore made it again in the source"
    );
    assert!(
        !rootfs.join("test/for").exists(),
        "restore made it in the rootfs"
    );
    cleanup();
    let left = b.leftovers();
    assert!(left.is_empty(), "left behind: {left:#?}");
}

/// `checkpoint --lazy-pages --page-server 127.0.0.1:PORT --status-fd 9` of `b`'s container,
/// started (runc's flow in its checkpoint.bats); the receiver gets the first byte written to
/// the status fd (a FIFO), or the error of reading it.
fn lazy_checkpoint(
    b: &Bundle,
    images: &Path,
) -> (Child, std::sync::mpsc::Receiver<std::io::Result<u8>>) {
    let fifo = b.dir.join("status");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let port = (27000 + std::process::id() % 2000 + b.id.len() as u32).to_string();
    let server = format!("127.0.0.1:{port}");
    // The fd is 9 in the runtime, the FIFO opened write-only (runc refuses a read-write fd).
    // The shell holds it open read-write on 8 meanwhile, so that the open does not wait for
    // a reader.
    let mut cmd = Command::new("sh");
    let open = "exec 8<>\"$0\"; exec 9>/proc/self/fd/8; exec 8>&-; exec \"$@\"";
    cmd.args(["-c", open, fifo.to_str().unwrap()]);
    let rt = b.cmd(&[
        "checkpoint",
        "--lazy-pages",
        "--page-server",
        &server,
        "--status-fd",
        "9",
        "--image-path",
        images.to_str().unwrap(),
        &b.id,
    ]);
    cmd.arg(rt.get_program()).args(rt.get_args());
    cmd.current_dir(&b.dir)
        .stdin(Stdio::null())
        .stderr(Stdio::piped());
    let checkpoint = cmd.spawn().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut byte = [1u8];
        let got = std::fs::File::open(&fifo).and_then(|mut f| f.read_exact(&mut byte));
        let _ = tx.send(got.map(|()| byte[0]));
    });
    (checkpoint, rx)
}

/// Stop what a lazy checkpoint left running, the runtime and its CRIU; what the runtime wrote
/// to stderr.
fn stop_lazy_checkpoint(checkpoint: &mut Child, images: &Path) -> String {
    let _ = checkpoint.kill();
    let _ = checkpoint.wait();
    let _ = Command::new("pkill")
        .args(["-KILL", "-f", images.to_str().unwrap()])
        .status();
    let mut err = String::new();
    if let Some(mut e) = checkpoint.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    err
}

/// `--lazy-pages` with `--page-server` and `--status-fd`: once CRIU's lazy page server
/// listens, one `\0` byte comes on the fd. The dump then waits for a lazy-pages daemon, which
/// this test does not start: it stops the checkpoint and CRIU, and `state` answers meanwhile,
/// though the checkpoint holds the container.
#[test]
fn lazy_pages_readiness_comes_on_the_status_fd() {
    if !criu_works("lazy_pages_readiness_comes_on_the_status_fd") {
        return;
    }
    let (b, _out, _pipes, images) = counting("crlazy");
    let (mut checkpoint, rx) = lazy_checkpoint(&b, &images);
    let got = rx.recv_timeout(Duration::from_secs(120));
    let state = b.rt(&["state", &b.id]);
    let err = stop_lazy_checkpoint(&mut checkpoint, &images);
    let d = b.rt(&["delete", "--force", &b.id]);
    assert!(d.ok(), "delete: {}", d.stderr);
    let got = got.expect("no status byte within 120 s");
    assert_eq!(got.expect(&err), 0, "the status byte");
    assert!(
        state.ok() && state.stdout.contains(&b.id),
        "state: {}",
        state.stderr
    );
    let left = b.leftovers();
    assert!(left.is_empty(), "left behind: {left:#?}");
}

/// `delete --force` of a container whose lazy checkpoint waits for a lazy-pages daemon that
/// never comes (a migration given up): it does not wait for the dump, which holds the
/// container; casulo kills the dump's CRIU, the checkpoint fails naming CRIU's log, and the
/// container is deleted with nothing left behind.
#[test]
fn delete_force_stops_a_lazy_checkpoint_in_progress() {
    if !criu_works("delete_force_stops_a_lazy_checkpoint_in_progress") {
        return;
    }
    if !is_casulo() {
        // runc takes no lock: its delete goes on beside the dump, and fails while CRIU holds
        // the container's processes ("container init still running").
        eprintln!("SKIP delete_force_stops_a_lazy_checkpoint_in_progress: casulo's behaviour");
        return;
    }
    let (b, _out, _pipes, images) = counting("crlazydel");
    let (mut checkpoint, rx) = lazy_checkpoint(&b, &images);
    let got = rx.recv_timeout(Duration::from_secs(120));
    // A delete that waits is killed at the limit: it fails the test instead of hanging it.
    let id = b.id.clone();
    let deleted = try_output_within(b.cmd(&["delete", "--force", &id]), Duration::from_secs(120));
    let ended = match deleted {
        Ok(_) => exit_within(&mut checkpoint, Duration::from_secs(60)),
        Err(_) => None,
    };
    let err = stop_lazy_checkpoint(&mut checkpoint, &images);
    if deleted.is_err() {
        // The checkpoint has let go of the container: the cleanup can run.
        let _ = b.rt(&["delete", "--force", &id]);
    }
    assert_eq!(got.expect("no status byte within 120 s").expect(&err), 0);
    let out = deleted.expect("delete --force still waited after 120 s");
    assert!(out.ok(), "delete --force: {}", out.stderr);
    let st = ended.expect("the checkpoint did not end after its criu was killed");
    assert_eq!(st.code(), Some(1), "checkpoint: {err}");
    assert!(err.contains(&id) && err.contains("dump.log"), "{err}");
    let left = b.leftovers();
    assert!(left.is_empty(), "left behind: {left:#?}");
}

#[test]
fn pre_dump_then_dump_with_parent_path() {
    if !criu_works("pre_dump_then_dump_with_parent_path") {
        return;
    }
    let (b, out, _pipes, images) = counting("crpre");
    let pre = images.join("pre");
    checkpoint(&b, &pre, &["--pre-dump"]);
    assert_eq!(
        b.status().as_deref(),
        Some("running"),
        "a pre-dump leaves it running"
    );
    let finals = images.join("final");
    checkpoint(&b, &finals, &["--parent-path", "../pre"]);
    assert!(finals.join("parent").exists(), "the dump links its parent");
    let stopped = assert_stopped_counting(&out);
    let (_rp, st, err) = restore_piped(&b, &b.id, &finals, &[]);
    assert_eq!(st, Some(0), "restore: {err}");
    wait_count_above(&out, stopped);
}

#[test]
fn restore_from_a_damaged_image_leaves_nothing() {
    if !criu_works("restore_from_a_damaged_image_leaves_nothing") {
        return;
    }
    let (b, _out, _pipes, images) = counting("crbad");
    checkpoint(&b, &images, &[]);
    std::fs::remove_file(images.join("pstree.img")).unwrap();
    let (_rp, st, err) = restore_piped(&b, &b.id, &images, &[]);
    assert_eq!(st, Some(1), "restore from a damaged image: {err}");
    // runc says only what broke off ("EOF"); casulo names the container, the step and the log.
    if is_casulo() {
        assert!(err.contains(&b.id) && err.contains("restore"), "{err}");
        assert!(err.contains("restore.log"), "names CRIU's log: {err}");
    }
    let left = b.leftovers();
    assert!(left.is_empty(), "left behind: {left:#?}");
}

/// A shell reading lines on a terminal, its pty master handed to `--console-socket` by `run -d`:
/// the bundle, the socket's path and the master (read non-blocking).
fn terminal_shell(name: &str) -> (Bundle, PathBuf, std::fs::File) {
    let mut b = Bundle::new(
        name,
        &["sh", "-c", "while read line; do echo \"got-$line\"; done"],
    );
    b.config["process"]["terminal"] = true.into();
    b.without_namespace("network");
    b.save();
    let sock = b.dir.join("console.sock");
    let receiver = console_socket(&sock);
    let r = b.rt(&[
        "run",
        "-d",
        "--console-socket",
        sock.to_str().unwrap(),
        "--bundle",
        b.dir.to_str().unwrap(),
        &b.id,
    ]);
    assert!(r.ok(), "run -d with a terminal: {}", r.stderr);
    let master = receiver.join().unwrap().expect("run sent the pty master");
    (b, sock, nonblocking(master))
}

fn nonblocking(fd: std::os::fd::OwnedFd) -> std::fs::File {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let fl = OFlag::from_bits_truncate(fcntl(&fd, FcntlArg::F_GETFL).unwrap());
    fcntl(&fd, FcntlArg::F_SETFL(fl | OFlag::O_NONBLOCK)).unwrap();
    std::fs::File::from(fd)
}

/// Type `line` on the terminal whose master is `tty` and wait (at most 20 s) for the shell's
/// answer `got-LINE`.
fn answers(tty: &mut std::fs::File, line: &str) {
    use std::io::Write;
    tty.write_all(format!("{line}\n").as_bytes()).unwrap();
    let want = format!("got-{line}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut text = String::new();
    let mut buf = [0u8; 1024];
    while !text.contains(&want) {
        match tty.read(&mut buf) {
            Ok(n) if n > 0 => text.push_str(&String::from_utf8_lossy(&buf[..n])),
            Ok(_) => panic!("the terminal closed before {want:?}: {text:?}"),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(
                    Instant::now() < deadline,
                    "no {want:?} on the terminal: {text:?}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("read the terminal: {e} (so far {text:?})"),
        }
    }
}

/// runc's flow for a terminal container (its checkpoint.bats): `run -d --console-socket`, a
/// checkpoint, then `restore -d --console-socket`, which hands the restored terminal's new
/// master to the socket; the shell answers there, and exec works in the restored container.
#[test]
fn terminal_container_restored_through_the_console_socket() {
    if !criu_works("terminal_container_restored_through_the_console_socket") {
        return;
    }
    let (b, sock, mut tty) = terminal_shell("crtty");
    answers(&mut tty, "before");
    let images = b.dir.join("img");
    checkpoint(&b, &images, &[]);
    assert!(
        b.state().is_none(),
        "the container is gone after checkpoint"
    );
    std::fs::remove_file(&sock).unwrap();
    let receiver = console_socket(&sock);
    let r = b.rt(&[
        "restore",
        "-d",
        "--console-socket",
        sock.to_str().unwrap(),
        "--bundle",
        b.dir.to_str().unwrap(),
        "--image-path",
        images.to_str().unwrap(),
        &b.id,
    ]);
    assert!(r.ok(), "restore with a console socket: {}", r.stderr);
    let master = receiver
        .join()
        .unwrap()
        .expect("restore sent the new pty master");
    let mut tty = nonblocking(master);
    assert_eq!(b.status().as_deref(), Some("running"));
    answers(&mut tty, "after");
    let e = b.rt(&["exec", &b.id, "echo", "exec-ok"]);
    assert!(e.ok() && e.stdout.contains("exec-ok"), "{}", e.stderr);
}

/// A terminal container restored without `--console-socket`: the new master has nowhere to go,
/// so the restore is refused (casulo: before anything is made, naming the console socket) and
/// leaves nothing behind.
#[test]
fn terminal_restore_without_console_socket_leaves_nothing() {
    if !criu_works("terminal_restore_without_console_socket_leaves_nothing") {
        return;
    }
    let (b, _sock, mut tty) = terminal_shell("crttyns");
    answers(&mut tty, "before");
    let images = b.dir.join("img");
    checkpoint(&b, &images, &[]);
    let r = b.rt(&[
        "restore",
        "-d",
        "--bundle",
        b.dir.to_str().unwrap(),
        "--image-path",
        images.to_str().unwrap(),
        &b.id,
    ]);
    assert_ne!(r.status, Some(0), "restored without a console socket");
    if is_casulo() {
        assert_eq!(r.status, Some(1), "{}", r.stderr);
        assert!(
            r.stderr.contains(&b.id) && r.stderr.contains("console socket"),
            "{}",
            r.stderr
        );
    }
    let left = b.leftovers();
    assert!(left.is_empty(), "left behind: {left:#?}");
}

/// The last number in `path` (0 while there is none).
fn last_number(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .rev()
        .find_map(|l| l.trim().parse().ok())
        .unwrap_or(0)
}

fn wait_number_above(path: &Path, n: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let c = last_number(path);
        if c > n {
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "{} stays at {c}, not above {n}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An established TCP connection inside the container's own network namespace (a server and
/// a client on its loopback) lives through a checkpoint and a restore with
/// `--tcp-established`: the server accepts only once, so numbers that go on arriving after the
/// restore came through the same connection.
#[test]
fn established_tcp_connection_in_its_own_netns() {
    if !criu_works("established_tcp_connection_in_its_own_netns") {
        return;
    }
    let mut b = Bundle::new(
        "crtcp",
        &[
            "sh",
            "-c",
            "ip link set lo up || exit 1; \
             i=0; while true; do i=$((i+1)); echo $i; sleep 0.05; done | nc -l -p 7000 & \
             until nc 127.0.0.1 7000 > /out/got; do sleep 0.1; done; sleep 1000",
        ],
    );
    // To bring its loopback up.
    for set in ["bounding", "effective", "permitted"] {
        b.config["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push("CAP_NET_ADMIN".into());
    }
    let out = b.with_out_dir();
    let got = out.join("got");
    let _pipes = run_piped(&b, &b.id);
    wait_number_above(&got, 3);
    let images = b.dir.join("img");
    checkpoint(&b, &images, &["--tcp-established"]);
    let stopped = last_number(&got);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(last_number(&got), stopped, "the numbers still arrive");
    let (_rp, st, err) = restore_piped(&b, &b.id, &images, &["--tcp-established"]);
    assert_eq!(st, Some(0), "restore --tcp-established: {err}");
    let first = wait_number_above(&got, stopped);
    assert!(
        first <= stopped + 40,
        "the numbers went on from {stopped} (got {first}), they did not start again"
    );
    wait_number_above(&got, first + 3);
}

/// `r` failed with status 1; casulo's message holds every one of `texts` (runc's words differ).
fn refused(r: &Run, texts: &[&str]) {
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    if is_casulo() {
        for t in texts {
            assert!(r.stderr.contains(t), "no {t:?} in: {}", r.stderr);
        }
    }
}

/// What needs no working CRIU: the refusals.
#[test]
fn checkpoint_refusals() {
    if !can_run("checkpoint_refusals") {
        return;
    }
    let b = Bundle::new("crrefuse", &["sleep", "100"]);
    let images = b.dir.join("img");
    let img = images.to_str().unwrap();
    assert!(b.create().ok());
    let r = b.rt(&["checkpoint", "--image-path", img, &b.id]);
    refused(
        &r,
        &[
            &b.id,
            "checkpoint: cannot checkpoint a container that is created",
        ],
    );
    let s = b.rt(&["start", &b.id]);
    assert!(s.ok(), "{}", s.stderr);
    let r = b.rt(&[
        "checkpoint",
        "--image-path",
        img,
        "--parent-path",
        "/abs",
        &b.id,
    ]);
    refused(&r, &["--parent-path must be relative"]);
    let r = b.rt(&[
        "checkpoint",
        "--image-path",
        img,
        "--parent-path",
        "missing",
        &b.id,
    ]);
    refused(&r, &["invalid --parent-path"]);
    let r = b.rt(&[
        "checkpoint",
        "--image-path",
        img,
        "--manage-cgroups-mode",
        "loose",
        &b.id,
    ]);
    refused(&r, &["--manage-cgroups-mode"]);
    let r = b.rt(&[
        "checkpoint",
        "--image-path",
        img,
        "--empty-ns",
        "ipc",
        &b.id,
    ]);
    refused(&r, &["--empty-ns", "ipc"]);
    let r = b.rt(&[
        "--criu",
        "/nonexistent/criu",
        "checkpoint",
        "--image-path",
        img,
        &b.id,
    ]);
    refused(&r, &["/nonexistent/criu"]);
    assert_eq!(
        b.status().as_deref(),
        Some("running"),
        "a refused checkpoint leaves it be"
    );
    // Restore: no images, no container made.
    let other = format!("{}-r", b.id);
    let r = b.rt(&[
        "restore",
        "-d",
        "--bundle",
        b.dir.to_str().unwrap(),
        "--image-path",
        img,
        &other,
    ]);
    refused(&r, &["descriptors.json"]);
    // A missing image directory is named, and not made.
    let missing = b.dir.join("no-images");
    let r = b.rt(&[
        "restore",
        "-d",
        "--bundle",
        b.dir.to_str().unwrap(),
        "--image-path",
        missing.to_str().unwrap(),
        &other,
    ]);
    refused(&r, &[missing.to_str().unwrap()]);
    assert!(
        !missing.exists(),
        "a failed restore made its image directory"
    );
    let left = leftovers_of(&other, &b.root, &b.dir.join("none"));
    assert!(left.is_empty(), "left behind: {left:#?}");
}
