//! `process.scheduler` and `process.ioPriority`: checked when the plan is built, applied by
//! the init (and by an exec'd process) before it gives up its privileges, since a real-time
//! policy, a lower nice value and the real-time I/O class need CAP_SYS_NICE. The init applies
//! them before it reports ready, so a created container's waiting init already has them, and
//! the user program inherits them through execve.
//!
//! The runtime-spec applies the I/O priority to the process group: the process sets it on
//! itself right after `setsid`, as the only member of its new group, and every process it
//! starts inherits it. Anything the init forks after this inherits the scheduler too: the
//! startContainer hooks (as with runc), which under SCHED_DEADLINE cannot be forked at all
//! unless SCHED_FLAG_RESET_ON_FORK is given.

use std::borrow::Cow;

use oci_spec::runtime::{
    IOPriorityClass, LinuxIOPriority, LinuxSchedulerFlag, LinuxSchedulerPolicy, Process, Scheduler,
};
use serde_json::Value;

use super::ProcessError;
use crate::sys::sched::{SchedAttr, SCHED_ATTR_SIZE};

/// The policies by their runtime-spec names, with their numbers of `linux/sched.h`.
pub const POLICIES: [(&str, LinuxSchedulerPolicy, u32); 7] = [
    ("SCHED_OTHER", LinuxSchedulerPolicy::SchedOther, 0),
    ("SCHED_FIFO", LinuxSchedulerPolicy::SchedFifo, 1),
    ("SCHED_RR", LinuxSchedulerPolicy::SchedRr, 2),
    ("SCHED_BATCH", LinuxSchedulerPolicy::SchedBatch, 3),
    ("SCHED_ISO", LinuxSchedulerPolicy::SchedIso, 4),
    ("SCHED_IDLE", LinuxSchedulerPolicy::SchedIdle, 5),
    ("SCHED_DEADLINE", LinuxSchedulerPolicy::SchedDeadline, 6),
];

/// The flags by their runtime-spec names, with their `sched_flags` bits.
pub const FLAGS: [(&str, LinuxSchedulerFlag, u64); 7] = [
    (
        "SCHED_FLAG_RESET_ON_FORK",
        LinuxSchedulerFlag::SchedResetOnFork,
        0x01,
    ),
    (
        "SCHED_FLAG_RECLAIM",
        LinuxSchedulerFlag::SchedFlagReclaim,
        0x02,
    ),
    (
        "SCHED_FLAG_DL_OVERRUN",
        LinuxSchedulerFlag::SchedFlagDLOverrun,
        0x04,
    ),
    (
        "SCHED_FLAG_KEEP_POLICY",
        LinuxSchedulerFlag::SchedFlagKeepPolicy,
        0x08,
    ),
    (
        "SCHED_FLAG_KEEP_PARAMS",
        LinuxSchedulerFlag::SchedFlagKeepParams,
        0x10,
    ),
    (
        "SCHED_FLAG_UTIL_CLAMP_MIN",
        LinuxSchedulerFlag::SchedFlagUtilClampMin,
        0x20,
    ),
    (
        "SCHED_FLAG_UTIL_CLAMP_MAX",
        LinuxSchedulerFlag::SchedFlagUtilClampMax,
        0x40,
    ),
];

/// The I/O classes by their runtime-spec names, with their numbers of `linux/ioprio.h`.
pub const IO_CLASSES: [(&str, IOPriorityClass, u16); 3] = [
    ("IOPRIO_CLASS_RT", IOPriorityClass::IoprioClassRt, 1),
    ("IOPRIO_CLASS_BE", IOPriorityClass::IoprioClassBe, 2),
    ("IOPRIO_CLASS_IDLE", IOPriorityClass::IoprioClassIdle, 3),
];

/// `IOPRIO_CLASS_SHIFT`: the class sits above the 13 bits of the level.
const IOPRIO_CLASS_SHIFT: u16 = 13;

/// The smallest SCHED_DEADLINE runtime the kernel takes: 2^DL_SCALE ns.
const DL_MIN_RUNTIME: u64 = 1 << 10;

/// An error naming the config field.
pub(super) fn invalid(field: &str, msg: impl std::fmt::Display) -> ProcessError {
    ProcessError::Invalid(format!("{field}: {msg}"))
}

