//! `lifecycle-bench`: time `RUNTIME run` of `/bin/true` for casulo, runc and crun on the same
//! bundle, in one run, and print medians and ratios.
//!
//! Every runtime runs in the same private mount namespace of this process, in which the
//! host's cgroup2 mount at /sys/fs/cgroup/unified is unmounted (crun refuses hybrid cgroup
//! hosts); the host's own mounts are untouched. Iterations go round-robin over the runtimes so
//! that noise spreads evenly.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;

mod setup;
use setup::{make_bundle, private_namespace, which, workspace_casulo};

#[derive(Parser, Debug)]
#[command(
    name = "lifecycle-bench",
    about = "Time `run` of /bin/true with casulo, runc and crun"
)]
struct Args {
    /// Timed iterations per runtime.
    #[arg(long, default_value_t = 200)]
    iterations: usize,
    /// Untimed iterations per runtime first.
    #[arg(long, default_value_t = 10)]
    warmup: usize,
    /// The casulo binary (default: target/release/casulo of this workspace).
    #[arg(long)]
    casulo: Option<PathBuf>,
    /// What to time: `run` (create+start+wait+delete in one command) or `lifecycle`
    /// (separate create, start, delete commands).
    #[arg(long, default_value = "run")]
    mode: String,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
    /// Keep the host's mount namespace (crun then fails on a hybrid cgroup host).
    #[arg(long)]
    host_ns: bool,
}

struct Runtime {
    name: &'static str,
    bin: PathBuf,
    root: PathBuf,
    times: Vec<Duration>,
}

fn run_cmd(cmd: &mut Command) -> Result<Duration, String> {
    // stderr goes to a file, not a pipe: after `create` the container's init holds the
    // runtime's stderr open, and reading a pipe to its end would wait for the container.
    let err_path = std::env::temp_dir().join(format!("casulo-bench-stderr-{}", std::process::id()));
    let err_file = std::fs::File::create(&err_path).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let status = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err_file)
        .status()
        .map_err(|e| e.to_string())?;
    let took = start.elapsed();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let _ = std::fs::remove_file(&err_path);
    if !status.success() {
        return Err(format!("{cmd:?} failed ({status}): {}", stderr.trim()));
    }
    Ok(took)
}

