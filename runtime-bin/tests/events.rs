//! events: runc's stats and OOM event stream.
mod common;
use common::*;

use std::io::{BufRead, BufReader};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running `events` stream whose stdout lines arrive on a channel. Killed when dropped:
/// declare it after its [`Bundle`] so that it goes first.
struct Stream {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Stream {
    fn start(b: &Bundle, args: &[&str]) -> Stream {
        let mut child = b
            .cmd(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn events");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                match l {
                    Ok(l) => {
                        if tx.send(l).is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        });
        Stream { child, lines }
    }

    /// The next line within `limit`; None at the end of the stream or on timeout.
    fn next_line(&self, limit: Duration) -> Option<String> {
        self.lines.recv_timeout(limit).ok()
    }

    /// Lines until one satisfies `want` (returned) or `limit` passes (None).
    fn until(&self, limit: Duration, want: impl Fn(&Value) -> bool) -> Option<Value> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.next_line(left)?;
            let v: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("not one JSON object per line: {line:?}: {e}"));
            if want(&v) {
                return Some(v);
            }
        }
    }

    fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(st) = self.child.try_wait().unwrap() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(b: &Bundle) {
    let r = b.create();
    assert!(r.ok(), "create: {}", r.stderr);
    let r = b.rt(&["start", &b.id]);
    assert!(r.ok(), "start: {}", r.stderr);
}

/// runc's stream runs until the cgroup is removed; ours ends when the container stops.
/// Either way, the stream must end: for runc, by deleting the stopped container.
fn expect_end(b: &Bundle, s: &mut Stream) {
    if !is_casulo() {
        assert!(b.wait_status("stopped"));
        let r = b.rt(&["delete", &b.id]);
        assert!(r.ok(), "delete: {}", r.stderr);
    }
    let st = s
        .wait_exit(Duration::from_secs(10))
        .expect("the event stream did not end after the container stopped");
    assert!(st.success(), "events exited with {st}");
}

#[test]
fn stats_once() {
    if !can_run("stats_once") {
        return;
    }
    let b = Bundle::new("evstats", &["sleep", "100"]);
    start(&b);
    let r = b.rt(&["events", "--stats", &b.id]);
    assert!(r.ok(), "events --stats: {}", r.stderr);
    assert_eq!(r.stdout.lines().count(), 1, "one event: {}", r.stdout);
    assert!(r.stdout.ends_with('\n'));
    let ev: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(ev["type"], "stats");
    assert_eq!(ev["id"], b.id.as_str());
    let data = &ev["data"];
    assert!(data["pids"]["current"].as_u64().unwrap_or(0) >= 1, "{data}");
    assert!(
        data["memory"]["usage"]["usage"].as_u64().unwrap_or(0) > 0,
        "{data}"
    );
    // runc's shape: these are always there, zero or not.
    for key in [
        "cpu",
        "cpuset",
        "memory",
        "pids",
        "blkio",
        "hugetlb",
        "intel_rdt",
    ] {
        assert!(data[key].is_object(), "{key} missing: {data}");
    }
    assert!(data["network_interfaces"].is_null());
    for key in ["limit", "failcnt"] {
        assert!(data["memory"]["usage"][key].is_u64(), "{data}");
        assert!(data["memory"]["swap"][key].is_u64(), "{data}");
    }
    assert!(data["cpu"]["usage"]["kernel"].is_u64(), "{data}");
    assert!(data["cpu"]["usage"]["user"].is_u64(), "{data}");
}

#[test]
fn stats_of_a_paused_container() {
    if !can_run("stats_of_a_paused_container") {
        return;
    }
    let b = Bundle::new("evpaused", &["sleep", "100"]);
    start(&b);
    assert!(b.rt(&["pause", &b.id]).ok());
    let r = b.rt(&["events", "--stats", &b.id]);
    assert!(b.rt(&["resume", &b.id]).ok());
    assert!(r.ok(), "events --stats: {}", r.stderr);
    let ev: Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(ev["data"]["pids"]["current"].as_u64().unwrap_or(0) >= 1);
}

