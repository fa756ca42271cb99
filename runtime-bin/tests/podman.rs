//! podman runs its containers on the runtime under test.
//!
//! One test gives podman a private world under a fresh temporary directory: a
//! `containers.conf` (named by `CONTAINERS_CONF`) that selects the runtime, a `storage.conf`
//! (vfs graph root and run root), its own temporary, volume and event directories, and a cgroup
//! parent of its own: a directory with the cgroupfs manager, or, under
//! `CASULO_TEST_SYSTEMD_CGROUP`, a slice with podman's systemd manager (podman then passes
//! `--systemd-cgroup` and `SLICE:libpod:ID` paths). The runtime podman runs (through conmon)
//! is a small logging wrapper in front of casulo (or of `CASULO_TEST_RUNTIME`, e.g. runc, to
//! show that the suite itself is right) with a private `--root`. An image is made here from
//! the busybox rootfs with `podman import`. The scenarios run one after the other; each prints
//! `PASS` or `FAIL` with its time, removes its containers even when it failed, and must leave
//! nothing behind (no runtime state, cgroup, mount, conmon or container process). At the end
//! every container and image is removed, and so is the directory, also when the test panics.
//! Without podman or conmon the test prints `SKIPPED`.
//!
//! Where the open-files and process hard limits are below podman's defaults (1048576 for both)
//! and CAP_SYS_RESOURCE is not in the bounding set, every runtime fails setrlimit with EPERM:
//! `default_ulimits` sets limits such hosts allow.
mod common;
use common::engine::*;
use common::podman::{PodmanWorld, IMAGE};
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Where podman 4.3 keeps state of root's podman whatever its configuration says: the image
/// library's blob-info cache and the network backend's lock.
const HOST_DIRS: [&str; 2] = ["/var/lib/containers", "/run/containers"];
/// v1 controller names podman may make plain directories for on the tmpfs at
/// `/sys/fs/cgroup` of a hybrid host where the controller lives on the unified hierarchy.
const UNMOUNTED_CONTROLLERS: [&str; 4] = ["hugetlb", "net_cls", "net_prio", "perf_event"];

/// podman's private world and what the scenarios need to drive it. Dropping it removes every
/// container and image, and all it made.
struct Suite {
    dir: PathBuf,
    /// The runtime's own state directory (its `--root`, given by the wrapper).
    runtime_root: PathBuf,
    /// One line per runtime invocation, written by the wrapper.
    calls: PathBuf,
    /// Every container's cgroup is under this parent, and so is conmon's: a directory at the
    /// top of each hierarchy with the cgroupfs manager, a slice with systemd's.
    cgroup_parent: String,
    /// podman's host-wide directories (a blob-info cache, a network lock, plain directories
    /// for unmounted v1 controllers) that did not exist before the suite: removed at the end.
    made_host_dirs: Vec<PathBuf>,
    /// podman uses the systemd cgroup manager ([`systemd_cgroup`]): the runtime gets
    /// `--systemd-cgroup` and `SLICE:libpod:ID` paths.
    systemd: bool,
}

