//! Readers of cgroup files and parsers of their formats.
use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::cgroups::CgroupError;

/// The contents of `dir/file`, or None when the file does not exist (controller absent).
pub(super) fn read_opt(dir: &Path, file: &str) -> Result<Option<String>, CgroupError> {
    read_path_opt(&dir.join(file))
}

/// The contents of the cgroup file `path`, or None when it is not there: no such file
/// (controller absent), or the cgroup is being removed (ENODEV) or offers no such file here
/// (EOPNOTSUPP).
pub(crate) fn read_path_opt(path: &Path) -> Result<Option<String>, CgroupError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                || matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::ENODEV)) =>
        {
            Ok(None)
        }
        Err(source) => Err(CgroupError::Io {
            step: "read",
            path: path.to_path_buf(),
            source,
        }),
    }
}

pub(super) fn bad(dir: &Path, file: &str, msg: impl std::fmt::Display) -> CgroupError {
    CgroupError::Failed {
        path: dir.join(file).display().to_string(),
        msg: format!("cannot parse: {msg}"),
    }
}

/// A single-value file as a number: `max` is `u64::MAX`, a negative value is 0 (as runc).
pub(super) fn read_u64_opt(dir: &Path, file: &str) -> Result<Option<u64>, CgroupError> {
    match read_opt(dir, file)? {
        None => Ok(None),
        Some(s) => parse_value(s.trim())
            .map(Some)
            .ok_or_else(|| bad(dir, file, format!("{:?} is not a number", s.trim()))),
    }
}

pub(super) fn read_i64_opt(dir: &Path, file: &str) -> Result<Option<i64>, CgroupError> {
    match read_opt(dir, file)? {
        None => Ok(None),
        Some(s) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| bad(dir, file, format!("{:?} is not a number", s.trim()))),
    }
}

/// A cgroup value: a decimal number, `max` for unlimited (`u64::MAX`); negative numbers
/// (v1's "-1" for unlimited in some files) read as 0, as runc reads them.
pub(crate) fn parse_value(s: &str) -> Option<u64> {
    if s == "max" {
        return Some(u64::MAX);
    }
    if let Ok(v) = s.parse::<u64>() {
        return Some(v);
    }
    match s.strip_prefix('-') {
        Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => Some(0),
        _ => None,
    }
}

/// A flat keyed file (`key value` per line: memory.stat, cpu.stat, memory.events). Lines
/// that are not a key and a number are skipped.
pub(crate) fn parse_keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let (k, v, rest) = (it.next()?, it.next()?, it.next());
            if rest.is_some() {
                return None;
            }
            Some((k.to_string(), parse_value(v)?))
        })
        .collect()
}

/// v1 cpuacct.stat: (user, system) in USER_HZ ticks.
pub(crate) fn parse_cpuacct_stat(text: &str) -> Option<(u64, u64)> {
    let kv = parse_keyed(text);
    Some((*kv.get("user")?, *kv.get("system")?))
}

/// USER_HZ ticks to nanoseconds (saturating).
pub(crate) fn ticks_to_ns(ticks: u64, hz: u64) -> u64 {
    let ns = ticks as u128 * 1_000_000_000 / hz.max(1) as u128;
    ns.min(u64::MAX as u128) as u64
}

/// The kernel's clock tick rate for times in cpuacct.stat (USER_HZ, 100 on Linux).
pub(super) fn user_hz() -> u64 {
    use nix::unistd::{sysconf, SysconfVar};
    match sysconf(SysconfVar::CLK_TCK) {
        Ok(Some(hz)) if hz > 0 => hz as u64,
        _ => 100,
    }
}

/// v1 cpuacct.usage_all (`cpu user system` header, then one line per CPU): per-CPU
/// (kernel, user) nanoseconds.
pub(crate) fn parse_usage_all(text: &str) -> (Vec<u64>, Vec<u64>) {
    let mut kernel = Vec::new();
    let mut user = Vec::new();
    for l in text.lines().skip(1) {
        let f: Vec<&str> = l.split_whitespace().collect();
        if let [_, u, s] = f[..] {
            if let (Ok(u), Ok(s)) = (u.parse(), s.parse()) {
                user.push(u);
                kernel.push(s);
            }
        }
    }
    (kernel, user)
}

/// A v1 blkio table: lines `MAJ:MIN Op value` or `MAJ:MIN value`; the `Total` line is
/// dropped. None when a line is malformed.
pub(crate) fn parse_blkio(text: &str) -> Option<Vec<BlkioEntry>> {
    let mut out = Vec::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split([' ', ':']).filter(|s| !s.is_empty()).collect();
        if f.is_empty() || (f.len() == 2 && f[0] == "Total") {
            continue;
        }
        let (op, value) = match f.len() {
            3 => ("", f[2]),
            4 => (f[2], f[3]),
            _ => return None,
        };
        out.push(BlkioEntry {
            major: f[0].parse().ok()?,
            minor: f[1].parse().ok()?,
            op: op.to_string(),
            value: value.parse().ok()?,
        });
    }
    Some(out)
}

/// v2 io.stat (`MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=.. dbytes=.. dios=..`):
/// (bytes, ios) tables with runc's v1 naming, `Read` and `Write` only.
pub(crate) fn parse_io_stat(text: &str) -> (Vec<BlkioEntry>, Vec<BlkioEntry>) {
    let mut bytes = Vec::new();
    let mut ios = Vec::new();
    for l in text.lines() {
        let mut f = l.split_whitespace();
        let Some((major, minor)) = f.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (major.parse(), minor.parse()) else {
            continue;
        };
        for kv in f {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let (table, op) = match k {
                "rbytes" => (&mut bytes, "Read"),
                "wbytes" => (&mut bytes, "Write"),
                "rios" => (&mut ios, "Read"),
                "wios" => (&mut ios, "Write"),
                _ => continue,
            };
            if let Ok(value) = v.parse() {
                table.push(BlkioEntry {
                    major,
                    minor,
                    op: op.to_string(),
                    value,
                });
            }
        }
    }
    (bytes, ios)
}

/// A cpu or memory-node list (`0-3,5`) as numbers.
pub(crate) fn parse_id_list(text: &str) -> Option<Vec<u16>> {
    let mut out = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u16, u16) = (a.parse().ok()?, b.parse().ok()?);
                if a > b {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

/// runc's name of a huge page size from a `/sys/kernel/mm/hugepages` entry
/// (`hugepages-2048kB` → `2MB`).
pub(crate) fn hugepage_size_name(entry: &str) -> Option<String> {
    let kb: u64 = entry
        .strip_prefix("hugepages-")?
        .strip_suffix("kB")?
        .parse()
        .ok()?;
    Some(if kb >= 1 << 20 {
        format!("{}GB", kb >> 20)
    } else if kb >= 1 << 10 {
        format!("{}MB", kb >> 10)
    } else {
        format!("{kb}KB")
    })
}

pub(super) fn hugepage_sizes() -> Vec<String> {
    let mut sizes: Vec<String> = std::fs::read_dir("/sys/kernel/mm/hugepages")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| hugepage_size_name(&e.file_name().to_string_lossy()))
                .collect()
        })
        .unwrap_or_default();
    sizes.sort();
    sizes
}

/// runc reports an unlimited pids.max as 0.
pub(super) fn pids_limit(max: Option<u64>) -> u64 {
    match max {
        Some(u64::MAX) | None => 0,
        Some(v) => v,
    }
}
