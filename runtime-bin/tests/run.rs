//! run in the foreground: stdio, exit status, signals.
mod common;
use common::*;
use std::time::{Duration, Instant};

#[test]
fn exit_status_passes_through() {
    if !can_run("exit_status_passes_through") {
        return;
    }
    let b = Bundle::new("exit7", &["sh", "-c", "echo out; echo err >&2; exit 7"]);
    let r = b.run();
    assert_eq!(r.status, Some(7), "{}", r.stderr);
    assert_eq!(r.stdout, "out\n");
    assert!(r.stderr.contains("err"));
    assert!(
        b.state().is_none(),
        "run removes the container after it exits"
    );
}

#[test]
fn killed_by_a_signal_is_128_plus_n() {
    if !can_run("killed_by_a_signal_is_128_plus_n") {
        return;
    }
    // A child shell kills itself with SIGKILL; the container's shell exits with its status.
    let b = Bundle::new("sig9", &["sh", "-c", "sh -c 'kill -9 $$'; exit $?"]);
    let r = b.run();
    assert_eq!(r.status, Some(137), "{}", r.stderr);
}

#[test]
fn init_killed_by_signal() {
    if !can_run("init_killed_by_signal") {
        return;
    }
    let b = Bundle::new("initkill", &["sleep", "100"]);
    let child = b
        .cmd(&["run", "--bundle", b.dir.to_str().unwrap(), &b.id])
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(b.wait_status("running"));
    assert!(b.rt(&["kill", &b.id, "KILL"]).ok());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(137));
}

#[test]
fn signals_are_forwarded() {
    if !can_run("signals_are_forwarded") {
        return;
    }
    let mut b = Bundle::new("fwd", &[]);
    let out = b.with_out_dir();
    b.config["process"]["args"] = serde_json::json!([
        "sh",
        "-c",
        "trap 'echo got-term; exit 3' TERM; touch /out/ready; while true; do sleep 0.05; done"
    ]);
    b.save();
    let child = b
        .cmd(&["run", "--bundle", b.dir.to_str().unwrap(), &b.id])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !out.join("ready").exists() {
        assert!(Instant::now() < deadline, "container did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "got-term\n");
}

#[test]
fn detach_returns_with_the_container_running() {
    if !can_run("detach_returns_with_the_container_running") {
        return;
    }
    let b = Bundle::new("detach", &["sleep", "100"]);
    let r = b.run_detached();
    assert!(r.ok(), "{}", r.stderr);
    assert_eq!(b.status().as_deref(), Some("running"));
}
