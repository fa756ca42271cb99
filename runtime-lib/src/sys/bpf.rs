//! bpf(2): loading eBPF programs and attaching them to cgroups.
//!
//! Each command gets its own `#[repr(C)]` struct laid out as its member of `union bpf_attr`
//! (linux/bpf.h), with explicit padding so that the layout is the same on every ABI. The struct
//! is passed at the head of a larger zeroed buffer: the kernel only reads the size we give, but
//! newer kernels may write output fields past the end of the members this code knows about.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

// `enum bpf_cmd` in linux/bpf.h (the libc crate does not define them).
const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_DETACH: libc::c_int = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_int = 13;
const BPF_PROG_QUERY: libc::c_int = 16;

/// `BPF_PROG_TYPE_CGROUP_DEVICE` of `enum bpf_prog_type` in linux/bpf.h.
pub(crate) const PROG_TYPE_CGROUP_DEVICE: u32 = 15;
/// `BPF_CGROUP_DEVICE` of `enum bpf_attach_type` in linux/bpf.h.
pub(crate) const ATTACH_CGROUP_DEVICE: u32 = 6;
/// `BPF_F_ALLOW_MULTI` in linux/bpf.h: several programs on one cgroup, all run.
pub(crate) const F_ALLOW_MULTI: u32 = 1 << 1;

/// Room after a command's struct for fields that a newer kernel may write back.
const ATTR_SLACK: usize = 256;

#[repr(C)]
struct Attr<T> {
    cmd: T,
    slack: [u8; ATTR_SLACK],
}

/// bpf(cmd, attr, sizeof(T)); the non-negative result or the errno.
fn bpf<T>(cmd: libc::c_int, attr: T) -> io::Result<(libc::c_long, T)> {
    let mut buf = Attr {
        cmd: attr,
        slack: [0; ATTR_SLACK],
    };
    // SAFETY: `buf` is a live, writable buffer larger than the `size_of::<T>()` bytes we declare;
    // every pointer stored in `attr` by the callers below refers to memory that outlives this
    // call and has the length stated next to it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            &mut buf as *mut Attr<T>,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok((rc, buf.cmd))
    }
}

/// Take ownership of an fd that bpf(2) just returned.
fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: the kernel just created this fd for us; nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

/// The `BPF_PROG_LOAD` member of `union bpf_attr`, up to `expected_attach_type`.
#[repr(C)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}
const _: () = assert!(std::mem::size_of::<ProgLoad>() == 72);

/// BPF_PROG_LOAD of `insns` (each the 8 bytes of a `struct bpf_insn`). `name` (ASCII letters,
/// digits, `_` and `.`; cut to 15 bytes) is what tools list the program as. With `log`, the
/// verifier writes its report there (log level 1) as a NUL-terminated string.
pub(crate) fn prog_load(
    prog_type: u32,
    insns: &[[u8; 8]],
    license: &CStr,
    name: &str,
    log: Option<&mut [u8]>,
) -> io::Result<OwnedFd> {
    let mut prog_name = [0u8; 16];
    let n = name.len().min(15);
    prog_name[..n].copy_from_slice(&name.as_bytes()[..n]);
    let (log_level, log_size, log_buf) = match log {
        Some(buf) if !buf.is_empty() => (1, buf.len() as u32, buf.as_mut_ptr() as u64),
        _ => (0, 0, 0),
    };
    let attr = || ProgLoad {
        prog_type,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level,
        log_size,
        log_buf,
        kern_version: 0,
        prog_flags: 0,
        prog_name,
        prog_ifindex: 0,
        expected_attach_type: 0,
    };
    let mut tries = 0;
    loop {
        match bpf(BPF_PROG_LOAD, attr()) {
            Ok((fd, _)) => return Ok(owned(fd)),
            // The verifier can ask to be retried when interrupted.
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && tries < 5 => tries += 1,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
}

/// The `BPF_PROG_ATTACH`/`BPF_PROG_DETACH` member of `union bpf_attr`.
#[repr(C)]
struct ProgAttach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// BPF_PROG_ATTACH of `prog` to `target` (a cgroup directory) with `flags` (`BPF_F_*`).
pub(crate) fn prog_attach(
    target: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    attach_type: u32,
    flags: u32,
) -> io::Result<()> {
    let attr = ProgAttach {
        target_fd: target.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type,
        attach_flags: flags,
        replace_bpf_fd: 0,
    };
    bpf(BPF_PROG_ATTACH, attr).map(drop)
}

/// BPF_PROG_DETACH of `prog` from `target`.
pub(crate) fn prog_detach(
    target: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    attach_type: u32,
) -> io::Result<()> {
    let attr = ProgAttach {
        target_fd: target.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type,
        attach_flags: 0,
        replace_bpf_fd: 0,
    };
    bpf(BPF_PROG_DETACH, attr).map(drop)
}

/// The `BPF_PROG_QUERY` member of `union bpf_attr`, up to `prog_attach_flags`.
#[repr(C)]
struct ProgQuery {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
    prog_attach_flags: u64,
}
const _: () = assert!(std::mem::size_of::<ProgQuery>() == 40);

/// The programs attached directly to `target` for `attach_type` (not inherited ones): the
/// attach flags of the cgroup for that type and the program ids, in run order.
pub(crate) fn prog_query(target: BorrowedFd<'_>, attach_type: u32) -> io::Result<(u32, Vec<u32>)> {
    let mut ids: Vec<u32> = vec![0; 64];
    loop {
        let attr = ProgQuery {
            target_fd: target.as_raw_fd() as u32,
            attach_type,
            query_flags: 0,
            attach_flags: 0,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: ids.len() as u32,
            _pad: 0,
            prog_attach_flags: 0,
        };
        match bpf(BPF_PROG_QUERY, attr) {
            Ok((_, out)) => {
                ids.truncate(out.prog_cnt as usize);
                return Ok((out.attach_flags, ids));
            }
            // More programs than room: grow the buffer and ask again.
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && ids.len() < (1 << 16) => {
                ids.resize(ids.len() * 4, 0);
            }
            Err(e) => return Err(e),
        }
    }
}

/// The `BPF_*_GET_FD_BY_ID` member of `union bpf_attr`.
#[repr(C)]
struct GetFdById {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

/// BPF_PROG_GET_FD_BY_ID: an fd for the loaded program `id`.
pub(crate) fn prog_get_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let attr = GetFdById {
        id,
        next_id: 0,
        open_flags: 0,
    };
    bpf(BPF_PROG_GET_FD_BY_ID, attr).map(|(fd, _)| owned(fd))
}
