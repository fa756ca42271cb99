//! Rootless: the runtime run by an unprivileged user made for the tests (`casulo-rl-test`,
//! created once with `useradd`, which gives it /etc/subuid and /etc/subgid ranges), with a
//! `$XDG_RUNTIME_DIR` of the test's own, on a bundle that `spec --rootless` wrote. Each test
//! runs the runtime as that user through `setpriv`, and checks that nothing is left behind in
//! the user's state dir, and no process or mount of the container.
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::rootless::{self, as_user_args, user_runtime, TestUser};
use common::{copy_rootfs, output_within, runtime, try_output_within, Run};
use serde_json::{json, Value};

const USER: &str = "casulo-rl-test";

fn test_user(test: &str) -> Option<TestUser> {
    rootless::test_user(USER, test)
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// One test's rootless container: a bundle owned by the test user with a copy of the busybox
/// rootfs and the config `spec --rootless` wrote (as that user), and the user's
/// `$XDG_RUNTIME_DIR`, whose `casulo` (or the other runtime's) directory is the default root.
/// Dropping it deletes the container and checks that nothing was left behind.
struct Rootless {
    user: TestUser,
    id: String,
    dir: PathBuf,
    xdg: PathBuf,
    config: Value,
}

impl Rootless {
    fn new(test: &str, args: &[&str]) -> Option<Rootless> {
        let user = test_user(test)?;
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let id = format!("rl{test}-{}-{n}", std::process::id());
        let top = std::env::temp_dir().join(format!("casulo-{id}"));
        let _ = std::fs::remove_dir_all(&top);
        let dir = top.join("bundle");
        let xdg = top.join("xdg");
        for d in [&dir, &xdg] {
            std::fs::create_dir_all(d).unwrap();
            nix::unistd::chown(d, Some(user.uid.into()), Some(user.gid.into())).unwrap();
        }
        std::fs::set_permissions(&top, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&xdg, std::fs::Permissions::from_mode(0o700)).unwrap();
        copy_rootfs(&dir);
        let mut b = Rootless {
            user,
            id,
            dir,
            xdg,
            config: Value::Null,
        };
        let r = b.rt(&["spec", "--rootless"]);
        assert!(r.ok(), "spec --rootless: {}", r.stderr);
        b.config = serde_json::from_slice(&std::fs::read(b.dir.join("config.json")).unwrap())
            .expect("config.json");
        let m = &b.config["linux"]["uidMappings"][0];
        assert_eq!(
            (&m["containerID"], &m["hostID"], &m["size"]),
            (&json!(0), &json!(user.uid), &json!(1)),
            "spec --rootless maps the caller's own uid"
        );
        b.config["process"]["terminal"] = false.into();
        b.config["process"]["args"] = json!(args);
        b.save();
        Some(b)
    }

    fn save(&self) {
        std::fs::write(
            self.dir.join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .unwrap();
    }

    /// The user's default state root.
    fn root(&self) -> PathBuf {
        let name = runtime()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.xdg
            .join(if common::is_casulo() { "casulo" } else { &name })
    }

    /// `RUNTIME args...` as the test user, in the bundle dir, with only `PATH` and
    /// `XDG_RUNTIME_DIR` in its environment (no `--root`: the default is the user's).
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("setpriv");
        c.args(as_user_args(self.user))
            .arg(user_runtime(self.user))
            .args(args)
            .current_dir(&self.dir)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .env("XDG_RUNTIME_DIR", &self.xdg);
        c
    }

    fn rt(&self, args: &[&str]) -> Run {
        output_within(self.cmd(args), Duration::from_secs(20))
    }

    fn state(&self) -> Option<Value> {
        let r = self.rt(&["state", &self.id]);
        r.ok()
            .then(|| serde_json::from_str(&r.stdout).expect("state JSON"))
    }

    fn wait_status(&self, want: &str) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if self.state().is_some_and(|s| s["status"] == want) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    fn leftovers(&self) -> Vec<String> {
        common::leftovers_of(&self.id, &self.root(), &self.dir)
    }
}

impl Drop for Rootless {
    fn drop(&mut self) {
        let deleted = try_output_within(
            self.cmd(&["delete", "--force", &self.id]),
            Duration::from_secs(20),
        );
        let left = self.leftovers();
        if let Some(top) = self.dir.parent() {
            let _ = std::fs::remove_dir_all(top);
        }
        if std::thread::panicking() {
            return;
        }
        if let Err(e) = deleted {
            panic!("container {}: cleanup: {e}", self.id);
        }
        assert!(
            left.is_empty(),
            "container {} left behind: {left:#?}",
            self.id
        );
    }
}

#[test]
fn spec_rootless_then_run_as_the_user() {
    let Some(b) = Rootless::new(
        "run",
        &[
            "sh",
            "-c",
            "id -u; cat /proc/self/uid_map /proc/self/setgroups; echo out; exit 3",
        ],
    ) else {
        return;
    };
    let r = b.rt(&["run", &b.id]);
    assert_eq!(r.status, Some(3), "stdout {} stderr {}", r.stdout, r.stderr);
    let lines: Vec<Vec<&str>> = r
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let uid = b.user.uid.to_string();
    assert_eq!(lines[0], ["0"], "{}", r.stdout);
    assert_eq!(lines[1], ["0", uid.as_str(), "1"], "{}", r.stdout);
    assert_eq!(lines[2], ["deny"], "setgroups is denied: {}", r.stdout);
    assert_eq!(lines[3], ["out"]);
    assert!(!b.root().join(&b.id).exists(), "run deletes the container");
}

#[test]
fn create_start_exec_kill_delete_as_the_user() {
    let Some(b) = Rootless::new("life", &["sleep", "100"]) else {
        return;
    };
    let r = b.rt(&["create", &b.id]);
    assert!(r.ok(), "create: {}", r.stderr);
    let st = b.state().expect("state");
    assert_eq!(st["status"], "created");
    let pid = st["pid"].as_i64().unwrap();
    // The init is the user's, on the host.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let host_uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(
        host_uid.split_whitespace().nth(1),
        Some(b.user.uid.to_string().as_str())
    );
    assert!(b.rt(&["start", &b.id]).ok());
    assert!(b.wait_status("running"));
    let r = b.rt(&["exec", &b.id, "sh", "-c", "echo in-$(id -u); exit 4"]);
    assert_eq!(r.status, Some(4), "exec: {}", r.stderr);
    assert_eq!(r.stdout.trim(), "in-0");
    // Without a cgroup casulo's ps lists the init; runc's fails ("unable to get all
    // container pids").
    if common::is_casulo() {
        let r = b.rt(&["ps", "--format", "json", &b.id]);
        assert!(r.ok(), "ps: {}", r.stderr);
        let pids: Vec<i64> = serde_json::from_str(&r.stdout).unwrap();
        assert!(pids.contains(&pid), "ps lists the init: {pids:?}");
    }
    let r = b.rt(&["kill", &b.id, "KILL"]);
    assert!(r.ok(), "kill: {}", r.stderr);
    assert!(b.wait_status("stopped"));
    let r = b.rt(&["delete", &b.id]);
    assert!(r.ok(), "delete: {}", r.stderr);
    assert!(b.state().is_none());
}

