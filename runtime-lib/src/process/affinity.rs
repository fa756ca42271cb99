//! CPU affinity of the processes the runtime starts in a container.
//!
//! `process.execCPUAffinity` (runtime-spec 1.2) is for `exec`: `initial` is the affinity of the
//! process while it joins the container, before it is moved into the container's cgroup (so
//! its setup can run on CPUs the container's cpuset may not have); `final` is its affinity
//! right after that move, which it keeps through execve. The spec says the setting does not
//! apply to the container's init; config.json's value is the default of every exec'd process
//! whose own process config has none, as with the reference runtime.
//!
//! A process given no affinity at all (the init, and an exec'd process without either value)
//! gets its affinity reset to every CPU once it is in its cgroup: the kernel narrows that to
//! the cgroup's cpuset, so the process does not inherit the narrower affinity the runtime may
//! have been started with (`taskset -c 0 casulo run`).
//!
//! The runtime sets all of these on the process from outside (sched_setaffinity on its pid),
//! before it lets the process go on: nothing of this runs between fork and execve.

use oci_spec::runtime::ExecCPUAffinity;
use serde_json::Value;

use super::ProcessError;

type Word = libc::c_ulong;
const WORD_BITS: u32 = Word::BITS;

/// The highest CPU id a list may name: far above any kernel's CPU count (which the kernel
/// itself caps at 8192), it bounds the mask a bogus list makes us allocate.
pub const MAX_CPU: u32 = 64 * 1024 - 1;

/// A set of CPUs as sched_setaffinity takes it: bit n of word n / 64 is CPU n.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuMask(Vec<Word>);

impl CpuMask {
    /// Parse a CPU list as the spec writes it, e.g. `0-3,7`. Spaces around items and empty
    /// items are allowed, as the reference runtime allows them. `Ok(None)` for a list that
    /// is empty (the spec: an empty value is as if it was not given).
    pub fn parse(list: &str) -> Result<Option<CpuMask>, String> {
        if list.trim().is_empty() {
            return Ok(None);
        }
        let cpu = |s: &str| -> Result<u32, String> {
            let n: u32 = s
                .trim()
                .parse()
                .map_err(|_| format!("{:?} is not a CPU number", s.trim()))?;
            if n > MAX_CPU {
                return Err(format!("CPU {n} is above the largest CPU id ({MAX_CPU})"));
            }
            Ok(n)
        };
        let mut ranges = Vec::new();
        for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (a, b) = match item.split_once('-') {
                Some((a, b)) => (cpu(a)?, cpu(b)?),
                None => (cpu(item)?, cpu(item)?),
            };
            if a > b {
                return Err(format!("{item:?}: the range goes down"));
            }
            ranges.push((a, b));
        }
        let Some(max) = ranges.iter().map(|r| r.1).max() else {
            return Err(format!("{list:?} names no CPU"));
        };
        let mut mask = vec![0 as Word; (max / WORD_BITS + 1) as usize];
        for (a, b) in ranges {
            for n in a..=b {
                mask[(n / WORD_BITS) as usize] |= 1 << (n % WORD_BITS);
            }
        }
        Ok(Some(CpuMask(mask)))
    }

    /// Every CPU up to [`MAX_CPU`]: the reset of a process's affinity.
    pub fn all() -> CpuMask {
        CpuMask(vec![Word::MAX; ((MAX_CPU + 1) / WORD_BITS) as usize])
    }

    /// The affinity of thread `pid` now.
    pub fn of(pid: i32) -> nix::Result<CpuMask> {
        let mut words = vec![0 as Word; ((MAX_CPU + 1) / WORD_BITS) as usize];
        let n = crate::sys::sched::sched_getaffinity(pid, &mut words)?;
        words.truncate(n);
        Ok(CpuMask(words))
    }

    /// The mask as one hexadecimal number (`0x3` for CPUs 0 and 1).
    pub fn hex(&self) -> String {
        let mut words = self.0.iter().rev().skip_while(|w| **w == 0);
        let Some(first) = words.next() else {
            return "0x0".into();
        };
        let mut s = format!("{first:#x}");
        for w in words {
            s.push_str(&format!("{w:0width$x}", width = (WORD_BITS / 4) as usize));
        }
        s
    }

    /// Run thread `pid` on these CPUs. `what` names the setting for the error.
    pub fn apply(&self, pid: i32, what: &str) -> Result<(), ProcessError> {
        crate::sys::sched::sched_setaffinity(pid, &self.0).map_err(|source| match source {
            nix::Error::EINVAL => ProcessError::SysHint {
                what: format!("set the {what} CPU affinity of pid {pid}"),
                source,
                hint: "none of its CPUs is online and in the container's cpuset",
            },
            _ => ProcessError::Sys {
                what: format!("set the {what} CPU affinity of pid {pid}"),
                source,
            },
        })
    }
}

/// `process.execCPUAffinity`, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AffinityPlan {
    pub initial: Option<CpuMask>,
    pub final_: Option<CpuMask>,
}

