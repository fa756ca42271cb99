//! Rootless podman runs its containers on the runtime under test.
//!
//! A user made for this file (`casulo-pm-test`, with `useradd` as rootless.rs makes its own,
//! which gives it /etc/subuid and /etc/subgid ranges) runs podman in a private world under a
//! fresh temporary directory: its own `$HOME`, `$XDG_RUNTIME_DIR` and
//! `$XDG_CONFIG_HOME/containers` (containers.conf selecting the runtime, the cgroupfs manager
//! and no network; storage.conf with the vfs driver and a graph root and run root of its own),
//! and an image imported from a tar of the busybox rootfs. podman makes the user namespace of
//! the user's ranges (through `newuidmap`/`newgidmap`) and runs conmon and the runtime in it,
//! as root of that namespace; the runtime keeps its state in its default root,
//! `$XDG_RUNTIME_DIR/<runtime>`. The runtime podman runs is a logging wrapper in front of
//! casulo (or of `CASULO_TEST_RUNTIME`, e.g. runc).
//!
//! The scenarios run one after the other; each prints `PASS` or `FAIL` with its time, removes
//! its containers even when it failed, and must leave nothing behind: no container podman
//! lists, nothing in the runtime's state root, no mount under the world's directory (on the
//! host, or in podman's own mount namespace), no process of the test user but podman's pause
//! process. At the end every container and image is removed, the pause process is ended, and
//! no process of the user may remain. A lock keeps two runs of this file from sharing the user.
//!
//! On a cgroup v1 (or hybrid) host podman 4.3 runs rootless containers without cgroups: it
//! drops resource limits with a warning before the runtime sees them (and refuses
//! `--cgroups=disabled` for a runtime other than crun). Where systemd is the init system and
//! cgroups are a pure v2 hierarchy, the suite starts the user's systemd manager
//! (`user@UID.service`, which is delegated a cgroup subtree) and runs podman in the user's
//! session: `$XDG_RUNTIME_DIR` is `/run/user/UID`, the session bus the manager's, and every
//! container gets its cgroup in the delegated subtree (through podman's cgroupfs manager with a
//! cgroup parent there, or its systemd manager with `CASULO_PODMAN_CGROUP_MANAGER=systemd`),
//! where a scenario checks the limits (and `limits-systemd` the same for a container that
//! podman's systemd manager runs whatever the configuration says, whose scope the runtime has
//! the user's manager start). `CASULO_PODMAN_SCENARIOS` (keys, comma-separated) runs
//! part of the scenarios. Without podman, conmon, the test user's subordinate ranges or
//! `newuidmap`, the test prints a `SKIPPED` line.
mod common;
use common::engine::*;
use common::podman::{PodmanWorld, IMAGE};
use common::rootless::{self, as_user_args, user_runtime, TestUser, UserManager};
use common::*;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

const USER: &str = "casulo-pm-test";
const PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";

/// The rootless podman world and what the scenarios need to drive it. Dropping it removes every
/// container and image, ends the user's processes, and removes the directory.
struct World {
    user: TestUser,
    dir: PathBuf,
    home: PathBuf,
    xdg: PathBuf,
    /// One line per runtime invocation, written by the wrapper.
    calls: PathBuf,
    /// Where the user's systemd manager delegates a cgroup subtree: the containers' cgroups
    /// are made there, and their limits apply.
    delegated: Option<Delegated>,
    /// The test user is this run's alone while it is held.
    _lock: rootless::HostLock,
}

/// The delegated cgroup subtree of the user's systemd manager, and how podman puts its
/// containers in it: with podman's `cgroupfs` manager (the default here), under a cgroup
/// parent `<subtree>/casulo-pmrl` that the runtime makes in the subtree; with its `systemd`
/// manager (`CASULO_PODMAN_CGROUP_MANAGER=systemd`), in transient scopes of the user manager
/// (`<subtree>/user.slice/libpod-ID.scope`) that the runtime starts over the session bus.
struct Delegated {
    manager: UserManager,
    systemd: bool,
    /// The cgroupfs manager's cgroup parent, relative to the cgroup2 mount.
    parent: String,
}

