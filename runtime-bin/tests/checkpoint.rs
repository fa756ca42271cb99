//! checkpoint and restore through CRIU: a container counting into a bind-mounted file is
//! checkpointed and restored and counts on from where it stopped; `--leave-running` and a
//! restore under a new id; a pre-dump then a dump on top of it (`--parent-path`); a restore
//! from a damaged image fails naming CRIU's log and leaves nothing behind. Where CRIU cannot
//! work (`criu check` fails: the CRIU of the test hosts does on their kernel, see the README),
//! those print a SKIP with CRIU's own reason; what needs no CRIU (refusals) runs everywhere.
//!
//! The containers use the host's network: CRIU 3.17 cannot dump a network namespace on the
//! kernels of the test machines (netlink answers EINVAL while it dumps the namespace's links;
//! runc's checkpoint fails there the same way).
mod common;
use common::*;

use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st.code();
            }
            assert!(Instant::now() < deadline, "the runtime did not finish");
            std::thread::sleep(Duration::from_millis(20));
        };
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
    assert!(err.contains(&b.id) && err.contains("restore"), "{err}");
    assert!(err.contains("restore.log"), "names CRIU's log: {err}");
    let left = b.leftovers();
    assert!(left.is_empty(), "left behind: {left:#?}");
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
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    assert!(
        r.stderr.contains(&b.id)
            && r.stderr
                .contains("checkpoint: cannot checkpoint a container that is created"),
        "{}",
        r.stderr
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
    assert_eq!(r.status, Some(1));
    assert!(
        r.stderr.contains("--parent-path must be relative"),
        "{}",
        r.stderr
    );
    let r = b.rt(&[
        "checkpoint",
        "--image-path",
        img,
        "--parent-path",
        "missing",
        &b.id,
    ]);
    assert_eq!(r.status, Some(1));
    assert!(r.stderr.contains("invalid --parent-path"), "{}", r.stderr);
    let r = b.rt(&[
        "checkpoint",
        "--image-path",
        img,
        "--manage-cgroups-mode",
        "loose",
        &b.id,
    ]);
    assert_eq!(r.status, Some(1));
    assert!(r.stderr.contains("--manage-cgroups-mode"), "{}", r.stderr);
    let r = b.rt(&[
        "checkpoint",
        "--image-path",
        img,
        "--empty-ns",
        "ipc",
        &b.id,
    ]);
    assert_eq!(r.status, Some(1));
    assert!(
        r.stderr.contains("--empty-ns \\\"ipc\\\"") || r.stderr.contains("--empty-ns \"ipc\""),
        "{}",
        r.stderr
    );
    let r = b.rt(&[
        "--criu",
        "/nonexistent/criu",
        "checkpoint",
        "--image-path",
        img,
        &b.id,
    ]);
    assert_eq!(r.status, Some(1));
    assert!(r.stderr.contains("/nonexistent/criu"), "{}", r.stderr);
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
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("descriptors.json"), "{}", r.stderr);
    let left = leftovers_of(&other, &b.root, &b.dir.join("none"));
    assert!(left.is_empty(), "left behind: {left:#?}");
}