impl AffinityPlan {
    /// Check and parse `process.execCPUAffinity` (both values, whether or not the process is
    /// one they apply to: a bad value is refused when the container is created).
    pub fn from_spec(a: Option<&ExecCPUAffinity>) -> Result<AffinityPlan, ProcessError> {
        let Some(a) = a else {
            return Ok(AffinityPlan::default());
        };
        let parse = |field: &str, v: Option<&String>| {
            v.map(|s| CpuMask::parse(s))
                .transpose()
                .map(Option::flatten)
                .map_err(|e| ProcessError::Invalid(format!("process.execCPUAffinity.{field}: {e}")))
        };
        Ok(AffinityPlan {
            initial: parse("initial", a.initial().as_ref())?,
            final_: parse("final", a.cpu_affinity_final().as_ref())?,
        })
    }

    /// Whether neither value was given: the process then gets the reset.
    pub fn is_empty(&self) -> bool {
        self.initial.is_none() && self.final_.is_none()
    }

    /// Run before the process `pid` is moved into its cgroup: the initial affinity, if any.
    pub fn before_cgroup(&self, pid: i32) -> Result<(), ProcessError> {
        match &self.initial {
            Some(m) => m.apply(pid, "initial"),
            None => Ok(()),
        }
    }

    /// Run once the process `pid` is in its cgroup: the final affinity, or the reset when no
    /// value was given (with only an initial one, the kernel's choice stands, as the spec says).
    pub fn after_cgroup(&self, pid: i32) -> Result<(), ProcessError> {
        match (&self.final_, self.is_empty()) {
            (Some(m), _) => m.apply(pid, "final"),
            (None, true) => {
                reset(pid);
                Ok(())
            }
            (None, false) => Ok(()),
        }
    }
}

/// Reset the affinity of `pid` to every CPU its cgroup's cpuset allows. A failure is a warning,
/// not an error: the process then keeps the runtime's own affinity, which it can still change.
pub fn reset(pid: i32) {
    if let Err(e) = CpuMask::all().apply(pid, "default") {
        tracing::warn!("{e}: the process keeps the runtime's CPU affinity");
    }
}

/// For a process object whose typed parse failed: the typed parse takes only the strict form
/// of a CPU list (no spaces, no empty items, not empty). A list the reference runtime accepts
/// is respelled in the strict form (an empty one is dropped: it means "not given"); one it
/// does not accept is an error naming the field. Returns whether anything changed.
pub(crate) fn fix_json(process: &mut Value) -> Result<bool, String> {
    let Some(aff) = process
        .get_mut("execCPUAffinity")
        .and_then(Value::as_object_mut)
    else {
        return Ok(false);
    };
    let mut changed = false;
    for field in ["initial", "final"] {
        let Some(Value::String(list)) = aff.get(field) else {
            continue;
        };
        let strict = list
            .split(',')
            .map(str::trim)
            .filter(|i| !i.is_empty())
            .collect::<Vec<_>>()
            .join(",");
        CpuMask::parse(list).map_err(|e| format!("process.execCPUAffinity.{field}: {e}"))?;
        if strict.is_empty() {
            aff.remove(field);
            changed = true;
        } else if strict != *list {
            aff.insert(field.into(), Value::String(strict));
            changed = true;
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(list: &str) -> CpuMask {
        CpuMask::parse(list).unwrap().unwrap()
    }

    #[test]
    fn lists_become_masks() {
        assert_eq!(mask("0").hex(), "0x1");
        assert_eq!(mask("1").hex(), "0x2");
        assert_eq!(mask("0-1").hex(), "0x3");
        assert_eq!(mask("0,1").hex(), "0x3");
        assert_eq!(mask(" 1 , 3,,").hex(), "0xa");
        assert_eq!(mask("64").hex(), "0x10000000000000000");
        assert_eq!(mask("0-3,7"), mask("7,0,1,2,3,3"));
        assert_eq!(CpuMask::parse("").unwrap(), None);
        assert_eq!(CpuMask::parse("  ").unwrap(), None);
    }

    #[test]
    fn bad_lists_are_refused() {
        for bad in ["x", "1-", "-1", "3-1", "65536", ",", "1;2", "0x1"] {
            assert!(CpuMask::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_plan_names_the_field() {
        let a: ExecCPUAffinity =
            serde_json::from_value(serde_json::json!({"initial": "0", "final": "3-1"})).unwrap();
        let e = AffinityPlan::from_spec(Some(&a)).unwrap_err().to_string();
        assert!(e.contains("process.execCPUAffinity.final"), "{e}");
        let a: ExecCPUAffinity = serde_json::from_value(serde_json::json!({"final": "1"})).unwrap();
        let p = AffinityPlan::from_spec(Some(&a)).unwrap();
        assert!(p.initial.is_none() && !p.is_empty());
        assert!(AffinityPlan::from_spec(None).unwrap().is_empty());
    }

    #[test]
    fn loose_lists_are_respelled_and_bad_ones_named() {
        let mut p = serde_json::json!({"execCPUAffinity": {"initial": " 0, 1,", "final": ""}});
        assert!(fix_json(&mut p).unwrap());
        assert_eq!(p["execCPUAffinity"], serde_json::json!({"initial": "0,1"}));
        let mut p = serde_json::json!({"execCPUAffinity": {"initial": "0-1"}});
        assert!(!fix_json(&mut p).unwrap());
        let mut p = serde_json::json!({"execCPUAffinity": {"final": "a"}});
        let e = fix_json(&mut p).unwrap_err();
        assert!(e.contains("process.execCPUAffinity.final"), "{e}");
    }

    #[test]
    fn own_affinity_reads_back() {
        let m = CpuMask::of(0).unwrap();
        assert_ne!(m.hex(), "0x0");
    }
}