impl Delegated {
    fn start(user: TestUser) -> Result<Delegated, String> {
        let manager = UserManager::start(user)?;
        let systemd = match std::env::var("CASULO_PODMAN_CGROUP_MANAGER").as_deref() {
            Ok("systemd") => true,
            Ok("cgroupfs") | Err(_) => false,
            Ok(other) => {
                return Err(format!(
                    "CASULO_PODMAN_CGROUP_MANAGER={other:?}: want cgroupfs or systemd"
                ))
            }
        };
        let parent = format!("{}/casulo-pmrl", manager.cgroup_path());
        Ok(Delegated {
            manager,
            systemd,
            parent,
        })
    }

    /// The cgroups under the subtree that a container leaves if it is not cleaned up: podman's
    /// `libpod-*` scopes and cgroups, anywhere below.
    fn container_cgroups(&self) -> Vec<PathBuf> {
        let mut dirs = vec![self.manager.cgroup()];
        let mut found = Vec::new();
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    if e.file_name().to_string_lossy().starts_with("libpod-") {
                        found.push(e.path());
                    }
                    dirs.push(e.path());
                }
            }
        }
        found
    }

    /// Whether process `pid` belongs to the user manager itself or a unit of its own (its
    /// `init.scope`, the session bus in `app.slice`, ...): in the subtree, but neither in the
    /// systemd manager's `user.slice`, where podman's scopes go, nor under the cgroupfs parent.
    fn is_managers(&self, pid: i32) -> bool {
        let Some(cg) = cgroup_of(pid) else {
            return false;
        };
        let base = self.manager.cgroup_path();
        let Some(rest) = cg.strip_prefix(&base) else {
            return false;
        };
        !(rest.starts_with("/user.slice/") || cg.starts_with(&format!("{}/", self.parent)))
    }
}

/// The cgroup2 path of process `pid` (`0::PATH` of its /proc/PID/cgroup).
fn cgroup_of(pid: i32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_string)
}

/// `path` made (with its parents) and given to `u`.
fn user_dir(u: TestUser, path: &Path, mode: u32) {
    std::fs::create_dir_all(path).unwrap();
    nix::unistd::chown(path, Some(u.uid.into()), Some(u.gid.into())).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn user_file(u: TestUser, path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    nix::unistd::chown(path, Some(u.uid.into()), Some(u.gid.into())).unwrap();
}

/// Live processes whose real uid is `u`'s or one of its subordinate ids.
fn user_processes(u: TestUser) -> Vec<(i32, String)> {
    let (sub, _) = u.subid.unwrap_or((u32::MAX, 0));
    let ours = |uid: u32| uid == u.uid || (sub..sub.saturating_add(65536)).contains(&uid);
    processes_where(|_| true)
        .into_iter()
        .filter(|(pid, _)| alive(*pid))
        .filter_map(|(pid, args)| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let uid: u32 = status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            ours(uid).then(|| (pid, args.join(" ")))
        })
        .collect()
}

