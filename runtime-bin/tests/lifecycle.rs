//! create / start / state / kill / delete / list, as the runtime-spec's lifecycle says.
mod common;
use common::*;

#[test]
fn create_start_kill_delete() {
    if !can_run("create_start_kill_delete") {
        return;
    }
    let b = Bundle::new("life", &["sleep", "100"]);
    let pid_file = b.dir.join("pid");
    let r = b.rt(&[
        "create",
        "--bundle",
        b.dir.to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        &b.id,
    ]);
    assert!(r.ok(), "create: {}", r.stderr);
    let st = b.state().expect("state after create");
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], b.id.as_str());
    assert_eq!(st["bundle"], b.dir.to_str().unwrap());
    let pid = st["pid"].as_i64().unwrap();
    assert!(pid > 0);
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap().trim(),
        pid.to_string()
    );
    assert!(
        b.root.join(&b.id).join("exec.fifo").exists(),
        "exec.fifo marks a created container"
    );
    // The init waits: it has not exec'd sleep yet.
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_ne!(comm.trim(), "sleep");

    let r = b.rt(&["start", &b.id]);
    assert!(r.ok(), "start: {}", r.stderr);
    assert_eq!(b.status().as_deref(), Some("running"));
    assert!(!b.root.join(&b.id).join("exec.fifo").exists());
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .unwrap()
            .trim(),
        "sleep"
    );
    let r = b.rt(&["start", &b.id]);
    assert_eq!(r.status, Some(1), "a second start must fail");

    let r = b.rt(&["kill", &b.id, "KILL"]);
    assert!(r.ok(), "kill: {}", r.stderr);
    assert!(b.wait_status("stopped"));
    let r = b.rt(&["delete", &b.id]);
    assert!(r.ok(), "delete: {}", r.stderr);
    let r = b.rt(&["state", &b.id]);
    assert_eq!(r.status, Some(1));
    assert!(
        (r.stderr.contains(&b.id) || !is_casulo()) && r.stderr.contains("does not exist"),
        "{}",
        r.stderr
    );
    assert!(!b.root.join(&b.id).exists());
}

#[test]
fn delete_refuses_a_running_container_without_force() {
    if !can_run("delete_refuses_a_running_container_without_force") {
        return;
    }
    let b = Bundle::new("nodel", &["sleep", "100"]);
    assert!(b.create().ok());
    assert!(b.rt(&["start", &b.id]).ok());
    let pid = b.state().unwrap()["pid"].as_i64().unwrap();
    let r = b.rt(&["delete", &b.id]);
    assert_eq!(r.status, Some(1));
    assert!(r.stderr.contains("running"), "{}", r.stderr);
    assert_eq!(
        b.status().as_deref(),
        Some("running"),
        "a refused delete changes nothing"
    );
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    let r = b.rt(&["delete", "--force", &b.id]);
    assert!(r.ok(), "delete --force: {}", r.stderr);
    assert!(!std::path::Path::new(&format!("/proc/{pid}/cmdline")).exists() || b.state().is_none());
    assert!(b.state().is_none());
}

#[test]
fn delete_of_a_created_container() {
    if !can_run("delete_of_a_created_container") {
        return;
    }
    let b = Bundle::new("delcreated", &["true"]);
    assert!(b.create().ok());
    let r = b.rt(&["delete", &b.id]);
    if is_casulo() {
        // The spec: deleting a container that is not stopped is an error and has no effect.
        assert_eq!(r.status, Some(1), "{}", r.stdout);
        assert_eq!(b.status().as_deref(), Some("created"));
        assert!(b.rt(&["delete", "--force", &b.id]).ok());
    }
    assert!(b.state().is_none());
}

#[test]
fn duplicate_id_is_refused_and_the_first_container_is_untouched() {
    if !can_run("duplicate_id_is_refused_and_the_first_container_is_untouched") {
        return;
    }
    let b = Bundle::new("dup", &["sleep", "100"]);
    assert!(b.create().ok());
    let pid = b.state().unwrap()["pid"].clone();
    let r = b.create();
    assert_eq!(r.status, Some(1));
    assert!(
        (r.stderr.contains(&b.id) || !is_casulo()) && r.stderr.contains("exists"),
        "{}",
        r.stderr
    );
    let st = b.state().unwrap();
    assert_eq!(st["status"], "created");
    assert_eq!(st["pid"], pid);
}

#[test]
fn stopped_after_the_process_exits_and_zombie_counts_as_stopped() {
    if !can_run("stopped_after_the_process_exits_and_zombie_counts_as_stopped") {
        return;
    }
    let b = Bundle::new("exits", &["true"]);
    assert!(b.create().ok());
    assert!(b.rt(&["start", &b.id]).ok());
    assert!(b.wait_status("stopped"), "status {:?}", b.status());
    assert!(b.rt(&["delete", &b.id]).ok());
}

