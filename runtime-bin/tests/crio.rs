//! CRI-O's runtime interface, driven as CRI-O drives it (CRI-O itself is not packaged for this
//! system, so the test plays its part).
//!
//! CRI-O runs every container under conmon, started with the arguments and the two pipes CRI-O
//! gives it (`_OCI_SYNCPIPE` on fd 3: conmon reports the container's pid, or -1 and the
//! runtime's message; `_OCI_STARTPIPE` on fd 4: one byte once CRI-O has placed conmon in its
//! cgroup). Everything else CRI-O runs itself, always as `RUNTIME --root ROOT
//! [--systemd-cgroup] COMMAND`: `start`, `state` (polled; its JSON decoded), `exec --process
//! FILE ID` in the foreground for streaming exec (on a pty for `-t`), exec-sync through conmon
//! (`conmon -e --exec-process-spec FILE`), `update --resources - ID` with the resources on
//! stdin, `pause`, `resume`, `kill ID SIGNAL` (a stop signal name, `KILL`, or a number, with
//! `-a` for all processes), `delete --force ID`. A failing command whose stderr says "container
//! not running" is how CRI-O learns that a container is gone.
//!
//! Each scenario prints `PASS` or `FAIL` with its time and must leave nothing behind (state,
//! cgroup, mount, conmon or container process, attach socket link). The runtime is a logging
//! wrapper in front of casulo (or of `CASULO_TEST_RUNTIME`, e.g. runc: the suite passes on
//! both); the invocations are printed at the end. Under `CASULO_TEST_SYSTEMD_CGROUP` conmon
//! gets `-s` and every command `--systemd-cgroup`, as with CRI-O's systemd cgroup manager, and
//! each container's scope goes in a pod slice named as the kubelet names them, which systemd
//! nests by its dashes.
mod common;
use common::engine::*;
use common::*;

use std::io::{BufRead, BufReader, Write as _};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

struct Suite {
    dir: PathBuf,
    /// The runtime as conmon and the commands see it: a wrapper that logs its arguments.
    wrapper: PathBuf,
    calls: PathBuf,
    exits: PathBuf,
    sockets: PathBuf,
}

