//! Shared harness of the binary's integration tests: a busybox rootfs built once from Debian's
//! busybox-static, and a [`Bundle`] per test with a unique container id, its own `--root`, and
//! a cleanup that runs even when the test fails and then checks that nothing was left behind.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod containerd;
pub mod engine;
pub mod podman;
pub mod rootless;

/// The runtime under test: `CASULO_TEST_RUNTIME` (e.g. `runc`, to check the tests themselves)
/// or the casulo binary cargo built.
pub fn runtime() -> PathBuf {
    std::env::var_os("CASULO_TEST_RUNTIME")
        .map(PathBuf::from)
        .unwrap_or_else(casulo_binary)
}

/// The casulo binary cargo built. The tests of `casulo-cli` know its path at compile time; those
/// of other workspace members (which share this harness) find it in their own profile's
/// directory, `target/<profile>/casulo` beside `target/<profile>/deps/<test>`, where
/// `cargo test --workspace` builds it (run alone, they need `cargo build -p casulo-cli` first).
pub fn casulo_binary() -> PathBuf {
    match option_env!("CARGO_BIN_EXE_casulo") {
        Some(p) => PathBuf::from(p),
        None => {
            let exe = std::env::current_exe().expect("the test's own path");
            let deps = exe.parent().expect("the test's directory");
            deps.parent().unwrap_or(deps).join("casulo")
        }
    }
}

pub fn is_casulo() -> bool {
    std::env::var_os("CASULO_TEST_RUNTIME").is_none()
}

/// Whether the containers of the tests use the systemd cgroup driver: `CASULO_TEST_SYSTEMD_CGROUP`
/// set to anything but `""` or `0`. Every [`Bundle`] then gets `cgroupsPath`
/// `system.slice:casulo:<id>` (a transient scope `casulo-<id>.scope`), and its commands
/// `--systemd-cgroup`, unless a test sets a cgroupfs path of its own. Needs systemd as the init
/// system (`scripts/test-cgroup-v2 --systemd` boots one).
pub fn systemd_cgroup() -> bool {
    std::env::var_os("CASULO_TEST_SYSTEMD_CGROUP").is_some_and(|v| !v.is_empty() && v != "0")
}

/// The systemd unit of container `id` under [`systemd_cgroup`].
pub fn systemd_scope(id: &str) -> String {
    format!("casulo-{id}.scope")
}

/// Whether the tests run the runtime rootless: `CASULO_TEST_ROOTLESS` set to anything but `""`
/// or `0`. Every [`Bundle`] then belongs to the unprivileged test user [`ROOTLESS_USER`]: its
/// directory, state root and rootfs copy are the user's, its config is what `spec --rootless`
/// writes when that user runs it, and every command of it runs as that user (through
/// `setpriv`). The test program itself stays root, to look at the container from outside.
pub fn rootless_mode() -> bool {
    std::env::var_os("CASULO_TEST_ROOTLESS").is_some_and(|v| !v.is_empty() && v != "0")
}

/// The user [`rootless_mode`] runs the runtime as (the rootless tests' own user).
pub const ROOTLESS_USER: &str = "casulo-rl-test";

/// Whether the test can run; prints a visible SKIP line when it cannot.
pub fn can_run(test: &str) -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP {test}: needs root");
        return false;
    }
    if !Path::new("/bin/busybox").exists() {
        eprintln!("SKIP {test}: needs /bin/busybox (apt-get install busybox-static)");
        return false;
    }
    !rootless_mode() || rootless::test_user(ROOTLESS_USER, test).is_some()
}

/// Why CRIU cannot checkpoint here, from `criu check` (CRIU's own first error line), or `None`
/// when it can.
pub fn criu_missing() -> Option<String> {
    match Command::new("criu").arg("check").output() {
        Err(e) => Some(format!("no criu here ({e}); apt-get install criu")),
        Ok(o) if !o.status.success() => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            let why = text
                .lines()
                .find(|l| l.contains("Error"))
                .unwrap_or("criu check failed");
            Some(format!("CRIU does not work here: {why}"))
        }
        Ok(_) => None,
    }
}

/// Whether test `test` can run and CRIU works here; a SKIP line with CRIU's reason when not.
pub fn criu_works(test: &str) -> bool {
    if !can_run(test) {
        return false;
    }
    match criu_missing() {
        Some(why) => {
            eprintln!("SKIP {test}: {why}");
            false
        }
        None => true,
    }
}

