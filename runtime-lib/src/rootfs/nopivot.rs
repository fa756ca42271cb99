//! `--no-pivot`: before the rootfs is moved over `/`, the host's whole procfs and sysfs mounts
//! are taken out of the container's mount namespace.
//!
//! This runs in the init, which must not allocate: /proc/self/mountinfo is read a line at a
//! time through a buffer on the stack. No mount is changed while a read is under way (the
//! kernel's walk of the mount list would then skip or repeat entries, and a detached mount
//! takes the ones under it along): each pass reads up to the first such mount not dealt with
//! yet, and only then detaches or covers that one; the next pass rewinds the file, which walks
//! the namespace's list afresh, until one finds none. The file is opened once, before the
//! host's procfs, through which its path goes, is detached.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::Mode;

use super::mount_err;
use super::paths::{unescape_mountinfo_into, PathBuffer, PATH_MAX};
use crate::lifecycle::text::{child_err, ChildError};
use crate::sys::oserror::OsError;

/// How many such mounts the host may have (ids of those dealt with are kept on the stack).
const MAX_MOUNTS: usize = 1024;

/// A line as long as a mountinfo line of a whole procfs or sysfs mounted on a path the kernel
/// takes (each byte of it escaped at worst as 4), with room for the other fields.
const LINE_MAX: usize = 4 * PATH_MAX + 512;

/// What a line of mountinfo says of the mount it describes.
#[derive(Debug, PartialEq, Eq)]
enum MountLine<'a> {
    /// A whole procfs or sysfs mount (its root mounted): its mount id and its mount point as
    /// written (escaped).
    PseudoFs(u32, &'a [u8]),
    /// Any other mount, or a line that does not parse (it names no such mount).
    Other,
    /// The start of a line too long to hold whose type is past the part held, and which may
    /// be a whole procfs or sysfs.
    Unknown,
}

/// What `line` (without its newline) says: the fields are `id parent major:minor root
/// mount-point options [optional fields...] - type source super-options`. Of a line cut
/// short (`complete` false), only the fields before its last space are whole.
fn classify(line: &[u8], complete: bool) -> MountLine<'_> {
    // A root other than `/` tells already, even cut short.
    let root = line.split(|b| *b == b' ').nth(3);
    if !complete && root.is_some_and(|r| !b"/".starts_with(r)) {
        return MountLine::Other;
    }
    let whole = match (complete, line.iter().rposition(|b| *b == b' ')) {
        (true, _) => line,
        (false, Some(end)) => &line[..end],
        (false, None) => return MountLine::Unknown,
    };
    let missing = if complete {
        MountLine::Other
    } else {
        MountLine::Unknown
    };
    let number = |s: &[u8]| std::str::from_utf8(s).ok()?.parse::<u32>().ok();
    let mut f = whole.split(|b| *b == b' ');
    let (Some(id), Some(parent)) = (f.next(), f.next()) else {
        return missing;
    };
    let (Some(id), Some(_)) = (number(id), number(parent)) else {
        return MountLine::Other;
    };
    let (Some(_device), Some(root)) = (f.next(), f.next()) else {
        return missing;
    };
    if root != b"/" {
        return MountLine::Other;
    }
    let (Some(point), Some(_options)) = (f.next(), f.next()) else {
        return missing;
    };
    loop {
        match f.next() {
            Some(b"-") => break,
            Some(_optional) => {}
            None => return missing,
        }
    }
    let Some(fstype) = f.next() else {
        return missing;
    };
    // The source and the super options.
    if complete && (f.next().is_none() || f.next().is_none()) {
        return MountLine::Other;
    }
    match fstype {
        b"proc" | b"sysfs" => MountLine::PseudoFs(id, point),
        _ => MountLine::Other,
    }
}

fn read_err(e: nix::Error) -> ChildError {
    child_err!("read /proc/self/mountinfo: {}", OsError(e))
}