#[test]
fn missing_container_fails() {
    if !can_run("missing_container_fails") {
        return;
    }
    let b = Bundle::new("evmissing", &["true"]);
    let gone = format!("{}-none", b.id);
    for args in [vec!["events", "--stats", &gone], vec!["events", &gone]] {
        let r = b.rt(&args);
        assert_eq!(r.status, Some(1), "{args:?}: {}", r.stderr);
        assert!(r.stdout.is_empty());
        assert!(
            (r.stderr.contains(&gone) || !is_casulo()) && r.stderr.contains("does not exist"),
            "{}",
            r.stderr
        );
        if is_casulo() {
            assert!(r.stderr.contains("events"), "{}", r.stderr);
        }
    }
}

#[test]
fn stopped_container_fails() {
    if !can_run("stopped_container_fails") {
        return;
    }
    let b = Bundle::new("evstopped", &["true"]);
    start(&b);
    assert!(b.wait_status("stopped"));
    for args in [
        vec!["events", "--stats", &b.id],
        vec!["events", "--interval", "1s", &b.id],
    ] {
        let r = b.rt(&args);
        assert_eq!(r.status, Some(1), "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(&b.id), "{}", r.stderr);
        if is_casulo() {
            assert!(r.stderr.contains("events: "), "{}", r.stderr);
            assert!(r.stderr.contains("stopped"), "{}", r.stderr);
        }
    }
}

#[test]
fn bad_interval_is_refused() {
    if !can_run("bad_interval_is_refused") {
        return;
    }
    let b = Bundle::new("evinterval", &["sleep", "100"]);
    start(&b);
    for bad in ["5", "1x", "0s", "-1s", "soon"] {
        let r = b.rt(&["events", "--interval", bad, &b.id]);
        assert_eq!(r.status, Some(1), "--interval {bad}: {}", r.stderr);
        // runc prints its usage text on stdout after a flag it cannot parse.
        assert!(r.stdout.is_empty() || !is_casulo(), "{}", r.stdout);
        assert!(r.stderr.contains("interval"), "{}", r.stderr);
    }
}

#[test]
fn stream_ticks_and_ends_when_the_container_exits() {
    if !can_run("stream_ticks_and_ends_when_the_container_exits") {
        return;
    }
    let b = Bundle::new("evstream", &["sleep", "3"]);
    start(&b);
    let t0 = Instant::now();
    let mut s = Stream::start(&b, &["events", "--interval", "500ms", &b.id]);
    let mut ticks = 0;
    while ticks < 2 {
        let v = s
            .until(Duration::from_secs(5), |_| true)
            .expect("a stats event every 500ms");
        assert_eq!(v["type"], "stats", "{v}");
        assert_eq!(v["id"], b.id.as_str());
        assert!(v["data"]["memory"].is_object());
        ticks += 1;
    }
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "two ticks came too fast: {:?}",
        t0.elapsed()
    );
    expect_end(&b, &mut s);
}

/// Whether a v1 memory hierarchy with swap accounting is mounted.
fn has_memsw() -> bool {
    std::path::Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists()
}

#[test]
fn oom_is_reported() {
    if !can_run("oom_is_reported") {
        return;
    }
    let mut b = Bundle::new("evoom", &[]);
    // Let the stream register first, then double a string until the 8 MiB limit kills it.
    let hog = "x=0123456789abcdef; while true; do x=$x$x; done";
    // The systemd driver's scope, and its cgroup, go away as soon as its last process has
    // exited, which an OOM of the init races (as with runc): there the victim is a child, and
    // the init outlives it by a second.
    let script = if systemd_cgroup() {
        format!("sleep 2; sh -c '{hog}'; sleep 1")
    } else {
        format!("sleep 2; {hog}")
    };
    b.config["process"]["args"] = serde_json::json!(["sh", "-c", script]);
    let limit = 8 * 1024 * 1024;
    let mut memory = serde_json::json!({ "limit": limit });
    let pure_v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    if has_memsw() || pure_v2 {
        // No swap: memory + swap = memory.
        memory["swap"] = limit.into();
    }
    b.config["linux"]["resources"]["memory"] = memory;
    b.save();
    start(&b);
    let mut s = Stream::start(&b, &["events", "--interval", "1s", &b.id]);
    let oom = s
        .until(Duration::from_secs(30), |v| v["type"] != "stats")
        .expect("no OOM event before the stream ended");
    assert_eq!(oom["type"], "oom", "{oom}");
    assert_eq!(oom["id"], b.id.as_str());
    assert!(oom.get("data").is_none(), "an OOM event has no data: {oom}");
    expect_end(&b, &mut s);
}