impl World {
    fn start(user: TestUser) -> Result<World, String> {
        let lock = rootless::HostLock::acquire(USER)?;
        let delegated = if rootless::user_manager_available() {
            Some(Delegated::start(user)?)
        } else {
            None
        };
        let dir = std::env::temp_dir().join(format!("casulo-pmrl-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let w = World {
            user,
            home: dir.join("home"),
            xdg: match &delegated {
                Some(d) => d.manager.runtime_dir(),
                None => dir.join("xdg"),
            },
            calls: dir.join("runtime-calls.log"),
            dir,
            delegated,
            _lock: lock,
        };
        // From here on, Drop cleans up whatever happens.
        let conf_dir = w.home.join(".config/containers");
        for d in [
            &w.home,
            &w.home.join(".config"),
            &conf_dir,
            &w.dir.join("tmp"),
            &w.dir.join("storage"),
            &w.dir.join("run"),
        ] {
            user_dir(user, d, 0o755);
        }
        if w.delegated.is_none() {
            user_dir(user, &w.xdg, 0o700);
        }
        user_file(user, &w.calls, "");
        let wrapper = w.dir.join("casulo");
        write_wrapper_for(&wrapper, &w.calls, user_runtime(user), &[]);
        // conmon runs podman's cleanup (`container cleanup`) with `$HOME` but not
        // `$XDG_CONFIG_HOME`: the configuration is where both find it.
        let manager = match &w.delegated {
            Some(d) if d.systemd => "systemd",
            _ => "cgroupfs",
        };
        let conf = format!(
            r#"[containers]
netns = "none"
log_driver = "k8s-file"

[engine]
cgroup_manager = "{manager}"
events_logger = "file"
runtime = "casulo"
runtime_supports_json = ["casulo"]

[engine.runtimes]
casulo = ["{wrapper}"]
"#,
            wrapper = wrapper.display(),
        );
        user_file(user, &conf_dir.join("containers.conf"), &conf);
        let storage = format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"{d}/storage\"\nrunroot = \"{d}/run\"\n",
            d = w.dir.display()
        );
        user_file(user, &conf_dir.join("storage.conf"), &storage);
        user_file(user, &conf_dir.join("registries.conf"), "");
        let tar = w.dir.join("rootfs.tar");
        let st = Command::new("tar")
            .args(["--numeric-owner", "-C"])
            .arg(rootfs())
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap();
        check(st.success(), || "tar of the busybox rootfs failed".into())?;
        std::fs::set_permissions(&tar, std::fs::Permissions::from_mode(0o644)).unwrap();
        let r = w.podman(&[
            "import",
            "--change",
            "ENV=PATH=/bin",
            "--change",
            "CMD=[\"sh\"]",
            tar.to_str().unwrap(),
            IMAGE,
        ]);
        check(r.ok(), || format!("podman import: {}", describe(&r)))?;
        Ok(w)
    }

    /// The host's view of the container's init: `Uid:` and `Gid:` of its status (real ids).
    fn init_ids(&self, name: &str) -> Result<(u32, u32), String> {
        let pid = self.inspect(name, "{{.State.Pid}}")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
        let field = |f: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(f))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(u32::MAX)
        };
        Ok((field("Uid:"), field("Gid:")))
    }

    /// podman's pause process, which holds the user namespace between podman commands.
    fn pause_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.xdg.join("libpod/tmp/pause.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Mounts under the world's directory, on the host and in podman's mount namespace.
    fn mounts(&self) -> Vec<String> {
        let dir = self.dir.to_str().unwrap();
        let mut left: Vec<String> = mounts_under(&self.dir)
            .into_iter()
            .map(|m| format!("mount {m}"))
            .collect();
        if let Some(pid) = self.pause_pid() {
            let info =
                std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
            left.extend(
                info.lines()
                    .filter_map(|l| l.split(' ').nth(4))
                    .filter(|m| m.starts_with(dir))
                    .map(|m| format!("mount in podman's namespace {m}")),
            );
        }
        left
    }
}

impl PodmanWorld for World {
    fn podman(&self, args: &[&str]) -> Run {
        let mut c = Command::new("setpriv");
        c.args(as_user_args(self.user))
            .arg("podman")
            .args(args)
            .current_dir(&self.home)
            .env_clear()
            .env("PATH", PATH)
            .env("HOME", &self.home)
            .env("XDG_RUNTIME_DIR", &self.xdg)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("TMPDIR", self.dir.join("tmp"));
        if let Some(d) = &self.delegated {
            c.env("DBUS_SESSION_BUS_ADDRESS", d.manager.bus_address());
        }
        output_within(c, Duration::from_secs(60))
    }

    /// In the delegated subtree with podman's cgroupfs manager: the cgroup parent there.
    fn run_flags(&self) -> Vec<&str> {
        match &self.delegated {
            Some(d) if !d.systemd => vec!["--cgroup-parent", d.parent.as_str()],
            _ => Vec::new(),
        }
    }

    /// The runtime's default state root for the user: `$XDG_RUNTIME_DIR/casulo` (or the
    /// other runtime's name).
    fn runtime_root(&self) -> PathBuf {
        let name = runtime()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.xdg.join(if is_casulo() { "casulo" } else { &name })
    }

