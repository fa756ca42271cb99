//! Capabilities: the five sets of `process.capabilities`, as kernel bitmasks.

use crate::sys::security::{capset, prctl3 as prctl};
use std::collections::HashSet;

use oci_spec::runtime::{Capability, LinuxCapabilities};

use super::SecurityError;

/// Where the kernel says which capability number is its last.
const CAP_LAST_CAP_PATH: &str = "/proc/sys/kernel/cap_last_cap";

/// The five capability sets, parsed and checked, as bitmasks (bit n = capability n).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapsPlan {
    bounding: u64,
    effective: u64,
    permitted: u64,
    inheritable: u64,
    /// The ambient capabilities that can be raised (also in permitted and inheritable).
    ambient: u64,
    /// Ambient capabilities the config lists but that the kernel would refuse to raise
    /// because they are missing from permitted or inheritable. Like runc, these are skipped
    /// rather than failing the container; see [`CapsPlan::ignored_ambient`].
    ambient_ignored: u64,
}

impl CapsPlan {
    /// Parse the spec's capability sets. `None` means every set is empty (all capabilities
    /// dropped), as runc does. A capability this kernel does not know (numbered above
    /// `/proc/sys/kernel/cap_last_cap`) is left out with a warning naming it, as runc does
    /// (a config written for a newer kernel still runs); an effective set that is not a
    /// subset of the permitted set is an error (the kernel would refuse it with EPERM).
    pub fn from_spec(caps: Option<&LinuxCapabilities>) -> Result<Self, SecurityError> {
        let Some(caps) = caps else {
            return Ok(Self::default());
        };
        let last_cap = read_last_cap()?;
        let mut unavailable = 0u64;
        let mut set = |set: Option<&HashSet<Capability>>| {
            let (mask, beyond) = set.map_or((0, 0), |s| mask_of(s, last_cap));
            unavailable |= beyond;
            mask
        };
        let bounding = set(caps.bounding().as_ref());
        let effective = set(caps.effective().as_ref());
        let permitted = set(caps.permitted().as_ref());
        let inheritable = set(caps.inheritable().as_ref());
        let ambient = set(caps.ambient().as_ref());
        if unavailable != 0 {
            warn_ignored(names_of(unavailable));
        }
        let plan = Self::from_masks(bounding, effective, permitted, inheritable, ambient)?;
        for cap in plan.ignored_ambient() {
            // The kernel would refuse to raise it (EPERM); as with runc, the process runs
            // without it, and the user is told so in runc's words.
            tracing::warn!(
                "can't raise ambient capability {cap}: operation not permitted \
                 (it is not in both the permitted and the inheritable set)"
            );
        }
        Ok(plan)
    }

    /// Build a plan from kernel bitmasks (bit n = capability n), with the same checks as
    /// [`CapsPlan::from_spec`] except the kernel's last capability.
    pub fn from_masks(
        bounding: u64,
        effective: u64,
        permitted: u64,
        inheritable: u64,
        ambient: u64,
    ) -> Result<Self, SecurityError> {
        let extra = effective & !permitted;
        if extra != 0 {
            return Err(SecurityError::Invalid {
                what: "process.capabilities.effective".into(),
                msg: format!(
                    "{} not in the permitted set; the kernel refuses an effective capability \
                     that is not permitted",
                    names_of(extra).join(", ")
                ),
            });
        }
        let raisable = permitted & inheritable;
        Ok(CapsPlan {
            bounding,
            effective,
            permitted,
            inheritable,
            ambient: ambient & raisable,
            ambient_ignored: ambient & !raisable,
        })
    }

    /// The bounding set as a bitmask.
    pub fn bounding(&self) -> u64 {
        self.bounding
    }
    /// The effective set as a bitmask.
    pub fn effective(&self) -> u64 {
        self.effective
    }
    /// The permitted set as a bitmask.
    pub fn permitted(&self) -> u64 {
        self.permitted
    }
    /// The inheritable set as a bitmask.
    pub fn inheritable(&self) -> u64 {
        self.inheritable
    }
    /// The ambient capabilities that `apply` raises, as a bitmask.
    pub fn ambient(&self) -> u64 {
        self.ambient
    }

