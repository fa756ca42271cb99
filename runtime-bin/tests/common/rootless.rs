//! Users made for the rootless tests: made once with `useradd` (which gives them /etc/subuid
//! and /etc/subgid ranges) under a lock that every test binary shares, and the runtime binary
//! where such a user can run it. The locks are [`HostLock`]s: nothing of them stays on disk.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use super::runtime;

/// A test user: its name, uid, gid, and first subordinate uid and gid, if it has ranges.
#[derive(Clone, Copy)]
pub struct TestUser {
    pub name: &'static str,
    pub uid: u32,
    pub gid: u32,
    pub subid: Option<(u32, u32)>,
}

fn id_of(user: &str, flag: &str) -> Option<u32> {
    let out = Command::new("id").args([flag, user]).output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// The first range of `user` in /etc/subuid or /etc/subgid, if it has one of 65536 ids.
fn subid(user: &str, file: &str) -> Option<u32> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() == 3 && f[0] == user && f[2].parse::<u32>().ok()? >= 65536)
            .then(|| f[1].parse().ok())?
    })
}

fn make_user(name: &'static str) -> Result<TestUser, String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("needs root (to make the test user)".into());
    }
    if !Path::new("/bin/busybox").exists() {
        return Err("needs /bin/busybox (apt-get install busybox-static)".into());
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        return Err("needs setpriv (util-linux)".into());
    }
    let _held = HostLock::acquire("casulo-test-useradd")?;
    if id_of(name, "-u").is_none() {
        let out = Command::new("useradd")
            .args(["-M", "-s", "/usr/sbin/nologin", name])
            .output()
            .map_err(|e| format!("needs useradd: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "useradd {name}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    let (uid, gid) = id_of(name, "-u")
        .zip(id_of(name, "-g"))
        .ok_or_else(|| format!("no user {name} after useradd"))?;
    Ok(TestUser {
        name,
        uid,
        gid,
        subid: subid(name, "/etc/subuid").zip(subid(name, "/etc/subgid")),
    })
}

/// A lock shared by every process of the host (every test binary): a Unix socket bound to an
/// abstract address, which only one process can hold and which goes with it, however it ends,
/// leaving no file behind (a lock file in /tmp would outlive every run).
pub struct HostLock(std::os::unix::net::UnixListener);

impl HostLock {
    /// Wait (at most 10 minutes) until `name` is free, and hold it until dropped.
    pub fn acquire(name: &str) -> Result<HostLock, String> {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)
            .map_err(|e| format!("lock {name}: {e}"))?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
        loop {
            match std::os::unix::net::UnixListener::bind_addr(&addr) {
                Ok(l) => return Ok(HostLock(l)),
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                    if std::time::Instant::now() > deadline {
                        return Err(format!("lock {name}: still held after 10 minutes"));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e) => return Err(format!("lock {name}: {e}")),
            }
        }
    }
}

/// The test user `name`, made once; None (after a SKIP line naming `test` and why) where it
/// cannot be.
pub fn test_user(name: &'static str, test: &str) -> Option<TestUser> {
    static MADE: OnceLock<Mutex<HashMap<&'static str, Result<TestUser, String>>>> = OnceLock::new();
    let made = MADE.get_or_init(Default::default);
    let result = made
        .lock()
        .unwrap()
        .entry(name)
        .or_insert_with(|| make_user(name))
        .clone();
    match result {
        Ok(u) => Some(u),
        Err(why) => {
            eprintln!("SKIP {test}: {why}");
            None
        }
    }
}

/// `setpriv` arguments that run the rest of its command line as `u`, without supplementary
/// groups.
pub fn as_user_args(u: TestUser) -> Vec<String> {
    vec![
        format!("--reuid={}", u.uid),
        format!("--regid={}", u.gid),
        "--clear-groups".into(),
        "--".into(),
    ]
}

/// The runtime binary, where the test user can run it: a copy in /tmp when the build's
/// directory is closed to other users.
pub fn user_runtime(u: TestUser) -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let bin = runtime();
        let usable = Command::new("setpriv")
            .args(as_user_args(u))
            .args(["test", "-x"])
            .arg(&bin)
            .status()
            .is_ok_and(|s| s.success());
        if usable {
            return bin;
        }
        // One copy at a fixed place, replaced by a rename (a runtime still running from the
        // old one keeps it), so that runs do not pile copies up.
        let dir = PathBuf::from("/tmp/casulo-rl-bin");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let tmp = dir.join(format!("casulo.{}", std::process::id()));
        std::fs::copy(&bin, &tmp).unwrap();
        let copy = dir.join("casulo");
        std::fs::rename(&tmp, &copy).unwrap();
        copy
    })
}