/// Whether the test can run under [`rootless_mode`]; when not, prints a visible SKIP line
/// with `why` (what a rootless container lacks that the test is about).
pub fn runs_rootless(test: &str, why: &str) -> bool {
    if rootless_mode() {
        eprintln!("SKIP {test}: not rootless: {why}");
        return false;
    }
    true
}

/// Where tests keep their files: cargo's scratch directory for integration tests.
fn scratch() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A copy of the busybox rootfs at `<dir>/rootfs` (`cp -a`: owners and modes kept).
pub fn copy_rootfs(dir: &Path) -> PathBuf {
    let r = dir.join("rootfs");
    let st = Command::new("cp")
        .arg("-a")
        .arg(rootfs())
        .arg(&r)
        .status()
        .unwrap();
    assert!(st.success(), "copy the rootfs");
    r
}

/// The shared read-only busybox rootfs, built once and reused by later runs.
pub fn rootfs() -> &'static Path {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS.get_or_init(|| {
        let r = scratch().join("busybox-rootfs");
        if r.join("bin/sh").exists() {
            return r;
        }
        // Build beside it and rename, so that concurrent test binaries never see half of it.
        let tmp = scratch().join(format!("busybox-rootfs.{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        for d in ["bin", "proc", "dev", "sys", "tmp", "etc", "root", "mnt"] {
            std::fs::create_dir_all(tmp.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", tmp.join("bin/busybox")).unwrap();
        let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" {
                let _ = std::os::unix::fs::symlink("busybox", tmp.join("bin").join(applet));
            }
        }
        std::fs::write(
            tmp.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n",
        )
        .unwrap();
        std::fs::write(tmp.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
        if std::fs::rename(&tmp, &r).is_err() {
            // Another test binary got there first.
            let _ = std::fs::remove_dir_all(&tmp);
        }
        r
    })
}

/// The output of a runtime command.
pub struct Run {
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.status == Some(0)
    }
}

/// Run `cmd` to its end, killing it after `limit` so that a hang fails the test instead of
/// hanging the suite. Its stdout and stderr go to files, not pipes: a created container's init
/// inherits them and keeps them open after the runtime has exited.
pub fn output_within(cmd: Command, limit: Duration) -> Run {
    match try_output_within(cmd, limit) {
        Ok(run) => run,
        Err(e) => panic!("{e}"),
    }
}

