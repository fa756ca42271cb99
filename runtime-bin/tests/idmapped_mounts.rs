//! Idmapped bind mounts (`mounts[].uidMappings`/`gidMappings`, the `idmap` and `ridmap`
//! options), as runc's idmap.bats checks them: owners seen through the mapping and written
//! back through it, the recursive form over a nested mount, and bad mappings refused with
//! nothing left behind.
mod common;
use common::*;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use serde_json::json;

/// A host bind mount for the length of a test, detached when dropped (declare it after the
/// [`Bundle`], so that it goes first and the bundle's leftover check does not see it).
struct HostBind(PathBuf);

impl HostBind {
    fn new(source: &Path, target: &Path) -> HostBind {
        mount(
            Some(source),
            target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .unwrap();
        HostBind(target.to_path_buf())
    }
}

impl Drop for HostBind {
    fn drop(&mut self) {
        let _ = umount2(&self.0, MntFlags::MNT_DETACH);
    }
}

/// A directory of the bundle with `files` in it, each chowned to its uid and gid.
fn dir_with(b: &Bundle, name: &str, files: &[(&str, u32, u32)]) -> PathBuf {
    let d = b.dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    for (f, uid, gid) in files {
        std::fs::write(d.join(f), "x").unwrap();
        std::os::unix::fs::chown(d.join(f), Some(*uid), Some(*gid)).unwrap();
    }
    d
}

/// Whether the filesystem of the tests' bundles can carry an idmapped mount, from its type
/// and the kernel's version (tmpfs learnt it in Linux 6.3; ext4, xfs and btrfs had it from
/// the start of idmapped mounts). Says SKIP and why where not: the cgroup v2 guests keep
/// their scratch directory on a tmpfs under Linux 6.1.
fn can_idmap(test: &str) -> bool {
    use nix::sys::statfs::{
        statfs, BTRFS_SUPER_MAGIC, EXT4_SUPER_MAGIC, TMPFS_MAGIC, XFS_SUPER_MAGIC,
    };
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let Ok(fs) = statfs(&dir) else {
        return true;
    };
    let t = fs.filesystem_type();
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut v = release
        .split(['.', '-'])
        .map(|n| n.parse::<u32>().unwrap_or(0));
    let (major, minor) = (v.next().unwrap_or(0), v.next().unwrap_or(0));
    let ok = if t == TMPFS_MAGIC {
        (major, minor) >= (6, 3)
    } else {
        [EXT4_SUPER_MAGIC, XFS_SUPER_MAGIC, BTRFS_SUPER_MAGIC].contains(&t)
    };
    if !ok {
        eprintln!(
            "SKIP {test}: {} (filesystem magic {:#x}) cannot be idmapped on Linux {release}",
            dir.display(),
            t.0
        );
    }
    ok
}

fn map(container: u32, host: u32, size: u32) -> serde_json::Value {
    json!([{"containerID": container, "hostID": host, "size": size}])
}

#[test]
fn owners_are_mapped_in_and_back_out() {
    if !can_run("owners_are_mapped_in_and_back_out")
        || !can_idmap("owners_are_mapped_in_and_back_out")
    {
        return;
    }
    // In a user namespace mapping 0..65536 to 100000..: the mount maps disk owner 1000 to
    // host id 105000, which the container sees as 5000; what user 5000 writes lands on the
    // host owned by 1000.
    let mut b = Bundle::new(
        "idm-owners",
        &[
            "sh",
            "-c",
            "stat -c '%u:%g' /mnt/host-file && touch /mnt/new && stat -c '%u:%g' /mnt/new",
        ],
    );
    let data = dir_with(&b, "data", &[("host-file", 1000, 1000)]);
    std::os::unix::fs::chown(&data, Some(1000), Some(1000)).unwrap();
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    b.config["linux"]["uidMappings"] = map(0, 100000, 65536);
    b.config["linux"]["gidMappings"] = map(0, 100000, 65536);
    // A user namespace cannot mount the host's cgroup hierarchies.
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["destination"] != "/sys/fs/cgroup");
    b.config["process"]["user"] = json!({"uid": 5000, "gid": 5000});
    b.add_mount(
        json!({"source": data, "destination": "/mnt", "type": "bind", "options": ["bind"],
               "uidMappings": map(1000, 105000, 1), "gidMappings": map(1000, 105000, 1)}),
    );
    let out = b.run();
    assert!(out.ok(), "{} {}", out.stdout, out.stderr);
    assert_eq!(out.stdout, "5000:5000\n5000:5000\n");
    let new = std::fs::metadata(data.join("new")).unwrap();
    assert_eq!((new.uid(), new.gid()), (1000, 1000));
}

