//! Timing one runtime command, and its peak resident memory.
//!
//! The peak RSS of a command is what `getrusage(RUSAGE_CHILDREN)` reports in a process that
//! has waited for that command alone: the benchmark re-executes itself as such a probe
//! (`lifecycle-bench __probe CMD ARGS...`), which times the command too, so that the probe's
//! own start-up is not in the time.

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The first argument that makes this program a probe.
pub const PROBE: &str = "__probe";
/// The environment variable that holds this program's path.
pub const SELF_ENV: &str = "CASULO_BENCH_SELF";

/// What one command cost.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub time: Duration,
    /// Peak resident set size in KiB, where measured.
    pub rss_kib: Option<u64>,
}

/// A file of its own for one command's stderr (commands may run at once, from threads),
/// removed when dropped, however the command ended.
struct StderrFile {
    path: std::path::PathBuf,
}

impl StderrFile {
    /// The file, and a handle to give the command as its stderr.
    fn new() -> Result<(StderrFile, std::fs::File), String> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("casulo-bench-stderr-{}-{n}", std::process::id()));
        let f = std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok((StderrFile { path }, f))
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.path).unwrap_or_default()
    }
}

impl Drop for StderrFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Run `cmd` to its end with null stdin and stdout; its time, or its stderr if it failed.
pub fn timed(cmd: &mut Command) -> Result<Duration, String> {
    // stderr goes to a file, not a pipe: after `create` the container's init holds the
    // runtime's stderr open, and reading a pipe to its end would wait for the container.
    let (stderr, err_file) = StderrFile::new()?;
    let start = Instant::now();
    let status = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err_file)
        .status()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    let took = start.elapsed();
    if !status.success() {
        return Err(format!(
            "{cmd:?} failed ({status}): {}",
            stderr.text().trim()
        ));
    }
    Ok(took)
}

/// Run `program args` through a probe: its time and its peak RSS.
pub fn probed(program: &Path, args: &[OsString]) -> Result<Sample, String> {
    let me = std::env::var_os(SELF_ENV).ok_or_else(|| format!("{SELF_ENV} is not set"))?;
    let (stderr, err_file) = StderrFile::new()?;
    let out = Command::new(me)
        .arg(PROBE)
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stderr(err_file)
        .output()
        .map_err(|e| format!("probe of {}: {e}", program.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} {:?} failed ({}): {}",
            program.display(),
            args,
            out.status,
            stderr.text().trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace().map(|w| w.parse::<u64>());
    match (words.next(), words.next()) {
        (Some(Ok(nanos)), Some(Ok(kib))) => Ok(Sample {
            time: Duration::from_nanos(nanos),
            rss_kib: Some(kib),
        }),
        _ => Err(format!("probe printed {text:?}")),
    }
}

/// The probe itself: run `argv`, print "NANOS MAXRSS_KIB", exit with its status. The
/// command's stdout is discarded; its stderr is ours.
pub fn probe_main(argv: &[OsString]) -> ! {
    let Some((program, args)) = argv.split_first() else {
        eprintln!("{PROBE}: no command");
        std::process::exit(2)
    };
    let start = Instant::now();
    let status = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status();
    let took = start.elapsed();
    let status = match status {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{}: {e}", Path::new(program).display());
            std::process::exit(2)
        }
    };
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN);
    let kib = usage.map(|u| u.max_rss()).unwrap_or(0);
    println!("{} {kib}", took.as_nanos());
    std::process::exit(status.code().unwrap_or(1))
}

/// Reap every child that has exited (the benchmark is the subreaper of detached exec'd
/// processes, whose runtime exits before them). Only called while no command of ours runs.
pub fn reap_orphans() {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}

/// p in 0..=1 of sorted samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
