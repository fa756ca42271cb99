//! Helpers of the suites that drive real container engines (containerd, podman) over the
//! runtime under test: result lines, a logging wrapper in front of the runtime, the scenario
//! runner, and the cleanup of what an engine's containers can leave (cgroups, mounts,
//! processes).

use std::io::Write as _;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{can_run, runtime, Run};

/// Whether suite `name` can run here: root, busybox, and every program of `programs` on
/// `PATH`. Otherwise a `SKIPPED` line says what is missing and how to get it (`install`, the
/// packages to install).
pub fn prerequisites(name: &str, programs: &[&str], install: &str) -> bool {
    if !can_run(name) {
        say(&format!("SKIPPED {name}: needs root and /bin/busybox"));
        return false;
    }
    let missing: Vec<&str> = programs.iter().copied().filter(|p| !on_path(p)).collect();
    if !missing.is_empty() {
        say(&format!(
            "SKIPPED {name}: {} not installed (apt-get install {install})",
            missing.join(", ")
        ));
        return false;
    }
    true
}

/// `line` with each space-separated word passed through `f`.
pub fn map_words(line: &str, f: impl Fn(&str) -> String) -> String {
    line.split(' ').map(f).collect::<Vec<_>>().join(" ")
}

/// A shell script that prints the container's cgroup limits as it sees them, one per line:
/// memory limit, CPU quota (per period), pids limit, from cgroup v2 files or v1 ones.
pub const SHOW_LIMITS: &str = "if [ -f /sys/fs/cgroup/cgroup.controllers ]; then \
     cat /sys/fs/cgroup/memory.max; cut -d' ' -f1 /sys/fs/cgroup/cpu.max; \
     cat /sys/fs/cgroup/pids.max; \
     else cat /sys/fs/cgroup/memory/memory.limit_in_bytes \
     /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/pids/pids.max; fi";

