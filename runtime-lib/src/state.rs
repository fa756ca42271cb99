//! Container state on disk: `<root>/<id>/` holds `state.json` and, between create and start,
//! `exec.fifo`. The status is never trusted from disk: it is derived from the init process
//! (alive, same start time, not a zombie) and the fifo.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::cgroups::CgroupConfig;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("container does not exist")]
    NotFound,
    #[error("container already exists")]
    Exists,
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state {path}: {msg}")]
    Corrupt { path: PathBuf, msg: String },
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StateError + 'a {
    move |source| StateError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// The container statuses of the runtime-spec, plus runc's `paused`. Serialized and displayed
/// in lower case, as in the state document.
///
/// ```no_run
/// use casulo::{Container, Status};
///
/// let c = Container::load("/run/casulo", "web")?;
/// match c.status()? {
///     Status::Created => c.start()?,
///     Status::Paused => c.resume()?,
///     other => println!("web is {other}"),
/// }
/// # Ok::<(), casulo::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Being created: the state directory exists, the init does not yet.
    Creating,
    /// Created: the init is set up and waits for `start`.
    Created,
    /// The container's program runs.
    Running,
    /// Every process of the container is frozen (`pause`).
    Paused,
    /// The init has exited.
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// What the runtime remembers about a container between commands.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Saved {
    pub oci_version: String,
    pub id: String,
    /// The init process; 0 while it is being created.
    pub pid: i32,
    /// The init's start time (clock ticks since boot), to tell it from a reused pid.
    pub pid_start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    /// RFC 3339 creation time.
    pub created: String,
    pub owner: String,
    pub cgroup: Option<CgroupConfig>,
    /// The cgroup's directory in each hierarchy, as created (a relative cgroupsPath depends on
    /// the creating process's own cgroups).
    #[serde(default)]
    pub cgroup_paths: Vec<PathBuf>,
    /// The container's hooks by phase: the later commands run poststart and poststop.
    #[serde(default)]
    pub hooks: Option<crate::hooks::HooksPlan>,
    /// Whether the container has its own pid namespace (killing init then kills everything).
    #[serde(default)]
    pub own_pid_ns: bool,
    /// The container shares the runtime's mount namespace: its mounts live under the rootfs's
    /// bind mount, detached at delete.
    #[serde(default)]
    pub host_mount_ns: bool,
    /// The container's process config: what `exec` starts from.
    #[serde(default)]
    pub process: Option<oci_spec::runtime::Process>,
    /// The container's seccomp profile, which `exec`'d processes get too.
    #[serde(default)]
    pub seccomp: Option<oci_spec::runtime::LinuxSeccomp>,
    /// The container's execution domain, which `exec`'d processes get too.
    #[serde(default)]
    pub personality: Option<oci_spec::runtime::LinuxPersonality>,
    /// The container's NUMA memory policy, which `exec`'d processes get too.
    #[serde(default)]
    pub memory_policy: Option<oci_spec::runtime::LinuxMemoryPolicy>,
    /// Created with --no-new-keyring: `exec`'d processes keep the caller's session keyring too.
    #[serde(default)]
    pub no_new_keyring: bool,
}

/// The OCI state document (`casulo state`, the hooks' stdin), with runc's extra fields; it
/// serializes with the runtime-spec's field names.
///
/// ```no_run
/// let state = casulo::Container::load("/run/casulo", "web")?.state()?;
/// println!("{} is {} (pid {}), created {}", state.id, state.status, state.pid, state.created);
/// println!("{}", serde_json::to_string_pretty(&state).unwrap());
/// # Ok::<(), casulo::Error>(())
/// ```
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct State {
    /// The runtime-spec version of the container's config.
    pub oci_version: String,
    /// The container's id.
    pub id: String,
    /// The status now.
    pub status: Status,
    /// The init's pid in the runtime's pid namespace; 0 once stopped.
    pub pid: i32,
    /// The bundle directory, absolute.
    pub bundle: PathBuf,
    /// The root filesystem, absolute.
    pub rootfs: PathBuf,
    /// When the container was created, RFC 3339 in UTC ([`now_rfc3339`]'s format).
    pub created: String,
    /// The user name (or uid) that created the container.
    pub owner: String,
    /// The config's annotations.
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
}

