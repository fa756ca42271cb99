//! What both benchmarks need: the runtimes' binaries, a busybox bundle, and the private mount
//! namespace in which every runtime sees the same cgroup hierarchies.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `name` on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|c| c.is_file())
    })
}

/// target/release/casulo of this workspace.
pub fn workspace_casulo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/casulo")
}

/// A bundle whose rootfs is Debian's busybox-static, running /bin/true.
pub fn make_bundle(dir: &Path, casulo: &Path) -> Result<(), String> {
    let rootfs = dir.join("rootfs");
    for d in ["bin", "proc", "dev", "sys", "tmp", "etc"] {
        std::fs::create_dir_all(rootfs.join(d)).map_err(|e| e.to_string())?;
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
        .map_err(|e| format!("/bin/busybox: {e} (install busybox-static)"))?;
    for applet in ["true", "sh"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet))
            .map_err(|e| e.to_string())?;
    }
    let out = Command::new(casulo)
        .args(["spec", "--bundle"])
        .arg(dir)
        .output()
        .map_err(|e| format!("{}: {e}", casulo.display()))?;
    if !out.status.success() {
        return Err(format!(
            "casulo spec: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let path = dir.join("config.json");
    let mut spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    spec["process"]["terminal"] = false.into();
    spec["process"]["args"] = serde_json::json!(["/bin/true"]);
    std::fs::write(&path, serde_json::to_vec_pretty(&spec).unwrap()).map_err(|e| e.to_string())
}

/// A private mount namespace for this process without the hybrid host's cgroup2 mount.
pub fn private_namespace() -> Result<(), String> {
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("unshare(CLONE_NEWNS): {e}"))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| format!("make / private: {e}"))?;
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    if info
        .lines()
        .any(|l| l.split(' ').nth(4) == Some("/sys/fs/cgroup/unified"))
    {
        umount2("/sys/fs/cgroup/unified", MntFlags::MNT_DETACH)
            .map_err(|e| format!("umount /sys/fs/cgroup/unified: {e}"))?;
    }
    Ok(())
}

/// The config.json that podman 4.3 wrote for `podman run --rm IMAGE true` (captured once by a
/// runtime wrapper; see benches/README.md), with the engine's paths as placeholders.
const ENGINE_CONFIG: &str = include_str!("../fixtures/podman-4.3-run-true.json");

/// A bundle with the engine's config: the fixture with its placeholders filled, its bind
/// mounts' sources made (the files podman keeps per container), and `netns` as the network
/// namespace the engine would have made beforehand. The rootfs is the template bundle's.
pub fn make_engine_bundle(dir: &Path, rootfs: &Path, netns: &Path) -> Result<(), String> {
    let userdata = dir.join("userdata");
    std::fs::create_dir_all(userdata.join("shm")).map_err(|e| e.to_string())?;
    for (name, text) in [
        (".containerenv", "engine=\"podman-4.3.1\"\n"),
        ("hostname", "9889075017fc\n"),
        ("resolv.conf", "nameserver 10.88.0.1\n"),
        ("hosts", "127.0.0.1 localhost\n"),
    ] {
        std::fs::write(userdata.join(name), text).map_err(|e| e.to_string())?;
    }
    let config = ENGINE_CONFIG
        .replace("@BUNDLE@", &dir.display().to_string())
        .replace("@NETNS@", &netns.display().to_string());
    let mut spec: serde_json::Value = serde_json::from_str(&config).map_err(|e| e.to_string())?;
    // An absolute path: runtimes refuse a rootfs reached through a symlink.
    spec["root"]["path"] = rootfs.display().to_string().into();
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_vec_pretty(&spec).unwrap(),
    )
    .map_err(|e| e.to_string())
}

/// A copy of the template bundle `from` whose process is `args` (for the long-running
/// container that exec and state are timed against).
pub fn make_bundle_running(dir: &Path, from: &Path, args: &[&str]) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let mut spec: serde_json::Value = serde_json::from_slice(
        &std::fs::read(from.join("config.json")).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    spec["process"]["args"] = serde_json::json!(args);
    spec["root"]["path"] = from.join("rootfs").display().to_string().into();
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_vec_pretty(&spec).unwrap(),
    )
    .map_err(|e| e.to_string())
}

/// The process.json an engine hands to `exec --process`: the template's process, running
/// `/bin/true`.
pub fn write_exec_process(path: &Path, bundle: &Path) -> Result<(), String> {
    let spec: serde_json::Value = serde_json::from_slice(
        &std::fs::read(bundle.join("config.json")).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let mut process = spec["process"].clone();
    process["args"] = serde_json::json!(["/bin/true"]);
    std::fs::write(path, serde_json::to_vec_pretty(&process).unwrap()).map_err(|e| e.to_string())
}

/// A network namespace kept open by a bind mount on a file, as engines keep theirs under
/// /run/netns; unmounted on drop.
pub struct NetNs {
    pub path: PathBuf,
}

impl NetNs {
    pub fn new(path: &Path) -> Result<NetNs, String> {
        use nix::mount::{mount, MsFlags};
        std::fs::write(path, "").map_err(|e| e.to_string())?;
        let target = path.to_path_buf();
        // unshare(CLONE_NEWNET) in a thread of its own, so that this process keeps its own
        // network namespace; the thread's namespace outlives it through the bind mount.
        std::thread::spawn(move || {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("unshare(CLONE_NEWNET): {e}"))?;
            mount(
                Some("/proc/thread-self/ns/net"),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| format!("bind the network namespace: {e}"))
        })
        .join()
        .map_err(|_| "network namespace thread panicked".to_string())??;
        Ok(NetNs {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.path, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_file(&self.path);
    }
}