    /// Names of ambient capabilities the config lists but that `apply` will not raise
    /// because they are not both permitted and inheritable (the kernel refuses them; runc
    /// ignores that refusal). Meant for a warning before the fork.
    pub fn ignored_ambient(&self) -> Vec<&'static str> {
        names_of(self.ambient_ignored)
    }

    /// Drop from the bounding set every capability it does not list. Call before the user
    /// switch: PR_CAPBSET_DROP needs CAP_SETPCAP in the effective set.
    ///
    /// Walks capability numbers upwards until the kernel answers EINVAL (past its last
    /// capability), so it needs no prepared knowledge of the kernel and also works for a
    /// default (all-empty) plan.
    pub fn drop_bounding(&self) -> Result<(), SecurityError> {
        for cap in 0..64u8 {
            if self.bounding & (1 << cap) != 0 {
                continue;
            }
            match prctl(libc::PR_CAPBSET_DROP, cap.into(), 0) {
                Ok(_) => {}
                Err(nix::Error::EINVAL) => break,
                Err(errno) => {
                    return Err(SecurityError::ApplyCap {
                        step: "drop from bounding set (PR_CAPBSET_DROP)",
                        cap,
                        errno,
                    })
                }
            }
        }
        Ok(())
    }

    /// Set effective, permitted and inheritable exactly (one capset), then the ambient set
    /// (clear all, raise each). Call after the user switch.
    ///
    /// Ambient: like runc, a capability the kernel refuses to raise is skipped, not an
    /// error; those the config makes unraisable are known before the fork
    /// ([`CapsPlan::ignored_ambient`]). EINVAL from clearing (a kernel without ambient
    /// capabilities) is ignored too, as runc does.
    pub fn apply(&self) -> Result<(), SecurityError> {
        capset(self.effective, self.permitted, self.inheritable).map_err(|errno| {
            SecurityError::Apply {
                step: "set effective/permitted/inheritable capabilities (capset)",
                errno,
            }
        })?;
        match prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as _, 0) {
            Ok(_) | Err(nix::Error::EINVAL) => {}
            Err(errno) => {
                return Err(SecurityError::Apply {
                    step: "clear ambient capabilities (PR_CAP_AMBIENT_CLEAR_ALL)",
                    errno,
                })
            }
        }
        for cap in 0..64u8 {
            if self.ambient & (1 << cap) != 0 {
                // Errors deliberately ignored, matching runc (see above).
                let _ = prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE as _,
                    cap.into(),
                );
            }
        }
        Ok(())
    }
}

/// The names of the capabilities this kernel knows, in number order (what `from_spec` accepts).
pub fn known_names() -> Result<Vec<&'static str>, SecurityError> {
    let last = read_last_cap()? as usize;
    Ok(NAMES.iter().take(last + 1).copied().collect())
}

fn read_last_cap() -> Result<u8, SecurityError> {
    let text = std::fs::read_to_string(CAP_LAST_CAP_PATH).map_err(|source| SecurityError::Io {
        step: "capabilities: find the kernel's last capability",
        path: CAP_LAST_CAP_PATH,
        source,
    })?;
    text.trim()
        .parse::<u8>()
        .ok()
        .filter(|n| *n < 64)
        .ok_or_else(|| SecurityError::Invalid {
            what: CAP_LAST_CAP_PATH.into(),
            msg: format!("not a capability number: {:?}", text.trim()),
        })
}

/// The bitmask of `set`: (the capabilities this kernel has, those numbered above its last).
fn mask_of(set: &HashSet<Capability>, last_cap: u8) -> (u64, u64) {
    let (mut known, mut beyond) = (0u64, 0u64);
    for cap in set {
        let n = cap_number(*cap);
        if n > last_cap {
            beyond |= 1 << n;
        } else {
            known |= 1 << n;
        }
    }
    (known, beyond)
}

/// The warning for capabilities a config lists but that are left out: names no capability
/// has, or capabilities this kernel does not have. Worded as runc words it.
pub fn warn_ignored<S: AsRef<str>>(names: impl IntoIterator<Item = S>) {
    let list: Vec<String> = names.into_iter().map(|n| n.as_ref().to_owned()).collect();
    tracing::warn!(
        "ignoring unknown or unavailable capabilities: [{}]",
        list.join(" ")
    );
}

/// The five set names of `process.capabilities`.
const SETS: [&str; 5] = [
    "bounding",
    "effective",
    "inheritable",
    "permitted",
    "ambient",
];