impl Suite {
    fn start() -> Result<Suite, String> {
        let pid = std::process::id();
        let dir = std::env::temp_dir().join(format!("casulo-pm-{pid}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        let s = Suite {
            runtime_root: dir.join("runtime-root"),
            calls: dir.join("runtime-calls.log"),
            // No dash in the slice's name: systemd would nest it in a slice per dash.
            cgroup_parent: if systemd_cgroup() {
                format!("casulopm{pid}.slice")
            } else {
                format!("/casulo-pm-{pid}")
            },
            systemd: systemd_cgroup(),
            made_host_dirs: HOST_DIRS
                .iter()
                .map(PathBuf::from)
                .chain(
                    UNMOUNTED_CONTROLLERS
                        .iter()
                        .map(|c| Path::new("/sys/fs/cgroup").join(c)),
                )
                .filter(|d| !d.exists())
                .collect(),
            dir,
        };
        // From here on, Drop cleans up whatever happens.
        let wrapper = s.dir.join("casulo");
        write_wrapper(
            &wrapper,
            &s.calls,
            &["--root", s.runtime_root.to_str().unwrap()],
        );
        let conf = format!(
            r#"[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
netns = "none"
log_driver = "k8s-file"

[engine]
cgroup_manager = "{manager}"
events_logger = "file"
events_logfile_path = "{dir}/events.log"
tmp_dir = "{dir}/tmp"
volume_path = "{dir}/volumes"
runtime = "casulo"
runtime_supports_json = ["casulo"]

[engine.runtimes]
casulo = ["{wrapper}"]

[network]
network_config_dir = "{dir}/networks"
"#,
            dir = s.dir.display(),
            wrapper = wrapper.display(),
            manager = if s.systemd { "systemd" } else { "cgroupfs" },
        );
        std::fs::write(s.dir.join("containers.conf"), conf).unwrap();
        let storage = format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"{dir}/graph\"\nrunroot = \"{dir}/run\"\n",
            dir = s.dir.display()
        );
        std::fs::write(s.dir.join("storage.conf"), storage).unwrap();
        std::fs::write(s.dir.join("registries.conf"), "").unwrap();
        let tar = s.dir.join("rootfs.tar");
        let st = Command::new("tar")
            .args(["--numeric-owner", "-C"])
            .arg(rootfs())
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap();
        check(st.success(), || "tar of the busybox rootfs failed".into())?;
        let r = s.podman(&[
            "import",
            "--change",
            "ENV=PATH=/bin",
            "--change",
            "CMD=[\"sh\"]",
            tar.to_str().unwrap(),
            IMAGE,
        ]);
        check(r.ok(), || format!("podman import: {}", describe(&r)))?;
        Ok(s)
    }

    /// The environment entry that puts a podman command in this world.
    fn conf_env(&self) -> String {
        format!(
            "CONTAINERS_CONF={}",
            self.dir.join("containers.conf").display()
        )
    }

    /// `PROGRAM` with podman's private world in its environment.
    fn in_world(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        // conmon inherits the working directory and writes an `oom` file there when the
        // container meets the OOM killer: the suite's directory, not the caller's.
        c.current_dir(&self.dir)
            .env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", self.dir.join("storage.conf"))
            .env(
                "CONTAINERS_REGISTRIES_CONF",
                self.dir.join("registries.conf"),
            )
            .env("TMPDIR", self.dir.join("tmp"));
        c
    }

    /// `podman ARGS` with `input` on its standard input.
    fn podman_input(&self, args: &[&str], input: &str) -> Run {
        let path = self.dir.join("tmp/stdin");
        std::fs::write(&path, input).unwrap();
        let mut c = self.in_world("sh");
        c.args(["-c", "f=$1; shift; exec podman \"$@\" < \"$f\"", "sh"])
            .arg(&path)
            .args(args);
        output_within(c, Duration::from_secs(60))
    }

    /// `podman ARGS` on a pseudo-terminal (util-linux `script`), for `-t`.
    fn podman_on_tty(&self, args: &[&str]) -> Run {
        let mut line = String::from("podman");
        for a in args {
            line.push(' ');
            line.push_str(&sh_quote(a));
        }
        let mut c = self.in_world("script");
        c.args(["-q", "-e", "-c", &line, "/dev/null"]);
        output_within(c, Duration::from_secs(60))
    }

    /// The runtime's own status of container `name` (from its state, not through podman).
    fn runtime_status(&self, name: &str) -> Result<String, String> {
        let id = self.inspect(name, "{{.Id}}")?;
        let mut c = Command::new(runtime());
        c.arg("--root").arg(&self.runtime_root).args(["state", &id]);
        let r = output_within(c, Duration::from_secs(20));
        check(r.ok(), || format!("runtime state: {}", describe(&r)))?;
        let v: Value = serde_json::from_str(&r.stdout).map_err(|e| e.to_string())?;
        Ok(v["status"].as_str().unwrap_or("").to_string())
    }

    /// The names of podman's containers that start with `prefix`.
    /// Every runtime invocation so far, with this run's directory, container and exec ids
    /// (64 hex digits) and podman's random temporary names replaced by names.
    fn calls(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.calls).unwrap_or_default();
        text.lines()
            .map(|l| {
                let l = l.replace(&format!("{}/", self.dir.display()), "DIR/");
                let mut out = String::new();
                let mut run = String::new();
                for c in l.chars().chain(std::iter::once(' ')) {
                    if c.is_ascii_hexdigit() {
                        run.push(c);
                        continue;
                    }
                    out.push_str(if run.len() == 64 { "ID" } else { &run });
                    run.clear();
                    out.push(c);
                }
                out.pop();
                map_words(&out, |w| {
                    if w.starts_with("/tmp/conmon-term.") {
                        "CONSOLE.sock".to_string()
                    } else if let Some(p) = w.find("exec-process-") {
                        format!("{}exec-process-N", &w[..p])
                    } else if let Some(p) = w.find("/podman") {
                        format!("{}/podmanN", &w[..p])
                    } else {
                        w.to_string()
                    }
                })
            })
            .collect()
    }
}

