//! The plan: config.json and the command's options turned, before any side effect, into the
//! prepared data the lifecycle applies (namespace fds, mounts, devices, capability masks,
//! rlimits, C strings for execve, hooks by phase). Everything unsupported or invalid is
//! refused here, by name.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use oci_spec::runtime::LinuxNamespaceType;

use crate::bundle::Bundle;
use crate::cgroups::CgroupMounts;
use crate::hooks::PreparedHook;
use crate::namespaces::{Join, NamespacePlan};
use crate::process::mempolicy::MemPolicyPlan;
use crate::process::personality::PersonalityPlan;
use crate::process::{sys, ProcessError, ProcessPlan};
use crate::rootfs::{HostCgroups, RootfsPlan};
use crate::security::{SeccompCache, SeccompPlan};

/// Options of `create` that do not come from config.json.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    /// The unix socket that receives a pidfd of the init (runc's `--pidfd-socket`).
    pub pidfd_socket: Option<PathBuf>,
    pub preserve_fds: u32,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub systemd_cgroup: bool,
    /// runc's `--rootless`: the cgroup made only where delegated (see `cgroups::rootless`);
    /// `None` decides as runc's `auto` does ([`crate::rootless::auto`]).
    pub rootless_cgroups: Option<bool>,
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
    /// Every hook of the config, by phase.
    pub hooks: crate::hooks::HooksPlan,
    /// The hooks the init runs (createContainer, startContainer), ready to start from a
    /// forked child.
    pub create_container_hooks: Vec<crate::hooks::PreparedHook>,
    pub start_container_hooks: Vec<crate::hooks::PreparedHook>,
    pub preserve_fds: u32,
    pub no_new_keyring: bool,
    /// linux.netDevices: moved by the runtime, not by the init.
    pub net_devices: Option<crate::netdev::NetDevPlan>,
    /// The host's cgroup mounts, where the plan read them (for the container's cgroup mount):
    /// the runtime's cgroup manager is made from them rather than from a second read.
    pub(crate) cgroup_mounts: Option<CgroupMounts>,
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

impl InitPlan {
    /// The room the init's execs need (arguments, environment entries): the user program's,
    /// with the `HOME` it may add, and its hooks', which default to that environment.
    pub fn exec_room(&self) -> (usize, usize) {
        let p = &self.process;
        let envc = p.env.len() + 1;
        self.create_container_hooks
            .iter()
            .chain(&self.start_container_hooks)
            .map(|h| h.exec_room(envc))
            .fold((p.args.len(), envc), |(a, e), (ha, he)| {
                (a.max(ha), e.max(he))
            })
    }

