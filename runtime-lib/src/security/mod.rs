//! Security settings of the container process: capabilities, rlimits, user switch,
//! no_new_privs, seccomp. Plans are built from the spec before the clone (all parsing and
//! rejection happens there); the child only applies them.
use oci_spec::runtime::{LinuxCapabilities, LinuxSeccomp, PosixRlimit};

#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("{what}: {msg}")]
    Invalid { what: String, msg: String },
    #[error("{step}: {source}")]
    Sys { step: String, source: nix::Error },
}

/// The five capability sets, parsed and checked.
#[derive(Debug, Clone, Default)]
pub struct CapsPlan {}

impl CapsPlan {
    pub fn from_spec(caps: Option<&LinuxCapabilities>) -> Result<Self, SecurityError> {
        let _ = caps;
        unimplemented!("caps")
    }
    /// Drop from the bounding set every capability it does not list. Call before the user switch.
    pub fn drop_bounding(&self) -> Result<(), SecurityError> {
        unimplemented!("caps")
    }
    /// Set effective, permitted, inheritable and ambient. Call after the user switch.
    pub fn apply(&self) -> Result<(), SecurityError> {
        unimplemented!("caps")
    }
}

/// Parsed rlimits.
#[derive(Debug, Clone, Default)]
pub struct RlimitsPlan {}

impl RlimitsPlan {
    pub fn from_spec(rlimits: &[PosixRlimit]) -> Result<Self, SecurityError> {
        let _ = rlimits;
        unimplemented!("rlimits")
    }
    pub fn apply(&self) -> Result<(), SecurityError> {
        unimplemented!("rlimits")
    }
}

/// Switch to uid/gid/additional gids keeping capabilities (PR_SET_KEEPCAPS) so that
/// `CapsPlan::apply` can set them afterwards.
pub fn switch_user(uid: u32, gid: u32, additional_gids: &[u32], set_groups: bool) -> Result<(), SecurityError> {
    let _ = (uid, gid, additional_gids, set_groups);
    unimplemented!("user")
}

/// prctl(PR_SET_NO_NEW_PRIVS).
pub fn set_no_new_privs() -> Result<(), SecurityError> {
    unimplemented!("nnp")
}

/// A seccomp filter compiled to BPF before the clone.
#[derive(Debug, Clone, Default)]
pub struct SeccompPlan {}

impl SeccompPlan {
    pub fn from_spec(seccomp: &LinuxSeccomp) -> Result<Self, SecurityError> {
        let _ = seccomp;
        unimplemented!("seccomp")
    }
    pub fn load(&self) -> Result<(), SecurityError> {
        unimplemented!("seccomp")
    }
}
