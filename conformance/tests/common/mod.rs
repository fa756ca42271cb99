//! Harness of the conformance suite: the runtime and checker binaries, the busybox rootfs,
//! one bundle per case with RAII cleanup, and helpers that compare a checker report with
//! config.json.

#![allow(dead_code)]

use serde_json::{json, Value};
use std::fs;
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long one container run may take before it is killed.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the conformance crate lives inside the workspace")
        .to_path_buf()
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}

/// Prints a visible skip line and returns true when the suite cannot run here.
pub fn skip(case: &str) -> bool {
    if !nix::unistd::geteuid().is_root() {
        println!("SKIP {case}: the conformance suite needs root (creates namespaces and mounts)");
        return true;
    }
    false
}

fn run_cmd(cmd: &mut Command, what: &str) -> Result<std::process::Output, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: spawning {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what}: {cmd:?} exited with {}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(out)
}

/// The runtime under test: $CASULO_TEST_RUNTIME, else the workspace's casulo binary
/// (built with `cargo build -p casulo-cli` when missing).
pub fn runtime() -> &'static Path {
    static RT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let r = RT.get_or_init(|| {
        if let Some(rt) = std::env::var_os("CASULO_TEST_RUNTIME") {
            return Ok(PathBuf::from(rt));
        }
        let bin = target_dir().join("debug/casulo");
        if !bin.exists() {
            run_cmd(
                Command::new(env!("CARGO"))
                    .args(["build", "-p", "casulo-cli"])
                    .current_dir(workspace()),
                "building casulo",
            )?;
        }
        Ok(bin)
    });
    match r {
        Ok(p) => p,
        Err(e) => panic!("no runtime to test: {e}"),
    }
}

/// What generates the starting config.json: $CASULO_TEST_SPEC_RUNTIME (e.g. runc, to test
/// another runtime's `run` on runc's defaults), else the runtime under test.
pub fn spec_runtime() -> PathBuf {
    std::env::var_os("CASULO_TEST_SPEC_RUNTIME")
        .map(PathBuf::from)
        .unwrap_or_else(|| runtime().to_path_buf())
}

/// The static checker: $CASULO_CHECKER, else built into <target>/checker.
pub fn checker() -> &'static Path {
    static CHECKER: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let r = CHECKER.get_or_init(|| {
        if let Some(c) = std::env::var_os("CASULO_CHECKER") {
            return Ok(PathBuf::from(c));
        }
        let dir = target_dir().join("checker");
        run_cmd(
            Command::new(env!("CARGO"))
                .args([
                    "build",
                    "--release",
                    "-p",
                    "casulo-conformance",
                    "--bin",
                    "casulo-checker",
                    "--target-dir",
                ])
                .arg(&dir)
                .env("RUSTFLAGS", "-C target-feature=+crt-static")
                .env_remove("CARGO_TARGET_DIR")
                .current_dir(workspace()),
            "building the static checker",
        )?;
        Ok(dir.join("release/casulo-checker"))
    });
    match r {
        Ok(p) => p,
        Err(e) => panic!("no checker: {e}"),
    }
}

/// The output of `busybox --list-full`, asked once per test binary.
fn busybox_applets() -> &'static str {
    static LIST: OnceLock<Result<String, String>> = OnceLock::new();
    let r = LIST.get_or_init(|| {
        let busybox = Path::new("/bin/busybox");
        if !busybox.exists() {
            return Err("/bin/busybox is missing (install busybox-static)".into());
        }
        let list = run_cmd(
            Command::new(busybox).arg("--list-full"),
            "busybox --list-full",
        )?;
        Ok(String::from_utf8_lossy(&list.stdout).into_owned())
    });
    match r {
        Ok(l) => l,
        Err(e) => panic!("building the rootfs: {e}"),
    }
}