    /// Mounts under the world's directory, processes of the user besides podman's pause (and
    /// the user manager's own), and the containers' cgroups in the delegated subtree.
    fn other_leftovers(&self) -> Vec<String> {
        let mut left = self.mounts();
        let pause = self.pause_pid();
        left.extend(
            user_processes(self.user)
                .into_iter()
                .filter(|(pid, _)| Some(*pid) != pause)
                .filter(|(pid, _)| !self.delegated.as_ref().is_some_and(|d| d.is_managers(*pid)))
                .map(|(pid, args)| format!("process {pid} of {USER}: {args}")),
        );
        if let Some(d) = &self.delegated {
            left.extend(
                d.container_cgroups()
                    .into_iter()
                    .map(|c| format!("cgroup {}", c.display())),
            );
        }
        left
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = self.podman(&["rm", "--all", "--force", "--time", "0"]);
        let _ = self.podman(&["rmi", "--all", "--force"]);
        // The pause process, then whatever else of the user's is still running (the user is
        // this run's alone: the lock is held).
        let kill = |pid: i32| {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        };
        if let Some(pid) = self.pause_pid() {
            kill(pid);
        }
        // Stopping the user manager ends what is left in its subtree and removes the user's
        // runtime directory; the cgroupfs parent is the runtime's, made in the subtree.
        if let Some(d) = self.delegated.take() {
            let _ = std::fs::remove_dir(format!("/sys/fs/cgroup{}", d.parent));
            drop(d);
        }
        for (pid, _) in user_processes(self.user) {
            kill(pid);
        }
        umount_all_under(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// --- The scenarios. Each gets the world and the name (or name prefix) of its containers. ---

/// `run --rm`: output and exit status pass through; the container's root is the user, its
/// other ids the user's subordinate range; a missing command is 127.
fn run_output(w: &World, name: &str) -> Result<(), String> {
    let r = w.run(
        name,
        &["--rm"],
        &[
            "sh",
            "-c",
            "echo to-stdout; echo to-stderr >&2; id -u; cat /proc/self/uid_map; exit 3",
        ],
    );
    check(r.status == Some(3), || {
        format!("want exit 3: {}", describe(&r))
    })?;
    check(r.stderr.contains("to-stderr"), || {
        format!("stderr: {}", describe(&r))
    })?;
    let lines: Vec<Vec<&str>> = r
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let (uid, sub) = (w.user.uid.to_string(), w.user.subid.unwrap().0.to_string());
    let want = [
        vec!["to-stdout"],
        vec!["0"],
        vec!["0", uid.as_str(), "1"],
        vec!["1", sub.as_str(), "65536"],
    ];
    check(lines == want, || format!("stdout: {}", describe(&r)))?;
    let r = w.run(&format!("{name}-b"), &["--rm"], &["no-such-program"]);
    check(r.status == Some(127), || {
        format!("a missing command: want exit 127: {}", describe(&r))
    })?;
    check(
        r.stderr.contains("executable file not found in $PATH"),
        || format!("a missing command: {}", describe(&r)),
    )
}

/// `run -d` + `exec`: the exec'd process's status and output; the init runs as the user on
/// the host.
fn detached_exec(w: &World, name: &str) -> Result<(), String> {
    w.run_detached(name, &[], "echo up; sleep 1000", "up")?;
    let r = w.podman(&["exec", name, "sh", "-c", "echo in-exec-$(id -u); exit 5"]);
    check(r.status == Some(5) && r.stdout == "in-exec-0\n", || {
        format!("exec: {}", describe(&r))
    })?;
    let ids = w.init_ids(name)?;
    check(ids == (w.user.uid, w.user.gid), || {
        format!("the init's host ids {ids:?}, not the user's")
    })?;
    let r = w.podman(&["rm", "--force", "--time", "0", name]);
    check(r.ok(), || format!("podman rm --force: {}", describe(&r)))
}

/// `--user 1000:1000`: the container's ids, which the host sees as the user's subordinate
/// ids (subuid + 999), also for `exec`.
fn as_user_1000(w: &World, name: &str) -> Result<(), String> {
    w.run_detached(
        name,
        &["--user", "1000:1000"],
        "echo ids=$(id -u):$(id -g); sleep 1000",
        "ids=1000:1000",
    )?;
    let (subuid, subgid) = w.user.subid.unwrap();
    let ids = w.init_ids(name)?;
    check(ids == (subuid + 999, subgid + 999), || {
        format!(
            "the init's host ids {ids:?}, not ({}, {})",
            subuid + 999,
            subgid + 999
        )
    })?;
    let r = w.podman(&["exec", name, "sh", "-c", "echo $(id -u):$(id -g)"]);
    check(r.ok() && r.stdout == "1000:1000\n", || {
        format!("exec: {}", describe(&r))
    })
}

/// `-v hostdir:/x` and `-v hostdir:/y:ro` of a directory the user owns: the container's root
/// reads and writes it, and its files land on the host as the user's.
fn volume(w: &World, name: &str) -> Result<(), String> {
    let host = w.dir.join(format!("vol-{name}"));
    user_dir(w.user, &host, 0o755);
    user_file(w.user, &host.join("from-host"), "host-data\n");
    let rw = format!("{}:/x", host.display());
    let ro = format!("{}:/y:ro", host.display());
    let r = w.run(
        name,
        &["--rm", "-v", &rw, "-v", &ro],
        &[
            "sh",
            "-c",
            "cat /x/from-host; echo container-data > /x/from-container; \
             touch /y/z 2>/dev/null || echo y-read-only",
        ],
    );
    check(r.ok() && r.stdout == "host-data\ny-read-only\n", || {
        format!("volumes: {}", describe(&r))
    })?;
    let back = host.join("from-container");
    let text = std::fs::read_to_string(&back).unwrap_or_default();
    check(text == "container-data\n", || {
        format!("the container's write is not on the host: {text:?}")
    })?;
    let meta = std::fs::metadata(&back).map_err(|e| e.to_string())?;
    check((meta.uid(), meta.gid()) == (w.user.uid, w.user.gid), || {
        format!(
            "the file is {}:{} on the host, not the user's",
            meta.uid(),
            meta.gid()
        )
    })
}

/// `--read-only`: the root is read-only, podman's tmpfs on /tmp writable.
fn read_only(w: &World, name: &str) -> Result<(), String> {
    let r = w.run(
        name,
        &["--rm", "--read-only"],
        &[
            "sh",
            "-c",
            "touch /x 2>/dev/null || echo root-read-only; touch /tmp/y && echo tmp-writable",
        ],
    );
    check(
        r.ok() && r.stdout == "root-read-only\ntmp-writable\n",
        || format!("--read-only: {}", describe(&r)),
    )
}

/// `stop`: a container that traps SIGTERM ends with its trap's status before the timeout; one that
/// ignores it is killed when the timeout runs out (137).
fn stop(w: &World, name: &str) -> Result<(), String> {
    w.run_detached(
        name,
        &[],
        "trap 'echo got-term; exit 0' TERM; echo started; while true; do sleep 0.1; done",
        "started",
    )?;
    // Ended by its trap, well before the timeout's SIGKILL (and with the trap's status): podman
    // alone takes seconds under emulation, so the timeout leaves it room.
    let t = Instant::now();
    let r = w.podman(&["stop", "--time", "30", name]);
    let took = t.elapsed();
    check(r.ok() && took < Duration::from_secs(20), || {
        format!("podman stop in {took:?}: {}", describe(&r))
    })?;
    let code = w.inspect(name, "{{.State.ExitCode}}")?;
    check(code == "0", || format!("exit code after stop: {code}"))?;
    let r = w.podman(&["logs", name]);
    check(r.stdout == "started\ngot-term\n", || {
        format!("podman logs: {}", describe(&r))
    })?;
    let deaf = format!("{name}-deaf");
    w.run_detached(
        &deaf,
        &[],
        "trap '' TERM; echo started; while true; do sleep 0.1; done",
        "started",
    )?;
    let t = Instant::now();
    let r = w.podman(&["stop", "--time", "1", &deaf]);
    let took = t.elapsed();
    check(r.ok() && took >= Duration::from_secs(1), || {
        format!("podman stop --time 1 in {took:?}: {}", describe(&r))
    })?;
    let code = w.inspect(&deaf, "{{.State.ExitCode}}")?;
    check(code == "137", || {
        format!("exit code after the timeout: {code}")
    })
}

/// `rm` of an exited container, `rm --force` of a running one (its init dies).
fn rm(w: &World, name: &str) -> Result<(), String> {
    let r = w.run(name, &[], &["true"]);
    check(r.ok(), || format!("podman run: {}", describe(&r)))?;
    let st = w.inspect(name, "{{.State.Status}}")?;
    check(st == "exited", || format!("podman says {st} after the run"))?;
    let r = w.podman(&["rm", name]);
    check(r.ok(), || format!("podman rm: {}", describe(&r)))?;
    let running = format!("{name}-f");
    w.run_detached(&running, &[], "echo up; sleep 1000", "up")?;
    let pid: i32 = w
        .inspect(&running, "{{.State.Pid}}")?
        .parse()
        .map_err(|e| format!("pid: {e}"))?;
    let r = w.podman(&["rm", "--force", "--time", "0", &running]);
    check(r.ok(), || format!("podman rm --force: {}", describe(&r)))?;
    check(!alive(pid), || {
        format!("the init {pid} survived rm --force")
    })?;
    check(w.containers(name).is_empty(), || {
        format!("podman still lists {:?}", w.containers(name))
    })
}

/// `--memory 64m`: never a container that silently runs without the limit. podman 4.3 on
/// cgroup v1 drops rootless limits before the runtime sees them, with a warning; where it
/// passes them on, the runtime applies them (a delegated cgroup) or refuses them by name.
fn memory(w: &World, name: &str) -> Result<(), String> {
    let show = "cat /sys/fs/cgroup/memory.max 2>/dev/null || \
                cat /sys/fs/cgroup/memory/memory.limit_in_bytes; sleep 1000";
    let r = w.run(name, &["-d", "--memory", "64m"], &["sh", "-c", show]);
    if r.stderr
        .contains("Resource limits are not supported and ignored")
    {
        check(r.ok(), || format!("podman run -d: {}", describe(&r)))?;
        let dir = w.inspect(name, "{{.StaticDir}}")?;
        let config: Value = serde_json::from_slice(
            &std::fs::read(Path::new(&dir).join("config.json")).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        let limit = &config["linux"]["resources"]["memory"]["limit"];
        check(limit.is_null(), || {
            format!("podman warned that it drops the limit, but passed {limit}")
        })?;
        say(&format!(
            "NOTE {name}: podman dropped --memory with its warning: {:?}",
            r.stderr.trim()
        ));
        return Ok(());
    }
    if !r.ok() {
        let words = if is_casulo() {
            "linux.resources.memory.limit"
        } else {
            "memory"
        };
        return check(r.stderr.contains(words), || {
            format!(
                "the refusal does not name the limit ({words}): {}",
                describe(&r)
            )
        });
    }
    wait_until("the limit in the log", || {
        !w.podman(&["logs", name]).stdout.trim().is_empty()
    })?;
    let seen = w.podman(&["logs", name]).stdout;
    check(seen.trim() == "67108864", || {
        format!("the container runs with memory limit {seen:?}, not 64m")
    })
}

/// `--memory 64m --pids-limit 50 --cpus 0.5` where the user manager delegates a subtree: the
/// container's cgroup is in that subtree, never elsewhere, and its `memory.max`, `pids.max`
/// and `cpu.max` hold the limits, read from inside the container and on the host.
fn limits(w: &World, name: &str) -> Result<(), String> {
    let systemd = w.delegated.as_ref().is_some_and(|d| d.systemd);
    limits_with(w, name, systemd)
}

/// [`limits`] with podman's systemd manager for this container alone (`podman --cgroup-manager
/// systemd run`, whatever containers.conf says): the runtime gets `--systemd-cgroup` and has
/// the user's manager start the container's scope in its `user.slice`, over the session bus.
fn limits_systemd(w: &World, name: &str) -> Result<(), String> {
    limits_with(w, name, true)
}

fn limits_with(w: &World, name: &str, systemd: bool) -> Result<(), String> {
    let d = w.delegated.as_ref().ok_or("no delegated cgroup subtree")?;
    let show = "cd /sys/fs/cgroup && echo limits: $(cat memory.max) $(cat pids.max) \
                $(cat cpu.max); sleep 1000";
    let flags = ["--memory", "64m", "--pids-limit", "50", "--cpus", "0.5"];
    if systemd && !d.systemd {
        let mut args = vec!["--cgroup-manager", "systemd", "run", "--name", name, "-d"];
        args.extend_from_slice(&flags);
        args.extend_from_slice(&[IMAGE, "sh", "-c", show]);
        let r = w.podman(&args);
        check(r.ok(), || format!("podman run -d: {}", describe(&r)))?;
        wait_until(&format!("{name} logs"), || {
            w.podman(&["logs", name]).stdout.contains("limits:")
        })?;
    } else {
        w.run_detached(name, &flags, show, "limits:")?;
    }
    let want = "67108864 50 50000 100000";
    let seen = w.podman(&["logs", name]).stdout;
    check(seen.trim() == format!("limits: {want}"), || {
        format!("inside the container: {seen:?}, not \"limits: {want}\"")
    })?;
    let pid: i32 = w
        .inspect(name, "{{.State.Pid}}")?
        .parse()
        .map_err(|e| format!("pid: {e}"))?;
    let cg = cgroup_of(pid).ok_or_else(|| format!("no cgroup2 path for the init {pid}"))?;
    let id = w.inspect(name, "{{.Id}}")?;
    let base = d.manager.cgroup_path();
    let want_under = if systemd {
        format!("{base}/user.slice/libpod-{id}.scope")
    } else {
        format!("{}/libpod-{id}", d.parent)
    };
    check(cg == want_under, || {
        format!("the init {pid} is in the cgroup {cg}, not {want_under}")
    })?;
    let dir = PathBuf::from(format!("/sys/fs/cgroup{cg}"));
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|e| format!("({f}: {e})"))
    };
    let host = format!(
        "{} {} {}",
        read("memory.max"),
        read("pids.max"),
        read("cpu.max")
    );
    check(host == want, || {
        format!("on the host, {}: {host:?}, not {want:?}", dir.display())
    })?;
    // Nothing of the container anywhere else in the tree.
    let mut elsewhere = Vec::new();
    let mut dirs = vec![PathBuf::from("/sys/fs/cgroup")];
    let inside = PathBuf::from(format!("/sys/fs/cgroup{base}"));
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if !e.file_type().is_ok_and(|t| t.is_dir()) || p.starts_with(&inside) {
                continue;
            }
            if e.file_name().to_string_lossy().contains(&id) {
                elsewhere.push(p.display().to_string());
            }
            dirs.push(p);
        }
    }
    check(elsewhere.is_empty(), || {
        format!("cgroups of the container outside {base}: {elsewhere:?}")
    })
}