#[test]
fn several_ranges_through_newuidmap_with_a_user_inside() {
    let Some(mut b) = Rootless::new("ranges", &["sleep", "100"]) else {
        return;
    };
    let Some((subuid, subgid)) = b.user.subid else {
        eprintln!("SKIP several_ranges_through_newuidmap_with_a_user_inside: {USER} has no /etc/subuid and /etc/subgid range");
        return;
    };
    if !rootless::has_newuidmap() {
        eprintln!("SKIP several_ranges_through_newuidmap_with_a_user_inside: needs newuidmap and newgidmap (apt-get install uidmap)");
        return;
    }
    let map = |own: u32, sub: u32| {
        json!([{"containerID": 0, "hostID": own, "size": 1},
               {"containerID": 1, "hostID": sub, "size": 65536}])
    };
    b.config["linux"]["uidMappings"] = map(b.user.uid, subuid);
    b.config["linux"]["gidMappings"] = map(b.user.gid, subgid);
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    b.save();
    let r = b.rt(&["run", "--detach", &b.id]);
    assert!(r.ok(), "run: {}", r.stderr);
    let pid = b.state().expect("state")["pid"].as_i64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap()
            .to_string()
    };
    // Container uid 1000 is host id subuid + 999, from the user's subordinate range.
    assert_eq!(field("Uid:"), (subuid + 999).to_string());
    assert_eq!(field("Gid:"), (subgid + 999).to_string());
    let r = b.rt(&["exec", &b.id, "sh", "-c", "id -u; cat /proc/self/uid_map"]);
    assert!(r.ok(), "exec: {}", r.stderr);
    let mut lines = r.stdout.lines();
    assert_eq!(lines.next(), Some("1000"));
    let maps: Vec<Vec<String>> = lines
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect();
    assert_eq!(maps.len(), 2, "{}", r.stdout);
    assert_eq!(maps[1], ["1", &subuid.to_string(), "65536"]);
}