/// A case's rootfs at `root`, built in place: busybox-static copied to /bin/busybox with its
/// applets as symlinks, the checker as /bin/casulo-checker, and a few directories. Each case
/// builds its own (about what copying a shared one costs), so nothing outlives the case.
fn build_rootfs(root: &Path) -> Result<(), String> {
    let applets = busybox_applets();
    for d in [
        "bin", "sbin", "usr/bin", "usr/sbin", "etc", "dev", "proc", "sys", "tmp", "root", "mnt",
        "var",
    ] {
        fs::create_dir_all(root.join(d)).map_err(|e| format!("mkdir {d}: {e}"))?;
    }
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777))
        .map_err(|e| format!("chmod tmp: {e}"))?;
    fs::copy("/bin/busybox", root.join("bin/busybox")).map_err(|e| format!("copy busybox: {e}"))?;
    fs::copy(checker(), root.join("bin/casulo-checker"))
        .map_err(|e| format!("copy checker {}: {e}", checker().display()))?;
    for applet in applets.lines() {
        let applet = applet.trim().trim_start_matches('/');
        if applet.is_empty() || applet == "bin/busybox" {
            continue;
        }
        let link = root.join(applet);
        if let Some(parent) = link.parent() {
            fs::create_dir_all(parent).map_err(|e| format!("mkdir for {applet}: {e}"))?;
        }
        if fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink("/bin/busybox", &link)
                .map_err(|e| format!("symlink {applet}: {e}"))?;
        }
    }
    fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )
    .map_err(|e| format!("write passwd: {e}"))?;
    fs::write(
        root.join("etc/group"),
        "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n",
    )
    .map_err(|e| format!("write group: {e}"))?;
    Ok(())
}

/// The namespace inodes of the test process, keyed as the checker keys them.
pub fn host_ns(kind: &str) -> u64 {
    fs::metadata(format!("/proc/self/ns/{kind}"))
        .unwrap_or_else(|e| panic!("stat /proc/self/ns/{kind}: {e}"))
        .ino()
}

/// Maps a runtime-spec namespace type to the /proc/self/ns name.
pub fn ns_name(spec_type: &str) -> &'static str {
    match spec_type {
        "pid" => "pid",
        "network" => "net",
        "ipc" => "ipc",
        "uts" => "uts",
        "mount" => "mnt",
        "user" => "user",
        "cgroup" => "cgroup",
        "time" => "time",
        other => panic!("unknown namespace type {other:?}"),
    }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

type Cleanup = Box<dyn FnOnce()>;

/// One container case: a directory holding the bundle (config.json + rootfs) and the
/// runtime's --root, torn down on drop even when the test panics.
pub struct Case {
    pub name: String,
    pub id: String,
    pub dir: PathBuf,
    pub bundle: PathBuf,
    pub state_root: PathBuf,
    pub config: Value,
    cleanups: Vec<Cleanup>,
    ran: bool,
}

impl Case {
    /// A bundle from `<runtime> spec`, with its own busybox rootfs, terminal off and
    /// the checker as the process.
    pub fn new(name: &str) -> Case {
        static SWEEP: std::sync::Once = std::sync::Once::new();
        SWEEP.call_once(sweep_abandoned_cases);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let id = format!("conf-{name}-{}-{n}", std::process::id());
        let dir = std::env::temp_dir().join(format!("casulo-{id}"));
        debug_assert!(dir.to_string_lossy().contains(CASE_DIR_PREFIX));
        let _ = fs::remove_dir_all(&dir);
        // 0755 all the way: a user namespace's root must be able to reach the rootfs.
        fs::DirBuilder::new()
            .mode(0o755)
            .recursive(true)
            .create(dir.join("bundle"))
            .unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        let mut case = Case {
            name: name.to_string(),
            id,
            bundle: dir.join("bundle"),
            state_root: dir.join("state"),
            dir,
            config: Value::Null,
            cleanups: Vec::new(),
            ran: false,
        };
        fs::create_dir(&case.state_root)
            .unwrap_or_else(|e| panic!("mkdir {}: {e}", case.state_root.display()));
        run_cmd(
            Command::new(spec_runtime())
                .arg("spec")
                .arg("--bundle")
                .arg(&case.bundle),
            "generating config.json",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let text = fs::read_to_string(case.bundle.join("config.json"))
            .unwrap_or_else(|e| panic!("reading the generated config.json: {e}"));
        case.config = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("parsing the generated config.json: {e}"));
        build_rootfs(&case.bundle.join("rootfs"))
            .unwrap_or_else(|e| panic!("building the rootfs: {e}"));
        case.config["root"]["path"] = json!("rootfs");
        case.config["process"]["terminal"] = json!(false);
        case.config["process"]["args"] = json!(["/bin/casulo-checker"]);
        case
    }

