//! The process-wide duties of a program that runs containers ([`prepare_process`]): the
//! protection of the runtime's own binary (runc CVE-2019-5736), and becoming the reaper of the
//! containers' processes.
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
//! to the caller, a sealed memfd copy.
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

/// Why [`prepare_process`] failed: what it was doing, the step and the errno, e.g.
/// `protect the runtime binary: memfd_create: EMFILE: Too many open files`.
///
/// ```no_run
/// if let Err(e) = casulo::prepare_process() {
///     eprintln!("{e}");
///     std::process::exit(1);
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[error("{duty}: {step}: {source}")]
pub struct PrepareError {
    duty: &'static str,
    step: &'static str,
    #[source]
    source: nix::Error,
}

const PROTECT: &str = "protect the runtime binary";

fn err(step: &'static str) -> impl FnOnce(nix::Error) -> PrepareError {
    move |source| PrepareError {
        duty: PROTECT,
        step,
        source,
    }
}

/// Prepare this process to run containers. A program that creates containers or execs
/// processes into them calls it first thing in `main`, before any other thread exists; the
/// `casulo` command does it for `create`, `run` and `exec`. Once for the whole process:
///
/// - It re-executes the program from an image that a container cannot write, unless it runs
///   from one already (then it returns). Every process the library puts into a container is a
///   fork of this program until it execs the container's program; without this, a container
///   could reopen the program's binary through `/proc/PID/exe` and overwrite it on the host
///   (runc CVE-2019-5736). On success of the re-execution it does not return: `main` starts
///   again, with the same arguments and environment, and this call then returns at once.
///
/// Without it containers still run, but unprotected. (No child subreaper is needed: a
/// container's init, and an exec'd process, is this process's own child even where it is
/// forked after entering the container's pid namespace; see [`wait`](crate::Container::wait).)
///
/// ```no_run
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     casulo::prepare_process()?;
///     let code = casulo::ContainerBuilder::new("job", "/srv/bundles/job")
///         .run_foreground(Default::default())?;
///     std::process::exit(code);
/// }
/// ```
pub fn prepare_process() -> Result<(), PrepareError> {
    protect_runtime_binary()
}

/// Whether the running image can no longer be written through `/proc/self/exe`: it lives on a
/// read-only mount, or it is a memfd sealed against writes.
fn runtime_binary_is_protected() -> Result<bool, PrepareError> {
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
fn protect_runtime_binary() -> Result<(), PrepareError> {
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
    Err(PrepareError {
        duty: PROTECT,
        step: "re-execute from the protected image",
        source: execveat_fd(image.as_fd(), &argv, &envp),
    })
}

/// A read-only detached bind mount of the binary itself.
fn readonly_image() -> Result<OwnedFd, PrepareError> {
    let tree =
        open_tree_clone(TreeSource::Path(c"/proc/self/exe"), false).map_err(err("open_tree"))?;
    mount_set_readonly(tree.as_fd()).map_err(err("mount_setattr"))?;
    Ok(tree)
}

/// A memfd copy of the binary, sealed against any change.
fn sealed_copy() -> Result<OwnedFd, PrepareError> {
    let mut src = std::fs::File::open("/proc/self/exe").map_err(|e| PrepareError {
        duty: PROTECT,
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
        .map_err(|e| PrepareError {
            duty: PROTECT,
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
