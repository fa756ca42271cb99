//! Checkpoint and restore through CRIU, as runc does them: [`Container::checkpoint`] dumps a
//! running container's processes to an image directory (and, unless asked to leave it running,
//! the container is then gone, as with runc); [`ContainerBuilder::restore`] makes a container
//! from a bundle again, with CRIU recreating its processes from the images in place of an
//! init of ours.
//!
//! What CRIU cannot see for itself the runtime tells it, from the bundle's config: the bind
//! mounts (and device nodes) are *external* mounts, named by their
//! destination at dump and mapped to their host sources at restore; namespaces the container
//! joined by path are external too, handed back as inherited fds; the container's stdio pipes
//! are recorded in `descriptors.json` beside the images and mapped onto the restoring
//! runtime's own stdio. Restore puts CRIU into the container's new cgroup before it forks, so
//! that the restored processes start there.
//!
//! [`Container::checkpoint`]: crate::Container::checkpoint
//! [`ContainerBuilder::restore`]: crate::ContainerBuilder::restore

mod dump;
mod restore;
mod swrk;

use std::path::{Path, PathBuf};

pub(crate) use dump::stop_dump;
pub(crate) use restore::{detach_criu_root, CRIU_ROOT};

use rust_criu::rust_criu_protobuf::rpc::Criu_cg_mode;

/// Why a checkpoint or a restore failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// CRIU is missing, cannot run, or is too old.
    #[error("criu: {0}")]
    NoCriu(String),
    /// CRIU refused or failed the request; its own log, which the message names, says why.
    #[error("{0}")]
    Criu(String),
    /// A notification's work failed (a hook, the console socket, the restored pid).
    #[error("criu notification {script:?}: {msg}")]
    Notify { script: String, msg: String },
    /// The conversation with `criu swrk` broke down.
    #[error("criu: {0}")]
    Rpc(String),
    /// A flag or the container does not allow the operation.
    #[error("{0}")]
    Invalid(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {errno}")]
    Sys { what: String, errno: nix::Error },
}

impl CheckpointError {
    fn sys(what: impl Into<String>) -> impl FnOnce(nix::Error) -> CheckpointError {
        let what = what.into();
        move |errno| CheckpointError::Sys { what, errno }
    }

    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> CheckpointError {
        let what = what.into();
        move |source| CheckpointError::Io { what, source }
    }
}

/// How CRIU treats the container's cgroups (runc's `--manage-cgroups-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CgroupsMode {
    /// Restore the cgroups' properties only into cgroups CRIU creates (runc's default).
    #[default]
    Soft,
    /// Restore every cgroup's properties.
    Full,
    /// Properties restored, and the cgroups must not exist yet.
    Strict,
    /// Leave cgroups alone: the restored processes stay where CRIU runs.
    Ignore,
}

impl CgroupsMode {
    /// `soft`, `full`, `strict` or `ignore`.
    pub fn parse(s: &str) -> Result<CgroupsMode, String> {
        match s {
            "soft" => Ok(CgroupsMode::Soft),
            "full" => Ok(CgroupsMode::Full),
            "strict" => Ok(CgroupsMode::Strict),
            "ignore" => Ok(CgroupsMode::Ignore),
            other => Err(format!(
                "--manage-cgroups-mode {other:?}: must be soft, full, strict or ignore"
            )),
        }
    }

    fn criu(self) -> Criu_cg_mode {
        match self {
            CgroupsMode::Soft => Criu_cg_mode::SOFT,
            CgroupsMode::Full => Criu_cg_mode::FULL,
            CgroupsMode::Strict => Criu_cg_mode::STRICT,
            CgroupsMode::Ignore => Criu_cg_mode::IGNORE,
        }
    }
}

/// What `checkpoint` and `restore` both take: where CRIU is, its images and work files, and
/// runc's flags common to the two commands.
#[derive(Debug, Clone, Default)]
pub struct CriuFlags {
    /// The CRIU binary; `criu` in `PATH` when `None`.
    pub criu: Option<PathBuf>,
    /// The checkpoint's images (created, mode 0700, if missing).
    pub image_path: PathBuf,
    /// Where CRIU's log and work files go; the image directory when `None`.
    pub work_path: Option<PathBuf>,
    pub tcp_established: bool,
    pub ext_unix_sk: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    pub cgroups_mode: CgroupsMode,
    /// Namespaces made empty at restore rather than restored (runc accepts `network` only).
    pub empty_ns: Vec<String>,
    pub auto_dedup: bool,
    pub lazy_pages: bool,
}