/// In a `process.capabilities` JSON object, remove from the five sets every string that names
/// no capability (as the typed parse reads names: any case, `CAP_` prefix or not), so that a
/// config that lists one still parses, as with runc. Returns the removed names, sorted, for
/// the warning.
pub(crate) fn drop_unknown_json(caps: &mut serde_json::Value) -> Vec<String> {
    let mut unknown = Vec::new();
    for set in SETS {
        let Some(list) = caps.get_mut(set).and_then(serde_json::Value::as_array_mut) else {
            continue;
        };
        list.retain(|v| match v.as_str() {
            Some(name) if serde_json::from_value::<Capability>(v.clone()).is_err() => {
                unknown.push(name.to_owned());
                false
            }
            _ => true,
        });
    }
    unknown.sort();
    unknown.dedup();
    unknown
}

/// The kernel's number for a capability.
pub(crate) fn cap_number(cap: Capability) -> u8 {
    use caps::Capability as K;
    let k = match cap {
        Capability::AuditControl => K::CAP_AUDIT_CONTROL,
        Capability::AuditRead => K::CAP_AUDIT_READ,
        Capability::AuditWrite => K::CAP_AUDIT_WRITE,
        Capability::BlockSuspend => K::CAP_BLOCK_SUSPEND,
        Capability::Bpf => K::CAP_BPF,
        Capability::CheckpointRestore => K::CAP_CHECKPOINT_RESTORE,
        Capability::Chown => K::CAP_CHOWN,
        Capability::DacOverride => K::CAP_DAC_OVERRIDE,
        Capability::DacReadSearch => K::CAP_DAC_READ_SEARCH,
        Capability::Fowner => K::CAP_FOWNER,
        Capability::Fsetid => K::CAP_FSETID,
        Capability::IpcLock => K::CAP_IPC_LOCK,
        Capability::IpcOwner => K::CAP_IPC_OWNER,
        Capability::Kill => K::CAP_KILL,
        Capability::Lease => K::CAP_LEASE,
        Capability::LinuxImmutable => K::CAP_LINUX_IMMUTABLE,
        Capability::MacAdmin => K::CAP_MAC_ADMIN,
        Capability::MacOverride => K::CAP_MAC_OVERRIDE,
        Capability::Mknod => K::CAP_MKNOD,
        Capability::NetAdmin => K::CAP_NET_ADMIN,
        Capability::NetBindService => K::CAP_NET_BIND_SERVICE,
        Capability::NetBroadcast => K::CAP_NET_BROADCAST,
        Capability::NetRaw => K::CAP_NET_RAW,
        Capability::Perfmon => K::CAP_PERFMON,
        Capability::Setgid => K::CAP_SETGID,
        Capability::Setfcap => K::CAP_SETFCAP,
        Capability::Setpcap => K::CAP_SETPCAP,
        Capability::Setuid => K::CAP_SETUID,
        Capability::SysAdmin => K::CAP_SYS_ADMIN,
        Capability::SysBoot => K::CAP_SYS_BOOT,
        Capability::SysChroot => K::CAP_SYS_CHROOT,
        Capability::SysModule => K::CAP_SYS_MODULE,
        Capability::SysNice => K::CAP_SYS_NICE,
        Capability::SysPacct => K::CAP_SYS_PACCT,
        Capability::SysPtrace => K::CAP_SYS_PTRACE,
        Capability::SysRawio => K::CAP_SYS_RAWIO,
        Capability::SysResource => K::CAP_SYS_RESOURCE,
        Capability::SysTime => K::CAP_SYS_TIME,
        Capability::SysTtyConfig => K::CAP_SYS_TTY_CONFIG,
        Capability::Syslog => K::CAP_SYSLOG,
        Capability::WakeAlarm => K::CAP_WAKE_ALARM,
    };
    k.index()
}

/// The kernel's capability names, by number (`include/uapi/linux/capability.h`).
const NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The name of capability number `n` ("CAP_SYS_ADMIN"). Allocation-free.
pub(crate) fn cap_name(n: u8) -> &'static str {
    NAMES
        .get(usize::from(n))
        .copied()
        .unwrap_or("a capability with no known name")
}

