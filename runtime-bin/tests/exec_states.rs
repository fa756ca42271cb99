//! `exec` by the container's status: refused, with a clear message, in a paused or stopped
//! container, and allowed in a created one (as the reference runtime does).
mod common;
use common::*;

/// The runtime refused the exec: exit status 255 (a failed exec, as the reference runtime
/// exits, told apart from the status of a process that ran) and, from casulo, a message naming
/// the container and its status (the reference runtime does not name the container).
fn assert_refused(b: &Bundle, r: &Run, status: &str) {
    assert!(
        !r.ok(),
        "exec in a {status} container succeeded: {}",
        r.stdout
    );
    assert!(
        r.stderr.contains(status),
        "the message should say {status}: {}",
        r.stderr
    );
    assert_eq!(r.status, Some(255), "{}", r.stderr);
    if is_casulo() {
        assert!(
            r.stderr.contains(&b.id),
            "the message should name the container: {}",
            r.stderr
        );
    }
    assert!(
        !r.stdout.contains("EXEC RAN"),
        "the process ran: {}",
        r.stdout
    );
}

#[test]
fn exec_into_a_paused_container_is_refused_and_it_stays_paused() {
    if !can_run("exec_into_a_paused_container_is_refused_and_it_stays_paused")
        || !runs_rootless(
            "exec_into_a_paused_container_is_refused_and_it_stays_paused",
            "no freezer without a delegated cgroup",
        )
    {
        return;
    }
    let mut b = Bundle::new("execpaused", &["sleep", "100"]);
    let out = b.with_out_dir();
    let r = b.run_detached();
    assert!(r.ok(), "{}", r.stderr);
    let pause = b.rt(&["pause", &b.id]);
    assert!(pause.ok(), "{}", pause.stderr);
    assert_eq!(b.status().as_deref(), Some("paused"));
    let r = b.rt(&["exec", &b.id, "sh", "-c", "echo EXEC RAN; touch /out/ran"]);
    assert_refused(&b, &r, "paused");
    // Nothing was started: no process of the exec joined the frozen container.
    assert_eq!(b.status().as_deref(), Some("paused"));
    let ps = b.rt(&["ps", "--format", "json", &b.id]);
    assert!(ps.ok(), "{}", ps.stderr);
    let pids: Vec<i64> = serde_json::from_str(&ps.stdout).expect("ps JSON");
    assert_eq!(pids.len(), 1, "only the init: {pids:?}");
    // Resumable, and exec works again once running.
    let resume = b.rt(&["resume", &b.id]);
    assert!(resume.ok(), "{}", resume.stderr);
    assert_eq!(b.status().as_deref(), Some("running"));
    assert!(
        !out.join("ran").exists(),
        "the refused exec ran after resume"
    );
    let r = b.rt(&["exec", &b.id, "sh", "-c", "echo again"]);
    assert!(r.ok(), "{}", r.stderr);
    assert_eq!(r.stdout, "again\n");
}

/// Paused before its start, a container is `paused` (not `created`), as with runc: exec is
/// refused rather than left waiting on the frozen cgroup, resume makes it `created` again, and
/// start runs it.
#[test]
fn a_container_paused_before_start_is_paused() {
    if !can_run("a_container_paused_before_start_is_paused")
        || !runs_rootless(
            "a_container_paused_before_start_is_paused",
            "no freezer without a delegated cgroup",
        )
    {
        return;
    }
    let b = Bundle::new("execpausedcreated", &["true"]);
    let r = b.create();
    assert!(r.ok(), "{}", r.stderr);
    let pause = b.rt(&["pause", &b.id]);
    assert!(pause.ok(), "{}", pause.stderr);
    assert_eq!(b.status().as_deref(), Some("paused"));
    let r = b.rt(&["exec", &b.id, "true"]);
    assert_refused(&b, &r, "paused");
    let start = b.rt(&["start", &b.id]);
    assert!(!start.ok(), "start of a paused container succeeded");
    let resume = b.rt(&["resume", &b.id]);
    assert!(resume.ok(), "{}", resume.stderr);
    assert_eq!(b.status().as_deref(), Some("created"));
    let start = b.rt(&["start", &b.id]);
    assert!(start.ok(), "{}", start.stderr);
    assert!(b.wait_status("stopped"));
    let del = b.rt(&["delete", &b.id]);
    assert!(del.ok(), "{}", del.stderr);
    assert_eq!(b.leftovers(), Vec::<String>::new());
}

