//! cgroups: one interface over v1, hybrid, v2 and the systemd driver (through cgroups-rs).
use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup {path}: {msg}")]
    Failed { path: String, msg: String },
}

/// Where a container's cgroup lives; saved in state.json so that later commands find it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CgroupConfig {
    pub path: String,
    pub systemd: bool,
}

/// Resolve `linux.cgroupsPath` (or runc's default when absent) for container `id`.
pub fn resolve(cgroups_path: Option<&str>, id: &str, systemd: bool) -> Result<CgroupConfig, CgroupError> {
    let _ = (cgroups_path, id, systemd);
    unimplemented!("cgroups")
}

/// A container's cgroup.
pub trait CgroupManager {
    /// Create the cgroup (all hierarchies) and move `pid` into it.
    fn apply(&mut self, pid: i32) -> Result<(), CgroupError>;
    /// Write the resource limits.
    fn set(&mut self, resources: &LinuxResources) -> Result<(), CgroupError>;
    /// Every process in the cgroup.
    fn pids(&self) -> Result<Vec<i32>, CgroupError>;
    /// Remove the cgroup from every hierarchy (it must be empty). Succeeds if already gone.
    fn destroy(&mut self) -> Result<(), CgroupError>;
}

/// The manager for a resolved cgroup on this host's hierarchy (v1, hybrid or v2).
pub fn manager(cfg: &CgroupConfig) -> Result<Box<dyn CgroupManager>, CgroupError> {
    let _ = cfg;
    unimplemented!("cgroups")
}