#[test]
fn limits_without_a_delegated_cgroup_are_refused_by_name() {
    let Some(mut b) = Rootless::new("limits", &["true"]) else {
        return;
    };
    b.config["linux"]["resources"] = json!({"memory": {"limit": 33554432}, "pids": {"limit": 10}});
    b.save();
    let r = b.rt(&["run", &b.id]);
    assert_eq!(r.status, Some(1), "stdout {} stderr {}", r.stdout, r.stderr);
    if common::is_casulo() {
        for want in [
            b.id.as_str(),
            "linux.resources.memory.limit",
            "linux.resources.pids.limit",
            "no cgroup is delegated",
        ] {
            assert!(r.stderr.contains(want), "{want:?} in: {}", r.stderr);
        }
    }
    assert!(b.leftovers().is_empty(), "{:#?}", b.leftovers());
    // Without limits the same config runs, without a cgroup.
    b.config["linux"]["resources"] = Value::Null;
    b.save();
    let r = b.rt(&["run", &b.id]);
    assert!(r.ok(), "run: {}", r.stderr);
}

#[test]
fn dev_nodes_are_bind_mounts_and_sys_is_there() {
    let script = "set -e; test -c /dev/null; test -c /dev/zero; echo x > /dev/null; \
                  head -c 3 /dev/zero | wc -c; \
                  grep -c ' /dev/null ' /proc/self/mountinfo; \
                  test -d /sys/class; \
                  awk '$5 == \"/sys\" { sub(/.* - /, \"\"); print $1 }' /proc/self/mountinfo";
    let Some(mut b) = Rootless::new("dev", &["sh", "-c", script]) else {
        return;
    };
    let r = b.rt(&["run", &b.id]);
    assert!(r.ok(), "run: {} {}", r.stdout, r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines, ["3", "1", "sysfs"], "{}", r.stdout);
    // A sysfs mount needs a network namespace of the container's own in a user namespace:
    // refused early, by name, where runc fails at the mount.
    for m in b.config["mounts"].as_array_mut().unwrap() {
        if m["destination"] == "/sys" {
            *m = json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
                        "options": ["nosuid", "noexec", "nodev", "ro"]});
        }
    }
    b.save();
    let r = b.rt(&["run", &b.id]);
    assert_eq!(r.status, Some(1), "stdout {} stderr {}", r.stdout, r.stderr);
    if common::is_casulo() {
        assert!(r.stderr.contains("sysfs"), "{}", r.stderr);
    }
}

#[test]
fn list_shows_the_users_own_root_and_pause_needs_a_cgroup() {
    let Some(b) = Rootless::new("list", &["sleep", "100"]) else {
        return;
    };
    let r = b.rt(&["run", "--detach", &b.id]);
    assert!(r.ok(), "run: {}", r.stderr);
    let r = b.rt(&["list", "--format", "json"]);
    assert!(r.ok(), "list: {}", r.stderr);
    let list: Value = serde_json::from_str(&r.stdout).unwrap();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(ids, [b.id.as_str()], "only the user's own container");
    assert_eq!(list[0]["owner"], USER);
    assert!(b.root().join(&b.id).is_dir(), "state in $XDG_RUNTIME_DIR");
    // Root's default root does not have it.
    let r = output_within(
        {
            let mut c = Command::new(runtime());
            c.args(["list", "-q"]);
            c
        },
        Duration::from_secs(20),
    );
    assert!(!r.stdout.lines().any(|l| l == b.id), "{}", r.stdout);
    // No cgroup, no freezer: pause says why and changes nothing.
    let r = b.rt(&["pause", &b.id]);
    assert_eq!(r.status, Some(1), "pause: {}", r.stdout);
    if common::is_casulo() {
        assert!(r.stderr.contains("no cgroup"), "{}", r.stderr);
    }
    assert!(b.wait_status("running"));
}

