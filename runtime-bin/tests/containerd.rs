//! containerd runs its containers on the runtime under test.
//!
//! One test starts a private containerd (its own config, root, state, opt dir and socket under a
//! fresh temporary directory, the CRI plugin disabled), and drives it with `ctr` through the
//! runc shim (`io.containerd.runc.v2`) with the shim's `BinaryName` option (`ctr
//! --runc-binary`) pointing at a small logging wrapper in front of casulo (or of
//! `CASULO_TEST_RUNTIME`, e.g. runc, to show that the suite itself is right). The scenarios run
//! one after the other against that daemon; each prints `PASS` or `FAIL` with its time, removes
//! its container even when it failed, and must leave nothing behind (no runtime state, cgroup,
//! mount, shim, shim socket or process). At the end the daemon is stopped and everything it
//! made is removed, also when the test panics. Without containerd the test prints `SKIPPED`.
mod common;
use common::containerd::*;
use common::engine::*;
use common::*;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The private daemon and everything the scenarios need to drive it. Dropping it stops the
/// daemon and removes all it made.
struct Suite {
    dir: PathBuf,
    address: PathBuf,
    ns: String,
    /// The logging wrapper given to the shim as `BinaryName`.
    wrapper: PathBuf,
    /// One line per runtime invocation, written by the wrapper.
    calls: PathBuf,
    /// The shim's `Root` option: the runtime's `--root` is `<runc_root>/<ns>`.
    runc_root: PathBuf,
    fifo_dir: PathBuf,
    /// A private copy of the busybox rootfs for `ctr run --rootfs` (the runtime may create
    /// mount points in it).
    rootfs: PathBuf,
    daemon: Option<Daemon>,
    /// Every container id a scenario used, for the leftover checks.
    ids: std::cell::RefCell<Vec<String>>,
}

impl Suite {
    fn start() -> Suite {
        let pid = std::process::id();
        // Short on purpose: unix socket paths are limited to 107 bytes.
        let dir = std::env::temp_dir().join(format!("casulo-ctrd-{pid}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut s = Suite {
            address: dir.join("containerd.sock"),
            ns: format!("casulo-ctrd-{pid}"),
            wrapper: dir.join("runtime-wrapper"),
            calls: dir.join("runtime-calls.log"),
            runc_root: dir.join("runc-root"),
            fifo_dir: dir.join("fifo"),
            rootfs: dir.join("rootfs"),
            daemon: None,
            ids: Default::default(),
            dir,
        };
        // From here on, Drop cleans up whatever happens.
        let cp = Command::new("cp")
            .arg("-a")
            .arg(rootfs())
            .arg(&s.rootfs)
            .status()
            .unwrap();
        assert!(cp.success(), "copy the busybox rootfs");
        write_wrapper(&s.wrapper, &s.calls, &[]);
        let config = format!(
            r#"version = 2
root = "{dir}/root"
state = "{dir}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{dir}/containerd.sock"

[ttrpc]
  address = "{dir}/containerd.sock.ttrpc"

[debug]
  level = "debug"

[plugins."io.containerd.internal.v1.opt"]
  path = "{dir}/opt"
"#,
            dir = s.dir.display()
        );
        let mut daemon = Daemon::spawn(&s.dir, &s.address, &config);
        daemon.wait_until("answer ctr version", || s.ctr(&["version"]).ok());
        s.daemon = Some(daemon);
        s
    }

    fn daemon_log_tail(&self) -> String {
        self.daemon
            .as_ref()
            .map(|d| d.log_tail(30))
            .unwrap_or_default()
    }

    /// `ctr --address ... --namespace ... ARGS`.
    fn ctr_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ctr");
        c.arg("--address")
            .arg(&self.address)
            .arg("--namespace")
            .arg(&self.ns)
            .args(args);
        c
    }

    fn ctr(&self, args: &[&str]) -> Run {
        output_within(self.ctr_cmd(args), Duration::from_secs(60))
    }

    /// The flags of `ctr run` that select the runtime under test through the runc shim.
    fn runtime_flags(&self) -> Vec<String> {
        vec![
            "--runtime".into(),
            "io.containerd.runc.v2".into(),
            "--runc-binary".into(),
            self.wrapper.to_str().unwrap().into(),
            "--runc-root".into(),
            self.runc_root.to_str().unwrap().into(),
            "--fifo-dir".into(),
            self.fifo_dir.to_str().unwrap().into(),
        ]
    }

    /// `ctr run` arguments: the runtime flags, `extra` flags, the plain rootfs directory,
    /// the id and the command.
    fn run_args(&self, extra: &[&str], id: &str, cmd: &[&str]) -> Vec<String> {
        self.ids.borrow_mut().push(id.to_string());
        let mut a: Vec<String> = vec!["run".into()];
        a.extend(self.runtime_flags());
        a.extend(extra.iter().map(|s| s.to_string()));
        a.extend([
            "--env".into(),
            "PATH=/bin".into(),
            "--rootfs".into(),
            self.rootfs.to_str().unwrap().into(),
            id.into(),
        ]);
        a.extend(cmd.iter().map(|s| s.to_string()));
        a
    }

