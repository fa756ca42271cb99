//! The CRI's security context, sysctls and host paths, seen from inside the container and
//! from the host.

use std::path::Path;

use k8s_cri::v1 as cri;
use k8s_cri::v1::security_profile::ProfileType;
use k8s_cri::v1::MountPropagation;

use crate::common::engine::*;
use crate::common::*;
use crate::pods::*;
use crate::scenarios::{pid_of, sleeper};
use crate::suite::*;

pub fn run_as_user(s: &Suite, id: &str) -> Result<(), String> {
    let pod = run_pod(s, id, "user", &PodOpts::default())?;
    let mut cfg = pod.container("c", &["sleep", "1000"]);
    let sc = cfg
        .linux
        .as_mut()
        .unwrap()
        .security_context
        .as_mut()
        .unwrap();
    sc.run_as_user = Some(cri::Int64Value { value: 1000 });
    sc.run_as_group = Some(cri::Int64Value { value: 2000 });
    sc.supplemental_groups = vec![3000];
    sc.no_new_privs = true;
    let c = pod.run(s, cfg)?;
    let got = sh(
        s,
        &c,
        "id -u; id -g; id -G; grep NoNewPrivs /proc/self/status",
    )?;
    let got: Vec<&str> = got.lines().map(str::trim).collect();
    check(
        got.len() == 4
            && got[0] == "1000"
            && got[1] == "2000"
            && got[2].split(' ').any(|g| g == "3000")
            && got[3].split_whitespace().eq(["NoNewPrivs:", "1"]),
        || format!("id and NoNewPrivs: {got:?}"),
    )?;
    // The container's own process too, not only the exec.
    let pid = pid_of(s, &c)?;
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let uid = st.lines().find(|l| l.starts_with("Uid:")).unwrap_or("");
    check(uid.split_whitespace().nth(1) == Some("1000"), || {
        format!("the container's process: {uid:?}")
    })
}

pub fn capabilities(s: &Suite, id: &str) -> Result<(), String> {
    let pod = run_pod(s, id, "caps", &PodOpts::default())?;
    let mut cfg = pod.container("c", &["sleep", "1000"]);
    cfg.linux
        .as_mut()
        .unwrap()
        .security_context
        .as_mut()
        .unwrap()
        .capabilities = Some(cri::Capability {
        drop_capabilities: vec!["ALL".into()],
        add_capabilities: vec!["NET_BIND_SERVICE".into(), "NET_RAW".into()],
        ..Default::default()
    });
    let c = pod.run(s, cfg)?;
    let st = std::fs::read_to_string(format!("/proc/{}/status", pid_of(s, &c)?))
        .map_err(|e| e.to_string())?;
    // CAP_NET_BIND_SERVICE is 10, CAP_NET_RAW 13.
    let want = (1u64 << 10) | (1u64 << 13);
    for set in ["CapEff", "CapPrm", "CapBnd"] {
        check(cap_field(&st, set) == want, || {
            format!("{set}: {:#x}, want {want:#x}", cap_field(&st, set))
        })?;
    }
    // A privileged container in a privileged pod: every capability the host's root has.
    let privileged = PodOpts {
        privileged: true,
        ..Default::default()
    };
    let pod = run_pod(s, id, "priv", &privileged)?;
    let c = sleeper(s, &pod, "p")?;
    let st = std::fs::read_to_string(format!("/proc/{}/status", pid_of(s, &c)?))
        .map_err(|e| e.to_string())?;
    let host = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    check(
        cap_field(&st, "CapEff") == cap_field(&host, "CapBnd"),
        || {
            format!(
                "privileged CapEff {:#x}, the host's bounding set {:#x}",
                cap_field(&st, "CapEff"),
                cap_field(&host, "CapBnd")
            )
        },
    )?;
    let sys = sh(s, &c, "grep ' /sys ' /proc/self/mountinfo")?;
    check(
        sys.split(' ').nth(5).is_some_and(|o| o.starts_with("rw")),
        || format!("/sys of a privileged container: {sys:?}"),
    )
}

pub fn seccomp(s: &Suite, id: &str) -> Result<(), String> {
    let pod = run_pod(s, id, "seccomp", &PodOpts::default())?;
    for (name, profile, mode) in [
        ("default", ProfileType::RuntimeDefault, "2"),
        ("unconfined", ProfileType::Unconfined, "0"),
    ] {
        let mut cfg = pod.container(name, &["sleep", "1000"]);
        cfg.linux
            .as_mut()
            .unwrap()
            .security_context
            .as_mut()
            .unwrap()
            .seccomp = Some(cri::SecurityProfile {
            profile_type: profile as i32,
            ..Default::default()
        });
        let c = pod.run(s, cfg)?;
        let st = std::fs::read_to_string(format!("/proc/{}/status", pid_of(s, &c)?))
            .map_err(|e| e.to_string())?;
        let got = st
            .lines()
            .find_map(|l| l.strip_prefix("Seccomp:"))
            .map(str::trim);
        check(got == Some(mode), || {
            format!("{profile:?}: Seccomp {got:?}, want {mode}")
        })?;
    }
    Ok(())
}

