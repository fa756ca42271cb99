//! Rootless with the systemd cgroup driver: `--systemd-cgroup` run by an unprivileged user makes
//! the container's transient scope through the user's own systemd manager, on the user's
//! session bus, in the cgroup subtree systemd delegates to that manager (runc's rootless systemd
//! driver).
//!
//! The rootless tests' user (`casulo-rl-test`, made with `useradd`) gets its manager,
//! `user@UID.service`, started as a login would start it (the rootless podman suite does the
//! same); the runtime runs as the user through `setpriv`, with `$XDG_RUNTIME_DIR` the manager's
//! `/run/user/UID` and no `$DBUS_SESSION_BUS_ADDRESS`, so the bus is found as
//! `$XDG_RUNTIME_DIR/bus`. That needs systemd as the init system and a pure cgroup v2 host (the
//! systemd guest of scripts/cgroup-v2-vm): elsewhere the tests print a SKIP line.
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::engine::{alive, wait_until};
use common::rootless::{self, as_user_args, user_runtime, TestUser, UserManager};
use common::{copy_rootfs, output_within, runtime, try_output_within, Run};
use serde_json::{json, Value};

/// The rootless tests' user (made once per run: `useradd` alone takes seconds under emulation).
const USER: &str = common::ROOTLESS_USER;
const PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";

/// The test user, where a user manager can be had here; else None after a SKIP line.
fn user_with_manager(test: &str) -> Option<TestUser> {
    if !rootless::user_manager_available() {
        eprintln!(
            "SKIP {test}: needs systemd as the init system and a pure cgroup v2 hierarchy \
             (a user manager with a delegated subtree; scripts/cgroup-v2-vm --systemd)"
        );
        return None;
    }
    rootless::test_user(USER, test)
}

/// One container of the test user: a bundle of its own with the config `spec --rootless`
/// wrote, a state root of its own, and the environment the runtime gets (`XDG_RUNTIME_DIR`,
/// and whatever else a test sets). Dropping it deletes the container, removes the bundle, and
/// fails the test if the container left its state, a process or a cgroup behind.
struct Ctr {
    user: TestUser,
    id: String,
    top: PathBuf,
    dir: PathBuf,
    root: PathBuf,
    env: Vec<(&'static str, String)>,
    config: Value,
}

impl Ctr {
    fn new(user: TestUser, name: &str, xdg: &Path, args: &[&str]) -> Ctr {
        let id = format!("sd{name}-{}", std::process::id());
        let top = std::env::temp_dir().join(format!("casulo-{id}"));
        let _ = std::fs::remove_dir_all(&top);
        let dir = top.join("bundle");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&top, std::fs::Permissions::from_mode(0o755)).unwrap();
        nix::unistd::chown(&dir, Some(user.uid.into()), Some(user.gid.into())).unwrap();
        let rootfs = copy_rootfs(&dir);
        let st = Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", user.uid, user.gid))
            .arg(&rootfs)
            .status()
            .unwrap();
        assert!(st.success(), "chown the rootfs");
        let mut c = Ctr {
            user,
            id,
            root: dir.join("state"),
            top,
            dir,
            env: vec![("XDG_RUNTIME_DIR", xdg.display().to_string())],
            config: Value::Null,
        };
        let r = c.rt(&["spec", "--rootless"]);
        assert!(r.ok(), "spec --rootless: {}", r.stderr);
        c.config = serde_json::from_slice(&std::fs::read(c.dir.join("config.json")).unwrap())
            .expect("config.json");
        c.config["process"]["terminal"] = false.into();
        c.config["process"]["args"] = json!(args);
        c.save();
        c
    }