    /// Runs `f` when the case is torn down (after the container is deleted), last added first.
    pub fn on_cleanup(&mut self, f: impl FnOnce() + 'static) {
        self.cleanups.push(Box::new(f));
    }

    /// Sets process.args to the checker followed by `flags`.
    pub fn checker_flags(&mut self, flags: &[String]) {
        let mut args = vec!["/bin/casulo-checker".to_string()];
        args.extend(flags.iter().cloned());
        self.config["process"]["args"] = json!(args);
    }

    /// The default masked/readonly path flags from config.json, plus `/` as read-only when
    /// root.readonly is set.
    pub fn path_flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        for (key, flag) in [("maskedPaths", "--masked"), ("readonlyPaths", "--readonly")] {
            if let Some(list) = self.config["linux"][key].as_array() {
                for p in list {
                    flags.push(flag.to_string());
                    flags.push(p.as_str().expect("paths are strings").to_string());
                }
            }
        }
        flags
    }

    /// Writes config.json, runs the container in the foreground and parses the report.
    pub fn run(&mut self) -> Result<Value, String> {
        let cfg = serde_json::to_string_pretty(&self.config).map_err(|e| e.to_string())?;
        fs::write(self.bundle.join("config.json"), cfg)
            .map_err(|e| format!("writing config.json: {e}"))?;
        self.ran = true;
        let mut child = Command::new(runtime())
            .arg("--root")
            .arg(&self.state_root)
            .arg("run")
            .arg("--bundle")
            .arg(&self.bundle)
            .arg(&self.id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawning {}: {e}", runtime().display()))?;
        let mut stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let out_t = std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = stdout.read_to_end(&mut s);
            s
        });
        let err_t = std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = stderr.read_to_end(&mut s);
            s
        });
        let start = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(st)) => break st,
                Ok(None) if start.elapsed() > RUN_TIMEOUT => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("{} run {} timed out", runtime().display(), self.id));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(format!("waiting for the runtime: {e}")),
            }
        };
        let out = out_t.join().unwrap_or_default();
        let err = err_t.join().unwrap_or_default();
        let out = String::from_utf8_lossy(&out);
        let err = String::from_utf8_lossy(&err);
        if !status.success() {
            return Err(format!(
                "{} run {} exited with {status}\nstderr: {err}\nstdout: {out}",
                runtime().display(),
                self.id
            ));
        }
        let report: Value = serde_json::from_str(&out)
            .map_err(|e| format!("the checker's output is not JSON ({e}): {out}\nstderr: {err}"))?;
        Ok(report)
    }

    /// Like `run` but panics with the runtime's error.
    pub fn report(&mut self) -> Value {
        match self.run() {
            Ok(r) => r,
            Err(e) => panic!("case {}: {e}", self.name),
        }
    }
}

impl Drop for Case {
    fn drop(&mut self) {
        if self.ran {
            delete_container(&self.state_root, &self.id);
        }
        while let Some(f) = self.cleanups.pop() {
            f();
        }
        remove_case_dir(&self.dir);
    }
}

