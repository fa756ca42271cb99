//! Linux security module labels: `process.selinuxLabel`, `process.apparmorProfile` and
//! `linux.mountLabel`.
//!
//! The exec label of a process is a write to its own `/proc/thread-self/attr/...` file right
//! before the capabilities are dropped; the kernel applies it at `execve`. The write goes through
//! the host's procfs opened (and checked) before the container could mount anything over it.
//! A mount label is the SELinux `context=` option of the filesystems the runtime mounts.
//!
//! Where the host has the LSM disabled, a label means nothing: like runc, the runtime then
//! ignores it and says so in a debug log line. Everything here is decided before the fork;
//! [`LabelPlan`] holds the exact file and bytes the child writes.
use std::path::{Path, PathBuf};

use super::SecurityError;

/// Which labelling LSMs the host runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HostLsm {
    pub selinux: bool,
    pub apparmor: bool,
    /// The kernel has the per-LSM `attr/apparmor/` directory (5.8 and later).
    pub apparmor_own_attr: bool,
}

impl HostLsm {
    /// The host's state: selinuxfs mounted with an `enforce` file and a policy loaded (a task's
    /// context reads `kernel` until then, and no label can be written), AppArmor's module
    /// parameter `enabled` set to `Y` with its securityfs directory. Read once per process:
    /// bundle validation, `features`, the mount and the process plans all ask.
    pub fn probe() -> HostLsm {
        static HOST: std::sync::OnceLock<HostLsm> = std::sync::OnceLock::new();
        *HOST.get_or_init(Self::read)
    }

    fn read() -> HostLsm {
        let apparmor = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|s| s.trim() == "Y")
            && Path::new("/sys/kernel/security/apparmor").is_dir();
        let policy_loaded = std::fs::read_to_string("/proc/self/attr/current")
            .is_ok_and(|c| !c.trim_end_matches(['\0', '\n']).eq("kernel"));
        HostLsm {
            selinux: Path::new("/sys/fs/selinux/enforce").exists() && policy_loaded,
            apparmor,
            apparmor_own_attr: Path::new("/proc/self/attr/apparmor").is_dir(),
        }
    }
}

/// One write of the child: `value` into `rel` below the host's /proc, for the config field
/// `field` (named in the error when the kernel refuses the label).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelPlan {
    pub field: &'static str,
    pub rel: PathBuf,
    pub value: String,
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

/// The exec label write for a process with these settings on `host`, or `None` when there is
/// nothing to apply. Asking for both an SELinux label and an AppArmor profile is fine (engines
/// fill both); only the enabled LSM's is used.
pub fn exec_label(
    host: HostLsm,
    selinux_label: Option<&str>,
    apparmor_profile: Option<&str>,
) -> Result<Option<LabelPlan>, SecurityError> {
    let invalid = |what: &str, msg: &str| SecurityError::Invalid {
        what: what.to_string(),
        msg: msg.to_string(),
    };
    let selinux_label = non_empty(selinux_label);
    let apparmor_profile = non_empty(apparmor_profile);
    if let Some(l) = selinux_label {
        if l.contains(['\n', '\0']) || l.split(':').count() < 3 {
            return Err(invalid(
                "process.selinuxLabel",
                "not an SELinux context (user:role:type[:level])",
            ));
        }
    }
    if let Some(p) = apparmor_profile {
        if p.contains(['\n', '\0']) {
            return Err(invalid(
                "process.apparmorProfile",
                "a profile name is one line",
            ));
        }
    }
    if let (Some(l), true) = (selinux_label, host.selinux) {
        return Ok(Some(LabelPlan {
            field: "process.selinuxLabel",
            rel: PathBuf::from("thread-self/attr/exec"),
            value: l.to_string(),
        }));
    }
    if let (Some(p), true) = (apparmor_profile, host.apparmor) {
        let rel = if host.apparmor_own_attr {
            "thread-self/attr/apparmor/exec"
        } else {
            "thread-self/attr/exec"
        };
        return Ok(Some(LabelPlan {
            field: "process.apparmorProfile",
            rel: PathBuf::from(rel),
            value: format!("exec {p}"),
        }));
    }
    if selinux_label.is_some() {
        tracing::debug!("process.selinuxLabel ignored: SELinux is not enabled on this host");
    }
    if apparmor_profile.is_some() {
        tracing::debug!("process.apparmorProfile ignored: AppArmor is not enabled on this host");
    }
    Ok(None)
}

