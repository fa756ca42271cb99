//! The container's process as config.json describes it, prepared for execve: arguments,
//! environment, cwd, user, capabilities and rlimits (from [`crate::security`]), and the
//! process attributes that live in their own modules — CPU affinity, scheduler and I/O
//! priority, personality, NUMA memory policy. [`ProcessPlan`] is built before any side effect;
//! the lifecycle applies it (see `lifecycle::setup`).

pub mod affinity;
pub mod env;
pub mod mempolicy;
pub mod personality;
pub mod scheduling;

use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::lifecycle::text::{child_err, CPath, ChildError};

use crate::security::{CapsPlan, RlimitsPlan};
use mempolicy::MemPolicyPlan;
use personality::PersonalityPlan;
use scheduling::SchedulingPlan;

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("{what}: {source}")]
    Sys { what: String, source: nix::Error },
    /// A failed call whose errno has a likely cause worth naming.
    #[error("{what}: {source} ({hint})")]
    SysHint {
        what: String,
        source: nix::Error,
        hint: &'static str,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("container init: {0}")]
    Init(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}: not supported by this runtime")]
    Unsupported(String),
    #[error(transparent)]
    Channel(#[from] crate::lifecycle::protocol::ChannelError),
}

pub(crate) fn sys(what: impl Into<String>) -> impl FnOnce(nix::Error) -> ProcessError {
    let what = what.into();
    move |source| ProcessError::Sys { what, source }
}

/// The user process, prepared for execve.
#[derive(Debug, Clone)]
pub struct ProcessPlan {
    pub args: Vec<CString>,
    /// process.env checked and deduplicated (`env::prepare`).
    pub env: Vec<CString>,
    /// `HOME` is unset or empty in `env`: the child takes it from the container's
    /// `/etc/passwd` (`env::home_of`).
    pub needs_home: bool,
    /// PATH from the process env, to find `args[0]`.
    pub path_dirs: Vec<PathBuf>,
    pub cwd: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub umask: Option<u32>,
    pub terminal: bool,
    /// process.consoleSize: (rows, columns).
    pub console_size: Option<(u16, u16)>,
    pub no_new_privileges: bool,
    pub oom_score_adj: Option<i32>,
    pub caps: CapsPlan,
    pub rlimits: RlimitsPlan,
    /// The LSM exec label to write before the capabilities go (none where the LSM is off).
    pub label: Option<crate::security::label::LabelPlan>,
    /// The SELinux label of the init's new session keyring (none where SELinux is off).
    pub key_label: Option<crate::security::label::LabelPlan>,
    /// process.scheduler and process.ioPriority.
    pub scheduling: SchedulingPlan,
    /// linux.personality: the container's, not the process config's; [`ProcessPlan::from_spec`]
    /// leaves it empty and the caller sets it.
    pub personality: Option<PersonalityPlan>,
    /// linux.memoryPolicy: the container's, set by the caller like `personality`.
    pub memory_policy: Option<MemPolicyPlan>,
    /// process.execCPUAffinity, checked. Only `exec` applies it: the spec says it is not for
    /// the container's init.
    pub affinity: affinity::AffinityPlan,
    /// The process's user namespace denies setgroups(2) (a rootless container's single gid
    /// mapping): the groups are left as they are, see [`ProcessPlan::setgroups_denied`].
    pub setgroups_denied: bool,
    /// The process joins a user namespace made by someone else, whose setgroups(2) state only
    /// shows from inside it: the init reads /proc/self/setgroups there before the user switch.
    pub setgroups_from_joined_ns: bool,
}

impl ProcessPlan {
    /// The process will be in a user namespace that denies setgroups(2). Its groups are then
    /// left as the runtime's (as runc does for a rootless container); additional gids, which
    /// could not be set, are refused by name.
    pub fn setgroups_denied(&mut self) -> Result<(), ProcessError> {
        if !self.additional_gids.is_empty() {
            return Err(ProcessError::Invalid(format!(
                "process.user.additionalGids {:?}: the user namespace denies setgroups (a \
                 rootless container mapping its user's own gid alone); map more gids (with \
                 /etc/subgid ranges) to set them",
                self.additional_gids
            )));
        }
        self.setgroups_denied = true;
        Ok(())
    }
}

fn cstring(what: &str, s: &[u8]) -> Result<CString, ProcessError> {
    CString::new(s).map_err(|_| ProcessError::Invalid(format!("{what} contains a NUL byte")))
}

/// For a process object whose typed parse failed: accept what the reference runtime accepts
/// and the typed parse does not. A missing `user` is uid 0 and gid 0; capability names that
/// name no capability are an error naming them; scheduler and I/O priority values are
/// checked and respelled ([`scheduling::fix_json`]), and so are CPU lists
/// ([`affinity::fix_json`]). Returns whether it changed anything (a retry may then succeed).
pub(crate) fn fix_process_json(process: &mut serde_json::Value) -> Result<bool, String> {
    let mut changed = scheduling::fix_json(process)?;
    changed |= affinity::fix_json(process)?;
    if let Some(obj) = process.as_object_mut() {
        if !obj.contains_key("user") {
            obj.insert("user".into(), serde_json::json!({}));
            changed = true;
        }
    }
    if let Some(caps) = process.get_mut("capabilities") {
        // The runtime-spec: a value that maps to no kernel interface MUST be an error
        // (runtime-tools' process_capabilities_fail checks it). runc leaves such names out
        // with a warning; the spec wins. Capabilities this kernel lacks are another matter:
        // they have a number, and are left out with a warning (CapsPlan).
        let unknown = crate::security::drop_unknown_capabilities(caps);
        if !unknown.is_empty() {
            return Err(format!(
                "process.capabilities: unknown capabilities [{}]",
                unknown.join(" ")
            ));
        }
    }
    Ok(changed)
}

impl ProcessPlan {
    /// Prepare the user process of `process` for execve. `console_socket` says whether a
    /// console socket was given (required exactly when `process.terminal` is set).
    pub fn from_spec(
        process: &oci_spec::runtime::Process,
        console_socket: bool,
    ) -> Result<ProcessPlan, crate::error::Cause> {
        let args = process
            .args()
            .iter()
            .flatten()
            .map(|a| cstring("process.args", a.as_bytes()))
            .collect::<Result<Vec<_>, _>>()?;
        let env_strings: Vec<String> = process.env().clone().unwrap_or_default();
        let prepared = env::prepare(&env_strings)?;
        let path_dirs = env_strings
            .iter()
            .rev()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .split(':')
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .collect();
        let user = process.user();
        if process.terminal().unwrap_or(false) && !console_socket {
            return Err(ProcessError::Invalid(
                "process.terminal is true but no console socket was given".into(),
            )
            .into());
        }
        if !process.terminal().unwrap_or(false) && console_socket {
            return Err(ProcessError::Invalid(
                "a console socket was given but process.terminal is false".into(),
            )
            .into());
        }
        if args.is_empty() {
            return Err(ProcessError::Invalid(
                "process.args: must name at least the executable".into(),
            )
            .into());
        }
        if !process.cwd().is_absolute() {
            return Err(ProcessError::Invalid(format!(
                "process.cwd: {} is not absolute",
                process.cwd().display()
            ))
            .into());
        }
        let plan = ProcessPlan {
            args,
            env: prepared.env,
            needs_home: prepared.needs_home,
            path_dirs,
            cwd: process.cwd().clone(),
            uid: user.uid(),
            gid: user.gid(),
            additional_gids: user.additional_gids().clone().unwrap_or_default(),
            umask: user.umask(),
            terminal: process.terminal().unwrap_or(false),
            console_size: process.console_size().as_ref().map(|b| {
                (
                    b.height().min(u16::MAX as u64) as u16,
                    b.width().min(u16::MAX as u64) as u16,
                )
            }),
            no_new_privileges: process.no_new_privileges().unwrap_or(false),
            oom_score_adj: process.oom_score_adj(),
            caps: CapsPlan::from_spec(process.capabilities().as_ref())?,
            rlimits: RlimitsPlan::from_spec(process.rlimits().as_deref().unwrap_or(&[]))?,
            label: crate::security::label::exec_label(
                crate::security::label::HostLsm::probe(),
                process.selinux_label().as_deref(),
                process.apparmor_profile().as_deref(),
            )?,
            key_label: crate::security::label::key_label(
                crate::security::label::HostLsm::probe(),
                process.selinux_label().as_deref(),
            ),
            scheduling: SchedulingPlan::from_spec(process)?,
            setgroups_denied: false,
            setgroups_from_joined_ns: false,
            personality: None,
            memory_policy: None,
            affinity: affinity::AffinityPlan::from_spec(process.exec_cpu_affinity().as_ref())?,
        };
        Ok(plan)
    }
}

/// The longest executable path the init looks up (PATH_MAX).
pub(crate) const EXE_MAX: usize = 4096;

/// Find the executable the way execvp does, but with the container's PATH, inside the
/// container (called after pivot_root). The errors read as runc's, which engines match on to
/// choose their exit status: a name with a `/` that does not exist is a "no such file or
/// directory" (podman: 127), one that is not an executable file is a "permission denied" (126),
/// a name found in no PATH directory is "executable file not found in $PATH" (127). The init
/// calls it: the result and the error are fixed buffers, nothing is allocated.
#[allow(clippy::result_large_err)]
pub(crate) fn find_executable(
    arg0: &CString,
    path_dirs: &[PathBuf],
) -> Result<CPath<EXE_MAX>, ChildError> {
    let name = std::path::Path::new(std::ffi::OsStr::from_bytes(arg0.as_bytes()));
    let executable = |c: &CStr| -> nix::Result<bool> {
        use nix::sys::stat::SFlag;
        let st = nix::sys::stat::stat(c)?;
        let is_file = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG;
        Ok(is_file && st.st_mode & 0o111 != 0)
    };
    if arg0.as_bytes().contains(&b'/') {
        let path = CPath::concat(&[arg0.as_bytes()])
            .ok_or_else(|| child_err!("exec: {name:?}: file name too long"))?;
        return match executable(path.as_cstr()) {
            Ok(true) => Ok(path),
            Ok(false) => Err(child_err!("exec: {name:?}: permission denied")),
            Err(e) => {
                let mut text = [0u8; 64];
                let why = crate::sys::errno_text(e, &mut text);
                Err(child_err!(
                    "exec: {name:?}: stat {}: {}",
                    name.display(),
                    String::from_utf8_lossy(why)
                ))
            }
        };
    }
    for dir in path_dirs {
        // As Path::join: an empty entry is the cwd, a trailing slash is not doubled.
        let d = dir.as_os_str().as_bytes();
        let d = d.strip_suffix(b"/").unwrap_or(d);
        let found = match d {
            [] if !dir.as_os_str().is_empty() => CPath::concat(&[b"/", arg0.as_bytes()]),
            [] => CPath::concat(&[arg0.as_bytes()]),
            d => CPath::concat(&[d, b"/", arg0.as_bytes()]),
        };
        let Some(c) = found else {
            continue;
        };
        if let Ok(true) = executable(c.as_cstr()) {
            return Ok(c);
        }
    }
    Err(child_err!(
        "exec: {name:?}: executable file not found in $PATH"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(json: &str) -> Result<ProcessPlan, String> {
        let p: oci_spec::runtime::Process = serde_json::from_str(json).unwrap();
        ProcessPlan::from_spec(&p, false).map_err(|e| e.to_string())
    }

    #[test]
    fn the_process_is_checked_where_it_is_prepared() {
        let e = plan(r#"{"cwd":"x","args":["sh"],"user":{"uid":0,"gid":0}}"#).unwrap_err();
        assert!(e.contains("process.cwd: x is not absolute"), "{e}");
        let e = plan(r#"{"cwd":"/","args":[],"user":{"uid":0,"gid":0}}"#).unwrap_err();
        assert!(
            e.contains("process.args: must name at least the executable"),
            "{e}"
        );
        let e =
            plan(r#"{"cwd":"/","args":["sh"],"env":["=x"],"user":{"uid":0,"gid":0}}"#).unwrap_err();
        assert!(e.contains("name cannot be empty"), "{e}");
        assert!(plan(r#"{"cwd":"/","args":["sh"],"user":{"uid":0,"gid":0}}"#).is_ok());
    }
}