    fn ctr_s(&self, args: &[String]) -> Run {
        let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        self.ctr(&a)
    }

    /// A detached task running `cmd`; returns its init's pid.
    fn run_detached(&self, id: &str, cmd: &[&str]) -> Result<i32, String> {
        self.run_detached_with(&[], id, cmd)
    }

    /// A detached task with more `ctr run` flags.
    fn run_detached_with(&self, flags: &[&str], id: &str, cmd: &[&str]) -> Result<i32, String> {
        let mut extra = vec!["--detach"];
        extra.extend_from_slice(flags);
        let r = self.ctr_s(&self.run_args(&extra, id, cmd));
        check(r.ok(), || format!("ctr run --detach: {}", describe(&r)))?;
        match self.task(id) {
            Some((pid, status)) if status == "RUNNING" => Ok(pid),
            other => Err(format!("after ctr run --detach, task {id}: {other:?}")),
        }
    }

    /// `ctr task exec` arguments (with the fifo dir).
    fn exec_args(&self, extra: &[&str], id: &str, exec_id: &str, cmd: &[&str]) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "task".into(),
            "exec".into(),
            "--fifo-dir".into(),
            self.fifo_dir.to_str().unwrap().into(),
            "--exec-id".into(),
            exec_id.into(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a.push(id.into());
        a.extend(cmd.iter().map(|s| s.to_string()));
        a
    }

    /// `ctr ARGS` on a pseudo-terminal (util-linux `script`), for `-t`.
    ///
    /// The commands run this way pause a moment between their last output and their exit:
    /// containerd 1.6's runc shim closes a process's pty master as soon as it has reaped the
    /// process, and output the kernel has not yet passed to the master by then is lost. Here
    /// that happened to about one in fifty `ctr run -t` of a command that exits right after
    /// printing, never with the pause.
    fn ctr_on_tty(&self, args: &[String]) -> Run {
        let mut line = format!(
            "ctr --address {} --namespace {}",
            sh_quote(self.address.to_str().unwrap()),
            sh_quote(&self.ns)
        );
        for a in args {
            line.push(' ');
            line.push_str(&sh_quote(a));
        }
        let mut c = Command::new("script");
        c.args(["-q", "-e", "-c", &line, "/dev/null"]);
        output_within(c, Duration::from_secs(60))
    }