/// The names of a (name, value, ...) table, for "expected one of" messages.
pub(super) fn names<T, U>(table: &[(&str, T, U)]) -> String {
    table
        .iter()
        .map(|(n, _, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The OR of the bits `table` gives the flags `items` (every flag type's value is in its
/// table).
pub(super) fn or_bits<'a, T, B>(table: &[(&str, T, B)], items: impl IntoIterator<Item = &'a T>) -> B
where
    T: PartialEq + 'a,
    B: Copy + Default + std::ops::BitOr<Output = B>,
{
    items.into_iter().fold(B::default(), |acc, f| {
        let (_, _, bit) = table
            .iter()
            .find(|(_, flag, _)| flag == f)
            .expect("every flag is in the table");
        acc | *bit
    })
}

/// The scheduling of the user process, prepared for the syscalls.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchedulingPlan {
    /// process.scheduler, with its policy's name for messages.
    pub scheduler: Option<(&'static str, SchedAttr)>,
    /// process.ioPriority as ioprio_set takes it (`class << 13 | level`), with the class name.
    pub io_priority: Option<(&'static str, u16)>,
    /// The container's cgroup limits its CPUs (linux.resources.cpu.cpus): the kernel then
    /// refuses SCHED_DEADLINE, whose tasks must be allowed every CPU (sched_setattr(2)).
    pub cpus_limited: bool,
}

impl SchedulingPlan {
    /// Check `process.scheduler` and `process.ioPriority`. No side effects.
    pub fn from_spec(process: &Process) -> Result<SchedulingPlan, ProcessError> {
        Ok(SchedulingPlan {
            scheduler: process.scheduler().as_ref().map(sched_attr).transpose()?,
            io_priority: process.io_priority().map(io_priority).transpose()?,
            cpus_limited: false,
        })
    }

    /// Apply both to the calling process (its children inherit them). Called while the process
    /// still has CAP_SYS_NICE and before any seccomp filter, which may not allow these calls.
    pub fn apply(&self) -> Result<(), ProcessError> {
        if let Some((name, attr)) = &self.scheduler {
            crate::sys::sched::sched_setattr(attr).map_err(|source| {
                let what = format!("process.scheduler: sched_setattr({name})");
                if source == nix::Error::EPERM && self.cpus_limited {
                    // runc's words, which its users know.
                    ProcessError::SysHint {
                        what,
                        source,
                        hint: "process scheduler can't be used together with AllowedCPUs \
                               (linux.resources.cpu.cpus): SCHED_DEADLINE tasks must be \
                               allowed every CPU",
                    }
                // SCHED_FIFO, SCHED_RR, SCHED_DEADLINE.
                } else if source == nix::Error::EPERM && matches!(attr.sched_policy, 1 | 2 | 6) {
                    ProcessError::SysHint {
                        what,
                        source,
                        hint: "a real-time policy needs CAP_SYS_NICE in the host's user \
                               namespace or RLIMIT_RTPRIO, and, where the kernel groups \
                               real-time tasks, real-time time in the container's cgroup: \
                               linux.resources.cpu.realtimeRuntime",
                    }
                } else {
                    ProcessError::Sys { what, source }
                }
            })?;
        }
        if let Some((class, ioprio)) = self.io_priority {
            crate::sys::sched::ioprio_set_self(ioprio).map_err(|source| {
                let what = format!(
                    "process.ioPriority: ioprio_set({class}, priority {})",
                    ioprio & ((1 << IOPRIO_CLASS_SHIFT) - 1)
                );
                if source == nix::Error::EPERM && class == "IOPRIO_CLASS_RT" {
                    ProcessError::SysHint {
                        what,
                        source,
                        hint: "the real-time class needs CAP_SYS_NICE or CAP_SYS_ADMIN in the \
                               host's user namespace",
                    }
                } else {
                    ProcessError::Sys { what, source }
                }
            })?;
        }
        Ok(())
    }
}

fn sched_attr(s: &Scheduler) -> Result<(&'static str, SchedAttr), ProcessError> {
    let policy = *s.policy();
    let (name, _, number) = POLICIES
        .iter()
        .find(|(_, p, _)| *p == policy)
        .copied()
        .expect("every policy is in the table");
    if policy == LinuxSchedulerPolicy::SchedIso {
        return Err(invalid(
            "process.scheduler.policy",
            "SCHED_ISO is only reserved in Linux's headers: no mainline kernel implements it",
        ));
    }
    let nice = s.nice().unwrap_or(0);
    if !(-20..=19).contains(&nice) {
        return Err(invalid(
            "process.scheduler.nice",
            format!("{nice} is out of range (-20 to 19)"),
        ));
    }
    let priority = s.priority().unwrap_or(0);
    let realtime = matches!(
        policy,
        LinuxSchedulerPolicy::SchedFifo | LinuxSchedulerPolicy::SchedRr
    );
    if realtime && !(1..=99).contains(&priority) {
        return Err(invalid(
            "process.scheduler.priority",
            format!("{name} needs a priority from 1 to 99, not {priority}"),
        ));
    }
    if !realtime && priority != 0 {
        return Err(invalid(
            "process.scheduler.priority",
            format!("only SCHED_FIFO and SCHED_RR take a priority, not {name}"),
        ));
    }
    let runtime = s.runtime().unwrap_or(0);
    let deadline = s.deadline().unwrap_or(0);
    let period = s.period().unwrap_or(0);
    if policy == LinuxSchedulerPolicy::SchedDeadline {
        check_deadline(runtime, deadline, period)?;
    } else if runtime != 0 || deadline != 0 || period != 0 {
        return Err(invalid(
            "process.scheduler",
            format!("runtime, deadline and period are for SCHED_DEADLINE only, not {name}"),
        ));
    }
    let flags = or_bits(&FLAGS, s.flags().iter().flatten());
    Ok((
        name,
        SchedAttr {
            size: SCHED_ATTR_SIZE,
            sched_policy: number,
            sched_flags: flags,
            sched_nice: nice,
            sched_priority: priority as u32,
            sched_runtime: runtime,
            sched_deadline: deadline,
            sched_period: period,
            sched_util_min: 0,
            sched_util_max: 0,
        },
    ))
}

/// The kernel's rules for SCHED_DEADLINE parameters (sched(7)): runtime <= deadline <= period
/// (a period of 0 means the deadline), a runtime of at least 1024 ns, values below 2^63.
fn check_deadline(runtime: u64, deadline: u64, period: u64) -> Result<(), ProcessError> {
    if runtime < DL_MIN_RUNTIME {
        return Err(invalid(
            "process.scheduler.runtime",
            format!(
                "SCHED_DEADLINE needs a runtime of at least {DL_MIN_RUNTIME} ns, not {runtime}"
            ),
        ));
    }
    if deadline == 0 {
        return Err(invalid(
            "process.scheduler.deadline",
            "SCHED_DEADLINE needs a deadline",
        ));
    }
    if runtime > deadline {
        return Err(invalid(
            "process.scheduler.runtime",
            format!("{runtime} ns is longer than the deadline ({deadline} ns)"),
        ));
    }
    if period != 0 && deadline > period {
        return Err(invalid(
            "process.scheduler.deadline",
            format!("{deadline} ns is longer than the period ({period} ns)"),
        ));
    }
    if deadline >= 1 << 63 || period >= 1 << 63 {
        return Err(invalid(
            "process.scheduler",
            "deadline and period must be below 2^63 ns",
        ));
    }
    Ok(())
}

fn io_priority(io: LinuxIOPriority) -> Result<(&'static str, u16), ProcessError> {
    let (name, _, class) = IO_CLASSES
        .iter()
        .find(|(_, c, _)| *c == io.class())
        .copied()
        .expect("every class is in the table");
    let level = io.priority();
    if !(0..=7).contains(&level) {
        return Err(invalid(
            "process.ioPriority.priority",
            format!("{level} is out of range (0 to 7)"),
        ));
    }
    Ok((name, class << IOPRIO_CLASS_SHIFT | level as u16))
}

/// The process an exec'd process runs as: without its own scheduler or I/O priority it gets
/// the container's, as with runc.
pub(crate) fn with_container_defaults<'a>(
    process: &'a Process,
    container: Option<&Process>,
) -> Cow<'a, Process> {
    let Some(container) = container else {
        return Cow::Borrowed(process);
    };
    let scheduler = process.scheduler().is_none() && container.scheduler().is_some();
    let io = process.io_priority().is_none() && container.io_priority().is_some();
    if !scheduler && !io {
        return Cow::Borrowed(process);
    }
    let mut p = process.clone();
    if scheduler {
        p.set_scheduler(container.scheduler().clone());
    }
    if io {
        p.set_io_priority(*container.io_priority());
    }
    Cow::Owned(p)
}

/// The serialized name oci-spec's type gives `flag`. For two flags it differs from the
/// runtime-spec's (`SCHED_RESET_ON_FORK`, `SCHED_FLAG_D_L_OVERRUN`).
fn type_name(flag: LinuxSchedulerFlag) -> String {
    match serde_json::to_value(flag) {
        Ok(Value::String(s)) => s,
        _ => String::new(),
    }
}

/// For a process object whose typed parse failed: name the field of an unknown policy, flag
/// or I/O class, and spell the flags the way the typed parse takes them. Returns whether it
/// changed anything (a retry may then succeed).
pub(crate) fn fix_json(process: &mut Value) -> Result<bool, String> {
    let mut changed = false;
    if let Some(s) = process.get_mut("scheduler") {
        if let Some(p) = s.get("policy").and_then(Value::as_str) {
            if !POLICIES.iter().any(|(n, _, _)| *n == p) {
                return Err(format!(
                    "process.scheduler.policy: unknown policy {p:?} (one of {})",
                    names(&POLICIES)
                ));
            }
        }
        if let Some(flags) = s.get_mut("flags").and_then(Value::as_array_mut) {
            for (i, f) in flags.iter_mut().enumerate() {
                let Some(given) = f.as_str() else { continue };
                let found = FLAGS
                    .iter()
                    .find(|(n, flag, _)| *n == given || type_name(*flag) == given);
                let Some((_, flag, _)) = found else {
                    return Err(format!(
                        "process.scheduler.flags[{i}]: unknown flag {given:?} (one of {})",
                        names(&FLAGS)
                    ));
                };
                let want = type_name(*flag);
                if want != given {
                    *f = Value::String(want);
                    changed = true;
                }
            }
        }
    }
    if let Some(c) = process
        .get("ioPriority")
        .and_then(|io| io.get("class"))
        .and_then(Value::as_str)
    {
        if !IO_CLASSES.iter().any(|(n, _, _)| *n == c) {
            return Err(format!(
                "process.ioPriority.class: unknown class {c:?} (one of {})",
                names(&IO_CLASSES)
            ));
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn process(extra: Value) -> Result<Process, String> {
        let mut v = json!({"cwd": "/", "user": {"uid": 0, "gid": 0}, "args": ["true"]});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let text = serde_json::to_vec(&v).unwrap();
        crate::bundle::parse_process(&text)
    }

    fn plan(extra: Value) -> Result<SchedulingPlan, String> {
        SchedulingPlan::from_spec(&process(extra)?).map_err(|e| e.to_string())
    }

    fn err(extra: Value) -> String {
        plan(extra).expect_err("must be refused")
    }

    #[test]
    fn batch_with_nice() {
        let p = plan(json!({"scheduler": {"policy": "SCHED_BATCH", "nice": 5}})).unwrap();
        let (name, attr) = p.scheduler.unwrap();
        assert_eq!(name, "SCHED_BATCH");
        assert_eq!(attr.sched_policy, 3);
        assert_eq!(attr.sched_nice, 5);
        assert_eq!(attr.sched_priority, 0);
        assert_eq!(attr.size, 56);
        assert_eq!(p.io_priority, None);
    }

    #[test]
    fn fifo_needs_a_priority_in_range() {
        let p = plan(json!({"scheduler": {"policy": "SCHED_FIFO", "priority": 10}})).unwrap();
        assert_eq!(p.scheduler.unwrap().1.sched_priority, 10);
        let e = err(json!({"scheduler": {"policy": "SCHED_FIFO", "priority": 200}}));
        assert!(
            e.contains("process.scheduler.priority") && e.contains("200"),
            "{e}"
        );
        let e = err(json!({"scheduler": {"policy": "SCHED_RR"}}));
        assert!(e.contains("process.scheduler.priority"), "{e}");
    }

    #[test]
    fn priority_only_for_realtime_policies() {
        let e = err(json!({"scheduler": {"policy": "SCHED_OTHER", "priority": 3}}));
        assert!(
            e.contains("process.scheduler.priority") && e.contains("SCHED_OTHER"),
            "{e}"
        );
    }

    #[test]
    fn nice_range() {
        assert!(plan(json!({"scheduler": {"policy": "SCHED_OTHER", "nice": -20}})).is_ok());
        let e = err(json!({"scheduler": {"policy": "SCHED_OTHER", "nice": 20}}));
        assert!(e.contains("process.scheduler.nice"), "{e}");
    }

    #[test]
    fn iso_is_refused_by_name() {
        let e = err(json!({"scheduler": {"policy": "SCHED_ISO"}}));
        assert!(
            e.contains("process.scheduler.policy") && e.contains("SCHED_ISO"),
            "{e}"
        );
    }

    #[test]
    fn unknown_policy_names_the_field() {
        let e = err(json!({"scheduler": {"policy": "SCHED_FAST"}}));
        assert!(
            e.contains("process.scheduler.policy") && e.contains("SCHED_FAST"),
            "{e}"
        );
    }

    #[test]
    fn deadline_parameters() {
        let ok = json!({"scheduler": {"policy": "SCHED_DEADLINE",
            "runtime": 10_000_000u64, "deadline": 30_000_000u64, "period": 30_000_000u64}});
        let (_, attr) = plan(ok).unwrap().scheduler.unwrap();
        assert_eq!(
            (
                attr.sched_policy,
                attr.sched_runtime,
                attr.sched_deadline,
                attr.sched_period
            ),
            (6, 10_000_000, 30_000_000, 30_000_000)
        );
        let e = err(
            json!({"scheduler": {"policy": "SCHED_DEADLINE", "runtime": 100, "deadline": 1000}}),
        );
        assert!(e.contains("process.scheduler.runtime"), "{e}");
        let e = err(json!({"scheduler": {"policy": "SCHED_DEADLINE", "runtime": 5000}}));
        assert!(e.contains("process.scheduler.deadline"), "{e}");
        let e = err(
            json!({"scheduler": {"policy": "SCHED_DEADLINE", "runtime": 5000, "deadline": 4000}}),
        );
        assert!(e.contains("process.scheduler.runtime"), "{e}");
        let e = err(
            json!({"scheduler": {"policy": "SCHED_DEADLINE", "runtime": 5000, "deadline": 9000, "period": 8000}}),
        );
        assert!(e.contains("process.scheduler.deadline"), "{e}");
        let e = err(json!({"scheduler": {"policy": "SCHED_OTHER", "runtime": 5000}}));
        assert!(e.contains("SCHED_DEADLINE only"), "{e}");
    }

    #[test]
    fn flags_as_the_runtime_spec_spells_them() {
        let p = plan(json!({"scheduler": {"policy": "SCHED_FIFO", "priority": 1,
            "flags": ["SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_DL_OVERRUN", "SCHED_FLAG_KEEP_PARAMS"]}}))
        .unwrap();
        assert_eq!(p.scheduler.unwrap().1.sched_flags, 0x01 | 0x04 | 0x10);
        let e = err(json!({"scheduler": {"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_BOGUS"]}}));
        assert!(
            e.contains("process.scheduler.flags[0]") && e.contains("SCHED_FLAG_BOGUS"),
            "{e}"
        );
    }

    #[test]
    fn io_priority() {
        let p = plan(json!({"ioPriority": {"class": "IOPRIO_CLASS_IDLE", "priority": 0}})).unwrap();
        assert_eq!(p.io_priority, Some(("IOPRIO_CLASS_IDLE", 3 << 13)));
        let p = plan(json!({"ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 6}})).unwrap();
        assert_eq!(p.io_priority, Some(("IOPRIO_CLASS_BE", 2 << 13 | 6)));
        let e = err(json!({"ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 8}}));
        assert!(e.contains("process.ioPriority.priority"), "{e}");
        let e = err(json!({"ioPriority": {"class": "IOPRIO_CLASS_BOGUS", "priority": 1}}));
        assert!(
            e.contains("process.ioPriority.class") && e.contains("IOPRIO_CLASS_BOGUS"),
            "{e}"
        );
    }

    #[test]
    fn exec_inherits_the_containers_settings() {
        let container =
            process(json!({"scheduler": {"policy": "SCHED_IDLE"}, "ioPriority": {"class": "IOPRIO_CLASS_IDLE", "priority": 0}}))
                .unwrap();
        let own = process(json!({"scheduler": {"policy": "SCHED_BATCH"}})).unwrap();
        let merged = with_container_defaults(&own, Some(&container));
        assert_eq!(
            *merged.scheduler().as_ref().unwrap().policy(),
            LinuxSchedulerPolicy::SchedBatch
        );
        assert_eq!(merged.io_priority(), container.io_priority());
        let bare = process(json!({})).unwrap();
        assert!(matches!(
            with_container_defaults(&bare, None),
            Cow::Borrowed(_)
        ));
    }
}