/// A cgroup v2 directory delegated to the test user (owned by it, as systemd's user manager
/// delegates), with a leaf the runtime's commands run in; removed on drop.
struct Delegated {
    top: PathBuf,
    leaf: PathBuf,
}

impl Delegated {
    fn new(u: TestUser, name: &str) -> Option<Delegated> {
        let mount = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
            .into_iter()
            .find(|m| Path::new(m).join("cgroup.subtree_control").exists())?;
        // Controllers for the delegated subtree where the host has them (pure v2).
        let _ = std::fs::write(Path::new(mount).join("cgroup.subtree_control"), "+pids");
        let top = Path::new(mount).join(format!("casulo-{name}"));
        let leaf = top.join("leaf");
        std::fs::create_dir_all(&leaf).ok()?;
        for d in [&top, &leaf] {
            for f in [
                "",
                "cgroup.procs",
                "cgroup.subtree_control",
                "cgroup.threads",
            ] {
                let p = if f.is_empty() { d.clone() } else { d.join(f) };
                let _ = nix::unistd::chown(&p, Some(u.uid.into()), Some(u.gid.into()));
            }
        }
        Some(Delegated { top, leaf })
    }

    /// `cmd` started in the delegated leaf.
    fn wrap(&self, cmd: Command) -> Command {
        let mut sh = Command::new("sh");
        sh.arg("-c")
            .arg("echo $$ > \"$0\"/cgroup.procs && exec \"$@\"")
            .arg(&self.leaf)
            .arg(cmd.get_program())
            .args(cmd.get_args())
            .env_clear()
            .envs(cmd.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))));
        if let Some(d) = cmd.get_current_dir() {
            sh.current_dir(d);
        }
        sh
    }
}

impl Drop for Delegated {
    fn drop(&mut self) {
        common::engine::remove_cgroup_tree(&self.top);
    }
}

#[test]
fn a_delegated_cgroup_is_used_pause_ps_and_limits() {
    let Some(mut b) = Rootless::new("deleg", &["sleep", "100"]) else {
        return;
    };
    let Some(d) = Delegated::new(b.user, &b.id) else {
        eprintln!("SKIP a_delegated_cgroup_is_used_pause_ps_and_limits: no cgroup v2 mount to delegate from");
        return;
    };
    let in_leaf =
        |b: &Rootless, args: &[&str]| output_within(d.wrap(b.cmd(args)), Duration::from_secs(20));
    let rt = |args: &[&str]| in_leaf(&b, args);
    let r = rt(&["run", "--detach", &b.id]);
    assert!(r.ok(), "run: {}", r.stderr);
    let cg = std::fs::read_dir(&d.top)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .chain(
            std::fs::read_dir(&d.leaf)
                .unwrap()
                .flatten()
                .map(|e| e.path()),
        )
        .find(|p| p.file_name().is_some_and(|n| n == b.id.as_str()));
    let Some(cg) = cg else {
        // runc on a host with v1 controllers (hybrid) leaves the container in its caller's
        // cgroup: its ps and pause then fail.
        assert!(!common::is_casulo(), "no cgroup in the delegated subtree");
        eprintln!(
            "NOTE: {:?} made no cgroup in the delegated subtree",
            runtime()
        );
        return;
    };
    let pid = b.state().unwrap()["pid"].as_i64().unwrap();
    let procs = std::fs::read_to_string(cg.join("cgroup.procs")).unwrap();
    assert!(procs.lines().any(|l| l == pid.to_string()), "{procs}");
    let r = rt(&["exec", "--detach", &b.id, "sleep", "50"]);
    assert!(r.ok(), "exec: {}", r.stderr);
    let r = rt(&["ps", "--format", "json", &b.id]);
    let pids: Vec<i64> = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(pids.len(), 2, "the init and the exec'd process: {pids:?}");
    assert!(rt(&["pause", &b.id]).ok());
    assert!(b.wait_status("paused"));
    assert!(rt(&["resume", &b.id]).ok());
    assert!(b.wait_status("running"));
    let r = rt(&["delete", "--force", &b.id]);
    assert!(r.ok(), "delete: {}", r.stderr);
    assert!(!cg.exists(), "delete removes the container's cgroup");
    // A limit: applied where the delegated cgroup has the controller, else refused by name.
    b.config["linux"]["resources"] = json!({"pids": {"limit": 17}});
    b.save();
    let b2 = &b;
    let rt = |args: &[&str]| in_leaf(b2, args);
    let has_pids = std::fs::read_to_string(d.leaf.join("cgroup.controllers"))
        .unwrap_or_default()
        .split_whitespace()
        .any(|c| c == "pids");
    let r = rt(&["create", &b2.id]);
    if has_pids {
        assert!(r.ok(), "create: {}", r.stderr);
        let max = std::fs::read_to_string(cg.join("pids.max")).unwrap_or_default();
        assert_eq!(max.trim(), "17");
        assert!(rt(&["delete", "--force", &b2.id]).ok());
    } else {
        assert_eq!(r.status, Some(1), "create: {}", r.stdout);
        if common::is_casulo() {
            assert!(r.stderr.contains("pids"), "{}", r.stderr);
        }
        assert!(b2.leftovers().is_empty(), "{:#?}", b2.leftovers());
        assert!(!cg.exists(), "no cgroup left");
    }
}