impl Saved {
    /// The cgroup directories the commands act on: those saved at create or, in a state that
    /// names a cgroup but lost them, those its manager finds again from the cgroupsPath (as
    /// [`crate::cgroups::manager_at`] does). The status must be read from the same cgroup
    /// that `pause` froze, or `resume` refuses and `exec` and `delete` wait on a frozen init.
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        match &self.cgroup {
            Some(cfg) if self.cgroup_paths.is_empty() => {
                crate::cgroups::manager_at(cfg, &[]).map_or_else(|_| Vec::new(), |m| m.paths())
            }
            _ => self.cgroup_paths.clone(),
        }
    }

    /// The OCI state for a given status.
    pub fn oci_state(&self, status: Status) -> State {
        State {
            oci_version: self.oci_version.clone(),
            id: self.id.clone(),
            status,
            pid: if status == Status::Stopped {
                0
            } else {
                self.pid
            },
            bundle: self.bundle.clone(),
            rootfs: self.rootfs.clone(),
            created: self.created.clone(),
            owner: self.owner.clone(),
            annotations: self.annotations.clone(),
        }
    }

    /// Whether the recorded init process is still the live process with that pid.
    pub fn init_alive(&self) -> bool {
        self.pid > 0
            && crate::sys::proc_start_time(self.pid)
                .is_some_and(|(start, st)| start == self.pid_start && st != 'Z' && st != 'X')
    }
}

/// The state directory of one container, locked while a command works on it.
#[derive(Debug)]
pub struct StateDir {
    path: PathBuf,
    _lock: Flock<File>,
}

pub const STATE_FILE: &str = "state.json";
pub const FIFO: &str = "exec.fifo";
/// In the temporary name of a state dir being made or removed: `~` is in no container id.
const STALE_MARK: &str = "~partial-";

/// `<root>/.<id>~partial-<our pid>`, where a state dir is filled before it is put in place
/// and moved before it is removed.
fn temporary_dir(root: &Path, id: &str) -> PathBuf {
    root.join(format!(".{id}{STALE_MARK}{}", std::process::id()))
}

/// Remove what a create or a delete of `id` killed half-way left: temporary
/// directories whose creator (the pid in the name) is gone and that nobody holds locked. (The
/// lock alone would not do: a create makes its directory an instant before it locks it.)
pub fn remove_stale(root: &Path, id: &str) {
    let prefix = format!(".{id}{STALE_MARK}");
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(&prefix) else {
            continue;
        };
        if pid.parse::<i32>().is_ok_and(crate::sys::pid_exists) {
            continue;
        }
        let path = e.path();
        let Ok(dir) = File::open(&path) else { continue };
        if Flock::lock(dir, FlockArg::LockExclusiveNonblock).is_ok() {
            let _ = fs::remove_dir_all(&path);
        }
    }
}

/// The exec fifo (mode 0622, as runc makes it).
fn make_fifo(path: &Path) -> Result<(), StateError> {
    let fail = |e: nix::Error| StateError::Io {
        what: "create the exec fifo",
        path: path.to_path_buf(),
        source: e.into(),
    };
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o622)).map_err(fail)?;
    // mkfifo's mode went through the umask.
    nix::sys::stat::fchmodat(
        nix::fcntl::AT_FDCWD,
        path,
        nix::sys::stat::Mode::from_bits_truncate(0o622),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .map_err(fail)
}