impl PodmanWorld for Suite {
    fn podman(&self, args: &[&str]) -> Run {
        let mut c = self.in_world("podman");
        c.args(args);
        output_within(c, Duration::from_secs(60))
    }

    fn run_flags(&self) -> Vec<&str> {
        vec!["--cgroup-parent", &self.cgroup_parent]
    }

    fn runtime_root(&self) -> PathBuf {
        self.runtime_root.clone()
    }

    /// Container cgroups under the parent, mounts under the private directory, conmon or
    /// container processes.
    fn other_leftovers(&self) -> Vec<String> {
        let mut left = Vec::new();
        for top in cgroup_trees(self.cgroup_parent.trim_start_matches('/')) {
            if let Ok(entries) = std::fs::read_dir(&top) {
                for e in entries.flatten() {
                    if e.file_name().to_string_lossy().starts_with("libpod-") {
                        left.push(format!("cgroup {}", e.path().display()));
                    }
                }
            }
            let procs = std::fs::read_to_string(top.join("conmon/cgroup.procs"));
            if procs.is_ok_and(|p| !p.trim().is_empty()) {
                left.push(format!("processes in {}/conmon", top.display()));
            }
        }
        left.extend(
            mounts_under(&self.dir)
                .into_iter()
                .map(|m| format!("mount {m}")),
        );
        left.extend(
            processes_with_env(&self.conf_env())
                .into_iter()
                .map(|(p, a)| format!("podman process {p}: {}", a.join(" "))),
        );
        let dir = self.dir.to_str().unwrap();
        left.extend(
            processes_where(|a| a[0].ends_with("conmon") && a.iter().any(|x| x.contains(dir)))
                .into_iter()
                .map(|(p, a)| format!("process {p}: {}", a.join(" "))),
        );
        left
    }
}