/// One timed container of `rt`.
fn once(rt: &Runtime, mode: &str, bundle: &Path, id: &str) -> Result<Duration, String> {
    let base = || {
        let mut c = Command::new(&rt.bin);
        c.arg("--root").arg(&rt.root);
        c
    };
    match mode {
        "run" => run_cmd(base().args(["run", "--bundle"]).arg(bundle).arg(id)),
        "lifecycle" => {
            let a = run_cmd(base().args(["create", "--bundle"]).arg(bundle).arg(id))?;
            let b = run_cmd(base().args(["start", id]))?;
            // Wait for /bin/true to finish before delete, untimed.
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let out = base()
                    .args(["state", id])
                    .output()
                    .map_err(|e| e.to_string())?;
                if String::from_utf8_lossy(&out.stdout).contains("\"stopped\"")
                    || Instant::now() > deadline
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            let c = run_cmd(base().args(["delete", id]))?;
            Ok(a + b + c)
        }
        other => Err(format!("unknown --mode {other:?}")),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let args = Args::parse();
    if let Err(e) = real_main(&args) {
        eprintln!("lifecycle-bench: {e}");
        std::process::exit(1);
    }
}

fn real_main(args: &Args) -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("needs root".into());
    }
    let casulo = args.casulo.clone().unwrap_or_else(workspace_casulo);
    let tmp = std::env::temp_dir().join(format!("casulo-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    let result = bench(args, &casulo, &tmp);
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

fn bench(args: &Args, casulo: &Path, tmp: &Path) -> Result<(), String> {
    if !casulo.is_file() {
        return Err(format!(
            "{} not found: cargo build --release -p casulo-cli, or --casulo PATH",
            casulo.display()
        ));
    }
    let bundle = tmp.join("bundle");
    make_bundle(&bundle, casulo)?;
    if !args.host_ns {
        private_namespace()?;
    }
    let mut runtimes = Vec::new();
    for (name, bin) in [
        ("casulo", Some(casulo.to_path_buf())),
        ("crun", which("crun")),
        ("runc", which("runc")),
    ] {
        match bin {
            Some(bin) => runtimes.push(Runtime {
                name,
                bin,
                root: tmp.join(format!("state-{name}")),
                times: Vec::new(),
            }),
            None => eprintln!("SKIP {name}: not installed (apt-get install {name})"),
        }
    }
    // The floor: namespaces and chroot, nothing else.
    let floor = which("unshare").map(|u| Runtime {
        name: "unshare+chroot",
        bin: u,
        root: PathBuf::new(),
        times: Vec::new(),
    });
    let mut floor = floor;
    let rootfs = bundle.join("rootfs");
    let n = runtimes.len().max(1);
    for i in 0..args.warmup + args.iterations {
        // Rotate who goes first: moving a process between v1 cgroups waits for an RCU grace
        // period unless another migration happened moments before, so a fixed order would hand
        // one runtime the fast path (the one right after another runtime's create) every time.
        runtimes.rotate_left(1 % n);
        for rt in runtimes.iter_mut() {
            let id = format!("bench-{}-{i}", rt.name);
            let t = once(rt, &args.mode, &bundle, &id)?;
            if i >= args.warmup {
                rt.times.push(t);
            }
        }
        if let Some(f) = floor.as_mut() {
            let t = run_cmd(
                Command::new(&f.bin)
                    .args(["-m", "-u", "-i", "-p", "-n", "-f", "chroot"])
                    .arg(&rootfs)
                    .arg("/bin/true"),
            )?;
            if i >= args.warmup {
                f.times.push(t);
            }
        }
    }
    let order = ["casulo", "crun", "runc"];
    runtimes.sort_by_key(|r| order.iter().position(|n| *n == r.name));
    let mut all: Vec<Runtime> = runtimes;
    all.extend(floor);
    let mut rows = Vec::new();
    for rt in all.iter_mut() {
        rt.times.sort();
        rows.push((
            rt.name,
            percentile(&rt.times, 0.5),
            percentile(&rt.times, 0.1),
            percentile(&rt.times, 0.9),
            rt.times.first().copied().unwrap_or_default(),
        ));
    }
    let median_of = |name: &str| rows.iter().find(|r| r.0 == name).map(|r| r.1);
    let ratio = |a: &str, b: &str| match (median_of(a), median_of(b)) {
        (Some(x), Some(y)) if !y.is_zero() => Some(x.as_secs_f64() / y.as_secs_f64()),
        _ => None,
    };
    if args.json {
        let results: Vec<_> = rows
            .iter()
            .map(|r| serde_json::json!({"runtime": r.0, "median_ms": ms(r.1), "p10_ms": ms(r.2), "p90_ms": ms(r.3), "min_ms": ms(r.4)}))
            .collect();
        let doc = serde_json::json!({
            "mode": args.mode,
            "iterations": args.iterations,
            "results": results,
            "casulo_over_crun": ratio("casulo", "crun"),
            "casulo_over_runc": ratio("casulo", "runc"),
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap());
        return Ok(());
    }
    println!(
        "{} of /bin/true, {} iterations after {} warm-up, same bundle, one mount namespace",
        args.mode, args.iterations, args.warmup
    );
    println!(
        "{:<16} {:>10} {:>10} {:>10} {:>10}",
        "runtime", "median ms", "p10 ms", "p90 ms", "min ms"
    );
    for r in &rows {
        println!(
            "{:<16} {:>10.2} {:>10.2} {:>10.2} {:>10.2}",
            r.0,
            ms(r.1),
            ms(r.2),
            ms(r.3),
            ms(r.4)
        );
    }
    if let Some(x) = ratio("casulo", "crun") {
        println!("casulo / crun = {x:.2}");
    }
    if let Some(x) = ratio("casulo", "runc") {
        println!("casulo / runc = {x:.2}");
    }
    Ok(())
}