    fn save(&self) {
        std::fs::write(
            self.dir.join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .unwrap();
    }

    /// `RUNTIME --root ROOT --systemd-cgroup ARGS` as the user, in the bundle.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("setpriv");
        c.args(as_user_args(self.user))
            .arg(user_runtime(self.user))
            .arg("--root")
            .arg(&self.root)
            .arg("--systemd-cgroup")
            .args(args)
            .current_dir(&self.dir)
            .env_clear()
            .env("PATH", PATH)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    fn rt(&self, args: &[&str]) -> Run {
        output_within(self.cmd(args), Duration::from_secs(30))
    }

    fn state(&self) -> Option<Value> {
        let r = self.rt(&["state", &self.id]);
        r.ok()
            .then(|| serde_json::from_str(&r.stdout).expect("state JSON"))
    }

    fn wait_status(&self, want: &str) {
        wait_until(&format!("{} {want}", self.id), || {
            self.state().is_some_and(|s| s["status"] == want)
        })
        .unwrap();
    }

    /// What the container left: its state, processes and mounts, and any cgroup named after it.
    fn leftovers(&self) -> Vec<String> {
        let mut left = common::leftovers_of(&self.id, &self.root, &self.dir);
        let mut dirs = vec![PathBuf::from("/sys/fs/cgroup/user.slice")];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    if e.file_name().to_string_lossy().contains(&self.id) {
                        left.push(format!("cgroup {}", e.path().display()));
                    }
                    dirs.push(e.path());
                }
            }
        }
        left
    }
}

impl Drop for Ctr {
    fn drop(&mut self) {
        let deleted = try_output_within(
            self.cmd(&["delete", "--force", &self.id]),
            Duration::from_secs(30),
        );
        let left = self.leftovers();
        let _ = std::fs::remove_dir_all(&self.top);
        if std::thread::panicking() {
            return;
        }
        if let Err(e) = deleted {
            panic!("container {}: cleanup: {e}", self.id);
        }
        assert!(left.is_empty(), "{} left behind: {left:#?}", self.id);
    }
}

/// The cgroup2 path of process `pid`.
fn cgroup_of(pid: i64) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or("")
        .to_string()
}

/// `systemctl --user show -p PROPS UNIT` as the user, against its manager: `KEY=VALUE` lines.
fn user_unit_show(c: &Ctr, unit: &str, props: &str) -> String {
    let mut cmd = Command::new("setpriv");
    cmd.args(as_user_args(c.user))
        .args(["systemctl", "--user", "show", "-p", props, unit])
        .env_clear()
        .env("PATH", PATH)
        .envs(c.env.iter().map(|(k, v)| (k, v)));
    output_within(cmd, Duration::from_secs(30)).stdout
}