/// What [`Container::checkpoint`](crate::Container::checkpoint) does (runc's `checkpoint`
/// flags).
#[derive(Debug, Clone, Default)]
pub struct CheckpointOptions {
    pub criu: CriuFlags,
    /// A pre-dump's images, relative to `image_path`: only the memory changed since is dumped.
    pub parent_path: Option<PathBuf>,
    /// The container keeps running after the dump (else it is gone, as with runc).
    pub leave_running: bool,
    pub tcp_skip_in_flight: bool,
    pub link_remap: bool,
    /// Dump the memory only and leave the container running, for a later dump with
    /// `parent_path`.
    pub pre_dump: bool,
    /// With `lazy_pages`: an fd CRIU writes `\0` to once the lazy pages server is ready.
    pub status_fd: Option<i32>,
    /// `ADDRESS:PORT` of a page server to send the memory to.
    pub page_server: Option<String>,
}

/// What [`ContainerBuilder::restore`](crate::ContainerBuilder::restore) does (runc's `restore`
/// flags beyond create's: the console socket, pid file and no-pivot are the builder's).
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    pub criu: CriuFlags,
    /// The LSM profile CRIU gives the restored processes (`type:label`, CRIU 3.16 or later).
    pub lsm_profile: Option<String>,
    /// The LSM mount context of the restored mounts (CRIU 3.16 or later).
    pub lsm_mount_context: Option<String>,
}

/// The file beside the images that names the container's stdio as it was (runc's name and
/// format: a JSON array of the targets of /proc/PID/fd/0, 1 and 2).
const DESCRIPTORS: &str = "descriptors.json";

/// One request's [`CriuFlags`], checked, with their directories open: what checkpoint and
/// restore tell CRIU alike.
struct Session<'a> {
    flags: &'a CriuFlags,
    images: std::os::fd::OwnedFd,
    work: Option<std::os::fd::OwnedFd>,
    /// CRIU's log, named in errors.
    log: PathBuf,
    log_file: &'static str,
    empty_ns: u32,
}

impl CriuFlags {
    /// Check the flags and open the image and work directories for a request whose log is
    /// `log_file`. The work directory is made if missing, as with runc, and so is the image
    /// directory for a dump; a restore's must exist.
    fn session(&self, log_file: &'static str, dump: bool) -> Result<Session<'_>, CheckpointError> {
        if self.image_path.as_os_str().is_empty() {
            return Err(CheckpointError::Invalid("no image path given".into()));
        }
        let empty_ns = empty_ns_mask(&self.empty_ns)?;
        let images = if dump {
            open_dir(&self.image_path, "image directory")?
        } else {
            open_existing_dir(&self.image_path, "image directory")?
        };
        let work = self
            .work_path
            .as_ref()
            .map(|w| open_dir(w, "work directory"))
            .transpose()?;
        let log = self
            .work_path
            .as_deref()
            .unwrap_or(&self.image_path)
            .join(log_file);
        Ok(Session {
            flags: self,
            images,
            work,
            log,
            log_file,
            empty_ns,
        })
    }
}

impl Session<'_> {
    /// CRIU's options for a container whose root is `root`.
    fn opts(&self, root: &Path) -> rust_criu::rust_criu_protobuf::rpc::Criu_opts {
        let f = self.flags;
        let mut o = rust_criu::rust_criu_protobuf::rpc::Criu_opts::new();
        o.set_images_dir_fd(swrk::raw(&self.images));
        if let Some(w) = &self.work {
            o.set_work_dir_fd(swrk::raw(w));
        }
        o.set_log_level(4);
        o.set_log_file(self.log_file.into());
        o.set_root(root.to_string_lossy().into_owned());
        o.set_manage_cgroups(true);
        o.set_manage_cgroups_mode(f.cgroups_mode.criu());
        o.set_notify_scripts(true);
        o.set_shell_job(f.shell_job);
        o.set_ext_unix_sk(f.ext_unix_sk);
        o.set_tcp_established(f.tcp_established);
        o.set_file_locks(f.file_locks);
        if self.empty_ns != 0 {
            o.set_empty_ns(self.empty_ns);
        }
        // A terminal's master is the runtime's side: CRIU dumps the slave as an orphan and
        // hands a new master to the restoring runtime.
        o.set_orphan_pts_master(true);
        o.set_auto_dedup(f.auto_dedup);
        o.set_lazy_pages(f.lazy_pages);
        o
    }
}

