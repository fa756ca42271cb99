//! The process model, readable top to bottom:
//!
//! 1. [`InitPlan::build`] (runtime, before any side effect): the whole config turned into
//!    prepared data — namespace fds, mount plans, device list, capability masks, rlimits,
//!    C strings for execve. Everything unsupported or invalid is rejected here.
//! 2. [`parent::create`] (runtime): state dir, exec fifo, `fork` of the *stage* process,
//!    cgroup placement, id maps, prestart/createRuntime hooks, state.json, pid file.
//! 3. [`init`] (stage, then init): join namespaces, unshare new ones, fork the init where a
//!    pid or time namespace needs it (the stage then exits: one process remains), build the
//!    rootfs, pivot_root, apply the process config, report ready and block on the exec fifo.
//! 4. [`fifo::release`] (`start`): open the fifo, which lets the init `execve` the user
//!    program, and wait for the fifo to close.
//!
//! The runtime and the init talk over a SOCK_SEQPACKET socketpair ([`channel`]).

pub mod affinity;
pub mod channel;
pub mod env;
pub mod exec;
pub mod fifo;
pub mod foreground;
pub mod init;
pub mod mempolicy;
pub mod parent;
pub mod personality;
pub mod scheduling;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use oci_spec::runtime::{Hook, LinuxNamespaceType};

use crate::bundle::Bundle;
use crate::namespaces::NamespacePlan;
use crate::rootfs::RootfsPlan;
use crate::security::{CapsPlan, RlimitsPlan, SeccompPlan};
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
    Channel(#[from] channel::ChannelError),
}

pub(crate) fn sys(what: impl Into<String>) -> impl FnOnce(nix::Error) -> ProcessError {
    let what = what.into();
    move |source| ProcessError::Sys { what, source }
}

/// Options of `create` that do not come from config.json.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub preserve_fds: u32,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub systemd_cgroup: bool,
}

/// The user process, prepared for execve.
#[derive(Debug, Clone)]
pub struct ProcessPlan {
    pub args: Vec<CString>,
    /// process.env checked and deduplicated ([`env::prepare`]).
    pub env: Vec<CString>,
    /// `HOME` is unset or empty in `env`: the child takes it from the container's
    /// `/etc/passwd` ([`env::home_of`]).
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
}

/// Everything the init does, decided before the fork.
#[derive(Debug)]
pub struct InitPlan {
    pub id: String,
    pub ns: NamespacePlan,
    pub rootfs: RootfsPlan,
    pub process: ProcessPlan,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    /// (path under /proc/sys, value)
    pub sysctl: Vec<(PathBuf, String)>,
    pub seccomp: Option<SeccompPlan>,
    pub create_container_hooks: Vec<Hook>,
    pub start_container_hooks: Vec<Hook>,
    pub preserve_fds: u32,
    pub no_new_keyring: bool,
    /// linux.netDevices: moved by the runtime, not by the init.
    pub net_devices: Option<crate::netdev::NetDevPlan>,
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

/// The namespace a sysctl key belongs to, for the check that the container owns it.
fn sysctl_namespace(key: &str) -> Option<LinuxNamespaceType> {
    const IPC: [&str; 8] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        Some(LinuxNamespaceType::Ipc)
    } else if key.starts_with("net.") {
        Some(LinuxNamespaceType::Network)
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        Some(LinuxNamespaceType::Uts)
    } else {
        None
    }
}

impl ProcessPlan {
    /// Prepare the user process of `process` for execve. `console_socket` says whether a
    /// console socket was given (required exactly when `process.terminal` is set).
    pub fn from_spec(
        process: &oci_spec::runtime::Process,
        console_socket: bool,
    ) -> Result<ProcessPlan, crate::ErrorKind> {
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
            scheduling: SchedulingPlan::from_spec(process)?,
            personality: None,
            memory_policy: None,
            affinity: affinity::AffinityPlan::from_spec(process.exec_cpu_affinity().as_ref())?,
        };
        Ok(plan)
    }
}