impl Suite {
    fn new() -> Suite {
        let dir = std::env::temp_dir().join(format!("casulo-crio-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let s = Suite {
            wrapper: dir.join("runtime"),
            calls: dir.join("runtime-calls.log"),
            exits: dir.join("exits"),
            sockets: dir.join("sockets"),
            dir,
        };
        std::fs::create_dir_all(&s.exits).unwrap();
        std::fs::create_dir_all(&s.sockets).unwrap();
        write_wrapper(&s.wrapper, &s.calls, &[]);
        s
    }

    /// The invocations so far, with the suite's paths and the containers' ids replaced.
    fn calls(&self, ids: &[String]) -> Vec<String> {
        let text = std::fs::read_to_string(&self.calls).unwrap_or_default();
        text.lines()
            .map(|l| {
                let mut l = l.to_string();
                for id in ids {
                    l = l.replace(id.as_str(), "ID");
                }
                map_words(&l, |w| {
                    if w.starts_with("--root=") {
                        "--root=ROOT".into()
                    } else if w.starts_with('/') && w.contains("/ID/state") {
                        "ROOT".into()
                    } else if let Some(f) = w.rsplit('/').next().filter(|_| w.contains("/ID/")) {
                        format!("BUNDLE/{f}")
                    } else if w.starts_with('/') && w.ends_with("/ID") {
                        "BUNDLE".into()
                    } else {
                        w.to_string()
                    }
                })
            })
            .collect()
    }
}

impl Drop for Suite {
    fn drop(&mut self) {
        if systemd_cgroup() {
            // The pod slices systemd made for the scopes (and keeps, empty).
            let mut c = Command::new("systemctl");
            c.args(["stop", "casulopod.slice"]);
            let _ = output_within(c, Duration::from_secs(30));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A container as CRI-O holds one: its bundle (with its own state root) and its conmon.
/// Dropping it kills what still runs, waits for conmon, removes the attach socket link, then
/// the bundle's own drop deletes the container and checks that nothing was left.
struct Ctr<'a> {
    s: &'a Suite,
    conmon_pid_file: PathBuf,
    b: Bundle,
}

impl<'a> Ctr<'a> {
    /// A bundle whose process is `sh -c script`.
    fn new(s: &'a Suite, name: &str, script: &str) -> Ctr<'a> {
        let mut b = Bundle::new(name, &["sh", "-c", script]);
        if systemd_cgroup() {
            // A pod slice as the kubelet names them: systemd nests it by its dashes
            // (casulopod.slice/casulopod-besteffort.slice/...), and the runtime must find the
            // scope there.
            b.config["linux"]["cgroupsPath"] = format!(
                "casulopod-besteffort-pod{}.slice:casulo:{}",
                std::process::id(),
                b.id
            )
            .into();
            b.save();
        }
        Ctr {
            s,
            conmon_pid_file: b.dir.join("conmon-pidfile"),
            b,
        }
    }

    /// `RUNTIME --root ROOT [--systemd-cgroup] ARGS`, through the logging wrapper.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.s.wrapper);
        c.arg("--root")
            .arg(&self.b.root)
            .args(self.b.cgroup_flags())
            .args(args);
        c
    }

    fn rt(&self, args: &[&str]) -> Run {
        output_within(self.cmd(args), Duration::from_secs(30))
    }

    /// `RUNTIME ... ARGS` with `input` on stdin.
    fn rt_input(&self, args: &[&str], input: &str) -> Run {
        let path = self.b.dir.join("stdin");
        std::fs::write(&path, input).unwrap();
        let mut c = Command::new("sh");
        c.args(["-c", "f=$1; shift; exec \"$@\" < \"$f\"", "sh"])
            .arg(&path)
            .arg(&self.s.wrapper)
            .arg("--root")
            .arg(&self.b.root)
            .args(self.b.cgroup_flags())
            .args(args);
        output_within(c, Duration::from_secs(30))
    }

    fn state(&self) -> Result<Value, String> {
        let r = self.rt(&["state", &self.b.id]);
        check(r.ok(), || format!("state: {}", describe(&r)))?;
        serde_json::from_str(&r.stdout).map_err(|e| format!("state JSON: {e}: {}", r.stdout))
    }

    fn status(&self) -> Result<String, String> {
        Ok(self.state()?["status"].as_str().unwrap_or("").to_string())
    }

    /// conmon's arguments for this container, as CRI-O's CreateContainer gives them.
    fn create_args(&self) -> Vec<String> {
        let d = |p: &str| self.b.dir.join(p).to_str().unwrap().to_string();
        let mut a: Vec<String> = vec![
            "-b".into(),
            self.b.dir.to_str().unwrap().into(),
            "-c".into(),
            self.b.id.clone(),
            "--exit-dir".into(),
            self.s.exits.to_str().unwrap().into(),
            "-l".into(),
            d("ctr.log"),
            "--log-level".into(),
            "info".into(),
            "-n".into(),
            format!("k8s_{}", self.b.id),
            "-P".into(),
            self.conmon_pid_file.to_str().unwrap().into(),
            "-p".into(),
            d("pidfile"),
            "--persist-dir".into(),
            self.b.dir.to_str().unwrap().into(),
            "-r".into(),
            self.s.wrapper.to_str().unwrap().into(),
            "--runtime-arg".into(),
            format!("--root={}", self.b.root.display()),
            "--socket-dir-path".into(),
            self.s.sockets.to_str().unwrap().into(),
            "--syslog".into(),
            "-u".into(),
            self.b.id.clone(),
        ];
        if systemd_cgroup() {
            a.push("-s".into());
        }
        a
    }

    /// Run conmon with `args` and CRI-O's two pipes; returns conmon's exit status and the
    /// lines it wrote on the sync pipe.
    fn conmon(&self, args: &[String]) -> Result<(Option<i32>, Vec<Value>), String> {
        let (sync_ours, sync_theirs) = UnixStream::pair().map_err(|e| e.to_string())?;
        let (start_ours, start_theirs) = UnixStream::pair().map_err(|e| e.to_string())?;
        let (sync_theirs, start_theirs): (OwnedFd, OwnedFd) =
            (sync_theirs.into(), start_theirs.into());
        let mut c = with_pipes("conmon", sync_theirs, start_theirs);
        c.args(args)
            .current_dir(&self.b.dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("_OCI_SYNCPIPE", "3")
            .env("_OCI_STARTPIPE", "4")
            // A file, not a pipe: conmon's daemon half keeps it as long as the container runs.
            .stderr(std::fs::File::create(self.b.dir.join("conmon.err")).unwrap());
        let mut child = c.spawn().map_err(|e| format!("spawn conmon: {e}"))?;
        // Here CRI-O moves conmon into its cgroup; then it lets conmon go on.
        (&start_ours).write_all(&[0]).map_err(|e| e.to_string())?;
        drop(c);
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
                break st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err("conmon did not return within 60 s".into());
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let stderr = std::fs::read_to_string(self.b.dir.join("conmon.err")).unwrap_or_default();
        sync_ours
            .set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| e.to_string())?;
        let mut lines = Vec::new();
        let mut reader = BufReader::new(&sync_ours);
        // The create path reports once and keeps the pipe; exec reports once and exits.
        let mut line = String::new();
        if reader
            .read_line(&mut line)
            .map_err(|e| format!("sync pipe: {e}; conmon: {stderr}"))?
            > 0
        {
            lines.push(
                serde_json::from_str(&line).map_err(|e| format!("sync pipe JSON {line:?}: {e}"))?,
            );
        }
        Ok((status.code(), lines))
    }

    /// CRI-O's CreateContainer: conmon creates the container; returns what the sync pipe said.
    fn create(&self) -> Result<Value, String> {
        let (status, lines) = self.conmon(&self.create_args())?;
        check(status == Some(0), || {
            format!("conmon (create) exit {status:?}: {lines:?}")
        })?;
        lines
            .into_iter()
            .next()
            .ok_or_else(|| "conmon wrote nothing on the sync pipe".into())
    }

    /// create, check the pid conmon reported, start.
    fn create_start(&self) -> Result<i32, String> {
        let sync = self.create()?;
        let pid = sync["pid"].as_i64().unwrap_or(-1) as i32;
        check(pid > 0, || format!("conmon reported {sync}"))?;
        let st = self.state()?;
        check(
            st["status"] == "created" && st["pid"].as_i64() == Some(pid as i64),
            || format!("state after create: {st}"),
        )?;
        let r = self.rt(&["start", &self.b.id]);
        check(r.ok(), || format!("start: {}", describe(&r)))?;
        Ok(pid)
    }

    /// CRI-O's ExecSyncContainer: conmon runs `args` in the container; returns the exit code
    /// conmon reported, and the exec's log.
    fn exec_sync(
        &self,
        args: &[&str],
        timeout: Option<u32>,
    ) -> Result<(i64, String, String), String> {
        let mut process = self.b.config["process"].clone();
        process["args"] = serde_json::json!(args);
        process["terminal"] = false.into();
        let spec = self.b.dir.join("exec-process.json");
        std::fs::write(&spec, process.to_string()).unwrap();
        let log = self.b.dir.join("exec.log");
        let _ = std::fs::remove_file(&log);
        let mut a: Vec<String> = vec![
            "-c".into(),
            self.b.id.clone(),
            "-n".into(),
            format!("k8s_{}", self.b.id),
            "-r".into(),
            self.s.wrapper.to_str().unwrap().into(),
            "-p".into(),
            self.b.dir.join("exec-pidfile").to_str().unwrap().into(),
            "-e".into(),
            "-l".into(),
            log.to_str().unwrap().into(),
            "--socket-dir-path".into(),
            self.s.sockets.to_str().unwrap().into(),
            "--log-level".into(),
            "info".into(),
            "--sync".into(),
        ];
        if let Some(t) = timeout {
            a.extend(["-T".into(), t.to_string()]);
        }
        if systemd_cgroup() {
            a.push("-s".into());
        }
        a.extend([
            "--exec-process-spec".into(),
            spec.to_str().unwrap().into(),
            "--runtime-arg".into(),
            format!("--root={}", self.b.root.display()),
        ]);
        let (_, lines) = self.conmon(&a)?;
        let report = lines
            .into_iter()
            .find(|l| l.get("exit_code").is_some())
            .ok_or("conmon reported no exit code")?;
        let code = report["exit_code"].as_i64().unwrap_or(-2);
        let message = report["message"].as_str().unwrap_or("").to_string();
        Ok((
            code,
            message,
            std::fs::read_to_string(&log).unwrap_or_default(),
        ))
    }

    fn conmon_pid(&self) -> Option<i32> {
        std::fs::read_to_string(&self.conmon_pid_file)
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// The exit code conmon wrote for the container, once it has.
    fn exit_file(&self) -> Result<String, String> {
        let f = self.s.exits.join(&self.b.id);
        wait_until("conmon's exit file", || f.exists())?;
        std::thread::sleep(Duration::from_millis(20));
        Ok(std::fs::read_to_string(&f).unwrap_or_default())
    }

    /// The container's log lines (CRI log format: `TIME STREAM TAG TEXT`) as `STREAM TEXT`.
    fn log(&self) -> Vec<String> {
        std::fs::read_to_string(self.b.dir.join("ctr.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.splitn(4, ' ').collect();
                (f.len() == 4).then(|| format!("{} {}", f[1], f[3]))
            })
            .collect()
    }
}

impl Drop for Ctr<'_> {
    fn drop(&mut self) {
        let _ = self.rt(&["kill", "-a", &self.b.id, "KILL"]);
        if let Some(pid) = self.conmon_pid() {
            let _ = wait_until("conmon to exit", || !alive(pid));
        }
        let _ = std::fs::remove_file(self.s.sockets.join(&self.b.id));
        let _ = std::fs::remove_file(self.s.exits.join(&self.b.id));
    }
}

/// A command that runs `program` with `sync` as fd 3 and `start` as fd 4, as conmon expects
/// them, and stdin and stdout on /dev/null. A shell moves them into place: they go in as its
/// stdin and stdout, which is all a `Command` can place without code run between fork and exec.
/// The command owns both ends, so they are closed in this process once it has been spawned
/// (and when the command is dropped).
fn with_pipes(program: &str, sync: OwnedFd, start: OwnedFd) -> Command {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(r#"exec "$@" 3<&0 4<&1 </dev/null >/dev/null"#)
        .arg("sh")
        .arg(program)
        .stdin(Stdio::from(sync))
        .stdout(Stdio::from(start));
    cmd
}

// --- The scenarios. ---

/// create through conmon, state (created, the pid conmon reported), start, the init's output
/// in the CRI log, stop with the stop signal by name, the exit file, delete twice.
fn lifecycle(s: &Suite, name: &str) -> Result<(), String> {
    let c = Ctr::new(
        s,
        name,
        "trap 'echo got-term; exit 7' TERM; echo hello-from-init; while true; do sleep 0.1; done",
    );
    let pid = c.create_start()?;
    let st = c.state()?;
    check(st["status"] == "running" && st["pid"] == pid, || {
        format!("state: {st}")
    })?;
    let created = st["created"].as_str().unwrap_or("");
    check(
        created.len() > 20 && created.contains('T') && created.ends_with('Z'),
        || format!("created is not RFC 3339: {created:?}"),
    )?;
    check(st["bundle"].as_str() == c.b.dir.to_str(), || {
        format!("bundle: {st}")
    })?;
    wait_until("the init's output in the log", || {
        c.log().contains(&"stdout hello-from-init".to_string())
    })?;
    let r = c.rt(&["kill", &c.b.id, "TERM"]);
    check(r.ok(), || format!("kill TERM: {}", describe(&r)))?;
    let code = c.exit_file()?;
    check(code == "7", || format!("exit file says {code:?}"))?;
    check(c.log().contains(&"stdout got-term".to_string()), || {
        format!("log: {:?}", c.log())
    })?;
    wait_until("state stopped", || c.status().is_ok_and(|s| s == "stopped"))?;
    // A stopped container: CRI-O's kill loop must learn it is gone.
    let r = c.rt(&["kill", &c.b.id, "KILL"]);
    check(
        !r.ok() && r.stderr.contains("container not running"),
        || format!("kill of a stopped container: {}", describe(&r)),
    )?;
    let r = c.rt(&["delete", "--force", &c.b.id]);
    check(r.ok(), || format!("delete --force: {}", describe(&r)))?;
    let r = c.rt(&["delete", "--force", &c.b.id]);
    check(r.ok(), || {
        format!("delete --force of a deleted container: {}", describe(&r))
    })
}

/// ExecSync through conmon: output in the exec log, the exit code, and conmon's timeout.
fn exec_sync(s: &Suite, name: &str) -> Result<(), String> {
    let c = Ctr::new(s, name, "sleep 1000");
    c.create_start()?;
    let (code, msg, log) = c.exec_sync(&["sh", "-c", "echo out; echo err >&2; exit 3"], None)?;
    check(code == 3, || format!("exit code {code} ({msg})"))?;
    check(
        log.contains(" stdout F out") && log.contains(" stderr F err"),
        || format!("exec log: {log:?}"),
    )?;
    let (code, msg, _) = c.exec_sync(&["no-such-program"], None)?;
    check(
        code != 0 && msg.contains("executable file not found"),
        || format!("exec of a missing program: {code} {msg:?}"),
    )?;
    let (code, msg, _) = c.exec_sync(&["sleep", "30"], Some(1))?;
    check(code == -1 && msg.contains("timed out"), || {
        format!("exec past its timeout: {code} {msg:?}")
    })?;
    check(c.status()? == "running", || {
        "not running after the execs".into()
    })
}

/// Streaming exec: `exec --process FILE ID` in the foreground, stdin to stdout, its status as
/// the runtime's; and on a pty with `terminal` set and no console socket.
fn exec_stream(s: &Suite, name: &str) -> Result<(), String> {
    let c = Ctr::new(s, name, "sleep 1000");
    c.create_start()?;
    let mut process = c.b.config["process"].clone();
    process["args"] = serde_json::json!(["sh", "-c", "cat; exit 4"]);
    process["terminal"] = false.into();
    let file = c.b.dir.join("exec-stream.json");
    std::fs::write(&file, process.to_string()).unwrap();
    let r = c.rt_input(
        &["exec", "--process", file.to_str().unwrap(), &c.b.id],
        "through-stdin\n",
    );
    check(r.status == Some(4) && r.stdout == "through-stdin\n", || {
        format!("exec --process: {}", describe(&r))
    })?;
    process["args"] = serde_json::json!([
        "sh",
        "-c",
        "tty; test -t 0 && echo stdin-tty; sleep 0.2; exit 5"
    ]);
    process["terminal"] = true.into();
    std::fs::write(&file, process.to_string()).unwrap();
    let mut line = sh_quote(s.wrapper.to_str().unwrap());
    let root = c.b.root.to_str().unwrap().to_string();
    let flags = c.b.cgroup_flags();
    for a in ["--root", &root]
        .into_iter()
        .chain(flags.iter().copied())
        .chain(["exec", "--process", file.to_str().unwrap(), &c.b.id])
    {
        line.push(' ');
        line.push_str(&sh_quote(a));
    }
    let mut t = Command::new("script");
    t.args(["-q", "-e", "-c", &line, "/dev/null"]);
    let r = output_within(t, Duration::from_secs(30));
    check(
        r.status == Some(5) && r.stdout.contains("/dev/pts/") && r.stdout.contains("stdin-tty"),
        || format!("exec --process with terminal on a pty: {}", describe(&r)),
    )
}

/// UpdateContainerResources: `update --resources -` with the JSON on stdin.
fn update(s: &Suite, name: &str) -> Result<(), String> {
    let c = Ctr::new(s, name, "sleep 1000");
    c.create_start()?;
    let r = c.rt_input(
        &["update", "--resources", "-", &c.b.id],
        r#"{"memory":{"limit":67108864},"cpu":{"quota":50000,"period":100000},"pids":{"limit":50}}"#,
    );
    check(r.ok(), || format!("update --resources -: {}", describe(&r)))?;
    let (code, msg, log) = c.exec_sync(&["sh", "-c", SHOW_LIMITS], None)?;
    let seen: Vec<&str> = log
        .lines()
        .filter_map(|l| l.splitn(4, ' ').nth(3))
        .collect();
    check(code == 0 && seen == ["67108864", "50000", "50"], || {
        format!("limits after update: {code} {msg:?} {log:?}")
    })
}

/// pause and resume, seen in `state`.
fn pause_resume(s: &Suite, name: &str) -> Result<(), String> {
    let c = Ctr::new(s, name, "sleep 1000");
    c.create_start()?;
    let r = c.rt(&["pause", &c.b.id]);
    check(r.ok(), || format!("pause: {}", describe(&r)))?;
    check(c.status()? == "paused", || "not paused".into())?;
    let r = c.rt(&["resume", &c.b.id]);
    check(r.ok(), || format!("resume: {}", describe(&r)))?;
    check(c.status()? == "running", || {
        "not running after resume".into()
    })
}

/// `kill -a ID 9` (CRI-O's kill of every process, for pid namespaces shared with the host)
/// after a numbered signal the init ignores.
fn kill_all(s: &Suite, name: &str) -> Result<(), String> {
    let c = Ctr::new(s, name, "trap '' USR1; sleep 1000 & wait");
    c.create_start()?;
    let r = c.rt(&["kill", &c.b.id, "10"]);
    check(r.ok() && c.status()? == "running", || {
        format!("kill ID 10: {}", describe(&r))
    })?;
    let r = c.rt(&["kill", "-a", &c.b.id, "9"]);
    check(r.ok(), || format!("kill -a: {}", describe(&r)))?;
    let code = c.exit_file()?;
    check(code == "137", || format!("exit file says {code:?}"))
}

/// RemoveContainer of a running container: `delete --force`.
fn delete_running(s: &Suite, name: &str) -> Result<(), String> {
    let c = Ctr::new(s, name, "sleep 1000");
    c.create_start()?;
    let r = c.rt(&["delete", "--force", &c.b.id]);
    check(r.ok(), || format!("delete --force: {}", describe(&r)))?;
    let r = c.rt(&["state", &c.b.id]);
    check(!r.ok(), || format!("state after delete: {}", describe(&r)))
}

/// A container the runtime cannot create: conmon reports pid -1 with the runtime's message.
fn failing(s: &Suite, name: &str) -> Result<(), String> {
    let mut c = Ctr::new(s, name, "true");
    c.b.config["process"]["args"] = serde_json::json!(["/no/such/program"]);
    c.b.save();
    let (_, lines) = c.conmon(&c.create_args())?;
    let report = lines.into_iter().next().ok_or("conmon wrote nothing")?;
    check(report["pid"] == -1, || format!("conmon reported {report}"))?;
    let msg = report["message"].as_str().unwrap_or("");
    check(
        msg.contains("/no/such/program") && msg.contains("no such file or directory"),
        || format!("conmon's message: {msg:?}"),
    )
}

#[test]
fn crio_runtime_interface() {
    let name = "crio_runtime_interface";
    if !prerequisites(name, &["conmon", "script"], "conmon util-linux") {
        return;
    }
    let started = Instant::now();
    let suite = Suite::new();
    let scenarios: [(&str, Scenario<Suite>); 8] = [
        (
            "create through conmon, state, start, log, stop, exit file, delete",
            lifecycle,
        ),
        (
            "exec-sync through conmon: output, exit code, timeout",
            exec_sync,
        ),
        (
            "streaming exec in the foreground, with and without a pty",
            exec_stream,
        ),
        ("update --resources - (stdin)", update),
        ("pause / resume", pause_resume),
        ("kill by number, kill -a", kill_all),
        ("delete --force of a running container", delete_running),
        (
            "a failing create: conmon reports the runtime's message",
            failing,
        ),
    ];
    let (passed, failed, retried) =
        run_scenarios(&suite, "crio", &scenarios, |_, _| {}, |_, _| Ok(()));
    let ids: Vec<String> = std::fs::read_to_string(&suite.calls)
        .unwrap_or_default()
        .split_whitespace()
        .filter(|w| w.starts_with("crio-") && w.matches('-').count() == 3)
        .map(str::to_string)
        .collect();
    print_shapes("CRI-O's part", &suite.calls(&ids));
    say(&format!(
        "CRI-O interface suite: {passed} of {} scenarios passed ({} on a second run) in {:.1} s",
        passed + failed.len(),
        retried.len(),
        started.elapsed().as_secs_f64()
    ));
    assert!(failed.is_empty(), "failed scenarios: {failed:?}");
}