/// `empty_ns` as CRIU's clone-flag mask.
fn empty_ns_mask(names: &[String]) -> Result<u32, CheckpointError> {
    let mut mask = 0u32;
    for n in names {
        match n.as_str() {
            "network" => mask |= libc::CLONE_NEWNET as u32,
            other => {
                return Err(CheckpointError::Invalid(format!(
                    "--empty-ns {other:?}: namespace not supported (only network)"
                )))
            }
        }
    }
    Ok(mask)
}

/// Open (making it, mode 0700, if missing) directory `path` for CRIU.
fn open_dir(path: &Path, what: &str) -> Result<std::os::fd::OwnedFd, CheckpointError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode_0700()
        .create(path)
        .map_err(CheckpointError::io(format!("{what} {}", path.display())))?;
    open_existing_dir(path, what)
}

/// Open directory `path` for CRIU, which must exist.
fn open_existing_dir(path: &Path, what: &str) -> Result<std::os::fd::OwnedFd, CheckpointError> {
    nix::fcntl::open(
        path,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(CheckpointError::sys(format!(
        "open {what} {}",
        path.display()
    )))
}

trait DirBuilderExt {
    fn mode_0700(&mut self) -> &mut Self;
}

impl DirBuilderExt for std::fs::DirBuilder {
    fn mode_0700(&mut self) -> &mut Self {
        std::os::unix::fs::DirBuilderExt::mode(self, 0o700)
    }
}

/// `e`, naming CRIU's `log` where CRIU itself broke off (its log says why).
fn with_log(e: CheckpointError, log: &Path) -> CheckpointError {
    match e {
        CheckpointError::Rpc(msg) => {
            CheckpointError::Rpc(format!("{msg} (criu's log: {})", log.display()))
        }
        other => other,
    }
}

/// The error for a failed CRIU request of `what`, naming its log in `log_dir`.
fn criu_failed(
    what: &'static str,
    resp: &rust_criu::rust_criu_protobuf::rpc::Criu_resp,
    log: &Path,
) -> CheckpointError {
    let errno = match resp.cr_errno() {
        0 => String::new(),
        n => format!(": {}", nix::errno::Errno::from_raw(n)),
    };
    let msg = match resp.cr_errmsg() {
        "" => String::new(),
        m => format!(": {m}"),
    };
    CheckpointError::Criu(format!(
        "criu {what} failed{errno}{msg} (criu's log: {})",
        log.display()
    ))
}

/// The bind mounts of `spec`: destination and source (a relative one under `bundle`).
fn bind_mounts(spec: &oci_spec::runtime::Spec, bundle: &Path) -> Vec<(PathBuf, PathBuf)> {
    let mut out = Vec::new();
    for m in spec.mounts().iter().flatten() {
        let bind = m.typ().as_deref() == Some("bind")
            || m.options()
                .iter()
                .flatten()
                .any(|o| o == "bind" || o == "rbind");
        if !bind {
            continue;
        }
        let source = m
            .source()
            .as_ref()
            .map(|s| {
                if s.is_absolute() {
                    s.clone()
                } else {
                    bundle.join(s)
                }
            })
            .unwrap_or_default();
        out.push((m.destination().clone(), source));
    }
    out
}

/// The bind mounts and device nodes of `spec`: CRIU's external mounts, as
/// (destination in the container, source on the host). A destination reached through a
/// symlink in `rootfs` is named where the mount really is, as runc names it.
fn external_mounts(
    spec: &oci_spec::runtime::Spec,
    bundle: &Path,
    rootfs: &Path,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (dest, source) in bind_mounts(spec, bundle) {
        out.push((
            resolved_in(rootfs, &dest),
            source.to_string_lossy().into_owned(),
        ));
    }
    if let Some(linux) = spec.linux() {
        for d in linux.devices().iter().flatten() {
            let p = d.path().to_string_lossy().into_owned();
            out.push((p.clone(), p));
        }
    }
    out
}

/// Container path `dest` with the symlinks of `rootfs` on its way resolved (inside the
/// rootfs); `dest` as it is when it cannot be (say, it does not exist yet).
fn resolved_in(rootfs: &Path, dest: &Path) -> String {
    let as_is = || dest.to_string_lossy().into_owned();
    let (Ok(real_root), Ok(root)) = (std::fs::canonicalize(rootfs), std::fs::File::open(rootfs))
    else {
        return as_is();
    };
    let flags = nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC;
    let Ok(fd) = crate::rootfs::paths::open_in_root(std::os::fd::AsFd::as_fd(&root), dest, flags)
    else {
        return as_is();
    };
    let Ok(real) = std::fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&fd)
    )) else {
        return as_is();
    };
    match real.strip_prefix(&real_root) {
        Ok(rel) => format!("/{}", rel.display()),
        Err(_) => as_is(),
    }
}

