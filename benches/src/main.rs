//! `lifecycle-bench`: every path an engine takes through a runtime, timed for casulo, crun,
//! runc (Debian's and a build of runc's main branch, when given) and the unshare+chroot floor,
//! in one run, with ratios to crun (see benches/README.md).
//!
//! Every runtime runs in the same private mount namespace of this process, in which the
//! host's cgroup2 mount at /sys/fs/cgroup/unified is unmounted (crun refuses hybrid cgroup
//! hosts); the host's own mounts are untouched.

use std::path::{Path, PathBuf};

use clap::Parser;

mod level;
mod measure;
mod report;
mod setup;
mod workloads;
use report::Table;
use setup::{
    make_bundle, make_bundle_running, make_engine_bundle, private_namespace, which,
    workspace_casulo, write_exec_process, NetNs,
};
use workloads::{Ctx, Running, Runtime};

/// Every workload, in the order they run.
const WORKLOADS: &[&str] = &[
    "run",
    "paced",
    "engine",
    "lifecycle",
    "exec",
    "exec-detach",
    "state",
    "parallel",
    "library",
    "list",
];

#[derive(Parser, Debug)]
#[command(
    name = "lifecycle-bench",
    about = "Time what engines ask of a runtime, for casulo, crun and runc"
)]
struct Args {
    /// Timed iterations per runtime (parallel and library: a quarter of it; list: a tenth).
    #[arg(long, default_value_t = 100)]
    iterations: usize,
    /// Untimed iterations per runtime first.
    #[arg(long, default_value_t = 10)]
    warmup: usize,
    /// The workloads to run, comma-separated (default: all): run, paced, engine, lifecycle, exec,
    /// exec-detach, state, parallel, library, list.
    #[arg(long, value_delimiter = ',')]
    workloads: Option<Vec<String>>,
    /// The casulo binary (default: target/release/casulo of this workspace).
    #[arg(long)]
    casulo: Option<PathBuf>,
    /// A runc built from its main branch (default: target/external/runc/runc, where the
    /// external suites build it, if present).
    #[arg(long)]
    runc_main: Option<PathBuf>,
    /// Containers at once in the parallel and library workloads.
    #[arg(long, default_value_t = 8)]
    parallel: usize,
    /// Containers in the root for the list workload.
    #[arg(long, default_value_t = 1000)]
    list_count: usize,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
    /// Keep the host's mount namespace (crun then fails on a hybrid cgroup host).
    #[arg(long)]
    host_ns: bool,
}

fn main() {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.get(1).is_some_and(|a| a == measure::PROBE) {
        measure::probe_main(&argv[2..]);
    }
    // The probe is this program, by the path it was started from: after the re-execution
    // below, /proc/self/exe is a detached mount that cannot be executed by path.
    if std::env::var_os(measure::SELF_ENV).is_none() {
        if let Ok(me) = std::env::current_exe() {
            std::env::set_var(measure::SELF_ENV, me);
        }
    }
    // The library workload runs containers from this process: protect it as the casulo
    // command protects itself, before any thread exists.
    if let Err(e) = casulo::prepare_process() {
        eprintln!("lifecycle-bench: {e}");
        std::process::exit(1);
    }
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
    let selected: Vec<&'static str> = match &args.workloads {
        None => WORKLOADS.to_vec(),
        Some(list) => list
            .iter()
            .map(|w| {
                WORKLOADS
                    .iter()
                    .copied()
                    .find(|k| k == w)
                    .ok_or_else(|| format!("unknown workload {w:?}; known: {WORKLOADS:?}"))
            })
            .collect::<Result<_, _>>()?,
    };
    let casulo = args.casulo.clone().unwrap_or_else(workspace_casulo);
    if !casulo.is_file() {
        return Err(format!(
            "{} not found: cargo build --release -p casulo-cli, or --casulo PATH",
            casulo.display()
        ));
    }
    let tmp = std::env::temp_dir().join(format!("casulo-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    let result = bench(args, &selected, &casulo, &tmp);
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// The runtimes found, each with a state root under `tmp`.
fn runtimes(args: &Args, casulo: &Path, tmp: &Path) -> Vec<Runtime> {
    let runc_main = args.runc_main.clone().or_else(|| {
        let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/external/runc/runc");
        built.is_file().then_some(built)
    });
    let mut out = Vec::new();
    for (name, bin, hint) in [
        ("casulo", Some(casulo.to_path_buf()), ""),
        ("crun", which("crun"), "apt-get install crun"),
        ("runc", which("runc"), "apt-get install runc"),
        (
            "runc-main",
            runc_main,
            "--runc-main PATH, or scripts/test-external builds it",
        ),
    ] {
        match bin {
            Some(bin) => out.push(Runtime {
                name: name.into(),
                bin,
                root: tmp.join(format!("state-{name}")),
            }),
            None => eprintln!("SKIP {name}: not found ({hint})"),
        }
    }
    out
}

fn host_load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn bench(args: &Args, selected: &[&'static str], casulo: &Path, tmp: &Path) -> Result<(), String> {
    let load = host_load();
    let template = tmp.join("bundle");
    make_bundle(&template, casulo)?;
    if !args.host_ns {
        private_namespace()?;
    }
    let netns = NetNs::new(&tmp.join("netns"))?;
    let engine = tmp.join("engine-bundle");
    make_engine_bundle(&engine, &template.join("rootfs"), &netns.path)?;
    let sleeper = tmp.join("sleeper-bundle");
    make_bundle_running(&sleeper, &template, &["/bin/sleep", "1000000"])?;
    std::os::unix::fs::symlink("busybox", template.join("rootfs/bin/sleep"))
        .map_err(|e| e.to_string())?;
    let exec_process = tmp.join("process.json");
    write_exec_process(&exec_process, &template)?;
    let ctx = Ctx {
        template,
        engine,
        sleeper,
        exec_process,
        iterations: args.iterations,
        warmup: args.warmup,
        parallel: args.parallel,
        list_count: args.list_count,
    };
    let rts = runtimes(args, casulo, tmp);
    if let Err(e) = level::start() {
        eprintln!("lifecycle-bench: commands run without a cgroup move before each: {e}");
    }
    let tables = run_workloads(selected, &rts, &ctx, tmp);
    level::stop();
    let tables = tables?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report::json(&tables, &load)).unwrap()
        );
    } else {
        report::print_text(&tables, &load);
    }
    Ok(())
}