pub fn readonly_masked(s: &Suite, id: &str) -> Result<(), String> {
    let pod = run_pod(s, id, "ro", &PodOpts::default())?;
    let mut cfg = pod.container("c", &["sleep", "1000"]);
    cfg.linux
        .as_mut()
        .unwrap()
        .security_context
        .as_mut()
        .unwrap()
        .readonly_rootfs = true;
    let c = pod.run(s, cfg)?;
    let r = exec_sync(
        s,
        &c,
        &["sh", "-c", "touch /new-file 2>&1; echo touch=$?"],
        10,
    )?;
    check(
        r.stdout.contains("Read-only file system") && r.stdout.contains("touch=1"),
        || format!("the root is writable: {:?}", r.stdout),
    )?;
    // The CRI's own files are still there.
    let _ = sh(
        s,
        &c,
        "test -s /etc/hosts && test -f /etc/resolv.conf && test -s /etc/hostname",
    )?;
    // Each masked path the host has is a mount in the container that reads empty: a file as
    // /dev/null, a directory as an empty read-only tmpfs. Where AppArmor is on, containerd
    // gives the container its default profile, which denies some of them (/proc/kcore, the
    // files under /sys/firmware) outright: there the read is refused instead, which hides
    // them as well.
    let profile = sh(s, &c, "cat /proc/self/attr/current 2>/dev/null; true")?;
    let confined = profile.ends_with("(enforce)");
    if containerd_applies_apparmor() {
        check(profile == "cri-containerd.apparmor.d (enforce)", || {
            format!("AppArmor is on, but the container runs as {profile:?}, not under containerd's default profile")
        })?;
    }
    let mut masked = 0;
    for p in MASKED_PATHS {
        let host = Path::new(p);
        let (script, full_on_host) = if host.is_dir() {
            (
                format!("ls -A {p} | wc -l"),
                std::fs::read_dir(host).is_ok_and(|mut d| d.next().is_some()),
            )
        } else if host.exists() {
            (
                format!("wc -c < {p}"),
                std::fs::read(host).is_ok_and(|b| !b.is_empty()),
            )
        } else {
            continue;
        };
        let mount = sh(s, &c, &format!("grep ' {p} ' /proc/self/mountinfo || true"))?;
        check(!mount.is_empty(), || {
            format!("{p} is not masked: no mount there")
        })?;
        match sh(s, &c, &script) {
            Ok(got) => check(got == "0", || format!("masked {p}: {script} says {got:?}"))?,
            Err(e) if confined && e.contains("Permission denied") => {}
            Err(e) => return Err(format!("{e}; its mount: {mount:?}; profile {profile:?}")),
        }
        masked += usize::from(full_on_host);
    }
    check(masked > 0, || {
        "no masked path has content on this host: nothing was shown".into()
    })?;
    let sys = sh(s, &c, "grep ' /proc/sys ' /proc/self/mountinfo")?;
    check(
        sys.split(' ').nth(5).is_some_and(|o| o.starts_with("ro")),
        || format!("/proc/sys is not read-only: {sys:?}"),
    )?;
    let r = exec_sync(
        s,
        &c,
        &["sh", "-c", "echo 1 > /proc/sys/kernel/shm_rmid_forced"],
        10,
    )?;
    check(r.exit_code != 0, || "/proc/sys is writable".into())
}

pub fn sysctls(s: &Suite, id: &str) -> Result<(), String> {
    let opts = PodOpts {
        own_network: true,
        sysctls: vec![
            ("kernel.shm_rmid_forced", "1"),
            ("net.ipv4.ip_unprivileged_port_start", "80"),
        ],
        ..Default::default()
    };
    let pod = run_pod(s, id, "sysctl", &opts)?;
    let c = sleeper(s, &pod, "c")?;
    let got = sh(
        s,
        &c,
        "cat /proc/sys/kernel/shm_rmid_forced /proc/sys/net/ipv4/ip_unprivileged_port_start",
    )?;
    check(got.split_whitespace().eq(["1", "80"]), || {
        format!("sysctls in the container: {got:?}")
    })?;
    let host = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .unwrap_or_default();
    check(host.trim() != "80", || "the host's sysctl changed".into())
}

