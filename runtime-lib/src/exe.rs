//! Protection of the runtime's own binary (runc CVE-2019-5736).
//!
//! The container's init and every exec'd process are forks of the runtime: until they execve
//! the user's program, `/proc/<pid>/exe` is the runtime's binary. A container that makes its
//! program a `#!/proc/self/exe` script gets the runtime's binary executed inside it, and another
//! process of the container can then reopen that binary for write through `/proc/<pid>/exe`
//! and overwrite the host's runtime.
//!
//! [`protect_runtime_binary`] closes that door: called first thing in `main`, it re-executes the
//! program from an image the container cannot write, a read-only detached bind mount of the
//! same file (no copy, a few hundred microseconds), or, where the mount API is not available
//! to the caller, a sealed memfd copy. A program that links this library and creates containers
//! should call it before anything else too.
use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::fcntl::{FcntlArg, OFlag, SealFlag};
use nix::sys::memfd::{memfd_create, MFdFlags};
use nix::sys::stat::Mode;
use nix::sys::statvfs::{fstatvfs, FsFlags};

use crate::sys::exe::{execveat_fd, mount_set_readonly};
use crate::sys::mount_api::{open_tree_clone, TreeSource};

/// Why the binary could not be protected.
#[derive(Debug, thiserror::Error)]
#[error("protect the runtime binary: {step}: {source}")]
pub struct ExeError {
    pub step: &'static str,
    #[source]
    pub source: nix::Error,
}

fn err(step: &'static str) -> impl FnOnce(nix::Error) -> ExeError {
    move |source| ExeError { step, source }
}

/// Whether the running image can no longer be written through `/proc/self/exe`: it lives on a
/// read-only mount, or it is a memfd sealed against writes.
pub fn runtime_binary_is_protected() -> Result<bool, ExeError> {
    let exe = nix::fcntl::open(
        "/proc/self/exe",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(err("open /proc/self/exe"))?;
    if fstatvfs(exe.as_fd())
        .map_err(err("statvfs /proc/self/exe"))?
        .flags()
        .contains(FsFlags::ST_RDONLY)
    {
        return Ok(true);
    }
    Ok(nix::fcntl::fcntl(exe.as_fd(), FcntlArg::F_GET_SEALS)
        .is_ok_and(|s| SealFlag::from_bits_truncate(s).contains(SealFlag::F_SEAL_WRITE)))
}

/// Re-execute this program from an image the container cannot write, unless it already runs
/// from one. Returns `Ok(())` only when no re-execution was needed; on success of the
/// re-execution it does not return.
pub fn protect_runtime_binary() -> Result<(), ExeError> {
    if runtime_binary_is_protected()? {
        return Ok(());
    }
    let image = match readonly_image() {
        Ok(fd) => fd,
        Err(e) => {
            tracing::debug!("read-only bind of the runtime binary: {e}; using a sealed copy");
            sealed_copy()?
        }
    };
    let to_c = |s: &std::ffi::OsStr| CString::new(s.as_bytes()).ok();
    let argv: Vec<CString> = std::env::args_os().filter_map(|a| to_c(&a)).collect();
    let envp: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect();
    Err(ExeError {
        step: "re-execute from the protected image",
        source: execveat_fd(image.as_fd(), &argv, &envp),
    })
}

/// A read-only detached bind mount of the binary itself.
fn readonly_image() -> Result<OwnedFd, ExeError> {
    let tree =
        open_tree_clone(TreeSource::Path(c"/proc/self/exe"), false).map_err(err("open_tree"))?;
    mount_set_readonly(tree.as_fd()).map_err(err("mount_setattr"))?;
    Ok(tree)
}

/// A memfd copy of the binary, sealed against any change.
fn sealed_copy() -> Result<OwnedFd, ExeError> {
    let mut src = std::fs::File::open("/proc/self/exe").map_err(|e| ExeError {
        step: "open /proc/self/exe",
        source: nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
    })?;
    let memfd = memfd_create(
        c"casulo",
        MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
    )
    .map_err(err("memfd_create"))?;
    let mut dst = std::fs::File::from(memfd);
    std::io::copy(&mut src, &mut dst)
        .and_then(|_| dst.flush())
        .map_err(|e| ExeError {
            step: "copy the binary",
            source: nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        })?;
    let memfd = OwnedFd::from(dst);
    let seals = SealFlag::F_SEAL_SEAL
        | SealFlag::F_SEAL_SHRINK
        | SealFlag::F_SEAL_GROW
        | SealFlag::F_SEAL_WRITE;
    nix::fcntl::fcntl(memfd.as_fd(), FcntlArg::F_ADD_SEALS(seals)).map_err(err("seal"))?;
    Ok(memfd)
}