/// The label of the keys the process creates (its new session keyring) under SELinux: the
/// process label, as runc gives it, so that the container's process can use its own keyring
/// under a policy that confines it. `None` without SELinux or without a label (the keyring
/// then gets the runtime's label). Written to the thread group leader's `attr/keycreate`.
pub fn key_label(host: HostLsm, selinux_label: Option<&str>) -> Option<LabelPlan> {
    let l = non_empty(selinux_label).filter(|_| host.selinux)?;
    Some(LabelPlan {
        field: "process.selinuxLabel",
        rel: PathBuf::from("self/attr/keycreate"),
        value: l.to_string(),
    })
}

/// Filesystems whose mounts take the SELinux `context=` option (the ones the runtime creates
/// for the container; binds and the kernel's own pseudo-filesystems keep their labels). Not
/// mqueue: the kernel refuses `context=` there (EINVAL), and runc mounts it without one.
const LABELLED_FS: &[&str] = &["tmpfs", "devpts", "shm"];

/// The mount data for a filesystem of type `fstype` with `data`, given `linux.mountLabel`:
/// `context="LABEL"` is added where SELinux is enabled, and data is returned unchanged
/// otherwise.
pub fn mount_data(host: HostLsm, fstype: &str, data: &str, mount_label: Option<&str>) -> String {
    let Some(label) = non_empty(mount_label) else {
        return data.to_string();
    };
    if !host.selinux || !LABELLED_FS.contains(&fstype) || data.contains("context=") {
        return data.to_string();
    }
    let ctx = format!("context=\"{label}\"");
    if data.is_empty() {
        ctx
    } else {
        format!("{data},{ctx}")
    }
}

