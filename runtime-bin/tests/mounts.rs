//! Mount options that engines use beyond the runtime-spec: `tmpcopyup` (podman's
//! `--read-only` puts it on `/tmp`, `/run` and `/var/tmp`; runc implements it).
mod common;
use common::*;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// A private copy of the busybox rootfs in the bundle, with `/data` holding files owned by
/// 1000:1000 with modes of their own, a symlink and a nested dir (no fifo: runc's copy-up
/// fails on one). The container's root has no CAP_DAC_OVERRIDE: the modes let it in.
fn rootfs_with_data(b: &Bundle) -> std::path::PathBuf {
    let r = copy_rootfs(&b.dir);
    let d = r.join("data");
    std::fs::create_dir_all(d.join("sub/deeper")).unwrap();
    std::fs::write(d.join("file"), "lower-content\n").unwrap();
    std::fs::write(d.join("sub/deeper/nested"), "nested-content\n").unwrap();
    std::os::unix::fs::symlink("file", d.join("link")).unwrap();
    for (p, mode) in [("file", 0o666), ("sub", 0o711)] {
        std::fs::set_permissions(d.join(p), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    for p in ["file", "sub", "sub/deeper/nested"] {
        std::os::unix::fs::chown(d.join(p), Some(1000), Some(1000)).unwrap();
    }
    std::os::unix::fs::lchown(d.join("link"), Some(1001), Some(1001)).unwrap();
    r
}

fn add_tmpfs(b: &mut Bundle, dest: &str, options: &[&str]) {
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "destination": dest, "type": "tmpfs", "source": "tmpfs", "options": options,
        }));
}

#[test]
fn tmpcopyup_fills_the_tmpfs_with_the_lower_tree() {
    if !can_run("tmpcopyup_fills_the_tmpfs_with_the_lower_tree") {
        return;
    }
    let mut b = Bundle::new(
        "copyup",
        &[
            "sh",
            "-c",
            "grep ' /data ' /proc/self/mounts | cut -d' ' -f3; \
             stat -c '%n %u:%g %a %F' /data/file /data/sub /data/sub/deeper/nested; \
             stat -c '%n %u:%g %F' /data/link; \
             cat /data/link /data/sub/deeper/nested; \
             echo upper > /data/file && cat /data/file; \
             touch /elsewhere 2>/dev/null || echo root-is-read-only",
        ],
    );
    let r = rootfs_with_data(&b);
    b.config["root"]["path"] = r.to_str().unwrap().into();
    b.config["root"]["readonly"] = true.into();
    add_tmpfs(
        &mut b,
        "/data",
        &["nosuid", "nodev", "mode=755", "tmpcopyup"],
    );
    b.save();
    let out = b.run();
    assert!(out.ok(), "{} {}", out.stdout, out.stderr);
    let want = "tmpfs\n\
                /data/file 1000:1000 666 regular file\n\
                /data/sub 1000:1000 711 directory\n\
                /data/sub/deeper/nested 1000:1000 644 regular file\n\
                /data/link 1001:1001 symbolic link\n\
                lower-content\n\
                nested-content\n\
                upper\n\
                root-is-read-only\n";
    assert_eq!(out.stdout, want, "stderr: {}", out.stderr);
    // The writes went to the tmpfs, not to the image.
    assert_eq!(
        std::fs::read_to_string(r.join("data/file")).unwrap(),
        "lower-content\n"
    );
    assert_eq!(
        std::fs::metadata(r.join("data/file")).unwrap().uid(),
        1000,
        "the image's file is untouched"
    );
    let left = b.leftovers();
    assert!(left.is_empty(), "left behind: {left:#?}");
}

#[test]
fn tmpcopyup_of_a_read_only_tmpfs() {
    if !can_run("tmpcopyup_of_a_read_only_tmpfs") {
        return;
    }
    let mut b = Bundle::new(
        "copyup-ro",
        &[
            "sh",
            "-c",
            "cat /data/file; echo x > /data/new 2>/dev/null || echo tmpfs-is-read-only; \
             grep ' /data ' /proc/self/mounts | grep -c '[ ,]ro[, ]'",
        ],
    );
    let r = rootfs_with_data(&b);
    b.config["root"]["path"] = r.to_str().unwrap().into();
    add_tmpfs(&mut b, "/data", &["ro", "tmpcopyup"]);
    b.save();
    let out = b.run();
    assert!(out.ok(), "{} {}", out.stdout, out.stderr);
    assert_eq!(out.stdout, "lower-content\ntmpfs-is-read-only\n1\n");
    assert!(!Path::new(&r.join("data/new")).exists());
}

#[test]
fn tmpcopyup_on_a_bind_mount_is_refused() {
    if !can_run("tmpcopyup_on_a_bind_mount_is_refused") {
        return;
    }
    if !is_casulo() {
        eprintln!("SKIP tmpcopyup_on_a_bind_mount_is_refused: runc ignores the option there");
        return;
    }
    let mut b = Bundle::new("copyup-bind", &["true"]);
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "destination": "/mnt", "type": "bind", "source": "/tmp",
            "options": ["rbind", "tmpcopyup"],
        }));
    b.save();
    let out = b.create();
    fails_cleanly(&b, &out, "tmpcopyup");
}
