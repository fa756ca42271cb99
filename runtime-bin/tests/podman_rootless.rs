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
//! `--cgroups=disabled` for a runtime other than crun). Without podman, conmon, the test
//! user's subordinate ranges or `newuidmap`, the test prints a `SKIPPED` line.
mod common;
use common::engine::*;
use common::podman::{PodmanWorld, IMAGE};
use common::rootless::{self, as_user_args, user_runtime, TestUser};
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
    /// The test user is this run's alone while it is held.
    _lock: rootless::HostLock,
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
        let dir = std::env::temp_dir().join(format!("casulo-pmrl-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let w = World {
            user,
            home: dir.join("home"),
            xdg: dir.join("xdg"),
            calls: dir.join("runtime-calls.log"),
            dir,
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
        user_dir(user, &w.xdg, 0o700);
        user_file(user, &w.calls, "");
        let wrapper = w.dir.join("casulo");
        write_wrapper_for(&wrapper, &w.calls, user_runtime(user), &[]);
        // conmon runs podman's cleanup (`container cleanup`) with `$HOME` but not
        // `$XDG_CONFIG_HOME`: the configuration is where both find it.
        let conf = format!(
            r#"[containers]
netns = "none"
log_driver = "k8s-file"

[engine]
cgroup_manager = "cgroupfs"
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
        output_within(c, Duration::from_secs(60))
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

    /// Mounts under the world's directory, and processes of the user besides podman's pause.
    fn other_leftovers(&self) -> Vec<String> {
        let mut left = self.mounts();
        let pause = self.pause_pid();
        left.extend(
            user_processes(self.user)
                .into_iter()
                .filter(|(pid, _)| Some(*pid) != pause)
                .map(|(pid, args)| format!("process {pid} of {USER}: {args}")),
        );
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

/// `stop`: a container that traps SIGTERM ends at once with its trap's status; one that
/// ignores it is killed when the timeout runs out (137).
fn stop(w: &World, name: &str) -> Result<(), String> {
    w.run_detached(
        name,
        &[],
        "trap 'echo got-term; exit 0' TERM; echo started; while true; do sleep 0.1; done",
        "started",
    )?;
    let t = Instant::now();
    let r = w.podman(&["stop", "--time", "10", name]);
    let took = t.elapsed();
    check(r.ok() && took < Duration::from_secs(5), || {
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
    say(&format!(
        "rootless podman suite: runtime {}, user {USER} ({}), image imported in {:.1} s",
        runtime().display(),
        user.uid,
        started.elapsed().as_secs_f64()
    ));
    let scenarios: [(&str, Scenario<World>); 8] = [
        (
            "run --rm: output, exit status, the user's id maps",
            run_output,
        ),
        ("run -d + exec", detached_exec),
        (
            "--user 1000:1000 (a subordinate id on the host)",
            as_user_1000,
        ),
        ("-v of the user's directory, rw and :ro", volume),
        ("--read-only", read_only),
        ("stop: SIGTERM trapped, SIGTERM ignored", stop),
        ("rm, rm --force of a running container", rm),
        ("--memory 64m is never silently dropped", memory),
    ];
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
    drop(world);
    let mut left: Vec<String> = Vec::new();
    if dir.exists() {
        left.push(format!("directory {}", dir.display()));
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