/// The temporary directory of a case: `casulo-<id>`, its id `conf-<name>-<pid>-<n>` naming the
/// test process that made it.
const CASE_DIR_PREFIX: &str = "casulo-conf-";

/// Delete container `id` of state root `state_root`, whatever is left of it.
fn delete_container(state_root: &Path, id: &str) {
    let _ = Command::new(runtime())
        .arg("--root")
        .arg(state_root)
        .args(["delete", "--force", id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Remove a case's directory, after what is mounted below it (bind sources, namespace files,
/// a bundle bound onto itself): remove_dir_all must never walk into a mount.
fn remove_case_dir(dir: &Path) {
    let prefix = dir.to_string_lossy().into_owned();
    if let Ok(mi) = fs::read_to_string("/proc/self/mountinfo") {
        let mut points: Vec<String> = casulo_conformance::parse::parse_mountinfo(&mi)
            .unwrap_or_default()
            .into_iter()
            .map(|m| m.mount_point)
            .filter(|p| p == &prefix || p.starts_with(&format!("{prefix}/")))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in points {
            let _ = umount_detach(Path::new(&p));
        }
    }
    let _ = fs::remove_dir_all(dir);
}

/// Tear down the cases of test processes that were killed before their drops ran (a CI job
/// cancelled, a run interrupted): their container, their mounts and their directory. A case
/// whose process still runs (a parallel run of this suite) is left to it.
fn sweep_abandoned_cases() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(id) = name
            .strip_prefix("casulo-")
            .filter(|_| name.starts_with(CASE_DIR_PREFIX))
        else {
            continue;
        };
        // conf-<name>-<pid>-<n>: the pid is the second field from the end.
        let Some(pid) = id.rsplit('-').nth(1).and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid == std::process::id() || runs(pid) {
            continue;
        }
        let dir = e.path();
        delete_container(&dir.join("state"), id);
        remove_case_dir(&dir);
    }
}

/// Whether process `pid` exists and has not exited: a killed test process stays a zombie until
/// whoever adopted it reaps it.
fn runs(pid: u32) -> bool {
    i32::try_from(pid)
        .ok()
        .and_then(|p| procfs::process::Process::new(p).ok())
        .and_then(|p| p.stat().ok())
        .is_some_and(|st| st.state != 'Z')
}

pub fn umount_detach(p: &Path) -> Result<(), String> {
    nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH)
        .map_err(|e| format!("umount {}: {e}", p.display()))
}

/// Collects every mismatch of a case, then fails once with all of them.
pub struct Check {
    name: String,
    failures: Vec<String>,
    report: Value,
}

impl Check {
    pub fn new(name: &str, report: &Value) -> Check {
        let errs = report["errors"].as_array().cloned().unwrap_or_default();
        let mut c = Check {
            name: name.to_string(),
            failures: Vec::new(),
            report: report.clone(),
        };
        if !errs.is_empty() {
            c.fail(format!("the checker reported probe errors: {errs:?}"));
        }
        c
    }

    pub fn fail(&mut self, msg: String) {
        self.failures.push(msg);
    }

    pub fn that(&mut self, ok: bool, msg: impl FnOnce() -> String) {
        if !ok {
            self.failures.push(msg());
        }
    }

    pub fn eq<T: PartialEq + std::fmt::Debug>(&mut self, what: &str, got: T, want: T) {
        if got != want {
            self.failures
                .push(format!("{what}: got {got:?}, want {want:?}"));
        }
    }

    pub fn finish(self) {
        if !self.failures.is_empty() {
            let report = serde_json::to_string(&self.report).unwrap_or_default();
            panic!(
                "case {} has {} mismatch(es):\n  - {}\nreport: {report}",
                self.name,
                self.failures.len(),
                self.failures.join("\n  - ")
            );
        }
    }
}