    /// Validate and prepare everything. No side effects.
    /// The seccomp program comes from `seccomp_cache` where it holds this profile's.
    pub fn build(
        id: &str,
        bundle: &Bundle,
        opts: &CreateOptions,
        seccomp_cache: Option<&SeccompCache>,
    ) -> Result<InitPlan, crate::error::Cause> {
        let spec = &bundle.spec;
        let process = spec
            .process()
            .as_ref()
            .ok_or_else(|| ProcessError::Invalid("config.json has no process".into()))?;
        let linux = spec.linux().as_ref();
        let ns = NamespacePlan::from_spec(linux)?;
        let mut rootfs = RootfsPlan::from_spec(spec, &bundle.dir, &bundle.rootfs, opts.no_pivot)?;
        rootfs.host_mount_ns = !ns.has(LinuxNamespaceType::Mount);
        // Read once, for the container's cgroup mount and for the runtime's cgroup manager. A
        // read that fails leaves the layout empty (the container then gets the bare tmpfs), and
        // the manager reads again and says why.
        let cgroup_mounts = rootfs
            .mounts_cgroups()
            .then(|| CgroupMounts::read().ok())
            .flatten();
        if let Some(mounts) = &cgroup_mounts {
            rootfs.host_cgroups = HostCgroups::from_mounts(mounts);
        }

        let mut process_plan = ProcessPlan::from_spec(process, opts.console_socket.is_some())?;
        if ns.denies_setgroups() {
            process_plan.setgroups_denied()?;
        }
        process_plan.setgroups_from_joined_ns = ns.joins_user();
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

        if ns.unprivileged && !ns.has(LinuxNamespaceType::User) {
            // runc's words: "rootless container requires user namespaces".
            return Err(ProcessError::Invalid(
                "rootless container requires user namespaces: the runtime is not root, and \
                 linux.namespaces has no user namespace (`spec --rootless` writes one)"
                    .into(),
            )
            .into());
        }
        if ns.unprivileged && !ns.has(LinuxNamespaceType::Network) {
            if let Some(m) = spec
                .mounts()
                .iter()
                .flatten()
                .find(|m| m.typ().as_deref() == Some("sysfs"))
            {
                return Err(ProcessError::Invalid(format!(
                    "mount {}: a rootless container cannot mount sysfs without a network \
                     namespace of its own: bind-mount /sys (options rbind, ro), as \
                     `spec --rootless` writes",
                    m.destination().display()
                ))
                .into());
            }
        }
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
                            crate::namespaces::ns_name(t)
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
                // Relative to the host's procfs, where the init writes it.
                let rel = std::path::Path::new("sys").join(key.replace('.', "/"));
                sysctl.push((rel, value.clone()));
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
            Some(s) => Some(SeccompPlan::from_spec_cached(s, seccomp_cache)?),
            None => None,
        };
        let net_devices = crate::netdev::NetDevPlan::from_spec(linux, &ns)?;
        let hooks = crate::hooks::HooksPlan::from_spec(spec.hooks().as_ref());
        Ok(InitPlan {
            id: id.to_string(),
            ns,
            rootfs,
            process: process_plan,
            hostname: spec.hostname().clone().filter(|h| !h.is_empty()),
            domainname: spec.domainname().clone().filter(|h| !h.is_empty()),
            sysctl,
            seccomp,
            create_container_hooks: PreparedHook::all("createContainer", &hooks.create_container)?,
            start_container_hooks: PreparedHook::all("startContainer", &hooks.start_container)?,
            hooks,
            preserve_fds: opts.preserve_fds,
            no_new_keyring: opts.no_new_keyring,
            net_devices,
            cgroup_mounts,
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

/// Everything the exec'd process does, decided before the fork.
pub(crate) struct ExecPlan {
    pub process: ProcessPlan,
    pub seccomp: Option<SeccompPlan>,
    pub joins: Vec<Join>,
    /// The init's root, for a container that shares our mount namespace (joining a mount
    /// namespace sets the root; without one we chroot there).
    pub root: Option<OwnedFd>,
    pub needs_fork: bool,
    pub preserve_fds: u32,
    pub relayed_terminal: bool,
    /// The container's session keyring, which the process joins (none where the container was
    /// created with --no-new-keyring).
    pub keyring: Option<crate::lifecycle::keyring::KeyringName>,
}

/// The namespaces of the init, in join order, and the name of their file under /proc/PID/ns.
const NAMESPACES: [(LinuxNamespaceType, &str); 8] = [
    (LinuxNamespaceType::User, "user"),
    (LinuxNamespaceType::Ipc, "ipc"),
    (LinuxNamespaceType::Uts, "uts"),
    (LinuxNamespaceType::Network, "net"),
    (LinuxNamespaceType::Pid, "pid"),
    (LinuxNamespaceType::Cgroup, "cgroup"),
    (LinuxNamespaceType::Time, "time"),
    (LinuxNamespaceType::Mount, "mnt"),
];

/// Open the init's namespaces that differ from ours (joining one's own user namespace is an
/// error, and joining the others is pointless).
fn init_namespaces(pid: i32) -> Result<Vec<Join>, ProcessError> {
    let mut joins = Vec::new();
    for (typ, name) in NAMESPACES {
        let theirs = format!("/proc/{pid}/ns/{name}");
        let ours = format!("/proc/self/ns/{name}");
        // A namespace type the kernel lacks has no file; any other error (EACCES: the init
        // is not ours to inspect) must not leave the exec outside the container's namespace.
        let stat = |p: &str| match nix::sys::stat::stat(p) {
            Ok(m) => Ok(Some(m)),
            Err(nix::Error::ENOENT) => Ok(None),
            Err(e) => Err(sys(format!("stat {p}"))(e)),
        };
        let (Some(t), Some(o)) = (stat(&theirs)?, stat(&ours)?) else {
            continue;
        };
        if t.st_ino == o.st_ino && t.st_dev == o.st_dev {
            continue;
        }
        let fd = nix::fcntl::open(
            theirs.as_str(),
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(sys(format!("open {theirs}")))?;
        joins.push(Join { typ, fd });
    }
    Ok(joins)
}

impl ExecPlan {
    /// Plan `process` for the container described by `saved`: its process config with the
    /// container's defaults, its seccomp filter, the init's namespaces opened (the init pinned
    /// by a pidfd first, so that a reused pid cannot lend its namespaces).
    pub(crate) fn build(
        saved: &crate::state::Saved,
        process: &oci_spec::runtime::Process,
        opts: &crate::lifecycle::exec::ExecOptions,
        seccomp_cache: Option<&SeccompCache>,
    ) -> Result<ExecPlan, crate::error::Cause> {
        let process =
            crate::process::scheduling::with_container_defaults(process, saved.process.as_ref());
        let mut plan_process = ProcessPlan::from_spec(&process, opts.console_socket.is_some())?;
        plan_process.personality = saved
            .personality
            .as_ref()
            .map(crate::process::personality::PersonalityPlan::from_spec)
            .transpose()?;
        plan_process.memory_policy = saved
            .memory_policy
            .as_ref()
            .map(crate::process::mempolicy::MemPolicyPlan::from_spec)
            .transpose()?;
        // The process's own execCPUAffinity, else the container's (config.json's process).
        if plan_process.affinity.is_empty() {
            if let Some(container) = saved.process.as_ref() {
                plan_process.affinity = crate::process::affinity::AffinityPlan::from_spec(
                    container.exec_cpu_affinity().as_ref(),
                )?;
            }
        }
        let seccomp = match &saved.seccomp {
            Some(s) => Some(SeccompPlan::from_spec_cached(s, seccomp_cache)?),
            None => None,
        };
        // Pin the init first, then check it is still the container's: the namespace files opened
        // afterwards are then the container's, not those of a process that reused the pid.
        let _pidfd =
            crate::sys::pidfd_open(saved.pid).map_err(sys(format!("pidfd_open {}", saved.pid)))?;
        let joins = init_namespaces(saved.pid)?;
        let setgroups = format!("/proc/{}/setgroups", saved.pid);
        if std::fs::read_to_string(&setgroups).is_ok_and(|s| s.trim() == "deny") {
            plan_process.setgroups_denied()?;
        }
        if !saved.init_alive() {
            return Err(ProcessError::Invalid("the container's init exited".into()).into());
        }
        let root = if joins.iter().any(|j| j.typ == LinuxNamespaceType::Mount) {
            None
        } else {
            let path = format!("/proc/{}/root", saved.pid);
            Some(
                nix::fcntl::open(
                    path.as_str(),
                    nix::fcntl::OFlag::O_PATH
                        | nix::fcntl::OFlag::O_DIRECTORY
                        | nix::fcntl::OFlag::O_CLOEXEC,
                    nix::sys::stat::Mode::empty(),
                )
                .map_err(sys(format!("open {path}")))?,
            )
        };
        let needs_fork = joins
            .iter()
            .any(|j| matches!(j.typ, LinuxNamespaceType::Pid | LinuxNamespaceType::Time));
        let keyring = if saved.no_new_keyring {
            None
        } else {
            Some(crate::lifecycle::keyring::name(&saved.id).ok_or_else(|| {
                ProcessError::Invalid("the container id does not fit a keyring name".into())
            })?)
        };
        Ok(ExecPlan {
            process: plan_process,
            seccomp,
            joins,
            root,
            needs_fork,
            preserve_fds: opts.preserve_fds,
            relayed_terminal: opts.relayed_terminal,
            keyring,
        })
    }
}

/// Connect to the console socket that will receive the pty master (the path is the caller's:
/// the init cannot reach it once inside the container).
pub(crate) fn connect_console(
    path: Option<&std::path::Path>,
) -> Result<Option<std::os::fd::OwnedFd>, ProcessError> {
    path.map(|p| connect_unix(p, "console socket").map(Into::into))
        .transpose()
}

/// Connect to the unix socket at `path` that the caller listens on (`what` names it in the
/// errors).
pub(crate) fn connect_unix(
    path: &std::path::Path,
    what: &str,
) -> Result<std::os::unix::net::UnixStream, ProcessError> {
    use std::os::unix::fs::FileTypeExt;
    let what = |step: &str| format!("{what} {}: {step}", path.display());
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(conn) => Ok(conn),
        // connect(2) says "connection refused" for a file that is no socket: say what it is.
        Err(_) if std::fs::metadata(path).is_ok_and(|m| !m.file_type().is_socket()) => Err(
            ProcessError::Invalid(what("not a socket (a unix socket that listens is needed)")),
        ),
        Err(source) => Err(ProcessError::Io {
            what: what("connect"),
            source,
        }),
    }
}
