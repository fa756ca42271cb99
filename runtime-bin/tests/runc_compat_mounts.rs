//! Mount behaviour that runc's integration suite checks (mounts.bats, no_pivot.bats,
//! mounts_sshfs.bats, userns.bats), kept here so that a regression shows without that suite.
mod common;
use common::*;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use serde_json::json;

/// A tmpfs mounted on the host for the length of a test, unmounted when dropped.
struct HostTmpfs(PathBuf);

impl HostTmpfs {
    /// A tmpfs at `dir` whose mount then gets `flags` (per-mount flags, set by a bind remount
    /// so that they are not superblock flags).
    fn new(dir: PathBuf, flags: MsFlags) -> HostTmpfs {
        std::fs::create_dir_all(&dir).unwrap();
        mount(
            Some("tmpfs"),
            &dir,
            Some("tmpfs"),
            MsFlags::empty(),
            None::<&str>,
        )
        .unwrap();
        let t = HostTmpfs(dir);
        std::fs::write(t.0.join("file"), "host file\n").unwrap();
        mount(
            None::<&str>,
            &t.0,
            None::<&str>,
            flags | MsFlags::MS_BIND | MsFlags::MS_REMOUNT,
            None::<&str>,
        )
        .unwrap();
        t
    }
}

impl Drop for HostTmpfs {
    fn drop(&mut self) {
        let _ = umount2(&self.0, MntFlags::MNT_DETACH);
    }
}

/// The options field of `dest`'s line in /proc/self/mounts text.
fn options_of<'a>(mounts: &'a str, dest: &str) -> Vec<&'a str> {
    mounts
        .lines()
        .rev()
        .find(|l| l.split(' ').nth(1) == Some(dest))
        .unwrap_or_else(|| panic!("no mount at {dest} in {mounts}"))
        .split(' ')
        .nth(3)
        .unwrap()
        .split(',')
        .collect()
}