fn run_workloads(
    selected: &[&'static str],
    rts: &[Runtime],
    ctx: &Ctx,
    tmp: &Path,
) -> Result<Vec<Table>, String> {
    let mut tables = Vec::new();
    let needs_running = selected
        .iter()
        .any(|w| matches!(*w, "exec" | "exec-detach" | "state"));
    let running = if needs_running {
        Some(Running::start(rts, ctx)?)
    } else {
        None
    };
    for &w in selected {
        eprintln!("lifecycle-bench: {w}...");
        let (what, series) = match w {
            "run" => {
                let mut s = workloads::run(rts, ctx, &ctx.template, "run")?;
                if let Some(u) = which("unshare") {
                    s.push(workloads::floor(ctx, &u)?);
                }
                (
                    "run of /bin/true, casulo spec's template config".to_string(),
                    s,
                )
            }
            "paced" => (
                "run of /bin/true, template config, each after 50 ms of idle".into(),
                workloads::paced(rts, ctx, std::time::Duration::from_millis(50))?,
            ),
            "engine" => (
                "run of /bin/true with podman 4.3's config (seccomp profile, masks, mounts)".into(),
                workloads::run(rts, ctx, &ctx.engine, "eng")?,
            ),
            "lifecycle" => (
                "create + start + delete --force, three processes".into(),
                workloads::lifecycle(rts, ctx)?,
            ),
            "exec" => (
                "exec of /bin/true into a running container, foreground".into(),
                workloads::exec(rts, ctx, running.as_ref().unwrap(), false)?,
            ),
            "exec-detach" => (
                "exec --process FILE --detach of /bin/true".into(),
                workloads::exec(rts, ctx, running.as_ref().unwrap(), true)?,
            ),
            "state" => (
                "state of a running container".into(),
                workloads::state(rts, ctx, running.as_ref().unwrap())?,
            ),
            "parallel" => (
                format!(
                    "{} foreground runs at once, wall time of the batch",
                    ctx.parallel
                ),
                workloads::parallel(rts, ctx)?,
            ),
            "library" => (
                format!(
                    "the casulo crate in this process: {} threads at once, each create + start \
                     + wait + delete; wall time of the batch",
                    ctx.parallel
                ),
                vec![workloads::library(ctx, &tmp.join("state-library"))?],
            ),
            "list" => (
                format!(
                    "list with {} created containers in the root",
                    ctx.list_count
                ),
                workloads::list(rts, ctx)?,
            ),
            _ => unreachable!("checked against WORKLOADS"),
        };
        tables.push(Table {
            workload: w,
            what,
            series,
        });
    }
    drop(running);
    Ok(tables)
}
