//! The cgroup of a rootless container (runc's `--rootless`): made only in the hierarchies
//! delegated to the caller, or none at all.
//!
//! A user who is not root owns no cgroup unless one was delegated to it (a cgroup v2 subtree
//! whose directory and `cgroup.procs` it may write, as systemd's user manager gives). The
//! container's cgroup is then made in the delegated hierarchies only, and nothing is written
//! above the delegated directory. Where nothing is delegated the container runs without a
//! cgroup of its own, as runc does, and a config whose `linux.resources` asks for a limit, or
//! whose `linux.cgroupsPath` names a cgroup, is refused, naming them: they could not be applied.

use std::path::Path;

use oci_spec::runtime::LinuxResources;

use super::{CgroupConfig, CgroupError, CgroupManager, FsCgroup};

/// What pause, resume and update say of a container without a cgroup (events report empty
/// stats, as runc's do).
pub const NO_CGROUP: &str = "the container has no cgroup: it is rootless, and no cgroup is \
     delegated to its user (pause and resume need a delegated cgroup v2, whose cgroup.freeze \
     is the freezer; update needs the controllers)";

/// Whether `dir` may be written by this process (`access(W_OK)`: the kernel's own answer,
/// owner, mode and capabilities included).
pub(super) fn writable(dir: &Path) -> bool {
    nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK).is_ok()
}

/// A rootless container's cgroup config: with the systemd driver, its unit is the user's own
/// systemd manager's (the system's makes no units for an unprivileged user), as runc does.
pub fn own(mut cfg: CgroupConfig) -> CgroupConfig {
    cfg.systemd_user = cfg.systemd;
    cfg
}

/// The manager of a rootless container's cgroup at `cfg`: the hierarchies delegated to the
/// caller, or `None` when there are none. With the systemd driver, a unit of the user's own
/// systemd manager (on the session bus), in the subtree systemd delegates to it: an error
/// naming the bus when that manager cannot be reached.
pub fn delegated_manager(
    cfg: &CgroupConfig,
) -> Result<Option<Box<dyn CgroupManager>>, CgroupError> {
    if cfg.systemd {
        return super::manager(&own(cfg.clone())).map(Some);
    }
    let fs = FsCgroup::new(&super::clean_fs_path(&cfg.path)?)?;
    Ok(fs
        .delegated_only()
        .map(|fs| Box::new(fs) as Box<dyn CgroupManager>))
}

/// Check, before anything is made, that a rootless container with no delegated cgroup asks
/// for no limit; the error names every limit asked for. The device rules are not limits a
/// rootless container can have (the devices controller needs root, in v1 and v2 alike), and
/// runc leaves them out: so does casulo, with a debug line.
pub fn check_without_cgroup(resources: Option<&LinuxResources>) -> Result<(), CgroupError> {
    let asked = requested(resources);
    if asked.is_empty() {
        tracing::debug!(
            "rootless: no cgroup is delegated to uid {}: the container runs without a cgroup \
             of its own, and without cgroup limits",
            nix::unistd::geteuid()
        );
        return Ok(());
    }
    Err(CgroupError::Unsupported {
        resource: asked.join(", "),
        reason: format!(
            "rootless, and no cgroup is delegated to uid {} (a cgroup v2 directory whose \
             cgroup.procs it may write): the limits cannot be applied; remove them from \
             config.json, or run where a cgroup is delegated",
            nix::unistd::geteuid()
        ),
    })
}

/// The error for a rootless container whose config names a cgroup (`linux.cgroupsPath`) that
/// cannot be made or joined, nothing being delegated to the caller: as runc, the cgroup the
/// config asks for is never silently left out (only the default one is).
pub fn not_delegated(path: &str) -> CgroupError {
    CgroupError::Failed {
        path: path.to_string(),
        msg: format!(
            "linux.cgroupsPath asks for it, and uid {} may not create or join it (permission \
             denied: rootless, and no cgroup is delegated to it, i.e. no cgroup v2 directory \
             whose cgroup.procs it may write); leave linux.cgroupsPath out to run without a \
             cgroup",
            nix::unistd::geteuid()
        ),
    }
}

/// Every limit `resources` sets (`linux.resources.memory.limit`, ...), the device rules left
/// out. A field set to null, an empty list or an empty object sets nothing.
pub(crate) fn requested(resources: Option<&LinuxResources>) -> Vec<String> {
    let Some(r) = resources else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let value = serde_json::to_value(r).unwrap_or_default();
    if let Some(map) = value.as_object() {
        for (k, v) in map {
            if k != "devices" {
                leaves(&format!("linux.resources.{k}"), v, &mut out);
            }
        }
    }
    out
}

fn leaves(path: &str, v: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value;
    match v {
        Value::Null => {}
        Value::Object(m) => m
            .iter()
            .for_each(|(k, v)| leaves(&format!("{path}.{k}"), v, out)),
        Value::Array(a) if a.is_empty() => {}
        _ => out.push(path.to_string()),
    }
}

/// The device rules left out of a rootless container's resources (see
/// [`check_without_cgroup`]).
pub fn without_devices(mut resources: LinuxResources) -> LinuxResources {
    if resources.devices().is_some() {
        tracing::debug!("rootless: the device cgroup rules are not applied (they need root)");
        resources.set_devices(None);
    }
    resources
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rootless_requested_names_every_limit_but_devices() {
        let r: LinuxResources = serde_json::from_str(
            r#"{"memory":{"limit":1048576},"pids":{"limit":5},"cpu":{},
                "devices":[{"allow":false,"access":"rwm"}],"hugepageLimits":[],
                "unified":{"memory.high":"1M"}}"#,
        )
        .unwrap();
        let mut got = requested(Some(&r));
        got.sort();
        assert_eq!(
            got,
            [
                "linux.resources.memory.limit",
                "linux.resources.pids.limit",
                "linux.resources.unified.memory.high"
            ]
        );
        assert!(requested(None).is_empty());
        let only_devices: LinuxResources =
            serde_json::from_str(r#"{"devices":[{"allow":false,"access":"rwm"}]}"#).unwrap();
        assert!(requested(Some(&only_devices)).is_empty());
        assert!(check_without_cgroup(Some(&only_devices)).is_ok());
        let e = check_without_cgroup(Some(&r)).unwrap_err().to_string();
        assert!(
            e.contains("linux.resources.memory.limit") && e.contains("rootless"),
            "{e}"
        );
    }
}