#[test]
fn exec_into_a_stopped_container_is_refused() {
    if !can_run("exec_into_a_stopped_container_is_refused") {
        return;
    }
    let b = Bundle::new("execstopped", &["true"]);
    let r = b.run_detached();
    assert!(r.ok(), "{}", r.stderr);
    assert!(b.wait_status("stopped"), "status {:?}", b.status());
    let r = b.rt(&["exec", &b.id, "sh", "-c", "echo EXEC RAN"]);
    assert_refused(&b, &r, "stopped");
    assert_eq!(b.status().as_deref(), Some("stopped"));
    // A stopped container can still be deleted as usual.
    let d = b.rt(&["delete", &b.id]);
    assert!(d.ok(), "{}", d.stderr);
}

/// A created container's init waits for `start`; an exec'd process runs beside it (the
/// reference runtime allows this too) and the container stays created, then starts normally.
#[test]
fn exec_into_a_created_container_runs_and_leaves_it_created() {
    if !can_run("exec_into_a_created_container_runs_and_leaves_it_created") {
        return;
    }
    let mut b = Bundle::new("execcreated", &["sh", "-c", "echo started > /out/started"]);
    let out = b.with_out_dir();
    let r = b.create();
    assert!(r.ok(), "{}", r.stderr);
    assert_eq!(b.status().as_deref(), Some("created"));
    let r = b.rt(&[
        "exec",
        &b.id,
        "sh",
        "-c",
        "echo exec ran; echo $$ > /out/exec",
    ]);
    assert!(r.ok(), "status {:?}: {}", r.status, r.stderr);
    assert_eq!(r.stdout, "exec ran\n");
    // In the container's pid namespace, beside its init (pid 1).
    let pid: i64 = std::fs::read_to_string(out.join("exec"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(pid > 1, "exec'd process has pid {pid}");
    assert_eq!(b.status().as_deref(), Some("created"));
    assert!(
        !out.join("started").exists(),
        "the exec released the init before start"
    );
    let s = b.rt(&["start", &b.id]);
    assert!(s.ok(), "{}", s.stderr);
    assert!(b.wait_status("stopped"), "status {:?}", b.status());
    assert_eq!(
        std::fs::read_to_string(out.join("started")).unwrap(),
        "started\n"
    );
}

/// `exec --cgroup PATH` puts the process in an existing sub-cgroup of the container; a missing
/// one fails the exec before the process runs anything.
#[test]
fn exec_into_a_sub_cgroup() {
    if !can_run("exec_into_a_sub_cgroup")
        || !runs_rootless("exec_into_a_sub_cgroup", "no cgroup without delegation")
    {
        return;
    }
    let mut b = Bundle::new("execsub", &["sleep", "100"]);
    b.config["linux"]["cgroupsPath"] = format!("/{}", b.id).into();
    b.save();
    let r = b.run_detached();
    assert!(r.ok(), "{}", r.stderr);
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let pids_dir = if v2 {
        std::path::PathBuf::from("/sys/fs/cgroup").join(&b.id)
    } else {
        std::path::PathBuf::from("/sys/fs/cgroup/pids").join(&b.id)
    };
    let r = b.rt(&["exec", "--cgroup", "pids:sub", &b.id, "true"]);
    // A failed exec exits 255, as runc's.
    assert_eq!(
        r.status,
        Some(255),
        "exec into a missing sub-cgroup: {}",
        r.stderr
    );
    assert!(
        r.stderr.contains("/sub"),
        "the message names the sub-cgroup: {}",
        r.stderr
    );
    std::fs::create_dir(pids_dir.join("sub")).unwrap();
    let r = b.rt(&[
        "exec",
        "--cgroup",
        "pids:sub",
        &b.id,
        "sh",
        "-c",
        "cat /proc/self/cgroup",
    ]);
    let _ = b.rt(&["kill", &b.id, "KILL"]);
    b.wait_status("stopped");
    let cleanup = std::fs::remove_dir(pids_dir.join("sub"));
    assert!(r.ok(), "{}", r.stderr);
    let line = r
        .stdout
        .lines()
        .find(|l| {
            if v2 {
                l.starts_with("0::")
            } else {
                l.contains(":pids:")
            }
        })
        .unwrap_or_else(|| panic!("{}", r.stdout));
    assert!(line.ends_with("/sub"), "{}", r.stdout);
    cleanup.unwrap();
}