impl StateDir {
    /// Create `<root>/<id>` (0700) holding `state.json` (`saved`) and the exec fifo, failing if
    /// it exists, and lock it. The directory is filled under a temporary name that no container
    /// id can have and renamed into place without replacing anything: a runtime killed at any
    /// moment leaves either no state dir or a whole one. The temporary directory of a killed
    /// create (whose name is its own, so it never stands in a later create's way) is removed by
    /// `delete --force` of the id ([`remove_stale`]).
    pub fn create(root: &Path, id: &str, saved: &Saved) -> Result<StateDir, StateError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .map_err(io("create state root", root))?;
        let path = root.join(id);
        if path.exists() {
            return Err(StateError::Exists);
        }
        let tmp = temporary_dir(root, id);
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&tmp)
            .map_err(io("create state dir", &tmp))?;
        let filled = Self::lock(tmp.clone()).and_then(|dir| {
            make_fifo(&dir.fifo())?;
            dir.save(saved)?;
            match crate::sys::rename_noreplace(&tmp, &path) {
                Ok(()) => Ok(StateDir { path, ..dir }),
                Err(nix::Error::EEXIST) | Err(nix::Error::ENOTEMPTY) => Err(StateError::Exists),
                Err(e) => Err(io("create state dir", &path)(e.into())),
            }
        });
        if filled.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        filled
    }

    /// Open and lock an existing `<root>/<id>`.
    pub fn open(root: &Path, id: &str) -> Result<StateDir, StateError> {
        let path = root.join(id);
        if !path.join(STATE_FILE).exists() && !path.is_dir() {
            return Err(StateError::NotFound);
        }
        Self::lock(path)
    }

    fn lock(path: PathBuf) -> Result<StateDir, StateError> {
        let dir = File::open(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                StateError::NotFound
            } else {
                io("open state dir", &path)(e)
            }
        })?;
        let lock = Flock::lock(dir, FlockArg::LockExclusive).map_err(|(_, e)| StateError::Io {
            what: "lock state dir",
            path: path.clone(),
            source: e.into(),
        })?;
        // While we waited for the lock, the holder may have deleted the container, and another
        // command made a new one of the same id: the lock is then on a removed directory, and
        // what we would read or remove by path is the new container's.
        use std::os::unix::fs::MetadataExt;
        let locked = lock.metadata().map_err(io("stat state dir", &path))?;
        match fs::metadata(&path) {
            Ok(now) if now.dev() == locked.dev() && now.ino() == locked.ino() => {}
            Ok(_) => return Err(StateError::NotFound),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StateError::NotFound),
            Err(e) => return Err(io("stat state dir", &path)(e)),
        }
        Ok(StateDir { path, _lock: lock })
    }

    pub fn fifo(&self) -> PathBuf {
        self.path.join(FIFO)
    }

    /// Write state.json atomically.
    pub fn save(&self, saved: &Saved) -> Result<(), StateError> {
        let json = serde_json::to_vec(saved).map_err(|e| StateError::Corrupt {
            path: self.path.join(STATE_FILE),
            msg: e.to_string(),
        })?;
        write_state_file(&self.path.join(STATE_FILE), &json).map_err(io("write", &self.path))
    }

    pub fn load(&self) -> Result<Saved, StateError> {
        load_at(&self.path)
    }

    /// The status, derived from the process, its cgroup and the fifo (see [`status_at`]).
    pub fn status(&self, saved: &Saved) -> Status {
        status_at(&self.path, saved)
    }

    /// The OCI state of `<root>/<id>` for a reader, read without the container's lock:
    /// state.json is only ever replaced whole (written beside it, then renamed), so a reader
    /// sees one version or the next. `state` and `list` thus answer at once, as runc's do,
    /// while another command holds the container: a checkpoint holds it for as long as CRIU
    /// dumps, and a lazy migration's dump lasts until the last page has been fetched.
    pub fn peek(root: &Path, id: &str) -> Result<State, StateError> {
        let path = root.join(id);
        let saved = load_at(&path)?;
        Ok(saved.oci_state(status_at(&path, &saved)))
    }

    /// The state directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Remove the state directory and everything in it.
    pub fn remove(self) -> Result<(), StateError> {
        // A restore killed midway leaves the rootfs bound for CRIU in here.
        crate::checkpoint::detach_criu_root(&self.path.join(crate::checkpoint::CRIU_ROOT));
        // Out of the way first, in one step, as create puts it in place: a runtime killed
        // while removing the files leaves a temporary directory (which `delete --force` of the
        // id sweeps, see `remove_stale`), never a container without its state.
        let (root, id) = (
            self.path.parent().unwrap_or(Path::new(".")),
            self.path.file_name().unwrap_or_default().to_string_lossy(),
        );
        let gone = temporary_dir(root, &id);
        let path = match fs::rename(&self.path, &gone) {
            Ok(()) => gone,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(_) => self.path.clone(),
        };
        match fs::remove_dir_all(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("remove state dir", &path)(e)),
        }
    }
}

/// Parse state.json text.
pub fn parse_saved(text: &[u8]) -> Result<Saved, String> {
    serde_json::from_slice(text).map_err(|e| e.to_string())
}

/// Write `data` to `path` through a temporary file in the same directory and a rename, so that
/// readers see either the old or the new content, never a partial one.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    write_through_temporary(path, data, mode, |tmp| fs::rename(tmp, path))
}

/// [`write_atomic`] for a file of a state directory, which only the runtime writes: the new
/// version takes the old one's place by an exchange ([`exchange_in`]).
fn write_state_file(path: &Path, data: &[u8]) -> std::io::Result<()> {
    write_through_temporary(path, data, 0o600, |tmp| exchange_in(tmp, path))
}

