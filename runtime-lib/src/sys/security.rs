//! The raw syscalls of the security settings: capabilities, rlimits, ids, seccomp.

/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[cfg(any(target_arch = "x86", target_arch = "arm"))]
mod nr {
    // 32-bit ABIs whose plain calls take 16-bit ids.
    pub const SETGROUPS: libc::c_long = libc::SYS_setgroups32;
    pub const SETRESGID: libc::c_long = libc::SYS_setresgid32;
    pub const SETRESUID: libc::c_long = libc::SYS_setresuid32;
}
#[cfg(not(any(target_arch = "x86", target_arch = "arm")))]
mod nr {
    pub const SETGROUPS: libc::c_long = libc::SYS_setgroups;
    pub const SETRESGID: libc::c_long = libc::SYS_setresgid;
    pub const SETRESUID: libc::c_long = libc::SYS_setresuid;
}

/// setgroups(2) with the exact list (empty clears the supplementary groups).
pub(crate) fn setgroups(gids: &[u32]) -> nix::Result<()> {
    // SAFETY: the pointer and length describe the live slice `gids`, whose u32 elements have
    // gid_t's layout; the kernel only reads it.
    let rc = unsafe { libc::syscall(nr::SETGROUPS, gids.len(), gids.as_ptr()) };
    nix::Error::result(rc).map(drop)
}

/// setresgid(gid, gid, gid) as a raw syscall: glibc's wrapper signals every thread, which is
/// wrong after a fork of a multi-threaded caller.
pub(crate) fn setresgid(gid: u32) -> nix::Result<()> {
    // SAFETY: setresgid takes only integer arguments.
    let rc = unsafe { libc::syscall(nr::SETRESGID, gid, gid, gid) };
    nix::Error::result(rc).map(drop)
}

/// setresuid(uid, uid, uid) as a raw syscall, for the same reason.
pub(crate) fn setresuid(uid: u32) -> nix::Result<()> {
    // SAFETY: setresuid takes only integer arguments.
    let rc = unsafe { libc::syscall(nr::SETRESUID, uid, uid, uid) };
    nix::Error::result(rc).map(drop)
}

/// prctl(option, arg2, 0, 0, 0) for options that take one integer.
pub(crate) fn prctl1(option: libc::c_int, arg2: libc::c_ulong) -> nix::Result<()> {
    // SAFETY: PR_SET_KEEPCAPS and PR_SET_NO_NEW_PRIVS take integer arguments only.
    let rc = unsafe {
        libc::prctl(
            option,
            arg2,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    nix::Error::result(rc).map(drop)
}

/// prctl(option, arg2, arg3, 0, 0); the result or the errno.
pub(crate) fn prctl3(
    option: libc::c_int,
    arg2: libc::c_ulong,
    arg3: libc::c_ulong,
) -> nix::Result<libc::c_int> {
    // SAFETY: the prctl options used in this module (PR_CAPBSET_DROP, PR_CAP_AMBIENT) take
    // only integer arguments; no memory is passed to the kernel.
    let rc = unsafe { libc::prctl(option, arg2, arg3, 0 as libc::c_ulong, 0 as libc::c_ulong) };
    nix::Error::result(rc)
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// capset(2) for the calling thread, version 3 (64-bit sets split into two words).
pub(crate) fn capset(effective: u64, permitted: u64, inheritable: u64) -> nix::Result<()> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let word = |mask: u64, i: u32| (mask >> (32 * i)) as u32;
    let data = [0, 1].map(|i| CapData {
        effective: word(effective, i),
        permitted: word(permitted, i),
        inheritable: word(inheritable, i),
    });
    // SAFETY: `header` and `data` are live, correctly laid out (`repr(C)`) version-3 capset
    // arguments: one header and two data words, which is what the kernel reads.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        )
    };
    nix::Error::result(rc).map(drop)
}

/// prlimit64(0, resource, {soft, hard}, NULL): set a limit of the calling process.
pub(crate) fn prlimit_self(resource: libc::c_int, soft: u64, hard: u64) -> nix::Result<()> {
    let new = libc::rlimit64 {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `new` is a live rlimit64 the kernel only reads; the old-limit pointer is
    // NULL, which prlimit64 accepts as "do not report the old limit".
    let rc = unsafe {
        libc::syscall(
            libc::SYS_prlimit64,
            0 as libc::pid_t,
            resource,
            &new as *const libc::rlimit64,
            std::ptr::null_mut::<libc::rlimit64>(),
        )
    };
    nix::Error::result(rc).map(drop)
}

/// seccomp(SECCOMP_SET_MODE_FILTER, flags, {len, program}). With
/// SECCOMP_FILTER_FLAG_NEW_LISTENER in `flags`, the kernel returns the filter's listener, a new
/// close-on-exec fd, which is returned.
pub(crate) fn seccomp_set_filter(
    program: &[libc::sock_filter],
    len: libc::c_ushort,
    flags: u32,
) -> nix::Result<Option<std::os::fd::OwnedFd>> {
    let prog = libc::sock_fprog {
        len,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` points at `program`, which outlives the call and holds `len` sock_filter
    // instructions; the kernel only reads (copies) them.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &prog as *const libc::sock_fprog,
        )
    };
    let rc = nix::Error::result(rc)?;
    if flags as libc::c_ulong & libc::SECCOMP_FILTER_FLAG_NEW_LISTENER == 0 {
        return Ok(None);
    }
    // SAFETY: with SECCOMP_FILTER_FLAG_NEW_LISTENER a successful seccomp(2) returns a new fd
    // (the listener) that the kernel installed for us and nothing else refers to.
    Ok(Some(unsafe {
        <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(rc as std::os::fd::RawFd)
    }))
}

/// Whether the kernel accepts the filter `flags`: seccomp(SECCOMP_SET_MODE_FILTER, flags,
/// NULL) fails with EFAULT (reading the program) once the flags passed their check, and with
/// EINVAL for flags the kernel does not know. Nothing is installed either way.
pub(crate) fn seccomp_flags_supported(flags: u32) -> bool {
    // SAFETY: the program pointer is NULL, which the kernel never dereferences in our address
    // space: it copies from it with a checked user copy, which fails with EFAULT.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            std::ptr::null::<libc::sock_fprog>(),
        )
    };
    rc == -1 && nix::Error::last() == nix::Error::EFAULT
}

/// Whether the kernel has the filter return action `action` (a SECCOMP_RET_* value):
/// seccomp(SECCOMP_GET_ACTION_AVAIL, 0, &action).
pub(crate) fn seccomp_action_available(action: u32) -> bool {
    // SAFETY: the pointer is to `action`, a live u32 that the kernel only reads.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_GET_ACTION_AVAIL,
            0 as libc::c_uint,
            &action as *const u32,
        )
    };
    rc == 0
}