#[test]
fn list_formats() {
    if !can_run("list_formats") {
        return;
    }
    let b = Bundle::new("list", &["sleep", "100"]);
    assert!(b.create().ok());
    let r = b.rt(&["list", "--format", "json"]);
    assert!(r.ok(), "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let row = &v.as_array().unwrap()[0];
    assert_eq!(row["id"], b.id.as_str());
    assert_eq!(row["status"], "created");
    let r = b.rt(&["list", "-q"]);
    assert_eq!(r.stdout.trim(), b.id);
    let r = b.rt(&["list"]);
    let mut lines = r.stdout.lines();
    assert!(lines.next().unwrap().starts_with("ID"));
    assert!(lines.next().unwrap().starts_with(&b.id));
}

#[test]
fn kill_signals_by_name_and_number() {
    if !can_run("kill_signals_by_name_and_number") {
        return;
    }
    let mut b = Bundle::new("killsig", &[]);
    let out = b.with_out_dir();
    b.config["process"]["args"] = serde_json::json!(["sh", "-c", "trap 'echo usr1 >> /out/log' USR1; trap 'exit 0' TERM; echo up > /out/ready; while true; do sleep 0.05; done"]);
    b.save();
    assert!(b.create().ok());
    assert!(b.rt(&["start", &b.id]).ok());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !out.join("ready").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let wait_lines = |n: usize| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::fs::read_to_string(out.join("log"))
            .unwrap_or_default()
            .lines()
            .count()
            < n
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    };
    // One at a time: standard signals sent before the first is handled would merge.
    assert!(b.rt(&["kill", &b.id, "USR1"]).ok());
    wait_lines(1);
    assert!(b.rt(&["kill", &b.id, "10"]).ok());
    wait_lines(2);
    assert_eq!(
        std::fs::read_to_string(out.join("log")).unwrap_or_default(),
        "usr1\nusr1\n"
    );
    let r = b.rt(&["kill", &b.id, "SIGBOGUS"]);
    assert_eq!(r.status, Some(1));
    // Default signal: SIGTERM ends the shell.
    assert!(b.rt(&["kill", &b.id]).ok());
    assert!(b.wait_status("stopped"));
    let r = b.rt(&["kill", &b.id, "KILL"]);
    assert_eq!(
        r.status,
        Some(1),
        "nothing to signal in a stopped container"
    );
    // runc's words, which containerd's runc shim matches to report "process already finished".
    assert!(
        r.stderr.contains("container not running"),
        "kill of a stopped container: {}",
        r.stderr
    );
}

#[test]
fn config_changes_after_create_have_no_effect_and_unknown_annotations_are_fine() {
    if !can_run("config_changes_after_create_have_no_effect_and_unknown_annotations_are_fine") {
        return;
    }
    let mut b = Bundle::new("cfgchange", &["sleep", "100"]);
    b.config["annotations"] = serde_json::json!({"org.example.unknown": "value", "x": ""});
    b.save();
    assert!(b.create().ok());
    let before = b.state().unwrap();
    assert_eq!(before["annotations"]["org.example.unknown"], "value");
    b.config["hostname"] = "changed".into();
    b.config["annotations"] = serde_json::json!({"other": "1"});
    b.save();
    let after = b.state().unwrap();
    assert_eq!(
        before, after,
        "state follows the container, not the edited config.json"
    );
}

#[test]
fn repeated_flags_count_once() {
    // Engines build command lines from pieces and may repeat a flag (CRI-O's defaults and a
    // handler's arguments can both carry --systemd-cgroup); runc takes the flag once.
    let dir = std::env::temp_dir().join(format!("casulo-repeat-{}", std::process::id()));
    // An existing root: list refuses a --root that does not exist.
    std::fs::create_dir_all(&dir).unwrap();
    let mut c = std::process::Command::new(runtime());
    c.arg("--root")
        .arg(&dir)
        .args([
            "--debug",
            "--debug",
            "--systemd-cgroup",
            "--systemd-cgroup",
            "list",
        ])
        .args(["--quiet", "--quiet"]);
    let r = output_within(c, std::time::Duration::from_secs(20));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(r.ok(), "{} {}", r.stdout, r.stderr);
    assert_eq!(r.stdout, "");
}

/// `state` and `list` answer while another command holds the container (here `flock`, as a
/// checkpoint holds it for as long as CRIU dumps, a lazy migration's dump until its last page
/// is fetched), reading state.json as it is, as runc's do. The bound is a hang guard, not a
/// timing: before, both waited for the lock, without end.
#[test]
fn state_and_list_answer_while_another_command_holds_the_container() {
    if !can_run("state_and_list_answer_while_another_command_holds_the_container") {
        return;
    }
    let b = Bundle::new("held", &["sleep", "100"]);
    let r = b.create();
    assert!(r.ok(), "create: {}", r.stderr);
    let mut holder = std::process::Command::new("flock")
        // --no-fork: flock becomes the sleep, so killing it lets go of the lock.
        .args(["--exclusive", "--no-fork"])
        .arg(b.root.join(&b.id))
        .args(["sleep", "60"])
        .spawn()
        .expect("flock (util-linux)");
    // The lock is held once flock has become its command.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !std::fs::read_to_string(format!("/proc/{}/cmdline", holder.id()))
        .unwrap_or_default()
        .starts_with("sleep")
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let answered = |args: &[&str]| {
        try_output_within(b.cmd(args), std::time::Duration::from_secs(20))
            .ok()
            .map(|r| r.stdout)
    };
    let state = answered(&["state", &b.id]);
    let list = answered(&["list"]);
    let _ = holder.kill();
    let _ = holder.wait();
    let d = b.rt(&["delete", "--force", &b.id]);
    assert!(d.ok(), "delete: {}", d.stderr);
    let state = state.expect("state waited for the container's lock");
    assert!(state.contains("\"created\""), "{state}");
    let list = list.expect("list waited for the container's lock");
    assert!(list.contains(&b.id) && list.contains("created"), "{list}");
}