/// The names of the capabilities in `mask`, lowest number first.
pub(crate) fn names_of(mask: u64) -> Vec<&'static str> {
    (0..64u8)
        .filter(|n| mask & (1 << n) != 0)
        .map(cap_name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> LinuxCapabilities {
        serde_json::from_str(json).expect("test capabilities parse")
    }

    #[test]
    fn numbers_match_kernel_names() {
        // Every OCI capability maps to the kernel number whose name it carries.
        for name in NAMES {
            let cap: Capability =
                serde_json::from_value(serde_json::Value::from(name)).expect("known name");
            assert_eq!(cap_name(cap_number(cap)), name);
        }
    }

    #[test]
    fn none_means_all_empty() {
        let plan = CapsPlan::from_spec(None).unwrap();
        assert_eq!(plan, CapsPlan::default());
        assert_eq!(plan.bounding(), 0);
        assert_eq!(plan.permitted(), 0);
        assert_eq!(plan.ambient(), 0);
    }

    #[test]
    fn parses_all_five_sets() {
        let caps = spec(
            r#"{"bounding":["CAP_CHOWN","CAP_KILL","CAP_NET_RAW"],
                "effective":["CAP_KILL"],
                "permitted":["CAP_KILL","CAP_CHOWN"],
                "inheritable":["CAP_KILL","CAP_NET_RAW"],
                "ambient":["CAP_KILL"]}"#,
        );
        let plan = CapsPlan::from_spec(Some(&caps)).unwrap();
        assert_eq!(plan.bounding(), (1 << 0) | (1 << 5) | (1 << 13));
        assert_eq!(plan.effective(), 1 << 5);
        assert_eq!(plan.permitted(), (1 << 5) | 1);
        assert_eq!(plan.inheritable(), (1 << 5) | (1 << 13));
        assert_eq!(plan.ambient(), 1 << 5);
        assert!(plan.ignored_ambient().is_empty());
    }

    #[test]
    fn missing_sets_are_empty() {
        let caps = spec(r#"{"bounding":["CAP_SYS_ADMIN"]}"#);
        let plan = CapsPlan::from_spec(Some(&caps)).unwrap();
        assert_eq!(plan.bounding(), 1 << 21);
        assert_eq!(plan.effective() | plan.permitted() | plan.inheritable(), 0);
    }

    #[test]
    fn effective_outside_permitted_is_rejected() {
        let caps = spec(r#"{"effective":["CAP_SYS_ADMIN"],"permitted":["CAP_KILL"]}"#);
        let err = CapsPlan::from_spec(Some(&caps)).unwrap_err().to_string();
        assert!(err.contains("CAP_SYS_ADMIN"), "{err}");
        assert!(err.contains("process.capabilities.effective"), "{err}");
    }

    #[test]
    fn ambient_without_inheritable_is_ignored_like_runc() {
        let caps = spec(
            r#"{"permitted":["CAP_KILL","CAP_CHOWN"],"inheritable":["CAP_CHOWN"],
                "ambient":["CAP_KILL","CAP_CHOWN"]}"#,
        );
        let plan = CapsPlan::from_spec(Some(&caps)).unwrap();
        assert_eq!(plan.ambient(), 1);
        assert_eq!(plan.ignored_ambient(), vec!["CAP_KILL"]);
    }

    #[test]
    fn capability_unknown_to_kernel_is_left_out() {
        let mut set = HashSet::new();
        set.insert(Capability::CheckpointRestore);
        set.insert(Capability::Kill);
        // Pretend the kernel stops at CAP_BPF (39).
        assert_eq!(mask_of(&set, 39), (1 << 5, 1 << 40));
    }

    #[test]
    fn unknown_names_are_dropped_from_json() {
        let mut caps = serde_json::json!({
            "bounding": ["CAP_UNKNOWN", "CAP_KILL", "UNKNOWN_CAP", "kill"],
            "ambient": ["CAP_UNKNOWN"],
            "effective": []
        });
        assert_eq!(
            drop_unknown_json(&mut caps),
            vec!["CAP_UNKNOWN", "UNKNOWN_CAP"]
        );
        assert_eq!(
            caps,
            serde_json::json!({"bounding": ["CAP_KILL", "kill"], "ambient": [], "effective": []})
        );
        let parsed: LinuxCapabilities = serde_json::from_value(caps).unwrap();
        assert_eq!(
            CapsPlan::from_spec(Some(&parsed)).unwrap().bounding(),
            1 << 5
        );
    }

    #[test]
    fn names_of_lists_in_order() {
        assert_eq!(
            names_of((1 << 21) | (1 << 5)),
            vec!["CAP_KILL", "CAP_SYS_ADMIN"]
        );
        assert_eq!(cap_name(63), "a capability with no known name");
    }
}
