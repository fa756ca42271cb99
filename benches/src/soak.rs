//! `soak-bench`: thousands of containers through a runtime, every runtime command under a time
//! limit: `--count` foreground `run`s of /bin/true, then `--count` create/start/delete cycles.
//! It counts failures (a command that exits non-zero), hangs (a command past its limit: it is
//! killed, the container is force-deleted, and the soak goes on) and leftovers (a state
//! directory after the delete, cgroups named after a container at the end), and prints the
//! time each phase took.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;

// Shared with lifecycle-bench, which uses all of it.
#[allow(dead_code)]
mod setup;
use setup::{make_bundle, private_namespace, which, workspace_casulo};

#[derive(Parser, Debug)]
#[command(
    name = "soak-bench",
    about = "Run thousands of containers, every command under a time limit, and count failures, hangs and leftovers"
)]
struct Args {
    /// Containers per phase and runtime.
    #[arg(long, default_value_t = 10_000)]
    count: usize,
    /// The time limit of each runtime command, in seconds; past it the command is a hang.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
    /// The runtimes to soak, in order, comma-separated: casulo, crun, runc, or a path.
    #[arg(long, value_delimiter = ',', default_value = "casulo")]
    runtimes: Vec<String>,
    /// The casulo binary (default: target/release/casulo of this workspace).
    #[arg(long)]
    casulo: Option<PathBuf>,
    /// The phases: `run` (foreground `run`), `cycle` (create, start, wait, delete).
    #[arg(long, value_delimiter = ',', default_value = "run,cycle")]
    phases: Vec<String>,
    /// Keep the host's mount namespace even with crun (which then fails on a hybrid cgroup
    /// host). Without crun the host's namespace is always kept.
    #[arg(long)]
    host_ns: bool,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
}

/// What one runtime command did.
enum Outcome {
    Ok(String),
    Failed(String),
    Hung,
}

/// The counts of one phase of one runtime.
#[derive(Default)]
struct Tally {
    runtime: String,
    phase: String,
    containers: usize,
    failures: usize,
    hangs: usize,
    leftovers: usize,
    /// Plain directories named after containers on the tmpfs under /sys/fs/cgroup (where a
    /// hierarchy is unmounted in the private namespace): not cgroups, not counted as leftovers.
    strays: usize,
    time: Duration,
    /// The first few failures, for the report.
    samples: Vec<String>,
}

impl Tally {
    fn note(&mut self, what: String) {
        if self.samples.len() < 5 {
            self.samples.push(what);
        }
    }

    fn fail(&mut self, what: String) {
        self.failures += 1;
        self.note(what);
    }

    fn hang(&mut self, what: String) {
        self.hangs += 1;
        self.note(what);
    }
}

struct Soak<'a> {
    bin: PathBuf,
    root: PathBuf,
    bundle: &'a Path,
    limit: Duration,
    scratch: &'a Path,
}