#[test]
fn proc_on_a_symlink_is_refused() {
    if !can_run("proc_on_a_symlink_is_refused") {
        return;
    }
    let mut b = Bundle::new("mnt-procsym", &["true"]);
    let r = b.own_rootfs();
    std::fs::remove_dir(r.join("proc")).unwrap();
    std::fs::create_dir(r.join("bad-proc")).unwrap();
    std::os::unix::fs::symlink("/bad-proc", r.join("proc")).unwrap();
    let out = b.create();
    fails_cleanly(&b, &out, "must be mounted on ordinary directory");
    assert!(std::fs::read_dir(r.join("bad-proc"))
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn read_only_dev_keeps_its_submounts_and_nodes() {
    if !can_run("read_only_dev_keeps_its_submounts_and_nodes") {
        return;
    }
    let mut b = Bundle::new(
        "mnt-rodev",
        &[
            "sh",
            "-c",
            "grep '^tmpfs /dev ' /proc/mounts; grep -c ' /dev/pts ' /proc/mounts; \
             test -c /dev/null && echo null; touch /dev/x 2>/dev/null || echo read-only",
        ],
    );
    for m in b.config["mounts"].as_array_mut().unwrap() {
        if m["destination"] == "/dev" {
            m["options"].as_array_mut().unwrap().push("ro".into());
        }
    }
    b.save();
    let out = b.run();
    assert!(out.ok(), "{} {}", out.stdout, out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", out.stdout);
    assert!(lines[0].contains(" ro,"), "{}", out.stdout);
    assert_eq!(&lines[1..], ["1", "null", "read-only"]);
}

#[test]
fn bind_source_made_by_an_earlier_mount() {
    if !can_run("bind_source_made_by_an_earlier_mount") {
        return;
    }
    let mut b = Bundle::new("mnt-order", &["cat", "/final/x/file"]);
    let r = b.own_rootfs();
    let src = b.dir.join("bind-src");
    std::fs::create_dir_all(src.join("x")).unwrap();
    std::fs::write(src.join("x/file"), "from the earlier mount\n").unwrap();
    b.add_mount(
        json!({"source": src, "destination": "/mnt", "type": "bind", "options": ["rbind"]}),
    );
    // Source and destination as host paths inside the rootfs, as runc accepts them: the
    // source only exists once the mount above is made.
    b.add_mount(
        json!({"source": r.join("mnt"), "destination": r.join("final"), "type": "bind",
               "options": ["rbind"]}),
    );
    let out = b.run();
    assert!(out.ok(), "{} {}", out.stdout, out.stderr);
    assert_eq!(out.stdout, "from the earlier mount\n");
    assert!(r.join("final").is_dir(), "the mount point is in the rootfs");
}

#[test]
fn bind_source_inside_the_rootfs_does_not_follow_its_symlinks_out() {
    if !can_run("bind_source_inside_the_rootfs_does_not_follow_its_symlinks_out") {
        return;
    }
    if !is_casulo() {
        eprintln!("SKIP: runc resolves a bind source on the host, following the image's links");
        return;
    }
    let mut b = Bundle::new("mnt-srcsym", &["cat", "/seen/file"]);
    let r = b.own_rootfs();
    let host = b.dir.join("host-only");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("file"), "host secret\n").unwrap();
    std::fs::create_dir_all(r.join("inside")).unwrap();
    std::fs::write(r.join("inside/file"), "image file\n").unwrap();
    // The image points the source at a host path, which inside the root does not exist.
    std::os::unix::fs::symlink(&host, r.join("escape")).unwrap();
    b.add_mount(
        json!({"source": r.join("escape"), "destination": "/seen", "type": "bind",
               "options": ["bind"]}),
    );
    let out = b.run();
    assert!(
        !out.stdout.contains("host secret"),
        "the bind followed the image's symlink out of the rootfs"
    );
    fails_cleanly(&b, &out, "ENOENT");
}

#[test]
fn bind_mount_points_through_dangling_symlinks() {
    if !can_run("bind_mount_points_through_dangling_symlinks") {
        return;
    }
    let mut b = Bundle::new("mnt-dangling", &["true"]);
    let r = b.own_rootfs();
    std::fs::create_dir_all(r.join("etc")).unwrap();
    std::os::unix::fs::symlink("/tmp/foo/bar", r.join("jump")).unwrap();
    std::os::unix::fs::symlink("/jump/baz/hosts", r.join("etc/hosts")).unwrap();
    std::os::unix::fs::symlink("/tmp/dirlink", r.join("etc/dirlink")).unwrap();
    let file = b.dir.join("config.json");
    let want = std::fs::metadata(&file).unwrap().ino();
    b.add_mount(json!({"source": file, "destination": "/etc/hosts", "options": ["bind"]}));
    let dir_source = r.join("etc");
    b.add_mount(json!({"source": dir_source, "destination": "/etc/dirlink", "options": ["bind"]}));
    b.config["process"]["args"] = json!([
        "sh",
        "-c",
        "stat -c %i /tmp/foo/bar/baz/hosts; test -f /tmp/dirlink/passwd && echo dir"
    ]);
    b.save();
    let out = b.run();
    assert!(out.ok(), "{} {}", out.stdout, out.stderr);
    assert_eq!(out.stdout, format!("{want}\ndir\n"));
    assert!(r.join("tmp/foo/bar/baz/hosts").is_file());
    assert!(r.join("tmp/dirlink").is_dir());
}

#[test]
fn tmpfs_takes_the_mode_of_its_mount_point() {
    if !can_run("tmpfs_takes_the_mode_of_its_mount_point") {
        return;
    }
    let mut b = Bundle::new(
        "mnt-tmpfsmode",
        &[
            "sh",
            "-c",
            "stat -c %a /inherit /explicit /sgid/a/b /new/dir; \
             grep -c ' /inherit tmpfs .*mode=710' /proc/self/mounts; \
             grep ' /new/dir ' /proc/self/mounts | grep -c mode=",
        ],
    );
    let r = b.own_rootfs();
    for (dir, mode) in [("inherit", 0o710), ("explicit", 0o710), ("sgid", 0o7755)] {
        std::fs::create_dir(r.join(dir)).unwrap();
        std::fs::set_permissions(r.join(dir), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    for (dest, extra) in [
        ("/inherit", None),
        ("/explicit", Some("mode=1500")),
        ("/sgid/a/b", None),
        ("/new/dir", None),
    ] {
        let mut options = vec!["rw", "nodev", "nosuid"];
        options.extend(extra);
        b.add_mount(
            json!({"source": "tmpfs", "destination": dest, "type": "tmpfs", "options": options}),
        );
    }
    let out = b.run();
    // grep -c of no line exits 1: the last count may be 0.
    assert_eq!(
        out.stdout, "710\n1500\n1777\n1777\n1\n0\n",
        "stderr: {}",
        out.stderr
    );
    let mode = |p: &str| std::fs::metadata(r.join(p)).unwrap().mode() & 0o7777;
    assert_eq!(mode("explicit"), 0o710, "the directory itself is untouched");
    assert_eq!(mode("sgid/a"), 0o2755, "made directories inherit setgid");
    assert_eq!(mode("sgid/a/b"), 0o2755, "made directories inherit setgid");
    assert_eq!(mode("new/dir"), 0o755);
}

#[test]
fn explicit_atime_on_a_bind_of_a_noatime_mount() {
    if !can_run("explicit_atime_on_a_bind_of_a_noatime_mount") {
        return;
    }
    let mut b = Bundle::new("mnt-atime", &["cat", "/proc/self/mounts"]);
    let host = HostTmpfs::new(b.dir.join("noatime-src"), MsFlags::MS_NOATIME);
    for (dest, opts) in [
        ("/relatime", vec!["bind", "relatime"]),
        ("/strict", vec!["bind", "strictatime"]),
        ("/kept", vec!["bind", "ro"]),
    ] {
        b.add_mount(
            json!({"source": host.0, "destination": dest, "type": "bind", "options": opts}),
        );
    }
    let out = b.run();
    assert!(out.ok(), "{}", out.stderr);
    let rel = options_of(&out.stdout, "/relatime");
    assert!(
        rel.contains(&"relatime") && !rel.contains(&"noatime"),
        "{rel:?}"
    );
    let strict = options_of(&out.stdout, "/strict");
    assert!(
        !strict.contains(&"relatime") && !strict.contains(&"noatime"),
        "{strict:?}"
    );
    // No atime flag asked for: the source's stays, as with mount(8).
    let kept = options_of(&out.stdout, "/kept");
    assert!(
        kept.contains(&"noatime") && kept.contains(&"ro"),
        "{kept:?}"
    );
}

#[test]
fn locked_flags_of_a_bind_source_stay_in_a_user_namespace() {
    if !can_run("locked_flags_of_a_bind_source_stay_in_a_user_namespace") {
        return;
    }
    let mut b = Bundle::new("mnt-locked", &["cat", "/proc/self/mounts"]);
    b.use_userns();
    let host = HostTmpfs::new(
        b.dir.join("ro-src"),
        MsFlags::MS_RDONLY | MsFlags::MS_NOEXEC | MsFlags::MS_NOATIME,
    );
    b.add_mount(
        json!({"source": host.0, "destination": "/mnt", "type": "bind",
               "options": ["bind", "nosuid", "nodev"]}),
    );
    let out = b.run();
    assert!(out.ok(), "{}", out.stderr);
    let opts = options_of(&out.stdout, "/mnt");
    for want in ["ro", "noexec", "noatime", "nosuid", "nodev"] {
        assert!(opts.contains(&want), "{want} missing: {opts:?}");
    }

    // Clearing a locked flag by name cannot be done: refused, not silently ignored.
    let mut b2 = Bundle::new("mnt-locked-rw", &["true"]);
    b2.use_userns();
    b2.add_mount(
        json!({"source": host.0, "destination": "/mnt", "type": "bind",
               "options": ["bind", "rw"]}),
    );
    let out = b2.create();
    fails_cleanly(&b2, &out, "cannot clear locked flags ro");
}

#[test]
fn no_pivot_leaves_no_whole_host_procfs() {
    if !can_run("no_pivot_leaves_no_whole_host_procfs") {
        return;
    }
    // The container's root may not mount a procfs of its own in a new user and pid
    // namespace: the kernel allows it only while a whole procfs is visible in the mount
    // namespace, which the host's would be, under the moved root.
    let mut b = Bundle::new(
        "mnt-nopivot",
        &[
            "unshare",
            "-mrpf",
            "sh",
            "-c",
            "mount -t proc none /proc && echo mounted",
        ],
    );
    for set in ["bounding", "permitted", "effective"] {
        if let Some(caps) = b.config["process"]["capabilities"][set].as_array_mut() {
            caps.push("CAP_SETFCAP".into());
        }
    }
    b.save();
    let out = b.rt(&[
        "run",
        "--no-pivot",
        "--bundle",
        b.dir.to_str().unwrap(),
        &b.id,
    ]);
    assert!(
        !out.stdout.contains("mounted"),
        "{} {}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stderr.contains("Permission denied") || out.stderr.contains("permission denied"),
        "{}",
        out.stderr
    );
    assert!(
        Path::new("/proc/self").exists(),
        "the host's /proc is intact"
    );
}

#[test]
fn recursive_read_only_reaches_submounts() {
    if !can_run("recursive_read_only_reaches_submounts") {
        return;
    }
    let mut b = Bundle::new(
        "mnt-rro",
        &[
            "sh",
            "-c",
            "for d in /ro /rro; do touch $d/x 2>/dev/null && echo $d rw || echo $d ro; \
             touch $d/sub/x 2>/dev/null && echo $d/sub rw || echo $d/sub ro; done; \
             grep ' /ratime/sub ' /proc/self/mounts | grep -c noatime",
        ],
    );
    let host = HostTmpfs::new(b.dir.join("volume"), MsFlags::empty());
    std::fs::create_dir(host.0.join("sub")).unwrap();
    let sub = HostTmpfs::new(host.0.join("sub"), MsFlags::MS_NOATIME);
    for (dest, opts) in [
        ("/ro", vec!["rbind", "ro"]),
        ("/rro", vec!["rbind", "rro"]),
        ("/ratime", vec!["rbind", "ratime"]),
    ] {
        b.add_mount(
            json!({"source": host.0, "destination": dest, "type": "bind", "options": opts}),
        );
    }
    let out = b.run();
    assert_eq!(
        out.stdout, "/ro ro\n/ro/sub rw\n/rro ro\n/rro/sub ro\n0\n",
        "stderr: {}",
        out.stderr
    );
    drop(sub);
}

#[test]
fn masked_directories_share_one_tmpfs_and_are_masked_once() {
    if !can_run("masked_directories_share_one_tmpfs_and_are_masked_once") {
        return;
    }
    let mut b = Bundle::new(
        "mnt-mask",
        &[
            "sh",
            "-c",
            "stat -c %d /d1 /d2 /d3 | uniq | wc -l; grep -c ' /d1 ' /proc/self/mounts; \
             grep -c ' /f ' /proc/self/mounts; ls -A /d2; cat /f; \
             touch /d2/x 2>/dev/null || echo read-only",
        ],
    );
    let r = b.own_rootfs();
    for d in ["d1", "d2", "d3"] {
        std::fs::create_dir(r.join(d)).unwrap();
        std::fs::write(r.join(d).join("secret"), "hidden\n").unwrap();
    }
    std::fs::write(r.join("f"), "hidden\n").unwrap();
    let masked = b.config["linux"]["maskedPaths"].as_array_mut().unwrap();
    for p in ["/d1", "/d2", "/f", "/./d1", "/d3", "/f"] {
        masked.push(p.into());
    }
    b.save();
    let out = b.run();
    assert_eq!(out.stdout, "1\n1\n1\nread-only\n", "stderr: {}", out.stderr);
}

#[test]
fn joins_another_containers_user_namespace_and_a_host_network_namespace() {
    if !can_run("joins_another_containers_user_namespace_and_a_host_network_namespace") {
        return;
    }
    let mut owner = Bundle::new("mnt-userns-a", &["sleep", "60"]);
    owner.use_userns();
    let out = owner.run_detached();
    assert!(out.ok(), "{}", out.stderr);
    let pid = owner.state().unwrap()["pid"].as_i64().unwrap();

    let mut b = Bundle::new(
        "mnt-userns-b",
        &[
            "sh",
            "-c",
            "cat /proc/self/uid_map; readlink /proc/self/ns/net; test -d /dev/pts && echo pts",
        ],
    );
    b.use_userns();
    let linux = &mut b.config["linux"];
    linux.as_object_mut().unwrap().remove("uidMappings");
    linux.as_object_mut().unwrap().remove("gidMappings");
    for ns in linux["namespaces"].as_array_mut().unwrap() {
        match ns["type"].as_str() {
            Some("user") => ns["path"] = format!("/proc/{pid}/ns/user").into(),
            // The host's network namespace, which the joined user namespace does not own:
            // joined before it, with the runtime's privileges.
            Some("network") => ns["path"] = "/proc/self/ns/net".into(),
            _ => {}
        }
    }
    // No sysfs of a network namespace the user namespace does not own: the host's /sys.
    for m in b.config["mounts"].as_array_mut().unwrap() {
        if m["type"] == "sysfs" {
            *m = json!({"source": "/sys", "destination": m["destination"], "type": "bind",
                        "options": ["rbind"]});
        }
    }
    b.save();
    let out = b.run();
    assert!(out.ok(), "{} {}", out.stdout, out.stderr);
    let host_net = std::fs::read_link("/proc/self/ns/net").unwrap();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    let map: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(map, ["0", "100000", "65536"]);
    assert_eq!(Path::new(lines[1]), host_net);
    assert_eq!(lines[2], "pts");
}

#[test]
fn bind_sources_the_user_namespace_cannot_reach() {
    if !can_run("bind_sources_the_user_namespace_cannot_reach") {
        return;
    }
    let mut b = Bundle::new(
        "mnt-hostsrc",
        &["cat", "/tmp/mount-1/foo.txt", "/tmp/mount-2/foo.txt"],
    );
    b.use_userns();
    let r = b.own_rootfs();
    for n in ["1", "2"] {
        // The image has the mount points: the container's root may not make them.
        std::fs::create_dir_all(r.join(format!("tmp/mount-{n}"))).unwrap();
        let src = b.dir.join(format!("inaccessible-{n}"));
        std::fs::create_dir_all(src.join("dir")).unwrap();
        std::fs::write(src.join("dir/foo.txt"), format!("source {n}\n")).unwrap();
        // Only the host's root gets in: not the container's, which is uid 100000 here.
        std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o700)).unwrap();
        b.add_mount(
            json!({"source": src.join("dir"), "destination": format!("/tmp/mount-{n}"),
                   "options": ["bind"]}),
        );
    }
    let out = b.run();
    assert!(out.ok(), "{}", out.stderr);
    assert_eq!(out.stdout, "source 1\nsource 2\n");
}

/// Whether `point` is a mount point in this mount namespace.
fn is_mount_point(point: &Path) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == point.to_str())
}