#[test]
fn ridmap_maps_nested_mounts_and_idmap_does_not() {
    if !can_run("ridmap_maps_nested_mounts_and_idmap_does_not")
        || !can_idmap("ridmap_maps_nested_mounts_and_idmap_does_not")
    {
        return;
    }
    // No user namespace: ids are shown as the mount's mapping makes them.
    let mut b = Bundle::new(
        "idm-ridmap",
        &[
            "sh",
            "-c",
            "stat -c '%n %u:%g' /mnt/top /mnt/sub/nested /tmp/top /tmp/sub/nested",
        ],
    );
    let tree = dir_with(&b, "tree", &[("top", 1000, 1000)]);
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    let other = dir_with(&b, "other", &[("nested", 1001, 1002)]);
    let _nested = HostBind::new(&other, &tree.join("sub"));
    let maps = map(1000, 3000, 10);
    b.add_mount(
        json!({"source": tree, "destination": "/mnt", "type": "bind",
               "options": ["rbind", "ridmap"], "uidMappings": maps, "gidMappings": maps}),
    );
    b.add_mount(
        json!({"source": tree, "destination": "/tmp", "type": "bind",
               "options": ["rbind", "idmap"], "uidMappings": maps, "gidMappings": maps}),
    );
    let out = b.run();
    assert!(out.ok(), "{} {}", out.stdout, out.stderr);
    assert_eq!(
        out.stdout,
        "/mnt/top 3000:3000\n/mnt/sub/nested 3001:3002\n\
         /tmp/top 3000:3000\n/tmp/sub/nested 1001:1002\n"
    );
}

#[test]
fn bad_mappings_fail_cleanly() {
    if !can_run("bad_mappings_fail_cleanly") {
        return;
    }
    // Refused before anything is made: one of the two mappings alone, an empty range, the
    // `idmap` option without mappings nor a user namespace.
    let cases = [
        (
            json!({"source": "/tmp", "destination": "/mnt", "type": "bind",
                   "options": ["bind"], "uidMappings": map(0, 100000, 10)}),
            "both uid and gid mappings",
        ),
        (
            json!({"source": "/tmp", "destination": "/mnt", "type": "bind",
                   "options": ["bind"], "uidMappings": map(0, 100000, 0),
                   "gidMappings": map(0, 100000, 10)}),
            "is empty",
        ),
        (
            json!({"source": "/tmp", "destination": "/mnt", "type": "bind",
                   "options": ["rbind", "idmap"]}),
            "user namespace",
        ),
    ];
    for (m, cause) in cases {
        let mut b = Bundle::new("idm-bad", &["true"]);
        b.add_mount(m);
        let out = b.create();
        fails_cleanly(&b, &out, cause);
        if is_casulo() {
            assert!(out.stderr.contains("mount /mnt"), "{}", out.stderr);
        }
    }
}

#[test]
fn a_filesystem_that_cannot_be_idmapped_fails_cleanly() {
    if !can_run("a_filesystem_that_cannot_be_idmapped_fails_cleanly") {
        return;
    }
    // sysfs does not support idmapped mounts: the kernel's EINVAL, named with the mount; the
    // helper process that held the mapping's user namespace is gone with the rest.
    let mut b = Bundle::new("idm-sysfs", &["true"]);
    let maps = map(0, 100000, 10);
    b.add_mount(
        json!({"source": "/sys/kernel", "destination": "/mnt", "type": "bind",
               "options": ["bind"], "uidMappings": maps, "gidMappings": maps}),
    );
    let out = b.create();
    fails_cleanly(&b, &out, "EINVAL");
    if is_casulo() {
        assert!(
            out.stderr.contains("idmapped mount /mnt")
                && out.stderr.contains("mount_setattr(MOUNT_ATTR_IDMAP)"),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn shared_propagation_of_a_mount_survives_pivot_root() {
    if !can_run("shared_propagation_of_a_mount_survives_pivot_root")
        || !can_idmap("shared_propagation_of_a_mount_survives_pivot_root")
    {
        return;
    }
    // The old root is made a slave before it is detached; that must not reach the new root's
    // mounts, where a "shared" mount with no peer would become private (idmap.bats, the
    // propagation flag case).
    let mut b = Bundle::new(
        "idm-shared",
        &["sh", "-c", "grep -E ' /(mnt|tmp) ' /proc/self/mountinfo"],
    );
    let data = dir_with(&b, "data", &[]);
    let maps = map(0, 100000, 65536);
    b.add_mount(
        json!({"source": data, "destination": "/mnt", "type": "bind",
               "options": ["bind", "shared"], "uidMappings": maps, "gidMappings": maps}),
    );
    b.add_mount(
        json!({"source": data, "destination": "/tmp", "type": "bind",
               "options": ["bind", "shared"]}),
    );
    let out = b.run();
    assert!(out.ok(), "{} {}", out.stdout, out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", out.stdout);
    for l in lines {
        assert!(l.contains(" shared:"), "not shared: {l}");
    }
    assert!(out.stdout.contains(",idmapped"), "{}", out.stdout);
}