    /// The pid and status (`RUNNING`, `PAUSED`, `STOPPED`, ...) of task `id` from `ctr task ls`.
    fn task(&self, id: &str) -> Option<(i32, String)> {
        let r = self.ctr(&["task", "ls"]);
        r.stdout.lines().skip(1).find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3 && f[0] == id).then(|| (f[1].parse().unwrap_or(0), f[2].to_string()))
        })
    }

    fn wait_task_status(&self, id: &str, want: &str) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let t = self.task(id);
            if t.as_ref().map(|t| t.1.as_str()) == Some(want) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("task {id} is not {want} after 30 s: {t:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The runtime's own `state` of container `id`, from its state root (not through
    /// containerd).
    fn runtime_status(&self, id: &str) -> Option<String> {
        let mut c = Command::new(runtime());
        c.arg("--root")
            .arg(self.runc_root.join(&self.ns))
            .args(["state", id]);
        let r = output_within(c, Duration::from_secs(20));
        r.ok().then(|| {
            serde_json::from_str::<Value>(&r.stdout).unwrap_or_default()["status"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
    }

    /// The pids `ctr task ps` lists.
    fn task_pids(&self, id: &str) -> Result<Vec<i32>, String> {
        let r = self.ctr(&["task", "ps", id]);
        check(r.ok(), || format!("ctr task ps: {}", describe(&r)))?;
        Ok(r.stdout
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next()?.parse().ok())
            .collect())
    }

    /// The shim's socket for container `id`, as containerd 1.6 names it.
    fn shim_socket(&self, id: &str) -> PathBuf {
        shim_socket(&self.address, &self.ns, id)
    }

    /// What container `id` left behind: containerd's record of it, the runtime's state, its
    /// bundle, cgroups, mounts, shim, shim socket and processes.
    fn leftovers(&self, id: &str) -> Vec<String> {
        let bundle = self
            .dir
            .join("state/io.containerd.runtime.v2.task")
            .join(&self.ns)
            .join(id);
        let mut left = leftovers_of(id, &self.runc_root.join(&self.ns), &bundle);
        if bundle.exists() {
            left.push(format!("bundle {}", bundle.display()));
        }
        if self.shim_socket(id).exists() {
            left.push(format!("shim socket {}", self.shim_socket(id).display()));
        }
        let ls = self.ctr(&["containers", "ls", "--quiet"]);
        if ls.stdout.lines().any(|l| l.trim() == id) {
            left.push(format!("containerd still lists container {id}"));
        }
        left
    }

    /// Wait (at most 30 s: the shim exits after containerd's delete returns) until container
    /// `id` left nothing behind.
    fn wait_no_leftovers(&self, id: &str) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = self.leftovers(id);
            if left.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("container {id} left behind: {left:#?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Remove container `id` whatever state it is in (after a failed scenario too).
    fn remove(&self, id: &str) {
        if self.task(id).is_some() {
            let _ = self.ctr(&["task", "kill", "--all", "--signal", "SIGKILL", id]);
            let _ = self.wait_task_status(id, "STOPPED");
            let _ = self.ctr(&["task", "delete", "--force", id]);
        }
        let _ = self.ctr(&["containers", "rm", id]);
    }

    /// Every runtime invocation so far, with this run's paths and ids replaced by names.
    fn calls(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.calls).unwrap_or_default();
        let bundles = format!(
            "{}/",
            self.dir
                .join("state/io.containerd.runtime.v2.task")
                .join(&self.ns)
                .display()
        );
        let mut ids = self.ids.borrow().clone();
        // Longest first, so that no id is replaced inside a longer one.
        ids.sort_by_key(|i| std::cmp::Reverse(i.len()));
        text.lines()
            .map(|l| {
                let mut l = l
                    .replace(&bundles, "BUNDLES/")
                    .replace(&self.runc_root.display().to_string(), "ROOT")
                    .replace(&self.ns, "NS");
                for id in &ids {
                    l = l.replace(id.as_str(), "ID");
                }
                let mut words: Vec<String> = l.split(' ').map(str::to_string).collect();
                for w in words.iter_mut() {
                    if w.starts_with("BUNDLES/ID/") {
                        *w = w.replacen("BUNDLES/ID/", "BUNDLE/", 1);
                    } else if w.contains("/runc-process") {
                        *w = "PROCESS.json".into();
                    } else if w.ends_with("/pty.sock") {
                        *w = "CONSOLE.sock".into();
                    } else if w.starts_with("BUNDLES/ID") {
                        *w = "BUNDLE".into();
                    }
                }
                let mut l = words.join(" ");
                // An exec's pid file is named after the exec id.
                if let Some(p) = l.find("--pid-file BUNDLE/") {
                    let rest = &l[p + "--pid-file BUNDLE/".len()..];
                    if let Some(end) = rest.find(".pid") {
                        if &rest[..end] != "init" {
                            l = l.replacen(&rest[..end].to_string(), "EXEC_ID", 1);
                        }
                    }
                }
                l
            })
            .collect()
    }
}

impl Drop for Suite {
    fn drop(&mut self) {
        // Containers first, through containerd, while it is up.
        if self.daemon.as_mut().is_some_and(|d| d.is_up()) {
            let ls = self.ctr(&["containers", "ls", "--quiet"]);
            for id in ls.stdout.lines().map(str::trim).filter(|l| !l.is_empty()) {
                self.remove(id);
            }
            let images = self.ctr(&["images", "ls", "--quiet"]);
            for img in images
                .stdout
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
            {
                let _ = self.ctr(&["images", "rm", img]);
            }
        }
        // Whatever the runtime still holds.
        if let Ok(entries) = std::fs::read_dir(self.runc_root.join(&self.ns)) {
            for e in entries.flatten() {
                let mut c = Command::new(runtime());
                c.arg("--root")
                    .arg(self.runc_root.join(&self.ns))
                    .arg("delete")
                    .arg("--force")
                    .arg(e.file_name());
                let _ = output_within(c, Duration::from_secs(20));
            }
        }
        // The daemon, then its shims.
        if let Some(d) = self.daemon.as_mut() {
            d.stop();
        }
        // Container processes still in this namespace's cgroups, then the cgroups themselves
        // (ctr's default cgroupsPath is /<namespace>/<id>).
        remove_cgroup_trees(&self.ns);
        // Mounts under the private directory, deepest first.
        umount_all_under(&self.dir);
        for id in self.ids.borrow().iter() {
            let _ = std::fs::remove_file(self.shim_socket(id));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `ctr task delete` reports a non-zero exit status as a warning; the status, or 0.
fn deleted_exit_code(r: &Run) -> Option<i32> {
    if !r.ok() {
        return None;
    }
    Some(
        r.stderr
            .split("exit with non-zero exit code ")
            .nth(1)
            .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
    )
}

// --- The scenarios. Each gets the suite and its container id. ---

/// `ctr run --rm`: the task's output reaches ctr and ctr exits with the task's status.
fn run_rm(s: &Suite, id: &str) -> Result<(), String> {
    let r = s.ctr_s(&s.run_args(
        &["--rm"],
        id,
        &["sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3"],
    ));
    check(r.status == Some(3), || {
        format!("want exit 3: {}", describe(&r))
    })?;
    check(r.stdout.contains("to-stdout"), || {
        format!("stdout: {}", describe(&r))
    })?;
    check(r.stderr.contains("to-stderr"), || {
        format!("stderr: {}", describe(&r))
    })?;
    // --rm deleted it: nothing may be left, right away.
    s.wait_no_leftovers(id)
}

/// The busybox image of the suite, as an OCI archive built here and imported with `ctr images
/// import`: its name.
fn import_image(s: &Suite) -> Result<&'static str, String> {
    let archive = build_oci_archive(
        &s.rootfs,
        &s.dir.join("oci"),
        serde_json::json!({"Env": ["PATH=/bin"], "Cmd": ["sh"]}),
    )?;
    let r = s.ctr(&[
        "images",
        "import",
        "--base-name",
        "casulo.test/busybox",
        archive.to_str().unwrap(),
    ]);
    check(r.ok(), || format!("ctr images import: {}", describe(&r)))?;
    Ok(IMAGE)
}

/// The name [`import_image`] gives the suite's image.
const IMAGE: &str = "casulo.test/busybox:latest";

/// A local image: an OCI archive built here, imported with `ctr images import`, run from
/// containerd's snapshotter (no `--rootfs`).
fn run_image(s: &Suite, id: &str) -> Result<(), String> {
    let image = import_image(s)?;
    s.ids.borrow_mut().push(id.to_string());
    let mut args: Vec<String> = vec!["run".into(), "--rm".into()];
    args.extend(s.runtime_flags());
    args.extend([
        image.into(),
        id.into(),
        "sh".into(),
        "-c".into(),
        "echo \"from-image PATH=$PATH\"; test -x /bin/busybox".into(),
    ]);
    let r = s.ctr_s(&args);
    check(r.ok(), || format!("ctr run IMAGE: {}", describe(&r)))?;
    check(r.stdout.contains("from-image PATH=/bin"), || {
        format!("the image's config (Env) is not applied: {}", describe(&r))
    })?;
    s.wait_no_leftovers(id)?;
    let r = s.ctr(&["images", "rm", image]);
    check(r.ok(), || format!("ctr images rm: {}", describe(&r)))
}

/// A detached task, then `ctr task exec` without and with a terminal, and an exec that fails.
fn exec(s: &Suite, id: &str) -> Result<(), String> {
    s.run_detached(id, &["sleep", "1000"])?;
    let r = s.ctr_s(&s.exec_args(
        &[],
        id,
        "plain",
        &["sh", "-c", "echo exec-out; echo exec-err >&2; exit 4"],
    ));
    check(r.status == Some(4), || {
        format!("exec: want exit 4: {}", describe(&r))
    })?;
    check(
        r.stdout.contains("exec-out") && r.stderr.contains("exec-err"),
        || format!("exec output: {}", describe(&r)),
    )?;
    let r = s.ctr_on_tty(&s.exec_args(
        &["--tty"],
        id,
        "tty",
        &[
            "sh",
            "-c",
            "tty; [ -t 0 ] && [ -t 1 ] && echo exec-has-a-tty; sleep 0.2; exit 5",
        ],
    ));
    check(r.status == Some(5), || {
        format!("exec -t: want exit 5: {}", describe(&r))
    })?;
    check(
        r.stdout.contains("/dev/pts/") && r.stdout.contains("exec-has-a-tty"),
        || format!("exec -t output: {}", describe(&r)),
    )?;
    // The process's user and working directory.
    let r = s.ctr_s(&s.exec_args(
        &["--user", "65534", "--cwd", "/tmp"],
        id,
        "user",
        &["sh", "-c", "echo \"$(id -u) $(pwd)\""],
    ));
    check(r.ok() && r.stdout.trim() == "65534 /tmp", || {
        format!("exec --user 65534 --cwd /tmp: {}", describe(&r))
    })?;
    // A program that does not exist: the runtime's error reaches ctr.
    let r = s.ctr_s(&s.exec_args(&[], id, "missing", &["/no/such/program"]));
    check(!r.ok(), || {
        format!("exec of a missing program: {}", describe(&r))
    })?;
    check(
        r.stderr.contains("OCI runtime exec failed") && r.stderr.contains("/no/such/program"),
        || format!("exec error message: {}", describe(&r)),
    )?;
    // The task is still running after all that.
    check(
        s.task(id).map(|t| t.1).as_deref() == Some("RUNNING"),
        || format!("task after execs: {:?}", s.task(id)),
    )
}

/// `ctr task ps` lists the init and a detached exec.
fn ps(s: &Suite, id: &str) -> Result<(), String> {
    let init = s.run_detached(id, &["sleep", "1000"])?;
    let r = s.ctr_s(&s.exec_args(&["--detach"], id, "bg", &["sleep", "999"]));
    check(r.ok(), || format!("exec --detach: {}", describe(&r)))?;
    let mut pids = Vec::new();
    wait_until("ps lists the init and the exec", || {
        pids = s.task_pids(id).unwrap_or_default();
        pids.contains(&init) && pids.iter().any(|p| cmdline(*p) == "sleep 999")
    })
    .map_err(|e| format!("{e}: {pids:?}"))?;
    check(pids.len() == 2, || format!("ps: want 2 pids: {pids:?}"))
}

/// `ctr task kill`: SIGTERM by default, with the status the task exits with; a kill of the
/// exited task says the process has finished.
fn kill(s: &Suite, id: &str) -> Result<(), String> {
    let init = s.run_detached(
        id,
        &[
            "sh",
            "-c",
            "trap 'exit 42' TERM; while true; do sleep 1 & wait $!; done",
        ],
    )?;
    wait_catches(init, libc::SIGTERM)?;
    let r = s.ctr(&["task", "kill", id]);
    check(r.ok(), || format!("ctr task kill: {}", describe(&r)))?;
    s.wait_task_status(id, "STOPPED")?;
    let r = s.ctr(&["task", "kill", id]);
    check(
        !r.ok() && r.stderr.contains("process already finished"),
        || format!("kill of an exited task: {}", describe(&r)),
    )?;
    let r = s.ctr(&["task", "delete", id]);
    check(deleted_exit_code(&r) == Some(42), || {
        format!("task delete: want exit code 42: {}", describe(&r))
    })
}

/// `ctr task kill --all`: the signal reaches every process, not only the init.
fn kill_all(s: &Suite, id: &str) -> Result<(), String> {
    // The shell is the pid namespace's init: without a trap it does not die of SIGTERM.
    let init = s.run_detached(
        id,
        &[
            "sh",
            "-c",
            "sleep 1000 & sleep 1000 & while true; do sleep 1; done",
        ],
    )?;
    let mut sleepers = Vec::new();
    wait_until("both sleeps are running", || {
        sleepers = s
            .task_pids(id)
            .unwrap_or_default()
            .into_iter()
            .filter(|p| cmdline(*p) == "sleep 1000")
            .collect();
        sleepers.len() == 2
    })?;
    let r = s.ctr(&["task", "kill", "--all", "--signal", "SIGTERM", id]);
    check(r.ok(), || format!("ctr task kill --all: {}", describe(&r)))?;
    wait_until("SIGTERM to --all ends the sleeps", || {
        sleepers.iter().all(|p| !alive(*p))
    })?;
    check(alive(init), || {
        "the init (which ignores SIGTERM) died".into()
    })?;
    let r = s.ctr(&["task", "kill", "--all", "--signal", "SIGKILL", id]);
    check(r.ok(), || {
        format!("ctr task kill --all -s KILL: {}", describe(&r))
    })?;
    s.wait_task_status(id, "STOPPED")?;
    let r = s.ctr(&["task", "delete", id]);
    check(deleted_exit_code(&r) == Some(137), || {
        format!("task delete: want exit code 137: {}", describe(&r))
    })
}

/// `ctr task pause` and `resume`, seen by containerd and by the runtime.
fn pause_resume(s: &Suite, id: &str) -> Result<(), String> {
    s.run_detached(id, &["sleep", "1000"])?;
    let r = s.ctr(&["task", "pause", id]);
    check(r.ok(), || format!("ctr task pause: {}", describe(&r)))?;
    s.wait_task_status(id, "PAUSED")?;
    check(s.runtime_status(id).as_deref() == Some("paused"), || {
        format!("runtime state after pause: {:?}", s.runtime_status(id))
    })?;
    let r = s.ctr(&["task", "resume", id]);
    check(r.ok(), || format!("ctr task resume: {}", describe(&r)))?;
    s.wait_task_status(id, "RUNNING")?;
    check(s.runtime_status(id).as_deref() == Some("running"), || {
        format!("runtime state after resume: {:?}", s.runtime_status(id))
    })?;
    let r = s.ctr_s(&s.exec_args(&[], id, "after-resume", &["true"]));
    check(r.ok(), || format!("exec after resume: {}", describe(&r)))
}

/// `ctr task metrics`: the shim reads the container's cgroup.
fn metrics(s: &Suite, id: &str) -> Result<(), String> {
    s.run_detached(id, &["sh", "-c", "sleep 1000 & wait"])?;
    wait_until("the shell and its sleep are running", || {
        s.task_pids(id).map(|p| p.len() == 2).unwrap_or(false)
    })?;
    let r = s.ctr(&["task", "metrics", "--format", "json", id]);
    check(r.ok(), || format!("ctr task metrics: {}", describe(&r)))?;
    let m: Value =
        serde_json::from_str(&r.stdout).map_err(|e| format!("metrics JSON: {e}: {}", r.stdout))?;
    check(m["pids"]["current"].as_u64() == Some(2), || {
        format!("metrics: want pids.current 2: {}", r.stdout)
    })?;
    check(m["memory"].is_object(), || {
        format!("metrics: no memory: {}", r.stdout)
    })?;
    let r = s.ctr(&["task", "metrics", id]);
    check(r.ok() && r.stdout.contains("pids.current"), || {
        format!("ctr task metrics (table): {}", describe(&r))
    })
}

/// What a hardened container uses: containerd's default seccomp profile (`--seccomp`, the
/// profile Kubernetes' `RuntimeDefault` means), a read-only rootfs and a memory limit.
fn seccomp_readonly_limit(s: &Suite, id: &str) -> Result<(), String> {
    let limit: u64 = 128 << 20;
    let init = s.run_detached_with(
        &[
            "--seccomp",
            "--read-only",
            "--memory-limit",
            &limit.to_string(),
        ],
        id,
        &["sleep", "1000"],
    )?;
    let status = std::fs::read_to_string(format!("/proc/{init}/status")).unwrap_or_default();
    check(
        status
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["Seccomp:", "2"]),
        || format!("the init is not in seccomp filter mode: {status}"),
    )?;
    let r = s.ctr_s(&s.exec_args(
        &[],
        id,
        "write",
        &["sh", "-c", "touch /new-file 2>&1; echo touch=$?"],
    ));
    check(
        r.stdout.contains("Read-only file system") && r.stdout.contains("touch=1"),
        || format!("the rootfs is writable: {}", describe(&r)),
    )?;
    let r = s.ctr(&["task", "metrics", "--format", "json", id]);
    check(r.ok(), || format!("ctr task metrics: {}", describe(&r)))?;
    let m: Value =
        serde_json::from_str(&r.stdout).map_err(|e| format!("metrics JSON: {e}: {}", r.stdout))?;
    // cgroup v1 metrics have memory.usage.limit, v2 ones memory.usage_limit.
    let got = m["memory"]["usage"]["limit"]
        .as_u64()
        .or_else(|| m["memory"]["usage_limit"].as_u64());
    check(got == Some(limit), || {
        format!(
            "memory limit: want {limit}, metrics say {got:?}: {}",
            r.stdout
        )
    })
}

/// `ctr run -t`: the task gets a terminal (through the runtime's --console-socket).
fn tty(s: &Suite, id: &str) -> Result<(), String> {
    let r = s.ctr_on_tty(&s.run_args(
        &["--rm", "--tty"],
        id,
        &[
            "sh",
            "-c",
            "tty; [ -t 0 ] && [ -t 1 ] && echo run-has-a-tty; sleep 0.2; exit 6",
        ],
    ));
    check(r.status == Some(6), || {
        format!("run -t: want exit 6: {}", describe(&r))
    })?;
    check(
        r.stdout.contains("/dev/pts/0") && r.stdout.contains("run-has-a-tty"),
        || format!("run -t output: {}", describe(&r)),
    )?;
    s.wait_no_leftovers(id)
}

/// A container that cannot start: the runtime's error (the last `"level":"error"` line of its
/// `--log-format json` log) is what ctr shows, and nothing is left behind.
fn failing(s: &Suite, id: &str) -> Result<(), String> {
    let r = s.ctr_s(&s.run_args(&["--rm"], id, &["/no/such/program"]));
    check(!r.ok(), || format!("want a failure: {}", describe(&r)))?;
    check(r.stderr.contains("OCI runtime"), || {
        format!("not an OCI runtime error: {}", describe(&r))
    })?;
    check(r.stderr.contains("/no/such/program"), || {
        format!("the cause does not reach ctr: {}", describe(&r))
    })?;
    // go-runc's own error text, which the shim shows only when the log had no error line.
    check(!r.stderr.contains("did not terminate successfully"), || {
        format!("the runtime's log had no error line: {}", describe(&r))
    })?;
    s.wait_no_leftovers(id)
}

/// A task that exits on its own: stopped in containerd and in the runtime, then
/// `ctr task delete` and `ctr containers rm` remove everything.
fn delete_after_exit(s: &Suite, id: &str) -> Result<(), String> {
    let r = s.ctr_s(&s.run_args(&["--detach"], id, &["sh", "-c", "exit 7"]));
    check(r.ok(), || format!("ctr run --detach: {}", describe(&r)))?;
    s.wait_task_status(id, "STOPPED")?;
    check(s.runtime_status(id).as_deref() == Some("stopped"), || {
        format!(
            "runtime state of the exited task: {:?}",
            s.runtime_status(id)
        )
    })?;
    let r = s.ctr(&["task", "delete", id]);
    check(deleted_exit_code(&r) == Some(7), || {
        format!("task delete: want exit code 7: {}", describe(&r))
    })?;
    check(s.runtime_status(id).is_none(), || {
        "the runtime still knows the container after task delete".into()
    })?;
    let r = s.ctr(&["containers", "rm", id]);
    check(r.ok(), || format!("ctr containers rm: {}", describe(&r)))?;
    s.wait_no_leftovers(id)
}

/// Checkpoint and restore through containerd: a counting task from the imported image (a
/// checkpoint records the image it restores on) is checkpointed with `ctr task checkpoint
/// --image-path --work-path` (CRIU's images and log there, the task running on) and with `ctr
/// containers checkpoint --task` (a checkpoint image, the form `ctr containers restore` takes),
/// removed, and restored with `ctr containers restore --live` under a new id: the restored task
/// ([`COUNTER`]) counts on from the checkpoint with the token its shell drew at start.
/// On the host's network (CRIU 3.17 cannot dump a network namespace on the test kernels), with
/// the native snapshotter (a copy, on any filesystem).
fn checkpoint_restore(s: &Suite, id: &str) -> Result<(), String> {
    let copy = format!("{id}-restored");
    let r = checkpoint_restore_as(s, id, &copy);
    // Said before the cleanup, which can fail in its own way when a restore went wrong.
    if let Err(e) = &r {
        say(&format!("checkpoint scenario {id}: {e}"));
    }
    s.remove(&copy);
    for img in s.ctr(&["images", "ls", "--quiet"]).stdout.lines() {
        if img.contains(id) || img == IMAGE {
            let _ = s.ctr(&["images", "rm", img.trim()]);
        }
    }
    r?;
    s.wait_no_leftovers(&copy)
}

fn checkpoint_restore_as(s: &Suite, id: &str, copy: &str) -> Result<(), String> {
    let image = import_image(s)?;
    s.ids.borrow_mut().push(id.to_string());
    s.ids.borrow_mut().push(copy.to_string());
    let out = s.dir.join(format!("out-{id}"));
    std::fs::create_dir_all(&out).unwrap();
    // A first run's counts, when this is the second.
    let _ = std::fs::remove_file(out.join("count"));
    let mount = format!("type=bind,src={},dst=/out,options=rbind:rw", out.display());
    let mut args: Vec<String> = vec!["run".into(), "--detach".into()];
    args.extend(s.runtime_flags());
    args.extend(
        [
            "--snapshotter",
            "native",
            "--net-host",
            "--mount",
            &mount,
            image,
            id,
            "sh",
            "-c",
        ]
        .map(String::from),
    );
    args.push(COUNTER.into());
    let r = s.ctr_s(&args);
    check(r.ok(), || {
        format!("ctr run --detach IMAGE: {}", describe(&r))
    })?;
    let (token, before) = wait_count(&out, 3)?;
    // Into a directory: the runtime's own images (into containerd's content store instead, a
    // second checkpoint of the same container would store the same spec again, which
    // containerd 1.6 refuses as existing content and `ctr containers checkpoint` then
    // silently leaves out of its image).
    let images = s.dir.join(format!("{id}-images"));
    let work = s.dir.join(format!("{id}-work"));
    let r = s.ctr(&[
        "task",
        "checkpoint",
        "--image-path",
        images.to_str().unwrap(),
        "--work-path",
        work.to_str().unwrap(),
        id,
    ]);
    check(r.ok(), || format!("ctr task checkpoint: {}", describe(&r)))?;
    check(images.join("inventory.img").exists(), || {
        format!("no CRIU inventory.img in {}", images.display())
    })?;
    check(work.join("dump.log").exists(), || {
        format!("no CRIU dump.log in {}", work.display())
    })?;
    check(
        s.task(id).map(|t| t.1).as_deref() == Some("RUNNING"),
        || format!("task after ctr task checkpoint: {:?}", s.task(id)),
    )?;
    let reference = format!("casulo.test/checkpoint-{id}:latest");
    let r = s.ctr(&["containers", "checkpoint", "--task", id, &reference]);
    check(r.ok(), || {
        format!("ctr containers checkpoint --task: {}", describe(&r))
    })?;
    s.remove(id);
    s.wait_no_leftovers(id)?;
    // The original counted on after the checkpoint: its counts go.
    std::fs::remove_file(out.join("count")).unwrap();
    let r = s.ctr(&["containers", "restore", "--live", copy, &reference]);
    check(r.ok(), || {
        format!("ctr containers restore --live: {}", describe(&r))
    })?;
    // Checkpointed after `before`: the restored count is past it.
    let (t, _) = wait_count(&out, before)?;
    check(t == token, || {
        format!("restored {copy} drew token {t}, not {token}: it started afresh")
    })
}

#[test]
fn containerd_runs_containers_on_the_runtime() {
    let name = "containerd_runs_containers_on_the_runtime";
    if !prerequisites(
        name,
        &["containerd", "ctr", "containerd-shim-runc-v2", "script"],
        "containerd util-linux",
    ) {
        return;
    }
    let started = Instant::now();
    let suite = Suite::start();
    say(&format!(
        "containerd suite: runtime {}, daemon ready in {:.1} s",
        runtime().display(),
        started.elapsed().as_secs_f64()
    ));
    let mut scenarios: Vec<(&str, &str, Scenario<Suite>)> = vec![
        ("run", "run --rm: output and exit status", run_rm),
        ("image", "run an imported OCI image", run_image),
        (
            "exec",
            "detached task + task exec (with and without -t)",
            exec,
        ),
        ("ps", "task ps", ps),
        ("kill", "task kill (SIGTERM default, exited task)", kill),
        ("kill-all", "task kill --all", kill_all),
        ("pause", "task pause / resume", pause_resume),
        ("metrics", "task metrics", metrics),
        ("tty", "run -t: a container with a tty", tty),
        (
            "limits",
            "default seccomp profile, read-only rootfs, memory limit",
            seccomp_readonly_limit,
        ),
        (
            "failing",
            "a failing container's error reaches ctr",
            failing,
        ),
        (
            "delete",
            "delete after exit, no leftovers",
            delete_after_exit,
        ),
    ];
    match criu_missing() {
        None => scenarios.push((
            "checkpoint",
            "task checkpoint, containers checkpoint --task / restore --live",
            checkpoint_restore,
        )),
        Some(why) => say(&format!(
            "SKIP containerd suite: checkpoint / restore: {why}"
        )),
    }
    // CASULO_CONTAINERD_SCENARIOS (keys, comma-separated; empty or unset: all) runs a part of
    // the suite, where time is short (under emulation).
    let only = std::env::var("CASULO_CONTAINERD_SCENARIOS").unwrap_or_default();
    let all = only.is_empty();
    if !all {
        let keys: Vec<&str> = only.split(',').map(str::trim).collect();
        scenarios.retain(|(key, ..)| keys.contains(key));
        say(&format!(
            "containerd suite: only {:?} (CASULO_CONTAINERD_SCENARIOS)",
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
        &format!("ctrd{pid}"),
        &scenarios,
        |s, id| s.remove(id),
        |s, id| s.wait_no_leftovers(id),
    );
    // Which runtime commands containerd used, as shapes (paths and ids replaced).
    let calls = suite.calls();
    print_shapes("containerd", &calls);
    if !failed.is_empty() {
        say(&format!(
            "the end of containerd's log:\n{}",
            suite.daemon_log_tail()
        ));
    }
    if failed.is_empty() {
        // The runtime was really the one selected: every command went through the wrapper.
        for want in [
            " create --bundle ",
            " start ",
            " exec --process ",
            " ps --format json ",
            " pause ",
            " resume ",
            " kill --all ",
            " delete ",
        ]
        .into_iter()
        .filter(|_| all)
        .chain(criu_ran.then_some(" checkpoint "))
        .chain(criu_ran.then_some(" restore "))
        {
            assert!(
                calls.iter().any(|c| c.contains(want)),
                "no runtime invocation with {want:?}: {calls:#?}"
            );
        }
    }
    drop(suite);
    let left = leftovers_after_daemon(pid);
    say(&format!(
        "containerd suite: {passed} of {} scenarios passed ({} on a second run) in {:.1} s",
        passed + failed.len(),
        retried.len(),
        started.elapsed().as_secs_f64()
    ));
    assert!(failed.is_empty(), "failed scenarios: {failed:?}");
    assert!(
        left.is_empty(),
        "left behind after the daemon stopped: {left:#?}"
    );
}

/// What the whole run could have left once the daemon is stopped: its directory, cgroups of its
/// namespace, processes of its containers, shims or daemon.
fn leftovers_after_daemon(pid: u32) -> Vec<String> {
    let mut left = Vec::new();
    let dir = std::env::temp_dir().join(format!("casulo-ctrd-{pid}"));
    if dir.exists() {
        left.push(format!("directory {}", dir.display()));
    }
    let ns = format!("casulo-ctrd-{pid}");
    left.extend(
        cgroup_trees(&ns)
            .into_iter()
            .map(|t| format!("cgroup {}", t.display())),
    );
    left.extend(mounts_under(&dir).into_iter().map(|m| format!("mount {m}")));
    let tag = format!("ctrd{pid}-");
    let dir = dir.to_str().unwrap();
    left.extend(
        processes_where(|a| a.iter().any(|x| x.contains(&tag) || x.contains(dir)))
            .into_iter()
            .map(|(p, a)| format!("process {p}: {}", a.join(" "))),
    );
    left
}
