//! The post-fork rule, measured: the stage, the init, an exec'd process and the hooks' children
//! allocate (and free) nothing, since the program that links the crate may have other threads
//! and one of them may hold the allocator's lock at the fork. This program's allocator counts
//! what every forked child does; a config with what engines send (bind mounts with options,
//! tmpfs with tmpcopyup, a symlink on the way to a mount point, devices, masked paths, the
//! cgroup mount of every v1 hierarchy on hybrid hosts, a cgroup namespace, seccomp, hooks at
//! every point) is created, started, exec'd into and deleted, and the count must stay 0. So
//! must it when the init's rootfs steps fail, and for a `--no-pivot` container.

use std::path::{Path, PathBuf};

use casulo::__private::ChildAllocCounter;
use casulo::{Container, ContainerBuilder};

#[global_allocator]
static ALLOC: ChildAllocCounter = ChildAllocCounter;

/// What the container checks of its mounts, devices and masks: a probe of the real thing.
const CHECK: &str = r#"test -f /etc/conf/a && test -f /etc/conf/sub/b &&
 test "$(readlink /etc/conf/link)" = a && test -c /dev/fuse && test -f /data/inside/x &&
 test -d /run/sub/dir && test -z "$(cat /proc/kcore)" && grep -q localhost /etc/hosts &&
 ! touch /etc/x 2>/dev/null && ! touch /data/ro/x 2>/dev/null && touch /data/vol/x &&
 echo "$HOME" | grep -qx /root"#;

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Deletes the container (forcibly) even when an assertion failed half-way.
struct Cleanup<'a>(&'a Path, &'a str);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = casulo::force_delete(self.0, self.1);
    }
}

fn bundle(dir: &Path, id: &str, cgroupns: bool) -> PathBuf {
    let bundle = dir.join(format!("bundle-{id}"));
    let rootfs = bundle.join("rootfs");
    for d in [
        "bin",
        "proc",
        "dev",
        "tmp",
        "etc/conf/sub",
        "data",
        "srv/inside",
        "var",
        "root",
    ] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::write(rootfs.join("etc/conf/a"), "a").unwrap();
    std::fs::write(rootfs.join("etc/conf/sub/b"), "b").unwrap();
    std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::os::unix::fs::symlink("a", rootfs.join("etc/conf/link")).unwrap();
    std::fs::write(rootfs.join("srv/inside/x"), "x").unwrap();
    // A symlink on the way to a mount point: the init resolves it inside the rootfs.
    std::os::unix::fs::symlink("/run", rootfs.join("var/run")).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for a in [
        "sh", "true", "test", "cat", "grep", "readlink", "touch", "echo", "sleep",
    ] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).unwrap();
    }
    let host_dir = dir.join(format!("hostdir-{id}"));
    std::fs::create_dir_all(&host_dir).unwrap();
    let host_file = dir.join(format!("hosts-{id}"));
    std::fs::write(&host_file, "127.0.0.1 localhost\n").unwrap();

    let mut spec = casulo::default_spec_json(casulo::SpecOptions::default());
    spec["process"]["terminal"] = false.into();
    spec["process"]["args"] = serde_json::json!(["/bin/sh", "-c", CHECK]);
    let hook = serde_json::json!([{"path": "/bin/true", "timeout": 10}]);
    spec["hooks"] = serde_json::json!({
        "prestart": hook, "createRuntime": hook, "createContainer": hook,
        "startContainer": hook, "poststart": hook, "poststop": hook
    });
    spec["mounts"].as_array_mut().unwrap().extend([
        serde_json::json!({"destination": "/etc/hosts", "type": "bind", "source": host_file,
            "options": ["rbind", "ro", "nosuid", "nodev", "rprivate"]}),
        serde_json::json!({"destination": "/data/vol", "type": "bind", "source": host_dir,
            "options": ["rbind", "rw", "noexec", "rprivate"]}),
        serde_json::json!({"destination": "/data/ro", "type": "bind", "source": host_dir,
            "options": ["bind", "rro"]}),
        serde_json::json!({"destination": "/data/inside", "type": "bind",
            "source": rootfs.join("srv/inside"), "options": ["bind"]}),
        serde_json::json!({"destination": "/etc/conf", "type": "tmpfs", "source": "tmpfs",
            "options": ["nosuid", "nodev", "tmpcopyup"]}),
        serde_json::json!({"destination": "/run", "type": "tmpfs", "source": "tmpfs",
            "options": ["nosuid", "nodev", "mode=755"]}),
        serde_json::json!({"destination": "/var/run/sub/dir", "type": "tmpfs",
            "source": "tmpfs", "options": ["ro"]}),
    ]);
    spec["linux"]["devices"] = serde_json::json!([
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438,
         "uid": 0, "gid": 0},
    ]);
    spec["linux"]["maskedPaths"]
        .as_array_mut()
        .unwrap()
        .push("/proc/kcore".into());
    spec["linux"]["sysctl"] = serde_json::json!({"net.ipv4.ip_forward": "1"});
    spec["linux"]["seccomp"] = serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["kexec_load", "reboot"], "action": "SCMP_ACT_ERRNO"}]
    });
    spec["process"]["oomScoreAdj"] = 100.into();
    spec["linux"]["rootfsPropagation"] = "rprivate".into();
    let namespaces = spec["linux"]["namespaces"].as_array_mut().unwrap();
    if cgroupns {
        namespaces.push(serde_json::json!({"type": "cgroup"}));
    }
    std::fs::write(
        bundle.join("config.json"),
        serde_json::to_vec_pretty(&spec).unwrap(),
    )
    .unwrap();
    bundle
}