impl Drop for Suite {
    fn drop(&mut self) {
        let _ = self.podman(&["rm", "--all", "--force", "--time", "0"]);
        let _ = self.podman(&["rmi", "--all", "--force"]);
        // Whatever the runtime still holds.
        if let Ok(entries) = std::fs::read_dir(&self.runtime_root) {
            for e in entries.flatten() {
                let mut c = Command::new(runtime());
                c.arg("--root")
                    .arg(&self.runtime_root)
                    .args(["delete", "--force"])
                    .arg(e.file_name());
                let _ = output_within(c, Duration::from_secs(20));
            }
        }
        // conmon and podman's cleanup processes of this world, and any podman client of it
        // still running (one a failed scenario left waiting, say).
        let dir = self.dir.to_str().unwrap().to_string();
        kill_processes_where(|a| a.iter().any(|x| x.contains(&dir)));
        for (pid, _) in processes_with_env(&self.conf_env()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        if self.systemd {
            let _ = output_within(
                {
                    let mut c = Command::new("systemctl");
                    c.args(["stop", &self.cgroup_parent]);
                    c
                },
                Duration::from_secs(30),
            );
        }
        remove_cgroup_trees(self.cgroup_parent.trim_start_matches('/'));
        umount_all_under(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
        for d in &self.made_host_dirs {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

// --- The scenarios. Each gets the suite and the name (or name prefix) of its containers. ---

/// `run --rm`: output and exit status pass through; a missing command is 127, one that cannot
/// be executed 126, with the runtime's words for both.
fn run_rm(s: &Suite, name: &str) -> Result<(), String> {
    let r = s.run(
        name,
        &["--rm"],
        &["sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3"],
    );
    check(r.status == Some(3), || {
        format!("want exit 3: {}", describe(&r))
    })?;
    check(r.stdout == "to-stdout\n", || {
        format!("stdout: {}", describe(&r))
    })?;
    check(r.stderr.contains("to-stderr"), || {
        format!("stderr: {}", describe(&r))
    })?;
    for (n, cmd, code, words) in [
        (
            "b",
            "no-such-program",
            127,
            "executable file not found in $PATH",
        ),
        ("c", "/etc/passwd", 126, "permission denied"),
    ] {
        let r = s.run(&format!("{name}-{n}"), &["--rm"], &[cmd]);
        check(r.status == Some(code), || {
            format!("{cmd}: want exit {code}: {}", describe(&r))
        })?;
        check(r.stderr.contains(words), || {
            format!("{cmd}: want {words:?}: {}", describe(&r))
        })?;
    }
    Ok(())
}

/// `run -d`, then `exec` (status, stdin, user, workdir, env, a missing command), `logs`,
/// `stop` (the container's TERM trap runs), `rm`.
fn detached(s: &Suite, name: &str) -> Result<(), String> {
    s.run_detached(
        name,
        &[],
        "trap 'echo got-term; exit 0' TERM; echo started; while true; do sleep 0.1; done",
        "started",
    )?;
    let r = s.podman(&["exec", name, "sh", "-c", "echo in-exec; exit 5"]);
    check(r.status == Some(5) && r.stdout == "in-exec\n", || {
        format!("exec: {}", describe(&r))
    })?;
    let r = s.podman_input(&["exec", "-i", name, "cat"], "through-stdin\n");
    check(r.ok() && r.stdout == "through-stdin\n", || {
        format!("exec -i: {}", describe(&r))
    })?;
    let r = s.podman(&[
        "exec",
        "--user",
        "1000:1000",
        "--workdir",
        "/tmp",
        "--env",
        "FOO=bar",
        name,
        "sh",
        "-c",
        "echo $(id -u):$(id -g) $(pwd) $FOO",
    ]);
    check(r.ok() && r.stdout == "1000:1000 /tmp bar\n", || {
        format!("exec --user --workdir --env: {}", describe(&r))
    })?;
    let r = s.podman(&["exec", name, "no-such-program"]);
    check(r.status == Some(127), || {
        format!("exec of a missing command: {}", describe(&r))
    })?;
    check(s.runtime_status(name)? == "running", || {
        "not running after exec".into()
    })?;
    let r = s.podman(&["stop", "--time", "10", name]);
    check(r.ok(), || format!("podman stop: {}", describe(&r)))?;
    let code = s.inspect(name, "{{.State.ExitCode}}")?;
    check(code == "0", || format!("exit code after stop: {code}"))?;
    let r = s.podman(&["logs", name]);
    check(r.stdout == "started\ngot-term\n", || {
        format!("podman logs: {}", describe(&r))
    })?;
    let r = s.podman(&["rm", name]);
    check(r.ok(), || format!("podman rm: {}", describe(&r)))
}

/// `run -t` and `exec -t`: the process has a terminal for stdin and stdout.
fn tty(s: &Suite, name: &str) -> Result<(), String> {
    // The pause before the exit lets the last output reach the terminal before conmon
    // closes it.
    let script = "tty; test -t 0 && test -t 1 && echo both-ttys; sleep 0.2; exit 4";
    let r = s.podman_on_tty(&[
        "run",
        "--rm",
        "-t",
        "--name",
        name,
        "--cgroup-parent",
        &s.cgroup_parent,
        IMAGE,
        "sh",
        "-c",
        script,
    ]);
    check(r.status == Some(4), || {
        format!("run -t: want exit 4: {}", describe(&r))
    })?;
    check(
        r.stdout.contains("/dev/pts/0") && r.stdout.contains("both-ttys"),
        || format!("run -t: {}", describe(&r)),
    )?;
    let d = format!("{name}-d");
    s.run_detached(&d, &[], "echo up; sleep 1000", "up")?;
    let r = s.podman_on_tty(&["exec", "-t", &d, "sh", "-c", script]);
    check(r.status == Some(4), || {
        format!("exec -t: want exit 4: {}", describe(&r))
    })?;
    check(
        r.stdout.contains("/dev/pts/") && r.stdout.contains("both-ttys"),
        || format!("exec -t: {}", describe(&r)),
    )
}

/// `--memory`, `--cpus`, `--pids-limit` reach the cgroup, and are enforced.
fn resources(s: &Suite, name: &str) -> Result<(), String> {
    let r = s.run(
        name,
        &[
            "--rm",
            "--memory",
            "64m",
            "--cpus",
            "0.5",
            "--pids-limit",
            "50",
        ],
        &["sh", "-c", SHOW_LIMITS],
    );
    check(r.ok() && r.stdout == "67108864\n50000\n50\n", || {
        format!("limits inside: {}", describe(&r))
    })?;
    // 64 MiB of data in a shell variable under an 8 MiB limit: the OOM killer ends it.
    let r = s.run(
        &format!("{name}-oom"),
        &["--rm", "--memory", "8m", "--memory-swap", "8m"],
        &[
            "sh",
            "-c",
            "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo survived",
        ],
    );
    check(
        r.status == Some(137) && !r.stdout.contains("survived"),
        || format!("memory limit not enforced: {}", describe(&r)),
    )?;
    let r = s.run(
        &format!("{name}-pids"),
        &["--rm", "--pids-limit", "5"],
        &[
            "sh",
            "-c",
            "for i in 1 2 3 4 5 6 7 8; do sleep 5 & done 2>&1; kill $(jobs -p) 2>/dev/null; true",
        ],
    );
    check(
        r.stdout.contains("can't fork") || r.stderr.contains("can't fork"),
        || format!("pids limit not enforced: {}", describe(&r)),
    )
}

/// `--user`, `--read-only` (with podman's copy-up tmpfs on /tmp), `--cap-drop`/`--cap-add`.
fn user_readonly_caps(s: &Suite, name: &str) -> Result<(), String> {
    let r = s.run(
        name,
        &["--rm", "--user", "1000:1000"],
        &["sh", "-c", "echo $(id -u):$(id -g)"],
    );
    check(r.ok() && r.stdout == "1000:1000\n", || {
        format!("--user: {}", describe(&r))
    })?;
    let r = s.run(
        &format!("{name}-ro"),
        &["--rm", "--read-only"],
        &[
            "sh",
            "-c",
            "touch /x 2>/dev/null || echo root-read-only; touch /tmp/y && echo tmp-writable; \
             grep -c ' /tmp tmpfs ' /proc/self/mounts",
        ],
    );
    check(
        r.ok() && r.stdout == "root-read-only\ntmp-writable\n1\n",
        || format!("--read-only: {}", describe(&r)),
    )?;
    let r = s.run(
        &format!("{name}-caps"),
        &["--rm", "--cap-drop", "ALL", "--cap-add", "CHOWN"],
        &["sh", "-c", "grep -E '^Cap(Eff|Bnd):' /proc/self/status"],
    );
    check(
        r.ok() && r.stdout == "CapEff:\t0000000000000001\nCapBnd:\t0000000000000001\n",
        || format!("--cap-drop ALL --cap-add CHOWN: {}", describe(&r)),
    )
}

/// podman's default seccomp profile is loaded; `--security-opt seccomp=FILE` loads that
/// profile (here one that makes mkdir fail with EPERM); `seccomp=unconfined` loads none.
fn seccomp(s: &Suite, name: &str) -> Result<(), String> {
    let mode = "grep '^Seccomp:' /proc/self/status | cut -f2";
    let r = s.run(name, &["--rm"], &["sh", "-c", mode]);
    check(r.ok() && r.stdout == "2\n", || {
        format!("default profile: {}", describe(&r))
    })?;
    let profile = s.dir.join("deny-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let r = s.run(
        &format!("{name}-file"),
        &["--rm", "--security-opt", &opt],
        &["sh", "-c", "mkdir /tmp/d 2>&1; echo status=$?"],
    );
    check(
        r.ok() && r.stdout.contains("Operation not permitted") && r.stdout.contains("status=1"),
        || format!("seccomp=FILE: {}", describe(&r)),
    )?;
    let r = s.run(
        &format!("{name}-none"),
        &["--rm", "--security-opt", "seccomp=unconfined"],
        &["sh", "-c", mode],
    );
    check(r.ok() && r.stdout == "0\n", || {
        format!("seccomp=unconfined: {}", describe(&r))
    })
}

/// `-v hostdir:/x` (read-write) and `-v hostdir:/y:ro`.
fn volumes(s: &Suite, name: &str) -> Result<(), String> {
    let host = s.dir.join(format!("vol-{name}"));
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("from-host"), "host-data\n").unwrap();
    let rw = format!("{}:/x", host.display());
    let ro = format!("{}:/y:ro", host.display());
    let r = s.run(
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
    let back = std::fs::read_to_string(host.join("from-container")).unwrap_or_default();
    check(back == "container-data\n", || {
        format!("the container's write is not on the host: {back:?}")
    })
}

/// `pause` freezes the container (the runtime says paused), `unpause` thaws it.
fn pause_unpause(s: &Suite, name: &str) -> Result<(), String> {
    s.run_detached(name, &[], "echo up; sleep 1000", "up")?;
    let r = s.podman(&["pause", name]);
    check(r.ok(), || format!("podman pause: {}", describe(&r)))?;
    let st = s.inspect(name, "{{.State.Status}}")?;
    check(st == "paused", || format!("podman says {st} after pause"))?;
    let st = s.runtime_status(name)?;
    check(st == "paused", || {
        format!("the runtime says {st} after pause")
    })?;
    let r = s.podman(&["unpause", name]);
    check(r.ok(), || format!("podman unpause: {}", describe(&r)))?;
    let st = s.runtime_status(name)?;
    check(st == "running", || {
        format!("the runtime says {st} after unpause")
    })?;
    let r = s.podman(&["exec", name, "echo", "thawed"]);
    check(r.ok() && r.stdout == "thawed\n", || {
        format!("exec after unpause: {}", describe(&r))
    })
}

/// `top` lists the container's processes; `stats --no-stream` reads its cgroup.
fn top_stats(s: &Suite, name: &str) -> Result<(), String> {
    s.run_detached(name, &[], "echo up; sleep 1000", "up")?;
    let r = s.podman(&["top", name, "pid", "args"]);
    check(r.ok() && r.stdout.contains("sleep 1000"), || {
        format!("podman top: {}", describe(&r))
    })?;
    let r = s.podman(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.MemUsage}}|{{.PIDs}}",
        name,
    ]);
    check(r.ok(), || format!("podman stats: {}", describe(&r)))?;
    let (mem, pids) = r.stdout.trim().split_once('|').unwrap_or(("", ""));
    check(
        !mem.is_empty() && !mem.starts_with("0B") && pids.parse::<u32>().is_ok_and(|p| p >= 1),
        || format!("podman stats: memory {mem:?}, pids {pids:?}"),
    )
}

/// `update` changes a running container's limits.
fn update(s: &Suite, name: &str) -> Result<(), String> {
    s.run_detached(
        name,
        &["--memory", "128m", "--pids-limit", "50"],
        "echo up; sleep 1000",
        "up",
    )?;
    // podman 4.3's update has no --pids-limit: that limit must stay as it was.
    let r = s.podman(&["update", "--memory", "64m", "--cpus", "0.5", name]);
    check(r.ok(), || format!("podman update: {}", describe(&r)))?;
    let r = s.podman(&["exec", name, "sh", "-c", SHOW_LIMITS]);
    check(r.ok() && r.stdout == "67108864\n50000\n50\n", || {
        format!("limits after update: {}", describe(&r))
    })
}

/// `kill -s USR1` reaches the container's trap; `kill` (SIGKILL) ends it with 137.
fn kill(s: &Suite, name: &str) -> Result<(), String> {
    s.run_detached(
        name,
        &[],
        "trap 'echo got-usr1' USR1; echo up; while true; do sleep 0.1; done",
        "up",
    )?;
    let r = s.podman(&["kill", "--signal", "USR1", name]);
    check(r.ok(), || format!("podman kill -s USR1: {}", describe(&r)))?;
    wait_until("the USR1 trap", || {
        s.podman(&["logs", name]).stdout.contains("got-usr1")
    })?;
    check(s.runtime_status(name)? == "running", || {
        "not running after USR1".into()
    })?;
    let r = s.podman(&["kill", name]);
    check(r.ok(), || format!("podman kill: {}", describe(&r)))?;
    let r = s.podman(&["wait", name]);
    check(r.ok() && r.stdout.trim() == "137", || {
        format!("podman wait: {}", describe(&r))
    })
}

/// `rm --force` of a running container.
fn rm_force(s: &Suite, name: &str) -> Result<(), String> {
    s.run_detached(name, &[], "echo up; sleep 1000", "up")?;
    let r = s.podman(&["rm", "--force", "--time", "0", name]);
    check(r.ok(), || format!("podman rm --force: {}", describe(&r)))
}

/// A container the runtime cannot create (a sysctl value the kernel refuses, which podman
/// does not check): podman reports the runtime's own message, from its JSON log, and exits 126.
fn failing(s: &Suite, name: &str) -> Result<(), String> {
    let r = s.run(
        name,
        &["--rm", "--sysctl", "kernel.msgmax=not-a-number"],
        &["true"],
    );
    check(r.status == Some(126), || {
        format!("want exit 126: {}", describe(&r))
    })?;
    let err = r.stderr.to_lowercase();
    check(
        err.contains("msgmax") && err.contains("invalid argument"),
        || format!("the cause: {}", describe(&r)),
    )?;
    if is_casulo() {
        check(r.stderr.contains("container \""), || {
            format!("casulo's message names the container: {}", describe(&r))
        })?;
        check(r.stderr.contains("create: "), || {
            format!("casulo's message names the step: {}", describe(&r))
        })?;
    }
    Ok(())
}

/// `podman container checkpoint` stops a counting container ([`COUNTER`]) into CRIU images and
/// `podman container restore` brings it back: it counts on from where it stopped, with the token
/// its shell drew at start; `--export` writes the checkpoint to a tar file and `restore --import
/// --name` makes a second container from it that counts on the same way. On the host's network:
/// CRIU 3.17 cannot dump a network namespace on the test kernels.
fn checkpoint_restore(s: &Suite, name: &str) -> Result<(), String> {
    let out = s.dir.join(format!("out-{name}"));
    std::fs::create_dir_all(&out).unwrap();
    // A first run's counts, when this is the second.
    let _ = std::fs::remove_file(out.join("count"));
    let volume = format!("{}:/out", out.display());
    s.run_detached(name, &["--network", "host", "-v", &volume], COUNTER, "up")?;
    let (token, _) = wait_count(&out, 3)?;
    let r = s.podman(&["container", "checkpoint", name]);
    check(r.ok(), || {
        format!("podman container checkpoint: {}", describe(&r))
    })?;
    let st = s.inspect(name, "{{.State.Status}}")?;
    check(st == "exited", || {
        format!("podman says {st} after checkpoint")
    })?;
    // Stopped: its last count stays.
    let (_, stopped) = wait_count(&out, 0)?;
    let r = s.podman(&["container", "restore", name]);
    check(r.ok(), || {
        format!("podman container restore: {}", describe(&r))
    })?;
    let (t, _) = wait_count(&out, stopped)?;
    check(t == token, || {
        format!("restored {name} drew token {t}, not {token}: it started afresh")
    })?;
    check(s.runtime_status(name)? == "running", || {
        "the runtime does not say running after restore".into()
    })?;
    let tar = s.dir.join(format!("{name}.tar.gz"));
    let tar = tar.to_str().unwrap();
    let r = s.podman(&["container", "checkpoint", "--export", tar, name]);
    check(r.ok(), || {
        format!("podman container checkpoint --export: {}", describe(&r))
    })?;
    let (_, stopped) = wait_count(&out, 0)?;
    let copy = format!("{name}-imported");
    let r = s.podman(&["container", "restore", "--import", tar, "--name", &copy]);
    check(r.ok(), || {
        format!("podman container restore --import: {}", describe(&r))
    })?;
    let (t, _) = wait_count(&out, stopped)?;
    let _ = std::fs::remove_file(tar);
    check(t == token, || {
        format!("imported {copy} drew token {t}, not {token}: it started afresh")
    })
}

#[test]
fn podman_runs_containers_on_the_runtime() {
    let name = "podman_runs_containers_on_the_runtime";
    if !prerequisites(
        name,
        &["podman", "conmon", "script", "tar"],
        "podman conmon util-linux",
    ) {
        return;
    }
    let started = Instant::now();
    let suite = Suite::start().unwrap_or_else(|e| panic!("podman's private world: {e}"));
    say(&format!(
        "podman suite: runtime {}, image imported in {:.1} s",
        runtime().display(),
        started.elapsed().as_secs_f64()
    ));
    let mut scenarios: Vec<(&str, &str, Scenario<Suite>)> = vec![
        (
            "run",
            "run --rm: output and exit codes (0-255, 126, 127)",
            run_rm,
        ),
        ("detached", "run -d + exec + logs + stop + rm", detached),
        ("tty", "run -t and exec -t through a pty", tty),
        (
            "resources",
            "--memory, --cpus, --pids-limit (set and enforced)",
            resources,
        ),
        (
            "user",
            "--user, --read-only, --cap-drop/--cap-add",
            user_readonly_caps,
        ),
        (
            "seccomp",
            "seccomp: default profile, a profile file, unconfined",
            seccomp,
        ),
        ("volumes", "-v hostdir:/x and :ro volumes", volumes),
        ("pause", "pause / unpause", pause_unpause),
        ("top", "top, stats --no-stream", top_stats),
        ("update", "update of a running container", update),
        ("kill", "kill -s USR1, kill", kill),
        ("rm", "rm --force of a running container", rm_force),
        (
            "failing",
            "a failing container's error reaches podman",
            failing,
        ),
    ];
    match criu_missing() {
        None => scenarios.push((
            "checkpoint",
            "container checkpoint / restore, --export / --import",
            checkpoint_restore,
        )),
        Some(why) => say(&format!("SKIP podman suite: checkpoint / restore: {why}")),
    }
    // CASULO_PODMAN_ROOT_SCENARIOS (keys, comma-separated; empty or unset: all; "-KEY": all but
    // those) runs a part of the suite, where time is short (under emulation).
    let only = std::env::var("CASULO_PODMAN_ROOT_SCENARIOS").unwrap_or_default();
    let all = only.is_empty();
    if !all {
        let keys: Vec<&str> = only.split(',').map(str::trim).collect();
        let (out, keep): (Vec<&str>, Vec<&str>) = keys.iter().partition(|k| k.starts_with('-'));
        scenarios.retain(|(key, ..)| {
            (keep.is_empty() || keep.contains(key)) && !out.iter().any(|o| &o[1..] == *key)
        });
        say(&format!(
            "podman suite: only {:?} (CASULO_PODMAN_ROOT_SCENARIOS)",
            scenarios.iter().map(|s| s.0).collect::<Vec<_>>()
        ));
    }
    let criu_ran = scenarios.iter().any(|s| s.0 == "checkpoint");
    let scenarios: Vec<(&str, Scenario<Suite>)> = scenarios
        .into_iter()
        .map(|(_, what, f)| (what, f))
        .collect();
    let pid = std::process::id();
    let (passed, failed, retried) = run_scenarios(
        &suite,
        &format!("pm{pid}"),
        &scenarios,
        |s, prefix| s.remove(prefix),
        |s, prefix| s.wait_no_leftovers(prefix),
    );
    let calls = suite.calls();
    print_shapes("podman", &calls);
    if failed.is_empty() {
        if suite.systemd {
            assert!(
                calls.iter().any(|c| c.contains("--systemd-cgroup")),
                "no runtime invocation with --systemd-cgroup: {calls:#?}"
            );
        }
        // The runtime was really the one selected: every command went through the wrapper.
        for want in [
            " create --bundle ",
            " start ",
            " exec --pid-file ",
            " pause ",
            " resume ",
            " update --resources",
            " kill ",
            " delete --force ",
        ]
        .into_iter()
        .filter(|_| all)
        .chain(criu_ran.then_some(" checkpoint "))
        .chain(criu_ran.then_some(" restore "))
        {
            assert!(
                calls.iter().any(|c| format!(" {c}").contains(want)),
                "no runtime invocation with {want:?}: {calls:#?}"
            );
        }
    }
    let dir = suite.dir.clone();
    let parent = suite.cgroup_parent.trim_start_matches('/').to_string();
    drop(suite);
    let mut left: Vec<String> = Vec::new();
    if dir.exists() {
        left.push(format!("directory {}", dir.display()));
    }
    left.extend(
        cgroup_trees(&parent)
            .into_iter()
            .map(|t| format!("cgroup {}", t.display())),
    );
    left.extend(mounts_under(&dir).into_iter().map(|m| format!("mount {m}")));
    let d = dir.to_str().unwrap();
    left.extend(
        processes_with_env(&format!("CONTAINERS_CONF={d}/containers.conf"))
            .into_iter()
            .map(|(p, a)| format!("podman process {p}: {}", a.join(" "))),
    );
    left.extend(
        processes_where(|a| a.iter().any(|x| x.contains(d)))
            .into_iter()
            .map(|(p, a)| format!("process {p}: {}", a.join(" "))),
    );
    say(&format!(
        "podman suite: {passed} of {} scenarios passed ({} on a second run) in {:.1} s",
        passed + failed.len(),
        retried.len(),
        started.elapsed().as_secs_f64()
    ));
    assert!(failed.is_empty(), "failed scenarios: {failed:?}");
    assert!(left.is_empty(), "left behind at the end: {left:#?}");
}