impl InitPlan {
    /// Validate and prepare everything. No side effects.
    pub fn build(
        id: &str,
        bundle: &Bundle,
        opts: &CreateOptions,
    ) -> Result<InitPlan, crate::ErrorKind> {
        let spec = &bundle.spec;
        let process = spec
            .process()
            .as_ref()
            .ok_or_else(|| ProcessError::Invalid("config.json has no process".into()))?;
        let linux = spec.linux().as_ref();
        let ns = NamespacePlan::from_spec(linux)?;
        let mut rootfs = RootfsPlan::from_spec(spec, &bundle.dir, &bundle.rootfs, opts.no_pivot)?;
        rootfs.host_mount_ns = !ns.has(LinuxNamespaceType::Mount);

        let mut process_plan = ProcessPlan::from_spec(process, opts.console_socket.is_some())?;
        process_plan.personality = personality_plan(linux)?;
        process_plan.scheduling.cpus_limited = linux
            .and_then(|l| l.resources().as_ref())
            .and_then(|r| r.cpu().as_ref())
            .and_then(|c| c.cpus().as_deref())
            .is_some_and(|cpus| !cpus.trim().is_empty());
        process_plan.memory_policy = linux
            .and_then(|l| l.memory_policy().as_ref())
            .map(MemPolicyPlan::from_spec)
            .transpose()?;

        let mut sysctl = Vec::new();
        if let Some(map) = linux.and_then(|l| l.sysctl().as_ref()) {
            let mut keys: Vec<_> = map.iter().collect();
            keys.sort();
            for (key, value) in keys {
                if key.contains('/') || key.split('.').any(|p| p.is_empty() || p == "..") {
                    return Err(ProcessError::Invalid(format!(
                        "linux.sysctl: invalid key {key:?}"
                    ))
                    .into());
                }
                match sysctl_namespace(key) {
                    Some(t) if ns.has(t) => {}
                    Some(t) => {
                        return Err(ProcessError::Invalid(format!(
                            "linux.sysctl: {key} needs a {} namespace of the container's own",
                            crate::bundle::ns_name(t)
                        ))
                        .into())
                    }
                    None => {
                        return Err(ProcessError::Invalid(format!(
                            "linux.sysctl: {key} is not namespaced: it would change the host"
                        ))
                        .into())
                    }
                }
                sysctl.push((PathBuf::from(key.replace('.', "/")), value.clone()));
            }
        }
        if spec.hostname().as_ref().is_some_and(|h| !h.is_empty())
            && !ns.has(LinuxNamespaceType::Uts)
        {
            return Err(ProcessError::Invalid(
                "hostname needs a uts namespace of the container's own (new or joined)".into(),
            )
            .into());
        }
        if spec.domainname().as_ref().is_some_and(|h| !h.is_empty())
            && !ns.has(LinuxNamespaceType::Uts)
        {
            return Err(ProcessError::Invalid(
                "domainname needs a uts namespace of the container's own (new or joined)".into(),
            )
            .into());
        }
        let seccomp = match linux.and_then(|l| l.seccomp().as_ref()) {
            Some(s) => Some(SeccompPlan::from_spec(s)?),
            None => None,
        };
        let net_devices = crate::netdev::NetDevPlan::from_spec(linux, &ns)?;
        let hooks = spec.hooks().as_ref();
        Ok(InitPlan {
            id: id.to_string(),
            ns,
            rootfs,
            process: process_plan,
            hostname: spec.hostname().clone().filter(|h| !h.is_empty()),
            domainname: spec.domainname().clone().filter(|h| !h.is_empty()),
            sysctl,
            seccomp,
            create_container_hooks: hooks
                .and_then(|h| h.create_container().clone())
                .unwrap_or_default(),
            start_container_hooks: hooks
                .and_then(|h| h.start_container().clone())
                .unwrap_or_default(),
            preserve_fds: opts.preserve_fds,
            no_new_keyring: opts.no_new_keyring,
            net_devices,
        })
    }
}

/// `linux.personality` of the container, checked.
fn personality_plan(
    linux: Option<&oci_spec::runtime::Linux>,
) -> Result<Option<PersonalityPlan>, ProcessError> {
    linux
        .and_then(|l| l.personality().as_ref())
        .map(PersonalityPlan::from_spec)
        .transpose()
}

/// Connect to the console socket that will receive the pty master (the path is the caller's:
/// the init cannot reach it once inside the container).
pub(crate) fn connect_console(
    path: Option<&std::path::Path>,
) -> Result<Option<std::os::fd::OwnedFd>, ProcessError> {
    path.map(|p| {
        std::os::unix::net::UnixStream::connect(p)
            .map(Into::into)
            .map_err(|source| ProcessError::Io {
                what: format!("console socket {}", p.display()),
                source,
            })
    })
    .transpose()
}

/// Find the executable the way execvp does, but with the container's PATH, inside the
/// container (called after pivot_root). The errors read as runc's, which engines match on to
/// choose their exit status: a name with a `/` that does not exist is a "no such file or
/// directory" (podman: 127), one that is not an executable file is a "permission denied" (126),
/// a name found in no PATH directory is "executable file not found in $PATH" (127).
pub(crate) fn find_executable(arg0: &CString, path_dirs: &[PathBuf]) -> Result<CString, String> {
    let name = std::path::Path::new(std::ffi::OsStr::from_bytes(arg0.as_bytes()));
    let executable = |c: &std::path::Path| -> std::io::Result<bool> {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(c)?;
        Ok(meta.is_file() && meta.permissions().mode() & 0o111 != 0)
    };
    if arg0.as_bytes().contains(&b'/') {
        return match executable(name) {
            Ok(true) => Ok(arg0.clone()),
            Ok(false) => Err(format!("exec: {name:?}: permission denied")),
            Err(e) => Err(format!(
                "exec: {name:?}: stat {}: {}",
                name.display(),
                errno_text(&e)
            )),
        };
    }
    for c in path_dirs.iter().map(|d| d.join(name)) {
        if let Ok(true) = executable(&c) {
            return CString::new(c.as_os_str().as_bytes()).map_err(|e| e.to_string());
        }
    }
    Err(format!(
        "exec: {name:?}: executable file not found in $PATH"
    ))
}

/// The C library's text of an I/O error's errno, in lower case as Go prints it ("no such file
/// or directory").
fn errno_text(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n).desc().to_lowercase(),
        None => e.to_string(),
    }
}