/// Whether the setuid helpers that write several id ranges are installed.
pub fn has_newuidmap() -> bool {
    ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        .iter()
        .any(|d| Path::new(d).join("newuidmap").exists() && Path::new(d).join("newgidmap").exists())
}

/// Whether a test user can be given a systemd user manager here: systemd is the init system
/// and `/sys/fs/cgroup` is a pure cgroup v2 hierarchy, where `user@UID.service` gets a
/// delegated subtree (the controllers its unit's `Delegate=` names).
pub fn user_manager_available() -> bool {
    use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};
    Path::new("/run/systemd/system").is_dir()
        && statfs("/sys/fs/cgroup").is_ok_and(|s| s.filesystem_type() == CGROUP2_SUPER_MAGIC)
}

/// The systemd user manager of a test user (`user@UID.service`, started with `systemctl`, as
/// a login would start it), with its runtime directory `/run/user/UID`, its session bus and
/// its delegated cgroup subtree. Dropping it stops the user's slice with the unit, which ends
/// every process left in its cgroups and removes the runtime directory.
pub struct UserManager {
    unit: String,
    uid: u32,
}

impl UserManager {
    /// Start `user@UID.service` for `u` and wait (`systemctl start` does) until it is ready.
    pub fn start(u: TestUser) -> Result<UserManager, String> {
        let unit = format!("user@{}.service", u.uid);
        let m = UserManager { unit, uid: u.uid };
        let out = Command::new("systemctl")
            .args(["start", &m.unit])
            .output()
            .map_err(|e| format!("systemctl start {}: {e}", m.unit))?;
        if !out.status.success() {
            return Err(format!(
                "systemctl start {}: {}",
                m.unit,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let cg = m.cgroup();
        if !cg.is_dir() {
            return Err(format!(
                "{} is running, but {} is missing",
                m.unit,
                cg.display()
            ));
        }
        Ok(m)
    }

    /// `/run/user/UID`, the user's `$XDG_RUNTIME_DIR`.
    pub fn runtime_dir(&self) -> PathBuf {
        PathBuf::from(format!("/run/user/{}", self.uid))
    }

    /// The user's session bus, as `$DBUS_SESSION_BUS_ADDRESS`.
    pub fn bus_address(&self) -> String {
        format!("unix:path={}/bus", self.runtime_dir().display())
    }

    /// The delegated subtree, relative to the cgroup2 mount:
    /// `/user.slice/user-UID.slice/user@UID.service`.
    pub fn cgroup_path(&self) -> String {
        format!("/user.slice/user-{0}.slice/user@{0}.service", self.uid)
    }

    /// The delegated subtree's directory under `/sys/fs/cgroup`.
    pub fn cgroup(&self) -> PathBuf {
        PathBuf::from(format!("/sys/fs/cgroup{}", self.cgroup_path()))
    }
}

impl Drop for UserManager {
    /// Stop the user's slice, `user-UID.slice`: the manager and the runtime directory's unit in
    /// it (which would stop once unneeded, but later), and then the slice itself. `systemctl`
    /// waits for the jobs; the cgroup goes a moment later (at most 10 s are waited for).
    fn drop(&mut self) {
        let slice = format!("user-{}.slice", self.uid);
        let _ = Command::new("systemctl").args(["stop", &slice]).output();
        let dir = PathBuf::from(format!("/sys/fs/cgroup/user.slice/{slice}"));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while dir.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}