/// The first whole procfs or sysfs mount in the mountinfo text that `file` reads (from its
/// start) that is outside `rootfs` and not in `done`: its id and mount point.
fn next_host_mount(
    file: BorrowedFd<'_>,
    rootfs: &Path,
    done: &[u32],
) -> Result<Option<(u32, PathBuffer)>, ChildError> {
    nix::unistd::lseek(file, 0, nix::unistd::Whence::SeekSet).map_err(read_err)?;
    let mut buf = [0u8; LINE_MAX];
    // Bytes held; whether the line they start is the rest of one too long to hold.
    let (mut len, mut skipping) = (0, false);
    loop {
        let n = loop {
            match nix::unistd::read(file, &mut buf[len..]) {
                Err(nix::Error::EINTR) => {}
                r => break r.map_err(read_err)?,
            }
        };
        let end_of_file = n == 0;
        len += n;
        let mut start = 0;
        while start < len {
            let (line, complete) = match buf[start..len].iter().position(|b| *b == b'\n') {
                Some(i) => (&buf[start..start + i], true),
                // The last line of the file may lack its newline.
                None if end_of_file => (&buf[start..len], true),
                None if start == 0 && len == buf.len() => (&buf[..], false),
                None => break,
            };
            let next = start + line.len() + 1;
            let class = if skipping {
                MountLine::Other
            } else {
                classify(line, complete)
            };
            skipping = !complete;
            match class {
                MountLine::PseudoFs(id, _) if done.contains(&id) => {}
                MountLine::PseudoFs(id, point) => {
                    let point = unescape_mountinfo_into(point).map_err(|e| {
                        let point = Path::new(OsStr::from_bytes(point));
                        mount_err("make host mount slave", point)(e)
                    })?;
                    if !point.as_path().starts_with(rootfs) {
                        return Ok(Some((id, point)));
                    }
                }
                MountLine::Other => {}
                MountLine::Unknown => {
                    return Err(child_err!(
                        "read /proc/self/mountinfo: a line longer than {LINE_MAX} bytes"
                    ))
                }
            }
            start = next.min(len);
        }
        if end_of_file {
            return Ok(None);
        }
        buf.copy_within(start..len, 0);
        len -= start;
    }
}