/// A result line the person running `cargo test` sees even though libtest captures the
/// output of passing tests.
pub fn say(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Whether `prog` is an executable file somewhere on `PATH`.
pub fn on_path(prog: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
        .unwrap_or(false)
}

/// `s` quoted for `sh`.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Kill every process in the cgroup trees named `name` at the top of each hierarchy (and of
/// a pure cgroup v2 mount), then remove the trees bottom up. The plain directories of
/// [`stray_cgroup_dirs`] go whole: conmon writes a `tasks` file into them as if they were
/// cgroups.
pub fn remove_cgroup_trees(name: &str) {
    for stray in stray_cgroup_dirs(name) {
        let _ = std::fs::remove_dir_all(stray);
    }
    for top in cgroup_trees(name) {
        remove_cgroup_tree(&top);
    }
}

/// Kill every process in the cgroup tree at `top`, then remove the tree bottom up.
pub fn remove_cgroup_tree(top: &Path) {
    let mut dirs = vec![top.to_path_buf()];
    let mut i = 0;
    while i < dirs.len() {
        if let Ok(sub) = std::fs::read_dir(&dirs[i]) {
            for e in sub.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    dirs.push(e.path());
                }
            }
        }
        i += 1;
    }
    for d in &dirs {
        let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.lines().filter_map(|p| p.trim().parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    for d in dirs.iter().rev() {
        for _ in 0..50 {
            if std::fs::remove_dir(d).is_ok() || !d.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

pub fn check(cond: bool, msg: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(msg())
    }
}

pub fn describe(r: &Run) -> String {
    format!(
        "exit {:?}, stdout {:?}, stderr {:?}",
        r.status, r.stdout, r.stderr
    )
}

/// Whether process `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, r)| !r.starts_with('Z')))
        .unwrap_or(false)
}

pub fn cmdline(pid: i32) -> String {
    String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default())
        .replace('\0', " ")
        .trim()
        .to_string()
}

/// Wait until `pid` catches signal `sig` (its shell has set the trap).
pub fn wait_catches(pid: i32, sig: i32) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let caught = status
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(0);
        if caught & (1 << (sig - 1)) != 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("pid {pid} does not catch signal {sig} after 30 s"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        if Instant::now() > deadline {
            return Err(format!("{what}: not after 30 s"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// The checkpoint scenarios' container: a token its shell draws at start and a count, both in
/// the shell's memory, written to `/out/count` (a bind mount of the host's) every 0.1 s. A
/// restored process goes on with both; a new one would draw another token and count from 1.
pub const COUNTER: &str = "t=$RANDOM$RANDOM; i=0; echo up; \
     while true; do i=$((i+1)); echo \"$t $i\" > /out/count; sleep 0.1; done";

/// Wait (at most 30 s) until `dir/count` (a [`COUNTER`]'s `/out`) holds a count above `n`: the
/// token and the count.
pub fn wait_count(dir: &Path, n: u64) -> Result<(String, u64), String> {
    let mut seen = (String::new(), 0);
    wait_until(&format!("a count above {n} in {}", dir.display()), || {
        let text = std::fs::read_to_string(dir.join("count")).unwrap_or_default();
        let mut w = text.split_whitespace();
        if let (Some(t), Some(Ok(c))) = (w.next(), w.next().map(str::parse::<u64>)) {
            seen = (t.to_string(), c);
        }
        seen.1 > n
    })
    .map_err(|e| format!("{e}: last {seen:?}"))?;
    Ok(seen)
}

/// Write an executable `sh` script at `path` that appends each invocation's arguments to
/// `calls` (one line each) and then runs the runtime under test with `prefix` before them
/// (e.g. a private `--root`).
pub fn write_wrapper(path: &Path, calls: &Path, prefix: &[&str]) {
    write_wrapper_for(path, calls, &runtime(), prefix)
}

/// [`write_wrapper`] in front of `program` (e.g. a copy of the runtime another user can run).
pub fn write_wrapper_for(path: &Path, calls: &Path, program: &Path, prefix: &[&str]) {
    let mut exec = sh_quote(program.to_str().unwrap());
    for a in prefix {
        exec.push(' ');
        exec.push_str(&sh_quote(a));
    }
    let script = format!(
        "#!/bin/sh\n# Logs every invocation, then runs the runtime under test.\n\
         printf '%s\\n' \"$*\" >> {}\nexec {exec} \"$@\"\n",
        sh_quote(calls.to_str().unwrap()),
    );
    // Written beside and renamed: an engine may be executing the previous one.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, script).unwrap();
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// One scenario of an engine suite: it gets the suite and the container name to use.
pub type Scenario<S> = fn(&S, &str) -> Result<(), String>;

/// Run `scenarios` one after the other, each with the name `<prefix>-NN`, printing `PASS` or
/// `FAIL` with the time taken. Whatever a scenario did (a panic included), `remove` then removes
/// its container and `settled` must find that it left nothing behind.
///
/// A scenario that fails is run once more, after a `RETRY` line with its first failure: the
/// engines have races of their own (containerd's shim closing a pty early, a `podman run`
/// whose output once came back empty, seen once in some 600 runs on either runtime and never
/// reproduced), and one of them must not hide the result of the rest. The retries are
/// counted in the result and printed in the summary, so a runtime bug that only shows
/// sometimes still shows. Returns how many passed, the descriptions of those that failed,
/// and of those that passed only on their second run.
pub fn run_scenarios<S>(
    suite: &S,
    prefix: &str,
    scenarios: &[(&'static str, Scenario<S>)],
    remove: impl Fn(&S, &str),
    settled: impl Fn(&S, &str) -> Result<(), String>,
) -> (usize, Vec<&'static str>, Vec<&'static str>) {
    let outcomes: Vec<Outcome> = scenarios
        .iter()
        .enumerate()
        .map(|(n, (what, f))| {
            run_with_retry(
                suite,
                what,
                f,
                &format!("{prefix}-{n:02}"),
                &remove,
                &settled,
            )
        })
        .collect();
    summarize(&outcomes)
}

/// [`run_scenarios`] with up to `workers` scenarios at a time, for a suite whose scenarios
/// are independent of each other (each makes and removes its own containers) and mostly wait
/// on the engine: the lines are printed as scenarios end, the results are in `scenarios`'
/// order.
pub fn run_scenarios_in_parallel<S: Sync>(
    suite: &S,
    prefix: &str,
    scenarios: &[(&'static str, Scenario<S>)],
    workers: usize,
    remove: impl Fn(&S, &str) + Sync,
    settled: impl Fn(&S, &str) -> Result<(), String> + Sync,
) -> (usize, Vec<&'static str>, Vec<&'static str>) {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let outcomes = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..workers.max(1) {
            scope.spawn(|| loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some((what, f)) = scenarios.get(n) else {
                    break;
                };
                let id = format!("{prefix}-{n:02}");
                let o = run_with_retry(suite, what, f, &id, &remove, &settled);
                outcomes.lock().unwrap().push((n, o));
            });
        }
    });
    let mut outcomes = outcomes.into_inner().unwrap();
    outcomes.sort_by_key(|(n, _)| *n);
    summarize(&outcomes.into_iter().map(|(_, o)| o).collect::<Vec<_>>())
}

/// What became of one scenario: its description, whether it passed, whether it needed a
/// second run.
struct Outcome {
    what: &'static str,
    passed: bool,
    retried: bool,
}

/// Run scenario `f` as `id`, and once more as `<id>r` if it fails; print its result line.
fn run_with_retry<S>(
    suite: &S,
    what: &'static str,
    f: &Scenario<S>,
    id: &str,
    remove: &impl Fn(&S, &str),
    settled: &impl Fn(&S, &str) -> Result<(), String>,
) -> Outcome {
    let t = Instant::now();
    let mut result = run_once(suite, f, id, remove, settled);
    let retried = result.is_err();
    if let Err(e) = &result {
        say(&format!("RETRY {what}: first run failed: {e}"));
        result = run_once(suite, f, &format!("{id}r"), remove, settled);
    }
    let secs = t.elapsed().as_secs_f64();
    match &result {
        Err(e) => say(&format!("FAIL {what} ({secs:.1} s): {e}")),
        Ok(()) => say(&format!("PASS {what} ({secs:.1} s)")),
    }
    Outcome {
        what,
        passed: result.is_ok(),
        retried,
    }
}

/// Run scenario `f` as `id`, catching a panic; then `remove` its containers and check with
/// `settled` that nothing is left (also after a failure, whose message wins).
fn run_once<S>(
    suite: &S,
    f: &Scenario<S>,
    id: &str,
    remove: &impl Fn(&S, &str),
    settled: &impl Fn(&S, &str) -> Result<(), String>,
) -> Result<(), String> {
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| f(suite, id))).unwrap_or_else(|p| {
        Err(p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panicked".into()))
    });
    remove(suite, id);
    let result = result.and_then(|()| settled(suite, id));
    if result.is_err() {
        let _ = settled(suite, id);
    }
    result
}

/// The counts of [`run_scenarios`], and the summary line of the retries.
fn summarize(outcomes: &[Outcome]) -> (usize, Vec<&'static str>, Vec<&'static str>) {
    let passed = outcomes.iter().filter(|o| o.passed).count();
    let failed: Vec<&'static str> = outcomes
        .iter()
        .filter(|o| !o.passed)
        .map(|o| o.what)
        .collect();
    let retried: Vec<&'static str> = outcomes
        .iter()
        .filter(|o| o.retried)
        .map(|o| o.what)
        .collect();
    if !retried.is_empty() {
        say(&format!(
            "{} scenario(s) needed a second run: {retried:?}",
            retried.len()
        ));
    }
    (passed, failed, retried)
}

/// Print the distinct `calls` (already rewritten into shapes) under `title`.
pub fn print_shapes(title: &str, calls: &[String]) {
    let mut shapes: Vec<&String> = Vec::new();
    for c in calls {
        if !shapes.contains(&c) {
            shapes.push(c);
        }
    }
    say(&format!(
        "{title} made {} runtime invocations, of these shapes:",
        calls.len()
    ));
    for s in &shapes {
        say(&format!("  {s}"));
    }
}

/// The pids and argument vectors of every process whose arguments satisfy `pred`.
pub fn processes_where(pred: impl Fn(&[String]) -> bool) -> Vec<(i32, Vec<String>)> {
    let mut found = Vec::new();
    if let Ok(procs) = std::fs::read_dir("/proc") {
        for p in procs.flatten() {
            let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cmd = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
            let args: Vec<String> = cmd
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            if !args.is_empty() && pred(&args) {
                found.push((pid, args));
            }
        }
    }
    found
}

/// The pids and argument vectors of every process whose environment holds `entry`
/// (`NAME=value`): an engine's clients and helpers name their configuration there, not in
/// their arguments.
pub fn processes_with_env(entry: &str) -> Vec<(i32, Vec<String>)> {
    let entry = entry.as_bytes();
    processes_where(|_| true)
        .into_iter()
        .filter(|(pid, _)| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|e| e == entry))
        })
        .collect()
}

/// SIGKILL every process whose arguments satisfy `pred`.
pub fn kill_processes_where(pred: impl Fn(&[String]) -> bool) {
    for (pid, _) in processes_where(pred) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// The mount points at or under `dir`.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = dir.to_str().unwrap();
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| m.starts_with(dir))
        .collect()
}

/// Detach every mount at or under `dir`, deepest first.
pub fn umount_all_under(dir: &Path) {
    for _ in 0..3 {
        let mut points = mounts_under(dir);
        if points.is_empty() {
            break;
        }
        points.reverse();
        for m in points {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// The cgroup directories named `name` at the top of each hierarchy (and of a pure cgroup
/// v2 mount) that exist. Directories on the tmpfs that holds the v1 mounts are not cgroups:
/// engines that find a controller in /proc/cgroups without a v1 mount of its own (it is on
/// the unified hierarchy) make plain directories there, which [`stray_cgroup_dirs`] lists.
pub fn cgroup_trees(name: &str) -> Vec<std::path::PathBuf> {
    all_tops(name)
        .into_iter()
        .filter(|t| t.is_dir() && t.parent().is_some_and(on_cgroupfs))
        .collect()
}

/// The directories named `name` under `/sys/fs/cgroup` that are not on a cgroup filesystem.
pub fn stray_cgroup_dirs(name: &str) -> Vec<std::path::PathBuf> {
    all_tops(name)
        .into_iter()
        .filter(|t| t.is_dir() && !t.parent().is_some_and(on_cgroupfs))
        .collect()
}

fn all_tops(name: &str) -> Vec<std::path::PathBuf> {
    let mut tops = vec![Path::new("/sys/fs/cgroup").join(name)];
    if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
        tops.extend(entries.flatten().map(|e| e.path().join(name)));
    }
    tops
}

fn on_cgroupfs(dir: &Path) -> bool {
    use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC};
    statfs(dir).is_ok_and(|s| {
        s.filesystem_type() == CGROUP_SUPER_MAGIC || s.filesystem_type() == CGROUP2_SUPER_MAGIC
    })
}

/// The lowercase hex SHA-256 of `data`, from coreutils' `sha256sum`.
pub fn sha256_hex(data: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn sha256sum");
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "sha256sum failed");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// An OCI image archive (oci-layout, index, manifest, config, one uncompressed layer) of
/// `rootfs`, with `config` (`Env`, `Cmd`, `Entrypoint`, ...) as its image config's `config`,
/// tagged `latest`; `dir` is where it is laid out, and the archive is `dir` with `.tar`.
pub fn build_oci_archive(rootfs: &Path, dir: &Path, config: Value) -> Result<PathBuf, String> {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).map_err(|e| e.to_string())?;
    let layer_tmp = dir.join("layer.tar");
    let st = Command::new("tar")
        .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
        .arg(rootfs)
        .arg("-cf")
        .arg(&layer_tmp)
        .arg(".")
        .status()
        .map_err(|e| format!("tar: {e}"))?;
    check(st.success(), || "tar of the rootfs failed".into())?;
    let layer = std::fs::read(&layer_tmp).map_err(|e| e.to_string())?;
    std::fs::remove_file(&layer_tmp).map_err(|e| e.to_string())?;
    let put = |data: &[u8]| -> Result<(String, usize), String> {
        let d = sha256_hex(data);
        std::fs::write(blobs.join(&d), data).map_err(|e| e.to_string())?;
        Ok((format!("sha256:{d}"), data.len()))
    };
    let (layer_digest, layer_size) = put(&layer)?;
    let config = serde_json::json!({
        "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    });
    let (config_digest, config_size) = put(config.to_string().as_bytes())?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": layer_size}],
    });
    let (manifest_digest, manifest_size) = put(manifest.to_string().as_bytes())?;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": manifest_digest, "size": manifest_size,
                       "annotations": {"org.opencontainers.image.ref.name": "latest"}}],
    });
    std::fs::write(dir.join("index.json"), index.to_string()).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
        .map_err(|e| e.to_string())?;
    let archive = dir.with_extension("tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .arg("-cf")
        .arg(&archive)
        .args(["oci-layout", "index.json", "blobs"])
        .status()
        .map_err(|e| format!("tar: {e}"))?;
    check(st.success(), || "tar of the OCI layout failed".into())?;
    Ok(archive)
}
