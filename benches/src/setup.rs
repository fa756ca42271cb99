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