/// The mountinfo entry visible at `dest`: the last one listed, i.e. the top of the stack.
pub fn mount_at<'a>(report: &'a Value, dest: &str) -> Option<&'a Value> {
    report["mounts"]
        .as_array()?
        .iter()
        .rev()
        .find(|m| m["mount_point"] == dest)
}

fn str_list(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `size=` values in bytes (k/m/g suffixes as the kernel prints them).
fn size_bytes(v: &str) -> Option<u64> {
    let (num, mul) = match v.chars().last()? {
        'k' | 'K' => (&v[..v.len() - 1], 1u64 << 10),
        'm' | 'M' => (&v[..v.len() - 1], 1 << 20),
        'g' | 'G' => (&v[..v.len() - 1], 1 << 30),
        _ => (v, 1),
    };
    num.parse::<u64>().ok().map(|n| n * mul)
}

/// Whether two `key=value` options mean the same (modes compare as octal numbers).
pub fn same_value(key: &str, want: &str, got: &str) -> bool {
    match key {
        "mode" | "ptmxmode" => {
            u32::from_str_radix(want, 8).ok() == u32::from_str_radix(got, 8).ok()
        }
        "size" => size_bytes(want) == size_bytes(got),
        _ => want == got,
    }
}

/// Options of a mount request that leave no trace in mountinfo, or only in ways checked
/// elsewhere (propagation is checked by the rootfsPropagation cases).
const UNSEEN: &[&str] = &[
    "bind",
    "rbind",
    "private",
    "rprivate",
    "slave",
    "rslave",
    "shared",
    "rshared",
    "unbindable",
    "runbindable",
    "newinstance",
    "defaults",
    "suid",
    "dev",
    "exec",
    "atime",
    "diratime",
    "nostrictatime",
    "async",
    "norelatime",
    "mand",
    "nomand",
    "tmpcopyup",
];

/// Compares one config.json mount with what the checker sees at its destination.
pub fn check_mount(c: &mut Check, report: &Value, m: &Value) {
    let dest = m["destination"].as_str().expect("destination is a string");
    let Some(got) = mount_at(report, dest) else {
        c.fail(format!("mount {dest}: not in mountinfo"));
        return;
    };
    let opts = str_list(&m["options"]);
    let mtype = m["type"].as_str().unwrap_or("");
    // A cgroup v1 host gets a tmpfs at the destination with one mount per hierarchy below
    // it: the flags asked for then apply to those hierarchy mounts.
    if mtype == "cgroup" && got["fstype"] == "tmpfs" {
        let children: Vec<Value> = report["mounts"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|x| {
                        x["mount_point"]
                            .as_str()
                            .is_some_and(|p| p.starts_with(&format!("{dest}/")))
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        c.that(!children.is_empty(), || {
            format!("mount {dest}: a tmpfs without cgroup hierarchies below it")
        });
        for child in children {
            let flags: Vec<Value> = opts
                .iter()
                .filter(|o| !o.contains('='))
                .map(|o| json!(o))
                .collect();
            let sub = json!({
                "destination": child["mount_point"],
                "type": "cgroup",
                "options": flags,
            });
            check_mount(c, report, &sub);
        }
        return;
    }
    let per_mount = str_list(&got["mount_options"]);
    let super_opts = str_list(&got["super_options"]);
    let is_bind = mtype == "bind" || opts.iter().any(|o| o == "bind" || o == "rbind");
    // cgroup v1 hosts get a tmpfs with the hierarchies below it at /sys/fs/cgroup.
    if !is_bind && mtype != "cgroup" && !mtype.is_empty() && mtype != "none" {
        c.eq(
            &format!("mount {dest}: fstype"),
            got["fstype"].as_str(),
            Some(mtype),
        );
    }
    for o in &opts {
        if let Some((k, v)) = o.split_once('=') {
            if is_bind {
                continue;
            }
            let found = super_opts.iter().any(|s| {
                s.split_once('=')
                    .is_some_and(|(sk, sv)| sk == k && same_value(k, v, sv))
            });
            // tmpfs leaves its default mode (1777) out of the superblock options.
            let tmpfs_default_mode = got["fstype"] == "tmpfs"
                && k == "mode"
                && u32::from_str_radix(v, 8) == Ok(0o1777)
                && !super_opts.iter().any(|s| s.starts_with("mode="));
            let found = found || tmpfs_default_mode;
            c.that(found, || {
                format!("mount {dest}: option {o} not among the superblock options {super_opts:?}")
            });
            continue;
        }
        let o = o.as_str();
        match o {
            "ro" | "rw" | "nosuid" | "nodev" | "noexec" | "noatime" | "nodiratime" | "relatime" => {
                c.that(per_mount.iter().any(|p| p == o), || {
                    format!(
                        "mount {dest}: option {o} not among the per-mount options {per_mount:?}"
                    )
                })
            }
            "strictatime" => c.that(
                !per_mount.iter().any(|p| p == "relatime" || p == "noatime"),
                || format!("mount {dest}: strictatime asked, per-mount options {per_mount:?}"),
            ),
            _ if UNSEEN.contains(&o) => {}
            _ => c.fail(format!(
                "mount {dest}: the suite does not know option {o:?}"
            )),
        }
    }
}

/// Every mount of config.json is in place with its options.
pub fn check_mounts(c: &mut Check, report: &Value, config: &Value) {
    for m in config["mounts"].as_array().cloned().unwrap_or_default() {
        check_mount(c, report, &m);
    }
}

/// Namespaces of config.json: new ones differ from the host's, joined ones equal the path's
/// inode, absent ones equal the host's.
pub fn check_namespaces(c: &mut Check, report: &Value, config: &Value) {
    let listed = config["linux"]["namespaces"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for kind in ["pid", "network", "ipc", "uts", "mount", "user", "cgroup"] {
        let n = ns_name(kind);
        let got = report["namespaces"][n].as_u64();
        let host = host_ns(n);
        match listed.iter().find(|e| e["type"] == kind) {
            Some(e) if e["path"].is_string() => {
                let p = e["path"].as_str().unwrap_or_default();
                let want = fs::metadata(p).map(|m| m.ino()).ok();
                c.eq(&format!("namespace {kind} (joined {p})"), got, want);
            }
            Some(_) => c.that(got.is_some() && got != Some(host), || {
                format!("namespace {kind}: got {got:?}, want a new one (host has {host})")
            }),
            None => c.eq(&format!("namespace {kind} (not listed)"), got, Some(host)),
        }
    }
}

/// Masked paths read empty (or cannot be read); read-only paths cannot be written.
pub fn check_paths(c: &mut Check, report: &Value) {
    for p in report["paths"].as_array().cloned().unwrap_or_default() {
        let path = p["path"].as_str().unwrap_or_default().to_string();
        if p["exists"] != json!(true) {
            continue;
        }
        match p["role"].as_str() {
            Some("masked") => {
                let empty = p["read_empty"] == json!(true);
                let denied = matches!(p["read_error"].as_str(), Some("EACCES" | "EPERM"));
                c.that(empty || denied, || {
                    format!("masked {path}: readable and not empty ({p})")
                });
            }
            Some("readonly") => {
                let err = p["write_error"].as_str();
                let refused = matches!(err, Some("EROFS" | "EACCES"))
                    || (p["writable"] == json!(false) && p["mount_readonly"] == json!(true));
                c.that(refused, || {
                    format!("readonly {path}: a write was not refused with EROFS/EACCES ({p})")
                });
            }
            other => c.fail(format!("path {path}: unknown role {other:?}")),
        }
    }
}

/// The probe of one path.
pub fn path_probe<'a>(report: &'a Value, path: &str) -> Option<&'a Value> {
    report["paths"]
        .as_array()?
        .iter()
        .find(|p| p["path"] == path)
}

/// A device node as the checker saw it.
pub fn device<'a>(report: &'a Value, path: &str) -> Option<&'a Value> {
    report["devices"]
        .as_array()?
        .iter()
        .find(|d| d["path"] == path)
}