/// As root of a user namespace of its own, on a config without a user namespace (as rootless
/// podman runs the runtime): mknod is denied there too, so the device nodes are bind mounts
/// of the host's.
#[test]
fn root_of_the_users_namespace_binds_devices() {
    let script = "set -e; test -c /dev/null; echo x > /dev/null; head -c 3 /dev/zero | wc -c; \
                  grep -c ' /dev/null ' /proc/self/mountinfo; cat /proc/self/uid_map";
    let Some(mut b) = Rootless::new("userns", &["sh", "-c", script]) else {
        return;
    };
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "user");
    b.config["linux"]["uidMappings"] = Value::Null;
    b.config["linux"]["gidMappings"] = Value::Null;
    b.save();
    // `unshare --map-root-user`: the user's own uid is root of the new namespace.
    let mut c = Command::new("setpriv");
    c.args(as_user_args(b.user))
        .args(["unshare", "--user", "--map-root-user", "--"])
        .arg(user_runtime(b.user))
        .args(["run", &b.id])
        .current_dir(&b.dir)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("XDG_RUNTIME_DIR", &b.xdg);
    let r = output_within(c, Duration::from_secs(20));
    assert!(r.ok(), "run: {} {}", r.stdout, r.stderr);
    let lines: Vec<Vec<&str>> = r
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let uid = b.user.uid.to_string();
    assert_eq!(
        lines,
        [vec!["3"], vec!["1"], vec!["0", uid.as_str(), "1"]],
        "{}",
        r.stdout
    );
}

/// `exec` into a container that is only created: the init, still waiting for `start`, must be
/// reachable by its own user (its /proc files: namespaces and root). And once the container
/// has stopped, `kill --all` has nothing to signal and succeeds, with no cgroup to look in,
/// while a plain `kill` says the container is not running. runc's bats suite, run rootless,
/// checks both (create.bats "runc create exec", kill.bats "kill detached busybox").
#[test]
fn exec_while_created_and_kill_all_once_stopped() {
    let Some(b) = Rootless::new("created", &["sleep", "100"]) else {
        return;
    };
    let r = b.rt(&["create", &b.id]);
    assert!(r.ok(), "create: {}", r.stderr);
    let r = b.rt(&["exec", &b.id, "sh", "-c", "echo in-$(id -u)"]);
    assert!(r.ok(), "exec while created: {}", r.stderr);
    assert_eq!(r.stdout.trim(), "in-0");
    assert_eq!(b.state().expect("state")["status"], "created");
    assert!(b.rt(&["start", &b.id]).ok());
    assert!(b.wait_status("running"));
    assert!(b.rt(&["kill", &b.id, "KILL"]).ok());
    assert!(b.wait_status("stopped"));
    let r = b.rt(&["kill", &b.id, "0"]);
    assert_eq!(r.status, Some(1), "kill 0 when stopped: {}", r.stdout);
    assert!(r.stderr.contains("container not running"), "{}", r.stderr);
    let r = b.rt(&["kill", "--all", &b.id, "0"]);
    assert!(r.ok(), "kill --all 0 when stopped: {}", r.stderr);
    assert!(b.rt(&["delete", &b.id]).ok());
}

