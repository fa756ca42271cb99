//! The host's procfs, opened and checked before the container's mounts exist, and the writes
//! that go through it (sysctl, oom_score_adj, LSM labels): nothing the container mounts over
//! `/proc` can redirect them.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;

use super::text::{child_err, ChildError};
use super::WithStep;
use crate::security::label::LabelPlan;

/// An fd of the host's /proc, checked to be a real procfs.
pub(super) fn open_proc() -> Result<OwnedFd, ChildError> {
    let fd = open(
        "/proc",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .step("open /proc")?;
    let fs = nix::sys::statfs::fstatfs(fd.as_fd()).step("statfs /proc")?;
    if fs.filesystem_type() != nix::sys::statfs::PROC_SUPER_MAGIC {
        return Err(child_err!("open /proc: /proc is not a procfs"));
    }
    Ok(fd)
}

/// Write `value` to a file of the host's /proc (opened before pivot_root and checked to be
/// procfs), so that nothing the container mounts can redirect the write.
pub(super) fn write_proc(proc: &OwnedFd, rel: &Path, value: &[u8]) -> Result<(), nix::Error> {
    let fd = nix::fcntl::openat(
        proc.as_fd(),
        rel,
        OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::empty(),
    )?;
    let fs = nix::sys::statfs::fstatfs(fd.as_fd())?;
    if fs.filesystem_type() != nix::sys::statfs::PROC_SUPER_MAGIC {
        return Err(nix::Error::EXDEV);
    }
    nix::unistd::write(&fd, value).map(drop)
}

/// Apply a label write (an LSM's `attr` file of this thread) through the host's /proc; the
/// error names the config field, the label and the file.
pub(super) fn write_label(proc: &OwnedFd, l: &LabelPlan) -> Result<(), ChildError> {
    write_proc(proc, &l.rel, l.value.as_bytes()).step(format_args!(
        "{}: write {:?} to /proc/{}",
        l.field,
        l.value,
        l.rel.display()
    ))
}