/// Checks one device node: type ("char"/"block"/"fifo"), numbers, mode bits, owner.
#[allow(clippy::too_many_arguments)]
pub fn check_device(
    c: &mut Check,
    report: &Value,
    path: &str,
    ftype: &str,
    major: u64,
    minor: u64,
    mode: u64,
    uid: u64,
    gid: u64,
) {
    let Some(d) = device(report, path) else {
        c.fail(format!("device {path}: missing"));
        return;
    };
    c.eq(
        &format!("device {path}: type"),
        d["file_type"].as_str(),
        Some(ftype),
    );
    if ftype == "char" || ftype == "block" {
        c.eq(
            &format!("device {path}: major"),
            d["major"].as_u64(),
            Some(major),
        );
        c.eq(
            &format!("device {path}: minor"),
            d["minor"].as_u64(),
            Some(minor),
        );
    }
    c.eq(
        &format!("device {path}: mode"),
        d["mode"].as_u64().map(|m| format!("{m:o}")),
        Some(format!("{mode:o}")),
    );
    c.eq(&format!("device {path}: uid"), d["uid"].as_u64(), Some(uid));
    c.eq(&format!("device {path}: gid"), d["gid"].as_u64(), Some(gid));
}

/// The capability bit mask of a list of CAP_* names.
pub fn cap_mask(names: &[&str]) -> u64 {
    names.iter().fold(0, |m, n| m | (1u64 << cap_number(n)))
}