/// A host directory made a mount point of its own with `propagation` (`shared` or `slave`
/// needs one), noted for the cleanup.
fn host_mount_point(
    s: &Suite,
    scenario: &str,
    dir: &Path,
    propagation: &str,
) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    s.record(scenario, |m| m.host_mounts.push(dir.to_path_buf()));
    for args in [
        vec!["--bind", dir.to_str().unwrap(), dir.to_str().unwrap()],
        vec![propagation, dir.to_str().unwrap()],
    ] {
        let st = std::process::Command::new("mount")
            .args(&args)
            .status()
            .map_err(|e| e.to_string())?;
        check(st.success(), || format!("mount {args:?}"))?;
    }
    Ok(())
}

fn tmpfs_on_host(s: &Suite, scenario: &str, at: &Path) -> Result<(), String> {
    std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
    s.record(scenario, |m| m.host_mounts.push(at.to_path_buf()));
    nix::mount::mount(
        Some("tmpfs"),
        at,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|e| format!("mount tmpfs at {}: {e}", at.display()))
}

fn mount_of(host: &Path, at: &str, ro: bool, p: MountPropagation) -> cri::Mount {
    cri::Mount {
        container_path: at.into(),
        host_path: host.to_str().unwrap().into(),
        readonly: ro,
        propagation: p as i32,
        ..Default::default()
    }
}

pub fn host_paths(s: &Suite, id: &str) -> Result<(), String> {
    let base = s.dir.join("hostpath").join(id);
    let (data, ro, h2c, bidir) = (
        base.join("data"),
        base.join("ro"),
        base.join("h2c"),
        base.join("bidir"),
    );
    for d in [&data, &ro] {
        std::fs::create_dir_all(d).map_err(|e| e.to_string())?;
        std::fs::write(d.join("file"), "from-host").map_err(|e| e.to_string())?;
    }
    host_mount_point(s, id, &h2c, "--make-rshared")?;
    host_mount_point(s, id, &bidir, "--make-rshared")?;
    // Bidirectional propagation is for privileged containers (the kubelet refuses it for
    // others): the container mounts, the host sees it.
    let opts = PodOpts {
        privileged: true,
        ..Default::default()
    };
    let pod = run_pod(s, id, "hostpath", &opts)?;
    let mut cfg = pod.container("c", &["sleep", "1000"]);
    cfg.mounts = vec![
        mount_of(&data, "/data", false, MountPropagation::PropagationPrivate),
        mount_of(&ro, "/ro", true, MountPropagation::PropagationPrivate),
        mount_of(
            &h2c,
            "/h2c",
            false,
            MountPropagation::PropagationHostToContainer,
        ),
        mount_of(
            &bidir,
            "/bidir",
            false,
            MountPropagation::PropagationBidirectional,
        ),
    ];
    let c = pod.run(s, cfg)?;
    let got = sh(
        s,
        &c,
        "cat /data/file; echo; cat /ro/file; echo from-container > /data/out",
    )?;
    check(
        got.split_whitespace().eq(["from-host", "from-host"]),
        || format!("the host's files in the container: {got:?}"),
    )?;
    let out = std::fs::read_to_string(data.join("out")).unwrap_or_default();
    check(out.trim() == "from-container", || {
        format!("the container's write on the host: {out:?}")
    })?;
    let r = exec_sync(s, &c, &["sh", "-c", "touch /ro/new 2>&1"], 10)?;
    check(r.exit_code != 0 && r.stdout.contains("Read-only"), || {
        format!("a read-only host path is writable: {:?}", r.stdout)
    })?;
    // Host to container: a mount made on the host afterwards shows in the container; the
    // private mount's does not.
    tmpfs_on_host(s, id, &h2c.join("sub"))?;
    tmpfs_on_host(s, id, &data.join("sub"))?;
    let mut seen = String::new();
    wait_until("the host's new mount shows at /h2c/sub", || {
        seen = sh(s, &c, "grep -c ' /h2c/sub ' /proc/self/mountinfo || true").unwrap_or_default();
        seen == "1"
    })
    .map_err(|e| format!("{e}: {seen:?}"))?;
    let private = sh(s, &c, "grep -c ' /data/sub ' /proc/self/mountinfo || true")?;
    check(private == "0", || {
        "a host mount reached a private host path".into()
    })?;
    // Bidirectional: the container's mount shows on the host.
    let sub = bidir.join("sub");
    s.record(id, |m| m.host_mounts.push(sub.clone()));
    let _ = sh(
        s,
        &c,
        "mkdir -p /bidir/sub && mount -t tmpfs tmpfs /bidir/sub",
    )?;
    wait_until("the container's mount shows on the host", || {
        mounts_under(&bidir).iter().any(|m| Path::new(m) == sub)
    })
}

/// Whether containerd confines its containers with its default AppArmor profile here, as it
/// decides that itself: AppArmor enabled in the kernel and `apparmor_parser` installed.
fn containerd_applies_apparmor() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y")
        && ["/sbin/apparmor_parser", "/usr/sbin/apparmor_parser"]
            .iter()
            .any(|p| Path::new(p).exists())
}