impl Soak<'_> {
    /// `RUNTIME --root ROOT args...` within the limit; stdout kept, stderr in a file (a
    /// created container's init inherits it and would hold a pipe open).
    fn cmd(&self, args: &[&str]) -> Outcome {
        let err_path = self.scratch.join("stderr");
        let out_path = self.scratch.join("stdout");
        let files = std::fs::File::create(&err_path).and_then(|e| {
            let o = std::fs::File::create(&out_path)?;
            Ok((o, e))
        });
        let (out, err) = match files {
            Ok(f) => f,
            Err(e) => return Outcome::Failed(format!("scratch file: {e}")),
        };
        let child = Command::new(&self.bin)
            .arg("--root")
            .arg(&self.root)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => return Outcome::Failed(format!("spawn {}: {e}", self.bin.display())),
        };
        let Some(status) = wait_within(&mut child, self.limit) else {
            return Outcome::Hung;
        };
        let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
        if status.success() {
            Outcome::Ok(std::fs::read_to_string(&out_path).unwrap_or_default())
        } else {
            Outcome::Failed(format!("{status}: {}", stderr.trim()))
        }
    }

    /// Force-delete `id` after a failure or a hang, and count what is still left.
    fn clean(&self, id: &str, t: &mut Tally) {
        match self.cmd(&["delete", "--force", id]) {
            Outcome::Hung => t.hang(format!("{id}: delete --force hung")),
            Outcome::Ok(_) | Outcome::Failed(_) => {}
        }
        self.count_leftover(id, t);
    }

    /// A state directory that outlived the delete is a leftover; it is removed so that the
    /// soak goes on.
    fn count_leftover(&self, id: &str, t: &mut Tally) {
        let dir = self.root.join(id);
        if dir.exists() {
            t.leftovers += 1;
            t.note(format!("{id}: state dir left: {}", dir.display()));
            let _ = self.cmd(&["delete", "--force", id]);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    /// One foreground `run` of /bin/true.
    fn run_once(&self, id: &str, t: &mut Tally) {
        let bundle = self.bundle.to_str().unwrap_or_default();
        if self.step(id, "run", &["run", "--bundle", bundle, id], t) {
            self.count_leftover(id, t);
        }
    }

    /// One create, start, wait for the exit (by `state`), delete.
    fn cycle_once(&self, id: &str, t: &mut Tally) {
        let bundle = self.bundle.to_str().unwrap_or_default();
        if !self.step(id, "create", &["create", "--bundle", bundle, id], t)
            || !self.step(id, "start", &["start", id], t)
        {
            return;
        }
        let deadline = Instant::now() + self.limit;
        loop {
            match self.cmd(&["state", id]) {
                Outcome::Ok(out) if out.contains("\"stopped\"") => break,
                Outcome::Ok(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Outcome::Ok(out) => {
                    t.hang(format!("{id}: not stopped after {:?}: {out}", self.limit));
                    return self.clean(id, t);
                }
                Outcome::Failed(e) => {
                    t.fail(format!("{id}: state: {e}"));
                    return self.clean(id, t);
                }
                Outcome::Hung => {
                    t.hang(format!("{id}: state hung"));
                    return self.clean(id, t);
                }
            }
        }
        if self.step(id, "delete", &["delete", id], t) {
            self.count_leftover(id, t);
        }
    }

    /// One step of a cycle; on a failure or hang, counted and cleaned up, false.
    fn step(&self, id: &str, step: &str, args: &[&str], t: &mut Tally) -> bool {
        match self.cmd(args) {
            Outcome::Ok(_) => true,
            Outcome::Failed(e) => {
                t.fail(format!("{id}: {step}: {e}"));
                self.clean(id, t);
                false
            }
            Outcome::Hung => {
                t.hang(format!("{id}: {step} hung"));
                self.clean(id, t);
                false
            }
        }
    }
}

/// Wait for `child` at most `limit`; past it, kill it and return None. Polled: `child` is
/// ours until reaped, so the kill can never reach a reused pid.
fn wait_within(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    let mut nap = Duration::from_micros(100);
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Some(st),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(nap);
                nap = (nap * 2).min(Duration::from_millis(2));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// The directories under /sys/fs/cgroup whose name starts with `prefix`, in every hierarchy
/// this process sees (a few levels deep: v1 hierarchies nest some containers under the
/// caller's cgroup).
fn cgroups_named(prefix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![(PathBuf::from("/sys/fs/cgroup"), 0)];
    while let Some((d, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if e.file_name().to_string_lossy().starts_with(prefix) {
                found.push(e.path());
            } else if depth < 4 {
                stack.push((e.path(), depth + 1));
            }
        }
    }
    found
}

fn on_cgroupfs(dir: &Path) -> bool {
    use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC};
    statfs(dir).is_ok_and(|s| {
        s.filesystem_type() == CGROUP_SUPER_MAGIC || s.filesystem_type() == CGROUP2_SUPER_MAGIC
    })
}

fn main() {
    let args = Args::parse();
    if let Err(e) = real_main(&args) {
        eprintln!("soak-bench: {e}");
        std::process::exit(1);
    }
}

fn real_main(args: &Args) -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("needs root".into());
    }
    let casulo = args.casulo.clone().unwrap_or_else(workspace_casulo);
    if !casulo.is_file() {
        return Err(format!(
            "{} not found: cargo build --release -p casulo-cli, or --casulo PATH",
            casulo.display()
        ));
    }
    let mut runtimes = Vec::new();
    for name in &args.runtimes {
        let bin = match name.as_str() {
            "casulo" => Some(casulo.clone()),
            n if n.contains('/') => Some(PathBuf::from(n)),
            n => which(n),
        };
        // A path is named by its file name (container ids cannot hold a `/`).
        let label = Path::new(name)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| name.clone());
        match bin {
            Some(b) => runtimes.push((label, b)),
            None => eprintln!("SKIP {name}: not installed (apt-get install {name})"),
        }
    }
    let tmp = std::env::temp_dir().join(format!("casulo-soak-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    let result = soak(args, &casulo, &runtimes, &tmp);
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

fn soak(
    args: &Args,
    casulo: &Path,
    runtimes: &[(String, PathBuf)],
    tmp: &Path,
) -> Result<(), String> {
    let bundle = tmp.join("bundle");
    make_bundle(&bundle, casulo)?;
    let private = !args.host_ns && runtimes.iter().any(|(n, _)| n == "crun");
    if private {
        private_namespace()?;
    }
    let prefix = format!("soak-{}-", std::process::id());
    let mut tallies = Vec::new();
    for (name, bin) in runtimes {
        let s = Soak {
            bin: bin.clone(),
            root: tmp.join(format!("state-{name}")),
            bundle: &bundle,
            limit: Duration::from_secs(args.timeout),
            scratch: tmp,
        };
        for phase in &args.phases {
            let mut t = Tally {
                runtime: name.clone(),
                phase: phase.clone(),
                ..Tally::default()
            };
            let start = Instant::now();
            for i in 0..args.count {
                let id = format!("{prefix}{name}-{phase}-{i}");
                match phase.as_str() {
                    "run" => s.run_once(&id, &mut t),
                    "cycle" => s.cycle_once(&id, &mut t),
                    other => return Err(format!("unknown phase {other:?} (run, cycle)")),
                }
                t.containers += 1;
                if (i + 1) % (args.count / 10).max(1) == 0 {
                    eprintln!(
                        "{name} {phase}: {}/{} ({} failures, {} hangs) {:.0} s",
                        i + 1,
                        args.count,
                        t.failures,
                        t.hangs,
                        start.elapsed().as_secs_f64()
                    );
                }
            }
            t.time = start.elapsed();
            // Cgroups that outlived their containers (a failed delete, a killed runtime).
            for dir in cgroups_named(&format!("{prefix}{name}-{phase}-")) {
                if on_cgroupfs(&dir) {
                    t.leftovers += 1;
                    t.note(format!("cgroup left: {}", dir.display()));
                } else {
                    t.strays += 1;
                }
                let _ = std::fs::remove_dir(&dir);
            }
            if t.strays > 0 {
                t.note(format!(
                    "{} plain directories (not cgroups) made under /sys/fs/cgroup, removed",
                    t.strays
                ));
            }
            tallies.push(t);
        }
    }
    report(args, &tallies, private);
    Ok(())
}

fn report(args: &Args, tallies: &[Tally], private: bool) {
    let per = |t: &Tally| t.time.as_secs_f64() * 1000.0 / t.containers.max(1) as f64;
    if args.json {
        let rows: Vec<_> = tallies
            .iter()
            .map(|t| {
                serde_json::json!({
                    "runtime": t.runtime, "phase": t.phase, "containers": t.containers,
                    "failures": t.failures, "hangs": t.hangs, "leftovers": t.leftovers,
                    "seconds": t.time.as_secs_f64(), "ms_per_container": per(t),
                    "samples": t.samples,
                })
            })
            .collect();
        let doc = serde_json::json!({"timeout_s": args.timeout, "private_mount_ns": private, "results": rows});
        println!("{}", serde_json::to_string_pretty(&doc).unwrap());
        return;
    }
    println!(
        "soak: {} containers per phase, {} s limit per command{}",
        args.count,
        args.timeout,
        if private {
            ", private mount namespace without /sys/fs/cgroup/unified"
        } else {
            ""
        }
    );
    println!(
        "{:<10} {:<6} {:>10} {:>9} {:>6} {:>10} {:>9} {:>10} {:>13}",
        "runtime",
        "phase",
        "containers",
        "failures",
        "hangs",
        "leftovers",
        "seconds",
        "ms each",
        "10,000 take"
    );
    for t in tallies {
        println!(
            "{:<10} {:<6} {:>10} {:>9} {:>6} {:>10} {:>9.1} {:>10.2} {:>11.0} s",
            t.runtime,
            t.phase,
            t.containers,
            t.failures,
            t.hangs,
            t.leftovers,
            t.time.as_secs_f64(),
            per(t),
            per(t) * 10.0
        );
    }
    for t in tallies.iter().filter(|t| !t.samples.is_empty()) {
        println!("{} {}:", t.runtime, t.phase);
        for s in &t.samples {
            println!("  {s}");
        }
    }
}