fn cap_number(name: &str) -> u32 {
    const CAPS: [&str; 41] = [
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_DAC_READ_SEARCH",
        "CAP_FOWNER",
        "CAP_FSETID",
        "CAP_KILL",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETPCAP",
        "CAP_LINUX_IMMUTABLE",
        "CAP_NET_BIND_SERVICE",
        "CAP_NET_BROADCAST",
        "CAP_NET_ADMIN",
        "CAP_NET_RAW",
        "CAP_IPC_LOCK",
        "CAP_IPC_OWNER",
        "CAP_SYS_MODULE",
        "CAP_SYS_RAWIO",
        "CAP_SYS_CHROOT",
        "CAP_SYS_PTRACE",
        "CAP_SYS_PACCT",
        "CAP_SYS_ADMIN",
        "CAP_SYS_BOOT",
        "CAP_SYS_NICE",
        "CAP_SYS_RESOURCE",
        "CAP_SYS_TIME",
        "CAP_SYS_TTY_CONFIG",
        "CAP_MKNOD",
        "CAP_LEASE",
        "CAP_AUDIT_WRITE",
        "CAP_AUDIT_CONTROL",
        "CAP_SETFCAP",
        "CAP_MAC_OVERRIDE",
        "CAP_MAC_ADMIN",
        "CAP_SYSLOG",
        "CAP_WAKE_ALARM",
        "CAP_BLOCK_SUSPEND",
        "CAP_AUDIT_READ",
        "CAP_PERFMON",
        "CAP_BPF",
        "CAP_CHECKPOINT_RESTORE",
    ];
    CAPS.iter()
        .position(|c| *c == name)
        .unwrap_or_else(|| panic!("unknown capability {name}")) as u32
}

/// The config's capability set `key` as a mask.
pub fn config_caps(config: &Value, key: &str) -> u64 {
    let names = str_list(&config["process"]["capabilities"][key]);
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    cap_mask(&refs)
}

/// Runs a host command for a fixture, panicking with its output when it fails.
pub fn host(cmd: &mut Command, what: &str) {
    if let Err(e) = run_cmd(cmd, what) {
        panic!("{e}");
    }
}

/// Whether an executable is on PATH.
pub fn have(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}