/// Without a cgroup namespace of its own, the container's `/sys/fs/cgroup` is a bind of its
/// own cgroup directories (rather than the host's whole hierarchy): CRIU cannot dump those
/// binds, so they are external mounts too, as (destination, the cgroup directory in
/// `paths`): the container's one directory on cgroup v2, one per hierarchy on v1.
fn cgroup_mounts(spec: &oci_spec::runtime::Spec, paths: &[PathBuf]) -> Vec<(String, String)> {
    use oci_spec::runtime::LinuxNamespaceType as T;
    let own_ns = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == T::Cgroup));
    let Some(dest) = spec
        .mounts()
        .iter()
        .flatten()
        .find(|m| m.typ().as_deref() == Some("cgroup"))
        .map(|m| m.destination().to_string_lossy().into_owned())
    else {
        return Vec::new();
    };
    if own_ns {
        return Vec::new();
    }
    let top = Path::new("/sys/fs/cgroup");
    if top.join("cgroup.controllers").exists() {
        return paths
            .first()
            .map(|p| vec![(dest, p.to_string_lossy().into_owned())])
            .unwrap_or_default();
    }
    paths
        .iter()
        .filter_map(|p| {
            let hierarchy = p.strip_prefix(top).ok()?.components().next()?;
            let key = format!("{dest}/{}", hierarchy.as_os_str().to_string_lossy());
            Some((key, p.to_string_lossy().into_owned()))
        })
        .collect()
}

/// The namespaces the container joined by path that CRIU must treat as external (network and
/// pid, as runc): (type name, path).
fn joined_namespaces(spec: &oci_spec::runtime::Spec) -> Vec<(&'static str, PathBuf)> {
    use oci_spec::runtime::LinuxNamespaceType as T;
    let mut out = Vec::new();
    for ns in spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
    {
        let name = match ns.typ() {
            T::Network => "net",
            T::Pid => "pid",
            _ => continue,
        };
        if let Some(p) = ns.path() {
            out.push((name, p.clone()));
        }
    }
    out
}

/// CRIU's key for a joined namespace of type `name` (runc's: `extRootNetNS`, `extRootPidNS`).
fn ns_key(name: &str) -> String {
    let mut c = name.chars();
    let first = c.next().map(|f| f.to_ascii_uppercase()).unwrap_or_default();
    format!("extRoot{first}{}NS", c.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_through_symlinks_are_resolved_in_the_rootfs() {
        let root = std::env::temp_dir().join(format!("casulo-extmnt-{}", std::process::id()));
        std::fs::create_dir_all(root.join("real/conf")).unwrap();
        // Absolute, as in the container: resolved inside the rootfs, not on the host.
        std::os::unix::fs::symlink("/real/conf", root.join("conf")).unwrap();
        assert_eq!(resolved_in(&root, Path::new("/conf")), "/real/conf");
        assert_eq!(resolved_in(&root, Path::new("/real/conf")), "/real/conf");
        assert_eq!(resolved_in(&root, Path::new("/missing/x")), "/missing/x");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