#[test]
fn podman_rootless_runs_containers_on_the_runtime() {
    let test = "podman_rootless_runs_containers_on_the_runtime";
    if !prerequisites(test, &["podman", "conmon", "tar"], "podman conmon") {
        return;
    }
    let Some(user) = rootless::test_user(USER, test) else {
        return;
    };
    if user.subid.is_none() {
        say(&format!(
            "SKIPPED {test}: {USER} has no /etc/subuid and /etc/subgid range of 65536 ids"
        ));
        return;
    }
    if !rootless::has_newuidmap() {
        say(&format!(
            "SKIPPED {test}: needs newuidmap and newgidmap (apt-get install uidmap)"
        ));
        return;
    }
    let started = Instant::now();
    let world = World::start(user).unwrap_or_else(|e| panic!("podman's private world: {e}"));
    let cgroups = match &world.delegated {
        Some(d) if d.systemd => format!(
            "podman's systemd manager, scopes of {} in {}",
            USER,
            d.manager.cgroup_path()
        ),
        Some(d) => format!("podman's cgroupfs manager, cgroup parent {}", d.parent),
        None => "no delegated cgroup (podman runs without cgroups)".to_string(),
    };
    say(&format!(
        "rootless podman suite: runtime {}, user {USER} ({}), {cgroups}, image imported in {:.1} s",
        runtime().display(),
        user.uid,
        started.elapsed().as_secs_f64()
    ));
    let mut scenarios: Vec<(&str, &str, Scenario<World>)> = vec![
        (
            "run",
            "run --rm: output, exit status, the user's id maps",
            run_output,
        ),
        ("exec", "run -d + exec", detached_exec),
        (
            "user",
            "--user 1000:1000 (a subordinate id on the host)",
            as_user_1000,
        ),
        ("volume", "-v of the user's directory, rw and :ro", volume),
        ("read-only", "--read-only", read_only),
        ("stop", "stop: SIGTERM trapped, SIGTERM ignored", stop),
        ("rm", "rm, rm --force of a running container", rm),
        ("memory", "--memory 64m is never silently dropped", memory),
    ];
    if world.delegated.is_some() {
        scenarios.push((
            "limits",
            "--memory, --pids-limit, --cpus in the delegated subtree",
            limits,
        ));
        scenarios.push((
            "limits-systemd",
            "the same with podman's systemd manager: a scope of the user's systemd manager",
            limits_systemd,
        ));
    }
    // CASULO_PODMAN_SCENARIOS (keys, comma-separated; empty or unset: all) runs a part of the
    // suite, where time is short (under emulation).
    if let Some(only) = std::env::var("CASULO_PODMAN_SCENARIOS")
        .ok()
        .filter(|v| !v.is_empty())
    {
        let keys: Vec<&str> = only.split(',').map(str::trim).collect();
        scenarios.retain(|(key, ..)| keys.contains(key));
        say(&format!(
            "rootless podman suite: only {:?} (CASULO_PODMAN_SCENARIOS)",
            scenarios.iter().map(|s| s.0).collect::<Vec<_>>()
        ));
    }
    let scenarios: Vec<(&str, Scenario<World>)> = scenarios
        .into_iter()
        .map(|(_, what, f)| (what, f))
        .collect();
    let (passed, failed, retried) = run_scenarios(
        &world,
        &format!("pmrl{}", std::process::id()),
        &scenarios,
        |w, prefix| w.remove(prefix),
        |w, prefix| w.wait_no_leftovers(prefix),
    );
    let calls: Vec<String> = std::fs::read_to_string(&world.calls)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    if failed.is_empty() {
        // The runtime was really the one selected: every command went through the wrapper.
        for want in [" create ", " start ", " exec ", " kill ", " delete "] {
            assert!(
                calls.iter().any(|c| format!(" {c}").contains(want)),
                "no runtime invocation {want:?}: {calls:#?}"
            );
        }
    }
    let dir = world.dir.clone();
    let delegated = world.delegated.is_some();
    drop(world);
    let mut left: Vec<String> = Vec::new();
    if dir.exists() {
        left.push(format!("directory {}", dir.display()));
    }
    // The user manager is stopped, and with it went the user's slice (once empty).
    let slice = PathBuf::from(format!("/sys/fs/cgroup/user.slice/user-{}.slice", user.uid));
    if delegated && slice.exists() {
        let mut dirs = vec![slice];
        while let Some(d) = dirs.pop() {
            left.push(format!("cgroup {}", d.display()));
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    dirs.push(e.path());
                }
            }
        }
    }
    left.extend(mounts_under(&dir).into_iter().map(|m| format!("mount {m}")));
    // The world is gone, and so must be every process of the user.
    let _ = wait_until("the user's processes to end", || {
        user_processes(user).is_empty()
    });
    left.extend(
        user_processes(user)
            .into_iter()
            .map(|(p, a)| format!("process {p} of {USER}: {a}")),
    );
    say(&format!(
        "rootless podman suite: {passed} of {} scenarios passed ({} on a second run) in {:.1} s",
        passed + failed.len(),
        retried.len(),
        started.elapsed().as_secs_f64()
    ));
    assert!(failed.is_empty(), "failed scenarios: {failed:?}");
    assert!(left.is_empty(), "left behind at the end: {left:#?}");
}
