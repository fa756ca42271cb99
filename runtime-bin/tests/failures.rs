//! Bad input: exit 1, a message naming the container, the step and the cause, and nothing
//! left behind (state dir, mounts, cgroups, processes — checked by the Bundle guard).
mod common;
use common::*;

#[test]
fn invalid_json() {
    if !can_run("invalid_json") {
        return;
    }
    let b = Bundle::new("badjson", &["true"]);
    std::fs::write(b.dir.join("config.json"), "{\"ociVersion\": ").unwrap();
    let r = b.run();
    fails_cleanly(&b, &r, "invalid JSON");
}

#[test]
fn missing_rootfs() {
    if !can_run("missing_rootfs") {
        return;
    }
    let mut b = Bundle::new("norootfs", &["true"]);
    b.config["root"]["path"] = "does-not-exist".into();
    b.save();
    let r = b.run();
    fails_cleanly(&b, &r, "does-not-exist");
}

/// A relative mount destination is taken from the container's `/` (runtime-spec 1.2, and
/// runc), not refused.
#[test]
fn relative_mount_destination() {
    if !can_run("relative_mount_destination") {
        return;
    }
    let mut b = Bundle::new(
        "relmount",
        &["sh", "-c", "grep -c ' /tmp/x tmpfs ' /proc/self/mounts"],
    );
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"destination": "tmp/x", "type": "tmpfs", "source": "tmpfs"}));
    b.save();
    let r = b.run();
    assert!(r.ok(), "{}", r.stderr);
    assert_eq!(r.stdout.trim(), "1");
}

#[test]
fn mount_that_fails_in_the_init() {
    if !can_run("mount_that_fails_in_the_init") {
        return;
    }
    let mut b = Bundle::new("badfs", &["true"]);
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"destination": "/mnt/x", "type": "nosuchfs", "source": "none"}));
    b.save();
    let r = b.run();
    fails_cleanly(&b, &r, "/mnt/x");
}

#[test]
fn unknown_namespace() {
    if !can_run("unknown_namespace") {
        return;
    }
    let mut b = Bundle::new("badns", &["true"]);
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"type": "bogus"}));
    b.save();
    let r = b.run();
    fails_cleanly(&b, &r, "bogus");
}

#[test]
fn failing_hook() {
    if !can_run("failing_hook") {
        return;
    }
    let mut b = Bundle::new("badhook", &["true"]);
    b.config["hooks"] = serde_json::json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "echo hook-broke >&2; exit 4"]}]});
    b.save();
    let r = b.run();
    fails_cleanly(&b, &r, "hook-broke");
}

#[test]
fn executable_not_found() {
    if !can_run("executable_not_found") {
        return;
    }
    // Engines choose their exit status from these words (podman: 127 for a missing command,
    // 126 for one that cannot be run), so they are runc's.
    for (name, args, cause) in [
        ("noexe", "/no/such/program", "no such file or directory"),
        ("notexe", "/etc/passwd", "permission denied"),
        ("direxe", "/bin", "permission denied"),
        (
            "noinpath",
            "no-such-program",
            "executable file not found in $PATH",
        ),
    ] {
        let b = Bundle::new(name, &[args]);
        let r = b.create();
        fails_cleanly(&b, &r, args);
        assert!(
            r.stderr.contains(cause),
            "{args}: want {cause:?}: {}",
            r.stderr
        );
    }
}

#[test]
fn invalid_ids() {
    if !can_run("invalid_ids") {
        return;
    }
    let b = Bundle::new("badid", &["true"]);
    for id in ["a/b", "..", ""] {
        let r = b.rt(&["create", "--bundle", b.dir.to_str().unwrap(), id]);
        assert_eq!(r.status, Some(1), "id {id:?} accepted");
    }
    assert_eq!(
        std::fs::read_dir(&b.root).map(|d| d.count()).unwrap_or(0),
        0
    );
}

#[test]
fn json_log_carries_the_cause() {
    if !can_run("json_log_carries_the_cause") {
        return;
    }
    let b = Bundle::new("jsonlog", &["/no/such/program"]);
    let log = b.dir.join("log.json");
    let r = b.rt(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "run",
        "--bundle",
        b.dir.to_str().unwrap(),
        &b.id,
    ]);
    assert_eq!(r.status, Some(1));
    let text = std::fs::read_to_string(&log).unwrap();
    let last_error = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("one JSON object per line"))
        .rfind(|v| v["level"] == "error")
        .expect("an error line");
    assert!(last_error["time"].is_string());
    assert!(
        last_error["msg"]
            .as_str()
            .unwrap()
            .contains("/no/such/program"),
        "{last_error}"
    );
}

/// linux.intelRdt is refused; where resctrl is not mounted the message says that first.
#[test]
fn intel_rdt_refused() {
    if !can_run("intel_rdt_refused") {
        return;
    }
    let mut b = Bundle::new("intelrdt", &["true"]);
    b.config["linux"]["intelRdt"] = serde_json::json!({"l3CacheSchema": "L3:0=f"});
    b.save();
    let r = b.run();
    let resctrl = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some("/sys/fs/resctrl"));
    let cause = if resctrl {
        "linux.intelRdt: not implemented by this runtime"
    } else {
        "linux.intelRdt: resctrl is not mounted on this host (/sys/fs/resctrl)"
    };
    fails_cleanly(&b, &r, cause);
}

/// A console socket path that is a regular file: the message says it is no socket (connect(2)
/// alone would say "connection refused").
#[test]
fn console_socket_that_is_not_a_socket() {
    if !can_run("console_socket_that_is_not_a_socket") {
        return;
    }
    let mut b = Bundle::new("consolefile", &["true"]);
    b.config["process"]["terminal"] = true.into();
    b.save();
    let file = b.dir.join("not-a-socket");
    std::fs::write(&file, "").unwrap();
    let dir = b.dir.to_str().unwrap();
    let r = b.rt(&[
        "create",
        "--console-socket",
        file.to_str().unwrap(),
        "--bundle",
        dir,
        &b.id,
    ]);
    fails_cleanly(&b, &r, "not-a-socket: not a socket");
}