/// The lifecycle of a container whose scope the user's manager makes: the scope is in the
/// manager's `user.slice` with the limits in its files and unit, exec and update reach it,
/// pause freezes it, and delete stops the unit and removes the cgroup.
#[test]
fn the_users_manager_makes_the_scope_with_limits_exec_and_delete() {
    let test = "the_users_manager_makes_the_scope_with_limits_exec_and_delete";
    let Some(user) = user_with_manager(test) else {
        return;
    };
    let _lock = rootless::HostLock::acquire(USER).unwrap();
    let manager = UserManager::start(user).unwrap_or_else(|e| panic!("the user manager: {e}"));
    let mut c = Ctr::new(user, "life", &manager.runtime_dir(), &["sleep", "1000"]);
    c.config["linux"]["resources"] = json!({
        "memory": {"limit": 67108864},
        "pids": {"limit": 50},
        "cpu": {"quota": 50000, "period": 100000}
    });
    c.save();
    let r = c.rt(&["create", &c.id]);
    assert!(r.ok(), "create: {}", r.stderr);
    let pid = c.state().expect("state")["pid"].as_i64().unwrap();
    // No cgroupsPath: runc's default, a scope "runc-<id>.scope" in the manager's user.slice.
    let unit = format!("runc-{}.scope", c.id);
    let want = format!("{}/user.slice/{unit}", manager.cgroup_path());
    assert_eq!(cgroup_of(pid), want, "the init's cgroup");
    let dir = PathBuf::from(format!("/sys/fs/cgroup{want}"));
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|e| format!("({f}: {e})"))
    };
    assert_eq!(
        [read("memory.max"), read("pids.max"), read("cpu.max")],
        ["67108864", "50", "50000 100000"]
    );
    let shown = user_unit_show(&c, &unit, "ActiveState,MemoryMax,TasksMax");
    for want in ["ActiveState=active", "MemoryMax=67108864", "TasksMax=50"] {
        assert!(shown.lines().any(|l| l == want), "{want} in: {shown}");
    }
    assert!(c.rt(&["start", &c.id]).ok());
    c.wait_status("running");
    let pid_file = c.dir.join("exec.pid");
    let r = c.rt(&[
        "exec",
        "--detach",
        "--pid-file",
        pid_file.to_str().unwrap(),
        &c.id,
        "sleep",
        "500",
    ]);
    assert!(r.ok(), "exec: {}", r.stderr);
    let exec_pid: i64 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // From a cgroup that is not the user's (a login session's scope, here the test's), the
    // user cannot move the process itself; casulo has its manager do it. runc 1.1 leaves it
    // where it is.
    if common::is_casulo() {
        assert_eq!(cgroup_of(exec_pid), want, "the exec'd process's cgroup");
    } else if cgroup_of(exec_pid) != want {
        eprintln!(
            "NOTE: {:?} left the exec'd process out of the scope",
            runtime()
        );
    }
    let r = c.rt(&["update", "--pids-limit", "60", &c.id]);
    assert!(r.ok(), "update: {}", r.stderr);
    assert_eq!(read("pids.max"), "60");
    let shown = user_unit_show(&c, &unit, "TasksMax");
    assert_eq!(
        shown.trim(),
        "TasksMax=60",
        "update sets the unit's property"
    );
    assert!(c.rt(&["pause", &c.id]).ok());
    c.wait_status("paused");
    assert_eq!(read("cgroup.freeze"), "1");
    assert!(c.rt(&["resume", &c.id]).ok());
    c.wait_status("running");
    let r = c.rt(&["kill", &c.id, "KILL"]);
    assert!(r.ok(), "kill: {}", r.stderr);
    c.wait_status("stopped");
    let r = c.rt(&["delete", &c.id]);
    assert!(r.ok(), "delete: {}", r.stderr);
    assert!(
        !alive(exec_pid as i32),
        "the exec'd process outlived delete"
    );
    assert!(!dir.exists(), "delete removes {}", dir.display());
    let shown = user_unit_show(&c, &unit, "LoadState");
    assert_eq!(shown.trim(), "LoadState=not-found", "delete stops the unit");
    drop(c);
    drop(manager);
}

/// No session bus to reach the user's manager on: create fails naming the bus (or the missing
/// variables that locate it) and the container, and leaves nothing behind.
#[test]
fn a_missing_session_bus_is_named_and_nothing_is_left() {
    let test = "a_missing_session_bus_is_named_and_nothing_is_left";
    let Some(user) = user_with_manager(test) else {
        return;
    };
    let xdg = std::env::temp_dir().join(format!("casulo-sdnobus-{}", std::process::id()));
    std::fs::create_dir_all(&xdg).unwrap();
    nix::unistd::chown(&xdg, Some(user.uid.into()), Some(user.gid.into())).unwrap();
    std::fs::set_permissions(&xdg, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut c = Ctr::new(user, "nobus", &xdg, &["true"]);
    let addr = format!("unix:path={}/no-bus", xdg.display());
    // The address given; then none, and no runtime directory to find it in.
    for env in [vec![("DBUS_SESSION_BUS_ADDRESS", addr.clone())], Vec::new()] {
        c.env = env;
        let r = c.rt(&["run", &c.id]);
        assert_eq!(r.status, Some(1), "run: {}", common::engine::describe(&r));
        if common::is_casulo() {
            let names = if c.env.is_empty() {
                "DBUS_SESSION_BUS_ADDRESS"
            } else {
                addr.as_str()
            };
            for want in [c.id.as_str(), names] {
                assert!(r.stderr.contains(want), "{want:?} in: {}", r.stderr);
            }
        }
        assert!(c.leftovers().is_empty(), "{:#?}", c.leftovers());
    }
    c.env = vec![("XDG_RUNTIME_DIR", xdg.display().to_string())];
    drop(c);
    let _ = std::fs::remove_dir_all(&xdg);
}