/// Create, start, exec into, wait for and delete one container; the count of its children's
/// allocations.
fn run(dir: &Path, id: &str, cgroupns: bool) -> usize {
    let bundle = bundle(dir, id, cgroupns);
    let root = dir.join("state");
    let _cleanup = Cleanup(&root, id);
    let before = ChildAllocCounter::count();
    let c = ContainerBuilder::new(id, &bundle)
        .root(&root)
        .create()
        .expect("create");
    let mut process = c.process_config().cloned().expect("process");
    process.set_args(Some(vec!["/bin/sh".into(), "-c".into(), CHECK.into()]));
    let pid = c
        .exec(&process, &casulo::ExecOptions::default())
        .expect("exec");
    let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap();
    assert_eq!(
        status,
        nix::sys::wait::WaitStatus::Exited(nix::unistd::Pid::from_raw(pid), 0),
        "the exec'd check failed"
    );
    c.start().expect("start");
    assert_eq!(c.wait().expect("wait"), 0, "the container's check failed");
    Container::load(&root, id)
        .unwrap()
        .delete()
        .expect("delete");
    ChildAllocCounter::count() - before
}

#[test]
fn forked_children_allocate_nothing() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP forked_children_allocate_nothing: needs root");
        return;
    }
    if !Path::new("/bin/busybox").exists() {
        eprintln!(
            "SKIP forked_children_allocate_nothing: /bin/busybox (busybox-static) is missing"
        );
        return;
    }
    let dir = TempDir(std::env::temp_dir().join(format!("casulo-allocs-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    ChildAllocCounter::arm();
    let tag = std::process::id();
    let plain = run(&dir.0, &format!("allocs-{tag}-a"), false);
    let cgroupns = run(&dir.0, &format!("allocs-{tag}-b"), true);
    assert_eq!(
        (plain, cgroupns),
        (0, 0),
        "forked children allocated (run with {}=1 to see where)",
        casulo::__private::TRACE_VAR
    );
}

/// A bundle of busybox whose default config has `edit` applied to it.
fn small_bundle(dir: &Path, id: &str, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let bundle = dir.join(format!("bundle-{id}"));
    let rootfs = bundle.join("rootfs");
    for d in ["bin", "proc", "dev", "tmp", "etc"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    // procfs must not land on a symlink's target.
    std::os::unix::fs::symlink("/tmp", rootfs.join("link")).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for a in ["sh", "test", "grep"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).unwrap();
    }
    let mut spec = casulo::default_spec_json(casulo::SpecOptions::default());
    spec["process"]["terminal"] = false.into();
    spec["process"]["args"] = serde_json::json!(["/bin/sh", "-c", "exit 0"]);
    edit(&mut spec);
    std::fs::write(
        bundle.join("config.json"),
        serde_json::to_vec_pretty(&spec).unwrap(),
    )
    .unwrap();
    bundle
}

fn add_mount(spec: &mut serde_json::Value, m: serde_json::Value) {
    spec["mounts"].as_array_mut().unwrap().push(m);
}

/// The failures of the init's rootfs steps: each create fails with its usual message, leaves
/// no state dir, and the init that failed (its error made, sent and dropped) allocated
/// nothing. Then a `--no-pivot` container, whose init reads mountinfo, runs.
#[test]
fn init_failures_allocate_nothing() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP init_failures_allocate_nothing: needs root");
        return;
    }
    if !Path::new("/bin/busybox").exists() {
        eprintln!("SKIP init_failures_allocate_nothing: /bin/busybox (busybox-static) is missing");
        return;
    }
    let dir =
        TempDir(std::env::temp_dir().join(format!("casulo-failallocs-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let root = dir.0.join("state");
    ChildAllocCounter::arm();
    type Edit = fn(&mut serde_json::Value);
    let cases: [(&str, Edit, &str); 7] = [
        (
            "bind-source",
            |s| {
                add_mount(
                    s,
                    serde_json::json!({"destination": "/mnt", "type": "bind",
                    "source": "rootfs/nonexistent", "options": ["bind"]}),
                )
            },
            "rootfs: open bind source in the rootfs /mnt: ENOENT",
        ),
        (
            "through-file",
            |s| {
                add_mount(
                    s,
                    serde_json::json!({"destination": "/etc/passwd/x",
                    "type": "tmpfs", "source": "tmpfs"}),
                )
            },
            "rootfs: create mount point /etc/passwd/x: ENOTDIR",
        ),
        (
            "tmpfs-option",
            |s| {
                add_mount(
                    s,
                    serde_json::json!({"destination": "/mnt", "type": "tmpfs",
                    "source": "tmpfs", "options": ["size=nonsense"]}),
                )
            },
            "rootfs: mount /mnt: EINVAL",
        ),
        (
            "proc-on-link",
            |s| {
                add_mount(
                    s,
                    serde_json::json!({"destination": "/link", "type": "proc",
                    "source": "proc"}),
                )
            },
            "rootfs: mount /link: filesystem \"proc\" must be mounted on ordinary directory",
        ),
        (
            "device",
            |s| {
                s["linux"]["devices"] = serde_json::json!([{"path": "/dev/null/x",
                    "type": "c", "major": 1, "minor": 3}])
            },
            "rootfs: create device directory /dev/null/x: ENOTDIR",
        ),
        (
            "readonly",
            |s| s["linux"]["readonlyPaths"] = serde_json::json!(["/etc/passwd/x"]),
            "rootfs: open readonly path /etc/passwd/x: ENOTDIR",
        ),
        (
            "masked",
            |s| s["linux"]["maskedPaths"] = serde_json::json!(["/etc/passwd/x"]),
            "rootfs: open masked path /etc/passwd/x: ENOTDIR",
        ),
    ];
    let tag = std::process::id();
    let mut counts = Vec::new();
    for (name, edit, want) in cases {
        let id = format!("failallocs-{tag}-{name}");
        let bundle = small_bundle(&dir.0, &id, edit);
        let _cleanup = Cleanup(&root, &id);
        let before = ChildAllocCounter::count();
        let e = ContainerBuilder::new(&id, &bundle)
            .root(&root)
            .create()
            .map(|_| ())
            .expect_err(name)
            .to_string();
        assert!(e.contains(want), "{name}: {e}");
        assert!(!root.join(&id).exists(), "{name}: the state dir is left");
        counts.push((name, ChildAllocCounter::count() - before));
    }
    let id = format!("failallocs-{tag}-nopivot");
    // It runs, with its own procfs the one whole procfs it sees.
    let bundle = small_bundle(&dir.0, &id, |s| {
        s["process"]["args"] = serde_json::json!([
            "/bin/sh",
            "-c",
            "test \"$(grep -c '^[0-9]* [0-9]* [0-9:]* / .* - proc ' /proc/self/mountinfo)\" = 1"
        ]);
    });
    let _cleanup = Cleanup(&root, &id);
    let before = ChildAllocCounter::count();
    let c = ContainerBuilder::new(&id, &bundle)
        .root(&root)
        .no_pivot(true)
        .create()
        .expect("create with no_pivot");
    c.start().expect("start");
    assert_eq!(
        c.wait().expect("wait"),
        0,
        "the no-pivot container's check failed"
    );
    Container::load(&root, &id)
        .unwrap()
        .delete()
        .expect("delete");
    counts.push(("nopivot", ChildAllocCounter::count() - before));
    assert!(
        counts.iter().all(|(_, n)| *n == 0),
        "forked children allocated: {counts:?} (run with {}=1 to see where)",
        casulo::__private::TRACE_VAR
    );
}