/// A `/dev/ptmx` in `linux.devices` is the devpts instance's ptmx, as without it: in a user
/// namespace, where device nodes are bind mounts, a bind mount there could not be replaced
/// by the symlink to `pts/ptmx` (dev.bats "runc run [redundant default /dev/ptmx]").
#[test]
fn a_redundant_dev_ptmx_is_the_devpts_one() {
    let Some(mut b) = Rootless::new(
        "ptmx",
        &[
            "sh",
            "-c",
            "readlink /dev/ptmx; test -c /dev/ptmx && echo char",
        ],
    ) else {
        return;
    };
    b.config["linux"]["devices"] =
        json!([{"path": "/dev/ptmx", "type": "c", "major": 5, "minor": 2}]);
    b.save();
    let r = b.rt(&["run", &b.id]);
    assert!(r.ok(), "run: {} {}", r.stdout, r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines, ["pts/ptmx", "char"], "{}", r.stdout);
}

/// A `linux.cgroupsPath` that a rootless runtime may not create (nothing is delegated above
/// it) is refused, as runc refuses it, rather than left out: only the default cgroup is
/// optional (cgroups.bats "runc create (rootless + no limits + cgrouppath + no permission)").
#[test]
fn a_cgroups_path_that_is_not_delegated_is_refused() {
    let Some(mut b) = Rootless::new("cgpath", &["true"]) else {
        return;
    };
    let path = format!("/casulo-rlt-{}", b.id);
    b.config["linux"]["cgroupsPath"] = json!(path);
    b.save();
    let r = b.rt(&["run", &b.id]);
    assert_eq!(r.status, Some(1), "stdout {} stderr {}", r.stdout, r.stderr);
    if common::is_casulo() {
        for want in [
            b.id.as_str(),
            path.as_str(),
            "linux.cgroupsPath",
            "permission denied",
        ] {
            assert!(r.stderr.contains(want), "{want:?} in: {}", r.stderr);
        }
    }
    assert!(b.leftovers().is_empty(), "{:#?}", b.leftovers());
}

/// Without a cgroup and without a pid namespace of its own, nothing finds the processes a
/// rootless container's init starts: create warns, and the container still runs
/// (create.bats "runc create [shared pidns + rootless]").
#[test]
fn no_cgroup_and_the_hosts_pid_namespace_is_warned_about() {
    let Some(mut b) = Rootless::new("hostpid", &["true"]) else {
        return;
    };
    let ns = b.config["linux"]["namespaces"].as_array_mut().unwrap();
    ns.retain(|n| n["type"] != "pid");
    // A new procfs needs a pid namespace of the container's own: the host's, bound.
    for m in b.config["mounts"].as_array_mut().unwrap() {
        if m["type"] == "proc" {
            *m = json!({"destination": "/proc", "type": "none", "source": "/proc",
                        "options": ["rbind", "nosuid", "nodev", "noexec"]});
        }
    }
    b.save();
    let r = b.rt(&["run", &b.id]);
    assert!(r.ok(), "run: {} {}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("strongly discouraged"),
        "a warning: {}",
        r.stderr
    );
}

/// `events --stats` of a rootless container without a cgroup reports a stats event with
/// empty data, as runc's does (events.bats "events --stats"), rather than failing.
#[test]
fn events_stats_without_a_cgroup_are_empty() {
    let Some(b) = Rootless::new("stats", &["sleep", "100"]) else {
        return;
    };
    let r = b.rt(&["run", "--detach", &b.id]);
    assert!(r.ok(), "run: {}", r.stderr);
    let r = b.rt(&["events", "--stats", &b.id]);
    assert!(r.ok(), "events --stats: {}", r.stderr);
    let ev: Value = serde_json::from_str(r.stdout.lines().next().unwrap_or("")).expect("JSON");
    assert_eq!(ev["type"], "stats", "{}", r.stdout);
    assert_eq!(ev["id"], b.id.as_str(), "{}", r.stdout);
}