#[test]
fn a_mount_under_a_shared_bind_reaches_the_host_only_with_rshared_root() {
    if !can_run("a_mount_under_a_shared_bind_reaches_the_host_only_with_rshared_root") {
        return;
    }
    // Kubernetes' Bidirectional mount propagation: containerd's CRI gives the bind of a shared
    // host path `rshared` and the rootfs `rootfsPropagation: rshared`, and a mount the
    // container makes under it must show on the host. With the default propagation (rslave)
    // nothing the container mounts reaches the host.
    for (shared_root, id) in [(true, "mnt-bidir"), (false, "mnt-slave")] {
        let mut b = Bundle::new(
            id,
            &[
                "sh",
                "-c",
                "mkdir -p /mnt/sub && mount -t tmpfs bidir /mnt/sub",
            ],
        );
        let host = HostTmpfs::new(b.dir.join("shared-src"), MsFlags::empty());
        mount(
            None::<&str>,
            &host.0,
            None::<&str>,
            MsFlags::MS_SHARED,
            None::<&str>,
        )
        .unwrap();
        // Unmounted first, when it is there.
        let sub = HostTmpfs(host.0.join("sub"));
        if shared_root {
            b.config["linux"]["rootfsPropagation"] = "rshared".into();
        }
        for set in ["bounding", "effective", "permitted"] {
            b.config["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push("CAP_SYS_ADMIN".into());
        }
        b.add_mount(
            json!({"source": host.0, "destination": "/mnt", "type": "bind",
                           "options": ["rbind", "rshared"]}),
        );
        let out = b.run();
        assert!(out.ok(), "{}", out.stderr);
        assert_eq!(
            is_mount_point(&sub.0),
            shared_root,
            "rootfsPropagation rshared: {shared_root}: the container's mount on the host"
        );
    }
}
