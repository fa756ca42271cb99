//! What the container's process sees (the conformance suite checks the rest field by field).
mod common;
use common::*;

#[test]
fn pid_one_hostname_and_only_stdio() {
    if !can_run("pid_one_hostname_and_only_stdio") {
        return;
    }
    let mut b = Bundle::new(
        "inside",
        &["sh", "-c", "echo $$; hostname; ls /proc/self/fd"],
    );
    b.config["hostname"] = "box".into();
    b.save();
    let r = b.run();
    assert!(r.ok(), "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines[0], "1");
    assert_eq!(lines[1], "box");
    // 0, 1, 2 and the fd ls reads /proc/self/fd through.
    assert_eq!(lines[2..], ["0", "1", "2", "3"], "{}", r.stdout);
}

#[test]
fn preserve_fds() {
    if !can_run("preserve_fds") {
        return;
    }
    let b = Bundle::new("preserve", &["sh", "-c", "cat <&3"]);
    let data = b.dir.join("data");
    std::fs::write(&data, "from fd 3\n").unwrap();
    // The caller opens fd 3; the runtime passes it on.
    let mut cmd = b.shell("run --preserve-fds 1 --bundle \"$2\" \"$3\" 3<\"$4\"");
    cmd.arg(&b.dir).arg(&b.id).arg(&data);
    let r = output_within(cmd, std::time::Duration::from_secs(20));
    assert!(r.ok(), "{}", r.stderr);
    assert_eq!(r.stdout, "from fd 3\n");
}

#[test]
fn joined_pid_and_uts_namespaces() {
    if !can_run("joined_pid_and_uts_namespaces") {
        return;
    }
    let mut first = Bundle::new("nsfirst", &["sleep", "100"]);
    first.config["hostname"] = "first".into();
    first.save();
    assert!(first
        .rt(&[
            "run",
            "--detach",
            "--bundle",
            first.dir.to_str().unwrap(),
            &first.id
        ])
        .ok());
    let pid = first.state().unwrap()["pid"].as_i64().unwrap();
    let mut second = Bundle::new("nssecond", &["sh", "-c", "echo $$; hostname"]);
    second.config["hostname"] = serde_json::Value::Null;
    for ns in second.config["linux"]["namespaces"].as_array_mut().unwrap() {
        match ns["type"].as_str().unwrap() {
            "pid" => ns["path"] = format!("/proc/{pid}/ns/pid").into(),
            "uts" => ns["path"] = format!("/proc/{pid}/ns/uts").into(),
            // Rootless, the first container's namespaces belong to its user namespace: only
            // its members may join them (and its id maps are the ones that hold).
            "user" => ns["path"] = format!("/proc/{pid}/ns/user").into(),
            _ => {}
        }
    }
    if second.user.is_some() {
        let linux = second.config["linux"].as_object_mut().unwrap();
        linux.remove("uidMappings");
        linux.remove("gidMappings");
    }
    second.save();
    let r = second.run();
    assert!(r.ok(), "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_ne!(
        lines[0], "1",
        "in the first container's pid namespace, not its init"
    );
    assert_eq!(lines[1], "first");
}

#[test]
fn terminal_through_the_console_socket() {
    if !can_run("terminal_through_the_console_socket") {
        return;
    }
    use std::io::Read;
    let mut b = Bundle::new("tty", &["sh", "-c", "tty; echo hello-tty"]);
    b.config["process"]["terminal"] = true.into();
    b.save();
    let sock_path = b.dir.join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
    if let Some(u) = b.user {
        // The engine that made the socket is the user's.
        chown_to(&sock_path, u);
    }
    let r = b.rt(&[
        "create",
        "--console-socket",
        sock_path.to_str().unwrap(),
        "--bundle",
        b.dir.to_str().unwrap(),
        &b.id,
    ]);
    assert!(r.ok(), "{}", r.stderr);
    let (conn, _) = listener.accept().unwrap();
    let (master, _name) = casulo::__private::tty::recv_fd(std::os::fd::AsFd::as_fd(&conn)).unwrap();
    assert!(b.rt(&["start", &b.id]).ok());
    let mut f = std::fs::File::from(master);
    let mut text = String::new();
    let mut buf = [0u8; 256];
    while !text.contains("hello-tty") {
        match f.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    assert!(text.contains("/dev/pts/0"), "{text:?}");
    assert!(text.contains("hello-tty"), "{text:?}");
    assert!(b.wait_status("stopped"));
}

#[test]
fn exec_joins_the_container() {
    if !can_run("exec_joins_the_container") {
        return;
    }
    let mut b = Bundle::new("exec", &["sleep", "100"]);
    // Rootless, --user 65534 needs more than the user's own id mapped.
    b.use_userns_where_rootless();
    b.config["hostname"] = "exechost".into();
    b.save();
    assert!(b.run_detached().ok());
    let r = b.rt(&["exec", &b.id, "sh", "-c", "hostname; echo $$; exit 4"]);
    assert_eq!(r.status, Some(4), "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines[0], "exechost");
    assert_ne!(lines[1], "1");
    let r = b.rt(&["exec", "--user", "65534:65534", &b.id, "id", "-u"]);
    assert_eq!(r.stdout.trim(), "65534");
    let r = b.rt(&["exec", &b.id, "/no/such"]);
    // A failed exec exits 255 (runc's status), not a status the process could have exited with.
    assert_eq!(r.status, Some(255));
    assert!(r.stderr.contains("/no/such"), "{}", r.stderr);
}

/// The keyrings called `_ses.<id>` that the host's /proc/keys lists, with their permissions
/// (serial, perm in hexadecimal).
fn session_keyrings(id: &str) -> Vec<(String, u32)> {
    let name = format!("_ses.{id}:");
    std::fs::read_to_string("/proc/keys")
        .unwrap()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(7) == Some(&"keyring") && f.get(8) == Some(&name.as_str()))
                .then(|| (f[0].to_string(), u32::from_str_radix(f[4], 16).unwrap()))
        })
        .collect()
}

/// An exec'd process joins the container's session keyring, as runc's do, rather than making
/// one of its own: the init's keyring is searchable by its uid, and it stays the only one of
/// its name while both run. With --no-new-keyring there is none.
#[test]
fn exec_joins_the_session_keyring() {
    let test = "exec_joins_the_session_keyring";
    if !can_run(test)
        || !runs_rootless(test, "the host's /proc/keys shows only root's own keyrings")
        || !std::path::Path::new("/proc/keys").exists()
    {
        return;
    }
    const USER_SEARCH: u32 = 0x0008_0000;
    let b = Bundle::new("keyring", &["sleep", "100"]);
    assert!(b.run_detached().ok());
    let rings = session_keyrings(&b.id);
    assert_eq!(rings.len(), 1, "after run: {rings:?}");
    assert_ne!(rings[0].1 & USER_SEARCH, 0, "not searchable: {rings:?}");
    b.exec_detached(&["sleep", "100"]);
    assert_eq!(session_keyrings(&b.id), rings, "after exec");

    let b = Bundle::new("nokeyring", &["sleep", "100"]);
    let dir = b.dir.to_str().unwrap();
    let r = b.rt(&[
        "run",
        "--detach",
        "--no-new-keyring",
        "--bundle",
        dir,
        &b.id,
    ]);
    assert!(r.ok(), "{}", r.stderr);
    b.exec_detached(&["sleep", "100"]);
    assert_eq!(session_keyrings(&b.id), [], "with --no-new-keyring");
}