/// Check `linux.mountLabel` before anything is created.
pub fn check_mount_label(host: HostLsm, mount_label: Option<&str>) -> Result<(), SecurityError> {
    let Some(label) = non_empty(mount_label) else {
        return Ok(());
    };
    if label.contains(['\n', '\0', '"']) || label.split(':').count() < 3 {
        return Err(SecurityError::Invalid {
            what: "linux.mountLabel".to_string(),
            msg: "not an SELinux context (user:role:type[:level])".to_string(),
        });
    }
    if !host.selinux {
        tracing::debug!("linux.mountLabel ignored: SELinux is not enabled on this host");
        return Ok(());
    }
    // The kernel checks a context against the loaded policy when it is written to selinuxfs'
    // `context` file: an unknown one is refused here, before anything exists, instead of
    // failing the first labelled mount with a bare EINVAL.
    match std::fs::write("/sys/fs/selinux/context", label) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Err(SecurityError::Invalid {
            what: "linux.mountLabel".to_string(),
            msg: format!("{label:?} is not a context of the loaded SELinux policy"),
        }),
        Err(e) => Err(SecurityError::Invalid {
            what: "linux.mountLabel".to_string(),
            msg: format!("checking {label:?} through /sys/fs/selinux/context: {e}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SE: HostLsm = HostLsm {
        selinux: true,
        apparmor: false,
        apparmor_own_attr: false,
    };
    const AA: HostLsm = HostLsm {
        selinux: false,
        apparmor: true,
        apparmor_own_attr: true,
    };
    const NONE: HostLsm = HostLsm {
        selinux: false,
        apparmor: false,
        apparmor_own_attr: false,
    };
    const LABEL: &str = "system_u:system_r:container_t:s0:c1,c2";

    #[test]
    fn selinux_exec_label_goes_to_attr_exec() {
        let plan = exec_label(SE, Some(LABEL), None).unwrap().unwrap();
        assert_eq!(plan.rel, Path::new("thread-self/attr/exec"));
        assert_eq!(plan.value, LABEL);
        // With both set, the enabled LSM's setting wins.
        let plan = exec_label(SE, Some(LABEL), Some("docker-default"))
            .unwrap()
            .unwrap();
        assert_eq!(plan.value, LABEL);
    }

    #[test]
    fn apparmor_profile_goes_to_its_own_attr_file() {
        let plan = exec_label(AA, None, Some("docker-default"))
            .unwrap()
            .unwrap();
        assert_eq!(plan.rel, Path::new("thread-self/attr/apparmor/exec"));
        assert_eq!(plan.value, "exec docker-default");
        let old = HostLsm {
            apparmor_own_attr: false,
            ..AA
        };
        let plan = exec_label(old, Some(LABEL), Some("p")).unwrap().unwrap();
        assert_eq!(plan.rel, Path::new("thread-self/attr/exec"));
        assert_eq!(plan.value, "exec p");
    }

    #[test]
    fn the_keyring_gets_the_selinux_label_only() {
        let plan = key_label(SE, Some(LABEL)).unwrap();
        assert_eq!(plan.rel, Path::new("self/attr/keycreate"));
        assert_eq!(plan.value, LABEL);
        assert_eq!(plan.field, "process.selinuxLabel");
        assert_eq!(key_label(AA, Some(LABEL)), None);
        assert_eq!(key_label(SE, Some("")), None);
        assert_eq!(key_label(SE, None), None);
    }

    #[test]
    fn labels_are_ignored_where_the_lsm_is_disabled() {
        assert_eq!(exec_label(NONE, Some(LABEL), Some("p")).unwrap(), None);
        assert_eq!(exec_label(AA, Some(LABEL), None).unwrap(), None);
        assert_eq!(exec_label(SE, None, Some("p")).unwrap(), None);
        assert_eq!(exec_label(SE, Some(""), None).unwrap(), None);
    }

    #[test]
    fn malformed_labels_are_rejected_everywhere() {
        for host in [SE, AA, NONE] {
            assert!(exec_label(host, Some("nocolons"), None).is_err());
            assert!(exec_label(host, Some("a:b:c\nd"), None).is_err());
            assert!(exec_label(host, None, Some("two\nlines")).is_err());
            assert!(check_mount_label(host, Some("a:b:c\",x")).is_err());
        }
        assert!(check_mount_label(NONE, Some(LABEL)).is_ok());
    }

    #[test]
    fn mount_label_becomes_the_context_option() {
        assert_eq!(
            mount_data(SE, "tmpfs", "mode=755", Some(LABEL)),
            format!("mode=755,context=\"{LABEL}\"")
        );
        assert_eq!(
            mount_data(SE, "devpts", "", Some(LABEL)),
            format!("context=\"{LABEL}\"")
        );
        assert_eq!(mount_data(SE, "mqueue", "", Some(LABEL)), "");
        // Not for binds, proc or sysfs; not twice; not without SELinux.
        assert_eq!(mount_data(SE, "proc", "", Some(LABEL)), "");
        assert_eq!(mount_data(SE, "bind", "", Some(LABEL)), "");
        assert_eq!(
            mount_data(SE, "tmpfs", "context=\"x:y:z\"", Some(LABEL)),
            "context=\"x:y:z\""
        );
        assert_eq!(
            mount_data(NONE, "tmpfs", "mode=755", Some(LABEL)),
            "mode=755"
        );
        assert_eq!(mount_data(SE, "tmpfs", "mode=755", None), "mode=755");
    }
}