/// Before `--no-pivot` moves the rootfs over `/`: the host's procfs and sysfs mounts stay in
/// the mount namespace under it, and while a whole one is there the kernel lets the container
/// mount a fresh procfs or sysfs of its own (in a user namespace of its own), which masked
/// paths would not cover. Detach them (our open fds of the host's procfs keep working), or
/// cover them with a tmpfs where they cannot be unmounted.
pub fn hide_host_pseudo_filesystems(rootfs: &Path) -> Result<(), ChildError> {
    // Opened once: the path goes when the host's procfs is detached; the open file reads the
    // mount namespace's current list again each time it is rewound.
    let file = nix::fcntl::open(
        c"/proc/self/mountinfo",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(read_err)?;
    let mut done = [0u32; MAX_MOUNTS];
    for n in 0.. {
        let Some((id, point)) = next_host_mount(file.as_fd(), rootfs, &done[..n])? else {
            return Ok(());
        };
        *done.get_mut(n).ok_or_else(|| {
            child_err!("the host has more than {MAX_MOUNTS} procfs and sysfs mounts to hide")
        })? = id;
        hide(&point)?;
    }
    Ok(())
}

/// Detach the mount at `point`, or cover it with a tmpfs.
fn hide(point: &PathBuffer) -> Result<(), ChildError> {
    let err = |step| mount_err(step, point.as_path());
    let target = point.as_c_str();
    // No unmount may propagate to the host.
    match mount(
        None::<&str>,
        target,
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    ) {
        // Gone with a mount detached before it.
        Err(nix::Error::ENOENT) => return Ok(()),
        r => r.map_err(err("make host mount slave"))?,
    }
    match umount2(target, MntFlags::MNT_DETACH) {
        Ok(()) => Ok(()),
        Err(nix::Error::EINVAL) | Err(nix::Error::EPERM) => mount(
            Some(c"tmpfs"),
            target,
            Some(c"tmpfs"),
            MsFlags::empty(),
            None::<&str>,
        )
        .map_err(err("cover host mount")),
        Err(e) => Err(err("unmount host mount")(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_procfs_and_sysfs_mounts() {
        let cases: [(&str, bool, MountLine<'_>); 13] = [
            (
                "22 1 0:21 / /proc rw,nosuid - proc proc rw",
                true,
                MountLine::PseudoFs(22, b"/proc"),
            ),
            (
                "23 1 0:22 / /sys rw,nosuid shared:7 master:2 - sysfs sysfs rw",
                true,
                MountLine::PseudoFs(23, b"/sys"),
            ),
            (
                "26 1 0:24 / /run/a\\040b rw - proc proc rw",
                true,
                MountLine::PseudoFs(26, b"/run/a\\040b"),
            ),
            (
                "24 23 0:23 / /sys/kernel/security rw - securityfs securityfs rw",
                true,
                MountLine::Other,
            ),
            (
                "25 1 0:21 /sys /somewhere/sys ro - proc proc rw",
                true,
                MountLine::Other,
            ),
            // Lines that do not parse name no mount.
            ("x 1 0:21 / /proc rw - proc proc rw", true, MountLine::Other),
            ("22 1 0:21 / /proc rw - proc", true, MountLine::Other),
            ("22 1 0:21 / /proc rw proc proc rw", true, MountLine::Other),
            // The start of a line too long to hold: decided where the part held tells.
            (
                "22 1 0:21 / /proc rw - proc pr",
                false,
                MountLine::PseudoFs(22, b"/proc"),
            ),
            ("22 1 0:21 / /proc rw - overlay ov", false, MountLine::Other),
            ("22 1 0:21 /a/very/long/root /x", false, MountLine::Other),
            (
                "22 1 0:21 / /a/very/long/mount/poi",
                false,
                MountLine::Unknown,
            ),
            ("22 1 0:21 /a/very/long/ro", false, MountLine::Other),
        ];
        for (line, complete, want) in cases {
            assert_eq!(classify(line.as_bytes(), complete), want, "{line}");
        }
    }

    #[test]
    fn each_pass_finds_the_next_mount_outside_the_rootfs() {
        let long = format!("/{}", "d/".repeat(LINE_MAX));
        let info = format!(
            "22 1 0:21 / /proc rw,nosuid - proc proc rw
23 1 0:22 / /sys rw,nosuid - sysfs sysfs rw
24 23 0:23 / /sys/kernel/security rw - securityfs securityfs rw
25 1 0:21 /sys /somewhere/sys ro - proc proc rw
30 1 0:30 {long} /deep rw - ext4 /dev/sda1 rw
26 1 0:24 / /run/a\\040b rw - proc proc rw
27 1 0:21 / /ctr/rootfs/proc rw - proc proc rw
28 1 0:25 / /ctr/rootfs2 rw - sysfs sysfs rw"
        );
        let path = std::env::temp_dir().join(format!("casulo-mountinfo-{}", std::process::id()));
        std::fs::write(&path, info).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let (mut done, mut points) = (Vec::new(), Vec::new());
        loop {
            let next = next_host_mount(file.as_fd(), Path::new("/ctr/rootfs"), &done);
            let Some((id, point)) = next.unwrap() else {
                break;
            };
            done.push(id);
            points.push(point.as_path().to_path_buf());
        }
        std::fs::remove_file(&path).unwrap();
        assert_eq!(done, [22, 23, 26, 28]);
        let want = ["/proc", "/sys", "/run/a b", "/ctr/rootfs2"].map(std::path::PathBuf::from);
        assert_eq!(points, want);
    }
}
