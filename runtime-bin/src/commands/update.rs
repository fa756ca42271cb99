use std::io::Read;
use std::path::PathBuf;

use oci_spec::runtime::{LinuxMemory, LinuxPids, LinuxResources};

use super::{CmdResult, Ctx};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A JSON file of linux.resources to apply ("-" for stdin); the flags below override it.
    #[arg(short, long, value_name = "FILE")]
    resources: Option<PathBuf>,
    /// Block IO weight (10-1000).
    #[arg(long, value_name = "N")]
    blkio_weight: Option<u16>,
    /// CPU CFS period in microseconds.
    #[arg(long, value_name = "N")]
    cpu_period: Option<u64>,
    /// CPU CFS quota in microseconds (-1 for no quota).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    cpu_quota: Option<i64>,
    /// CPU realtime period in microseconds.
    #[arg(long, value_name = "N")]
    cpu_rt_period: Option<u64>,
    /// CPU realtime runtime in microseconds (-1 for no limit).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    cpu_rt_runtime: Option<i64>,
    /// CPU shares (relative weight).
    #[arg(long, value_name = "N")]
    cpu_share: Option<u64>,
    /// CPUs to use (0-3, 0,1).
    #[arg(long, value_name = "LIST")]
    cpuset_cpus: Option<String>,
    /// Memory nodes to use.
    #[arg(long, value_name = "LIST")]
    cpuset_mems: Option<String>,
    /// Memory limit (bytes, or with a k, m, g suffix; -1 for unlimited).
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    memory: Option<String>,
    /// Memory soft limit.
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    memory_reservation: Option<String>,
    /// Memory plus swap limit.
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// Maximum number of processes (-1 for unlimited).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// CPU CFS burst in microseconds.
    #[arg(long, value_name = "N")]
    cpu_burst: Option<u64>,
    /// SCHED_IDLE for the cgroup: 1 or 0 (cpu.idle, cgroup v2 or a v1 kernel since 5.15).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    cpu_idle: Option<i64>,
    /// Kernel memory limit (cgroup v1; newer kernels ignore it).
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    kernel_memory: Option<String>,
    /// Kernel TCP buffer memory limit (cgroup v1).
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    kernel_memory_tcp: Option<String>,
    /// Intel RDT/CAT L3 cache schema.
    #[arg(long, value_name = "SCHEMA")]
    l3_cache_schema: Option<String>,
    /// Intel RDT/MBA memory bandwidth schema.
    #[arg(long, value_name = "SCHEMA")]
    mem_bw_schema: Option<String>,
    /// Container id.
    id: String,
}

/// A size as runc's update takes it: bytes, or a number with a b, k, m, g, t or p suffix
/// (binary units, any case); -1 means unlimited.
pub fn parse_size(s: &str) -> Result<i64, String> {
    let t = s.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(-1);
    }
    let t = t
        .strip_suffix('b')
        .filter(|r| !r.is_empty() && r.ends_with(|c: char| c.is_ascii_alphabetic()))
        .unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        Some('p') => (&t[..t.len() - 1], 1 << 50),
        Some('b') => (&t[..t.len() - 1], 1),
        _ => (t, 1),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("invalid size {s:?}"))?;
    if n < 0.0 {
        return Err(format!("invalid size {s:?}"));
    }
    Ok((n * mult as f64) as i64)
}

