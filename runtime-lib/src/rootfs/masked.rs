//! Masked and readonly paths, applied after pivot_root.

use std::ffi::CStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{fstat, major, minor, stat, SFlag};

use super::mounts::lexical_clean;
use super::paths::{fd_path, open_in_root};
use super::{mount_err as err, remount, remount_err};
use crate::lifecycle::text::{child_err, ChildError};
use crate::sys::oserror::OsError;

/// Open the container's /dev/null and check that it really is the null device (1:3): a
/// container must not be able to make us bind a file of its choosing over a masked path.
fn verified_dev_null(root: BorrowedFd<'_>) -> Result<OwnedFd, ChildError> {
    let path = Path::new("/dev/null");
    let fd =
        open_in_root(root, path, OFlag::O_PATH | OFlag::O_NOFOLLOW).map_err(err("open", path))?;
    let st = fstat(fd.as_fd()).map_err(err("stat", path))?;
    let is_chr = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFCHR;
    if !is_chr || major(st.st_rdev) != 1 || minor(st.st_rdev) != 3 {
        return Err(child_err!(
            "/dev/null in the container is not the null device"
        ));
    }
    Ok(fd)
}

/// A read-only tmpfs that holds nothing, over the directory at `target`.
fn empty_tmpfs(target: &CStr) -> nix::Result<()> {
    let ro_tmpfs = |data: &str| {
        mount(
            Some("tmpfs"),
            target,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            Some(data),
        )
    };
    // Some kernels refuse fewer than two inodes.
    ro_tmpfs("nr_blocks=1,nr_inodes=1").or_else(|_| ro_tmpfs("nr_blocks=1,nr_inodes=2"))
}

/// The masked paths of the config, each once (however often, and in whichever lexical form,
/// it is listed): decided before the fork, for [`mask`].
pub fn distinct(paths: impl IntoIterator<Item = PathBuf>) -> Vec<PathBuf> {
    let mut clean: Vec<PathBuf> = Vec::new();
    let mut out = Vec::new();
    for p in paths {
        let c = lexical_clean(&p);
        if !clean.contains(&c) {
            clean.push(c);
            out.push(p);
        }
    }
    out
}

/// Hide each path (listed once each, see [`distinct`]): /dev/null over anything but a
/// directory; over a directory, a read-only empty tmpfs, one for all of them (the first is
/// bound over the others; where that fails, each gets its own). Missing paths are skipped.
pub fn mask(root: BorrowedFd<'_>, paths: &[PathBuf]) -> Result<(), ChildError> {
    if paths.is_empty() {
        return Ok(());
    }
    let null = verified_dev_null(root)?;
    let mut shared: Option<OwnedFd> = None;
    let mut bind_failed = false;
    for p in paths {
        let fd = match open_in_root(root, p, OFlag::O_PATH | OFlag::O_NOFOLLOW) {
            Ok(fd) => fd,
            Err(nix::Error::ENOENT) => continue,
            Err(e) => return Err(err("open masked path", p)(e)),
        };
        let target = fd_path(&fd);
        // stat(2) through the magic link, as std::fs::metadata did (and its error worded as
        // std words it), without its allocation.
        let st = stat(target.as_c_str())
            .map_err(|e| child_err!("masked path {}: {}", p.display(), OsError(e)))?;
        let is_dir = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR;
        if !is_dir {
            mount(
                Some(fd_path(&null).as_c_str()),
                target.as_c_str(),
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(err("mask", p))?;
            continue;
        }
        if let (Some(mask), false) = (&shared, bind_failed) {
            let bound = mount(
                Some(fd_path(mask).as_c_str()),
                target.as_c_str(),
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            );
            if bound.is_ok() {
                continue;
            }
            bind_failed = true;
        }
        empty_tmpfs(target.as_c_str()).map_err(err("mask", p))?;
        if shared.is_none() && !bind_failed {
            // The tmpfs just mounted: its root, reached through the path again.
            let mask = open_in_root(root, p, OFlag::O_PATH | OFlag::O_NOFOLLOW)
                .map_err(err("reopen", p))?;
            shared = Some(mask);
        }
    }
    Ok(())
}

/// Make each path read-only with a bind mount onto itself. Missing paths are skipped.
pub fn make_readonly(root: BorrowedFd<'_>, paths: &[PathBuf]) -> Result<(), ChildError> {
    for p in paths {
        let fd = match open_in_root(root, p, OFlag::O_PATH | OFlag::O_NOFOLLOW) {
            Ok(fd) => fd,
            Err(nix::Error::ENOENT) => continue,
            Err(e) => return Err(err("open readonly path", p)(e)),
        };
        let target = fd_path(&fd);
        mount(
            Some(target.as_c_str()),
            target.as_c_str(),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(err("bind readonly path", p))?;
        let top =
            open_in_root(root, p, OFlag::O_PATH | OFlag::O_NOFOLLOW).map_err(err("reopen", p))?;
        remount::make_read_only(top.as_fd()).map_err(remount_err(p))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_masked_path_once_in_its_first_form() {
        let got = distinct(
            [
                "/proc/kcore",
                "/proc/acpi",
                "/proc/./kcore",
                "/proc/x/../acpi",
                "/proc/keys",
            ]
            .map(PathBuf::from),
        );
        assert_eq!(
            got,
            ["/proc/kcore", "/proc/acpi", "/proc/keys"].map(PathBuf::from)
        );
    }
}