/// Write `data` to a temporary file beside `path` and hand it to `place`; the temporary file is
/// removed if anything fails.
fn write_through_temporary(
    path: &Path,
    data: &[u8],
    mode: u32,
    place: impl FnOnce(&Path) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        // No fsync: the promise is to readers (never a partial file), and state lives on a
        // tmpfs (/run) that does not outlive a crash anyway.
        place(&tmp)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Put `tmp` in place of `path`, a file of ours. Over an existing one, by an exchange and the
/// unlink of the old version: ext4 writes a file renamed over another out to disk at once
/// (auto_da_alloc), which made a state save about ten times dearer than with the exchange (80
/// against 7.5 µs on this project's VM); both replace the name in one step for readers.
fn exchange_in(tmp: &Path, path: &Path) -> std::io::Result<()> {
    use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
    match renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RenameFlags::RENAME_EXCHANGE) {
        Ok(()) => fs::remove_file(tmp),
        // No file to exchange with yet, or a filesystem without exchanges.
        Err(nix::Error::ENOENT) | Err(nix::Error::EINVAL) => fs::rename(tmp, path),
        Err(e) => Err(e.into()),
    }
}

/// The saved state in state dir `dir`.
fn load_at(dir: &Path) -> Result<Saved, StateError> {
    let path = dir.join(STATE_FILE);
    let text = fs::read(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound && !dir.is_dir() {
            StateError::NotFound
        } else if e.kind() == std::io::ErrorKind::NotFound {
            // The directory is there without its state: not something create leaves
            // (it puts a whole state dir in place), so someone else's doing.
            StateError::Corrupt {
                path: path.clone(),
                msg: "missing".into(),
            }
        } else {
            io("read", &path)(e)
        }
    })?;
    parse_saved(&text).map_err(|msg| StateError::Corrupt { path, msg })
}

/// The status of the container saved in state dir `dir`, derived from the process, its cgroup
/// and the fifo. Frozen comes before created, as with runc: a container paused before its
/// start is `paused` (so `resume` thaws it and `exec` refuses it rather than waiting on a
/// frozen cgroup).
fn status_at(dir: &Path, saved: &Saved) -> Status {
    if saved.pid == 0 {
        return Status::Creating;
    }
    if !saved.init_alive() {
        return Status::Stopped;
    }
    if crate::cgroups::is_frozen(&saved.cgroup_dirs()) {
        Status::Paused
    } else if dir.join(FIFO).exists() {
        Status::Created
    } else {
        Status::Running
    }
}

/// The ids of every container under `root`, sorted.
pub fn list_ids(root: &Path) -> Result<Vec<String>, StateError> {
    let entries = match fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("read state root", root)(e)),
    };
    let mut ids: Vec<String> = entries
        .filter_map(|e| e.ok())
        // Not the temporary directory of a create at work (see StateDir::create); a directory
        // without a state.json is listed, for `list` to say what is wrong with it.
        .filter(|e| !e.file_name().to_string_lossy().contains(STALE_MARK))
        // Nor the compiled seccomp programs (its name is not a valid id).
        .filter(|e| e.file_name() != crate::security::seccomp_cache::CACHE_DIR)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    ids.sort();
    Ok(ids)
}

/// The user name of `uid` from /etc/passwd, or the number.
pub fn user_name(uid: u32) -> String {
    fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| {
            p.lines().find_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                let id: u32 = f.nth(1)?.parse().ok()?;
                (id == uid).then(|| name.to_string())
            })
        })
        .unwrap_or_else(|| uid.to_string())
}

/// Now as RFC 3339 in UTC with nanoseconds, as runc writes [`State::created`] and the time of
/// its log lines.
///
/// ```
/// let now = casulo::now_rfc3339(); // e.g. 2026-11-18T11:06:40.123456789Z
/// assert_eq!((now.len(), &now[4..5], &now[10..11]), (30, "-", "T"));
/// assert!(now.ends_with('Z'));
/// ```
pub fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs() as i64, d.subsec_nanos())
}

fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The fd of the state dir lock (create closes it in the child it forks).
impl AsFd for StateDir {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self._lock.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.000000005Z");
        assert_eq!(rfc3339(1_795_000_000, 0), "2026-11-18T11:06:40.000000000Z");
    }

    #[test]
    fn status_names() {
        assert_eq!(
            serde_json::to_string(&Status::Created).unwrap(),
            "\"created\""
        );
        assert_eq!(Status::Stopped.to_string(), "stopped");
    }

    #[test]
    fn corrupt_state_is_an_error() {
        assert!(parse_saved(b"{").is_err());
        assert!(parse_saved(b"{\"id\":1}").is_err());
    }

    #[test]
    fn a_state_file_is_replaced_whole_and_alone() {
        let dir = std::env::temp_dir().join(format!("casulo-state-file-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join(STATE_FILE);
        write_state_file(&path, b"first").unwrap();
        write_state_file(&path, b"second").unwrap();
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        let text = fs::read(&path).unwrap();
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&fs::metadata(&path).unwrap().permissions())
                & 0o777;
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(text, b"second");
        assert_eq!(names, [STATE_FILE], "the old version is gone");
        assert_eq!(mode, 0o600);
    }
}