/// [`output_within`] that reports a command past its limit as an error instead of panicking
/// (for cleanups, which run while a failed test unwinds: a second panic would abort).
pub fn try_output_within(mut cmd: Command, limit: Duration) -> Result<Run, String> {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let out_path = scratch().join(format!("out-{n}"));
    let err_path = scratch().join(format!("err-{n}"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("spawn runtime");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let e = format!(
                "{cmd:?} did not finish within {limit:?}; stderr: {}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
            let _ = std::fs::remove_file(&out_path);
            let _ = std::fs::remove_file(&err_path);
            return Err(e);
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let run = Run {
        status: status.code(),
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
    };
    let _ = std::fs::remove_file(&out_path);
    let _ = std::fs::remove_file(&err_path);
    Ok(run)
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// One test's container: a bundle directory (config.json; root.path points at the shared
/// rootfs), a state root, and a unique id. Dropping it deletes the container and checks that
/// nothing is left behind.
pub struct Bundle {
    pub id: String,
    pub dir: PathBuf,
    pub root: PathBuf,
    pub config: Value,
    /// The user the runtime runs as, under [`rootless_mode`].
    pub user: Option<rootless::TestUser>,
}

impl Bundle {
    /// A bundle from the runtime's default spec, with `args` as the process and no terminal.
    pub fn new(name: &str, args: &[&str]) -> Bundle {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let id = format!("{name}-{}-{n}", std::process::id());
        let user = rootless_mode().then(|| {
            rootless::test_user(ROOTLESS_USER, name).expect("the rootless test user (can_run)")
        });
        // The test user must reach the bundle: /tmp rather than the build's tree, which may be
        // closed to other users.
        let dir = match user {
            Some(_) => std::env::temp_dir().join(format!("casulo-{id}")),
            None => scratch().join(&id),
        };
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let root = dir.join("state");
        let mut spec = match user {
            Some(u) => {
                chown_to(&dir, u);
                let mut c = Command::new("setpriv");
                c.args(rootless::as_user_args(u))
                    .arg(rootless::user_runtime(u))
                    .args(["spec", "--rootless"]);
                c
            }
            None => {
                let mut c = Command::new(runtime());
                c.arg("spec");
                c
            }
        };
        let spec = spec.arg("--bundle").arg(&dir).output().unwrap();
        assert!(
            spec.status.success(),
            "spec: {}",
            String::from_utf8_lossy(&spec.stderr)
        );
        let mut config: Value =
            serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
        config["root"]["path"] = match user {
            // The container's root owns its files, as in an image a rootless engine unpacked.
            Some(u) => {
                let r = copy_rootfs(&dir);
                chown_tree(&r, u);
                r.to_string_lossy().into_owned().into()
            }
            None => rootfs().to_string_lossy().into_owned().into(),
        };
        config["process"]["terminal"] = false.into();
        config["process"]["args"] = serde_json::json!(args);
        if systemd_cgroup() {
            config["linux"]["cgroupsPath"] = format!("system.slice:casulo:{id}").into();
        }
        let b = Bundle {
            id,
            dir,
            root,
            config,
            user,
        };
        b.save();
        b
    }

    pub fn save(&self) {
        std::fs::write(
            self.dir.join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .unwrap();
    }

    /// Append `m` to `mounts` and save.
    pub fn add_mount(&mut self, m: Value) {
        self.config["mounts"].as_array_mut().unwrap().push(m);
        self.save();
    }

    /// Without the `typ` namespace (e.g. "pid": the init's death then takes nothing along);
    /// saved.
    pub fn without_namespace(&mut self, typ: &str) {
        self.config["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != typ);
        self.save();
    }

    /// `exec --detach --pid-file F ID ARGS`: the pid of the process started (the exec must
    /// succeed).
    pub fn exec_detached(&self, args: &[&str]) -> i32 {
        let pid_file = self.dir.join("exec.pid");
        let mut a = vec![
            "exec",
            "--detach",
            "--pid-file",
            pid_file.to_str().unwrap(),
            &self.id,
        ];
        a.extend_from_slice(args);
        let r = self.rt(&a);
        assert!(r.ok(), "exec: {}", r.stderr);
        std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// A new user namespace mapping ids 0..65536 to 100000.., without the host's cgroup
    /// mount (a user namespace cannot mount those hierarchies); saved. Under [`rootless_mode`]
    /// the namespace is there already and maps 0 to the user: ids 1..65536 go to the user's
    /// subordinate range (written through newuidmap/newgidmap).
    pub fn use_userns(&mut self) {
        if let Some(u) = self.user {
            let (subuid, subgid) = u.subid.expect("the rootless test user has subordinate ids");
            let map = |own: u32, sub: u32| {
                serde_json::json!([
                    {"containerID": 0, "hostID": own, "size": 1},
                    {"containerID": 1, "hostID": sub, "size": 65535}
                ])
            };
            self.config["linux"]["uidMappings"] = map(u.uid, subuid);
            self.config["linux"]["gidMappings"] = map(u.gid, subgid);
            self.save();
            return;
        }
        self.config["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"type": "user"}));
        let map = serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        self.config["linux"]["uidMappings"] = map.clone();
        self.config["linux"]["gidMappings"] = map;
        self.config["mounts"]
            .as_array_mut()
            .unwrap()
            .retain(|m| m["destination"] != "/sys/fs/cgroup");
        self.save();
    }

    /// Under [`rootless_mode`] only, [`Bundle::use_userns`]: more ids than the user's own.
    pub fn use_userns_where_rootless(&mut self) {
        if self.user.is_some() {
            self.use_userns();
        }
    }

    /// A private, writable copy of the busybox rootfs at `<bundle>/rootfs`, made the root;
    /// saved.
    pub fn own_rootfs(&mut self) -> PathBuf {
        if let Some(p) = self.config["root"]["path"].as_str() {
            if Path::new(p).starts_with(&self.dir) {
                // rootless_mode: the bundle has its own copy already.
                return PathBuf::from(p);
            }
        }
        let r = copy_rootfs(&self.dir);
        self.config["root"]["path"] = r.to_str().unwrap().into();
        self.save();
        r
    }

    /// The global flags every command of this container needs besides `--root`:
    /// `--systemd-cgroup` when its `cgroupsPath` is systemd's `slice:prefix:name` under
    /// [`systemd_cgroup`] (a client passes it to every command, as containerd does).
    pub fn cgroup_flags(&self) -> Vec<&'static str> {
        let path = self.config["linux"]["cgroupsPath"].as_str().unwrap_or("");
        if systemd_cgroup() && path.contains(':') {
            vec!["--systemd-cgroup"]
        } else {
            Vec::new()
        }
    }

    /// `RUNTIME --root ROOT [CGROUP FLAGS] <args...>` with the bundle dir as cwd.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.runtime_cmd();
        c.arg("--root")
            .arg(&self.root)
            .args(self.cgroup_flags())
            .args(args)
            .current_dir(&self.dir);
        c
    }

    /// `sh -c 'exec "$0" --root "$1" $RUNTIME_FLAGS REST'` with `$0` the runtime, `$1` the
    /// state root and `$RUNTIME_FLAGS` the cgroup flags, for tests that need the shell's
    /// redirections; the caller appends the arguments `$2`, `$3`, ... that `rest` uses.
    pub fn shell(&self, rest: &str) -> Command {
        let mut c = self.as_user("sh");
        c.arg("-c")
            .arg(format!("exec \"$0\" --root \"$1\" $RUNTIME_FLAGS {rest}"))
            .arg(self.runtime_path())
            .arg(&self.root)
            .env("RUNTIME_FLAGS", self.cgroup_flags().join(" "));
        c
    }

    /// `program`, run as the runtime runs: as [`Bundle::user`] under [`rootless_mode`] (with
    /// `$XDG_RUNTIME_DIR` a directory of the user's in the bundle), else as the test.
    pub fn as_user(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        match self.user {
            Some(u) => {
                let xdg = self.dir.join("xdg");
                if !xdg.exists() {
                    std::fs::create_dir_all(&xdg).unwrap();
                    chown_to(&xdg, u);
                }
                let mut c = Command::new("setpriv");
                c.args(rootless::as_user_args(u))
                    .arg(program)
                    .env("XDG_RUNTIME_DIR", xdg);
                c
            }
            None => Command::new(program),
        }
    }

    /// The runtime binary as this bundle's commands run it.
    pub fn runtime_path(&self) -> PathBuf {
        match self.user {
            Some(u) => rootless::user_runtime(u).to_path_buf(),
            None => runtime(),
        }
    }

    /// The runtime, run as [`Bundle::as_user`] says.
    fn runtime_cmd(&self) -> Command {
        self.as_user(self.runtime_path())
    }

    pub fn rt(&self, args: &[&str]) -> Run {
        output_within(self.cmd(args), Duration::from_secs(20))
    }

    pub fn run(&self) -> Run {
        self.rt(&["run", "--bundle", self.dir.to_str().unwrap(), &self.id])
    }

    /// `run --detach`: the container runs on after the command returns.
    pub fn run_detached(&self) -> Run {
        self.rt(&[
            "run",
            "--detach",
            "--bundle",
            self.dir.to_str().unwrap(),
            &self.id,
        ])
    }

    pub fn create(&self) -> Run {
        self.rt(&["create", "--bundle", self.dir.to_str().unwrap(), &self.id])
    }

    pub fn state(&self) -> Option<Value> {
        let r = self.rt(&["state", &self.id]);
        r.ok()
            .then(|| serde_json::from_str(&r.stdout).expect("state JSON"))
    }

    pub fn status(&self) -> Option<String> {
        self.state()
            .map(|s| s["status"].as_str().unwrap_or("").to_string())
    }

    /// Wait until the status is `want` (at most 5 s).
    pub fn wait_status(&self, want: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.status().as_deref() == Some(want) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// A host directory bind-mounted read-write at `/out` in the container.
    pub fn with_out_dir(&mut self) -> PathBuf {
        let out = self.dir.join("out");
        std::fs::create_dir_all(&out).unwrap();
        if let Some(u) = self.user {
            chown_to(&out, u);
        }
        let m = serde_json::json!({"destination": "/out", "type": "bind", "source": out, "options": ["rbind", "rw"]});
        self.config["mounts"].as_array_mut().unwrap().push(m);
        self.save();
        out
    }

    /// Everything this container could have left behind: its state dir, mounts of its bundle,
    /// cgroup directories named after it (or after its systemd scope), processes mentioning it,
    /// and under [`systemd_cgroup`] a scope unit systemd still knows.
    pub fn leftovers(&self) -> Vec<String> {
        leftovers_of(&self.id, &self.root, &self.dir)
    }
}

/// A console socket listening at `path`: the thread accepts one connection and keeps the
/// pty master it receives (if any) until joined.
pub fn console_socket(path: &Path) -> std::thread::JoinHandle<Option<std::os::fd::OwnedFd>> {
    let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match listener.accept() {
                Ok((conn, _)) => {
                    conn.set_nonblocking(false).unwrap();
                    use std::os::fd::AsFd;
                    return casulo::__private::tty::recv_fd(conn.as_fd())
                        .ok()
                        .map(|(fd, _)| fd);
                }
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(_) => return None,
            }
        }
    })
}

/// `path` now belongs to `u`.
pub fn chown_to(path: &Path, u: rootless::TestUser) {
    nix::unistd::chown(path, Some(u.uid.into()), Some(u.gid.into()))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
}

/// Everything under `path` (links themselves, not their targets) now belongs to `u`.
fn chown_tree(path: &Path, u: rootless::TestUser) {
    let st = Command::new("chown")
        .args(["-R", "-h", &format!("{}:{}", u.uid, u.gid)])
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success(), "chown -R {}", path.display());
}

pub fn leftovers_of(id: &str, root: &Path, dir: &Path) -> Vec<String> {
    let mut left = Vec::new();
    let scope = systemd_scope(id);
    // systemd keeps a transient unit's file for as long as the unit is loaded (running, or
    // failed and not reset), and removes it with the unit.
    let unit_file = Path::new("/run/systemd/transient").join(&scope);
    if systemd_cgroup() && unit_file.exists() {
        left.push(format!("systemd unit {scope} ({})", unit_file.display()));
    }
    if root.join(id).exists() {
        left.push(format!("state dir {}", root.join(id).display()));
    }
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for l in info.lines() {
        if l.contains(dir.to_str().unwrap()) {
            left.push(format!("mount {l}"));
        }
    }
    if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
        for h in entries.flatten() {
            let mut stack = vec![h.path()];
            while let Some(d) = stack.pop() {
                if let Ok(sub) = std::fs::read_dir(&d) {
                    for e in sub.flatten() {
                        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                            let name = e.file_name();
                            if name.to_string_lossy() == id || name.to_string_lossy() == scope {
                                left.push(format!("cgroup {}", e.path().display()));
                            }
                            if stack.len() < 64 && e.path().components().count() < 9 {
                                stack.push(e.path());
                            }
                        }
                    }
                }
            }
        }
    }
    if let Ok(procs) = std::fs::read_dir("/proc") {
        for p in procs.flatten() {
            if let Ok(cmd) = std::fs::read(p.path().join("cmdline")) {
                let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                if cmd.contains(id) && !cmd.contains("--nocapture") && !cmd.contains("cargo") {
                    left.push(format!(
                        "process {}: {cmd}",
                        p.file_name().to_string_lossy()
                    ));
                }
            }
        }
    }
    left
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let deleted = try_output_within(
            self.cmd(&["delete", "--force", &self.id]),
            Duration::from_secs(20),
        );
        let left = self.leftovers();
        // Reported below; the next tests get a clean host all the same.
        for cgroup in left.iter().filter_map(|l| l.strip_prefix("cgroup ")) {
            engine::remove_cgroup_tree(Path::new(cgroup));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        if std::thread::panicking() {
            return;
        }
        if let Err(e) = deleted {
            panic!("container {}: cleanup: {e}", self.id);
        }
        if !left.is_empty() {
            panic!("container {} left behind: {left:#?}", self.id);
        }
    }
}

/// The capability set named `set` of /proc/self/status text as a number.
pub fn cap_field(status: &str, set: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{set}:")))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap_or_else(|| panic!("no {set} in {status}"))
}

/// The command failed as bad input must: exit 1; with casulo, a message naming the container,
/// the `create` step and `cause`; and nothing left behind.
pub fn fails_cleanly(b: &Bundle, r: &Run, cause: &str) {
    assert_eq!(r.status, Some(1), "stdout {} stderr {}", r.stdout, r.stderr);
    // runc's messages name neither the container nor the step; casulo's name both.
    if is_casulo() {
        assert!(
            r.stderr.contains(&b.id),
            "the message names the container: {}",
            r.stderr
        );
        assert!(
            r.stderr.contains("create"),
            "the message names the step: {}",
            r.stderr
        );
        assert!(
            r.stderr.contains(cause),
            "expected {cause:?} in: {}",
            r.stderr
        );
    }
    let left = b.leftovers();
    assert!(left.is_empty(), "left behind: {left:#?}");
}