fn resources(a: &Args) -> Result<LinuxResources, String> {
    for (flag, v) in [
        ("--l3-cache-schema", &a.l3_cache_schema),
        ("--mem-bw-schema", &a.mem_bw_schema),
    ] {
        if v.is_some() {
            return Err(format!(
                "{flag}: Intel RDT is not supported by this runtime (linux.intelRdt is refused at create too)"
            ));
        }
    }
    let mut r: LinuxResources = match &a.resources {
        Some(p) if p.as_os_str() == "-" => {
            let mut text = Vec::new();
            std::io::stdin()
                .read_to_end(&mut text)
                .map_err(|e| format!("--resources -: {e}"))?;
            serde_json::from_slice(&text)
                .map_err(|e| format!("--resources -: invalid JSON: {e}"))?
        }
        Some(p) => {
            let text = std::fs::read(p).map_err(|e| format!("--resources {}: {e}", p.display()))?;
            serde_json::from_slice(&text)
                .map_err(|e| format!("--resources {}: invalid JSON: {e}", p.display()))?
        }
        None => LinuxResources::default(),
    };
    let mut cpu = r.cpu().clone().unwrap_or_default();
    let mut cpu_set = false;
    if let Some(v) = a.cpu_period {
        cpu.set_period(Some(v));
        cpu_set = true;
    }
    if let Some(v) = a.cpu_quota {
        cpu.set_quota(Some(v));
        cpu_set = true;
    }
    if let Some(v) = a.cpu_rt_period {
        cpu.set_realtime_period(Some(v));
        cpu_set = true;
    }
    if let Some(v) = a.cpu_rt_runtime {
        cpu.set_realtime_runtime(Some(v));
        cpu_set = true;
    }
    if let Some(v) = a.cpu_share {
        cpu.set_shares(Some(v));
        cpu_set = true;
    }
    if let Some(v) = &a.cpuset_cpus {
        cpu.set_cpus(Some(v.clone()));
        cpu_set = true;
    }
    if let Some(v) = &a.cpuset_mems {
        cpu.set_mems(Some(v.clone()));
        cpu_set = true;
    }
    if let Some(v) = a.cpu_burst {
        cpu.set_burst(Some(v));
        cpu_set = true;
    }
    if let Some(v) = a.cpu_idle {
        cpu.set_idle(Some(v));
        cpu_set = true;
    }
    if cpu_set {
        r.set_cpu(Some(cpu));
    }
    let mut mem: LinuxMemory = (*r.memory()).unwrap_or_default();
    let mut mem_set = false;
    if let Some(v) = &a.memory {
        mem.set_limit(Some(parse_size(v)?));
        mem_set = true;
    }
    if let Some(v) = &a.memory_reservation {
        mem.set_reservation(Some(parse_size(v)?));
        mem_set = true;
    }
    if let Some(v) = &a.memory_swap {
        mem.set_swap(Some(parse_size(v)?));
        mem_set = true;
    }
    if let Some(v) = &a.kernel_memory {
        mem.set_kernel(Some(parse_size(v)?));
        mem_set = true;
    }
    if let Some(v) = &a.kernel_memory_tcp {
        mem.set_kernel_tcp(Some(parse_size(v)?));
        mem_set = true;
    }
    if mem_set {
        r.set_memory(Some(mem));
    }
    if let Some(v) = a.pids_limit {
        let mut pids = LinuxPids::default();
        pids.set_limit(v);
        r.set_pids(Some(pids));
    }
    if let Some(w) = a.blkio_weight {
        let mut b = r.block_io().clone().unwrap_or_default();
        b.set_weight(Some(w));
        r.set_block_io(Some(b));
    }
    Ok(r)
}

pub fn run(ctx: &Ctx, a: Args) -> CmdResult {
    let r = resources(&a).map_err(|e| format!("container {:?}: update: {e}", a.id))?;
    super::load(ctx, &a.id, casulo::Step::Update)
        .and_then(|c| c.update(&r))
        .map_err(|e| e.to_string())?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::{parse_size, Args};
    use clap::Parser;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        a: Args,
    }

    #[test]
    fn negative_numbers_are_values() {
        let c = Cmd::try_parse_from(["update", "--cpu-quota", "-1", "--pids-limit", "-1", "c1"])
            .unwrap();
        assert_eq!(c.a.cpu_quota, Some(-1));
        assert_eq!(c.a.pids_limit, Some(-1));
        assert_eq!(c.a.id, "c1");
        let c = Cmd::try_parse_from(["update", "--cpu-rt-runtime", "-1", "c1"]).unwrap();
        assert_eq!(c.a.cpu_rt_runtime, Some(-1));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("512m"), Ok(512 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("2kb"), Ok(2048));
        assert_eq!(parse_size("-1"), Ok(-1));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("-5").is_err());
    }
}
