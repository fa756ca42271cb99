//! The thin layer of raw syscalls that nix does not wrap. Every `unsafe` block of the crate
//! lives here, each in a small function with its safety argument.

// The workspace denies `unsafe_code`; this module tree is the one place allowed it, so that every
// raw syscall of the crate sits behind a safe, small, reviewed wrapper and the rest of the crate
// (and every other crate of the workspace) stays in safe Rust.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

pub mod alloc_check;
pub(crate) mod bpf;
pub(crate) mod dir;
pub(crate) mod exe;
pub(crate) mod fdpass;
pub(crate) mod mount_api;
pub(crate) mod oserror;
pub(crate) mod sched;
pub(crate) mod security;
pub(crate) mod tty;

/// Result of [`fork`].
pub enum Fork {
    Parent(i32),
    Child,
}

/// fork(2) through glibc, whose atfork handlers keep malloc usable in the child even when the
/// caller has other threads.
pub fn fork() -> nix::Result<Fork> {
    // SAFETY: the child only runs code written for the post-fork context: plain syscalls on data
    // prepared before the fork, no locks that another thread of the parent could hold.
    match unsafe { libc::fork() } {
        -1 => Err(Errno::last()),
        0 => Ok(Fork::Child),
        pid => Ok(Fork::Parent(pid)),
    }
}

/// A fork whose child is our parent's child, not ours (clone with CLONE_PARENT): the stage
/// forks the init (and exec's stage the process) this way, so that the runtime that forked the
/// stage is their parent and can wait for them without being a child subreaper. Only for a
/// process with one thread (the stage): it bypasses the C library's fork handlers, which have
/// nothing to do there.
pub fn fork_sibling() -> nix::Result<Fork> {
    let flags = (libc::CLONE_PARENT | libc::SIGCHLD) as libc::c_ulong;
    // SAFETY: with a null stack the child goes on on a copy-on-write copy of our stack, as after
    // fork(2); the other arguments (parent_tid, child_tid, tls) are unused without their flags.
    let r = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    match r {
        -1 => Err(Errno::last()),
        0 => Ok(Fork::Child),
        pid => Ok(Fork::Parent(pid as i32)),
    }
}

/// Leave the process at once, without running atexit handlers or flushing stdio buffers that
/// belong to the parent's image.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit takes no pointers and never returns.
    unsafe { libc::_exit(code) }
}

/// Write one line made of `parts` to stderr in a single writev (so it is not interleaved with
/// the output of other processes on the same terminal) and `_exit(code)`. For failures in a
/// forked child after the runtime stopped listening: no allocation, no locks.
pub fn die_on_stderr(parts: &[&[u8]], code: i32) -> ! {
    let mut slices = [std::io::IoSlice::new(&[]); 8];
    let n = parts.len().min(slices.len());
    for (slot, part) in slices.iter_mut().zip(parts) {
        *slot = std::io::IoSlice::new(part);
    }
    // SAFETY: fd 2 is open for the process's whole life (stdio), and the borrow ends here.
    let stderr = unsafe { BorrowedFd::borrow_raw(2) };
    let _ = nix::sys::uio::writev(stderr, &slices[..n]);
    exit_now(code)
}

/// The C library's description of `errno` in lower case, as Go prints
/// errors ("no such file or directory"), in `buf`: no allocation, for a forked child.
pub fn errno_text(errno: Errno, buf: &mut [u8; 64]) -> &[u8] {
    let desc = errno.desc().as_bytes();
    let n = desc.len().min(buf.len());
    buf[..n].copy_from_slice(&desc[..n]);
    buf[..n].make_ascii_lowercase();
    &buf[..n]
}

/// rename(2) that fails with EEXIST instead of replacing `new` (renameat2 RENAME_NOREPLACE,
/// by syscall number: not every C library wraps it).
pub fn rename_noreplace(old: &std::path::Path, new: &std::path::Path) -> nix::Result<()> {
    const RENAME_NOREPLACE: libc::c_uint = 1;
    let old = CString::new(std::os::unix::ffi::OsStrExt::as_bytes(old.as_os_str()))
        .map_err(|_| Errno::EINVAL)?;
    let new = CString::new(std::os::unix::ffi::OsStrExt::as_bytes(new.as_os_str()))
        .map_err(|_| Errno::EINVAL)?;
    // SAFETY: both paths are NUL-terminated and outlive the call; the flags are a plain int.
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            old.as_ptr(),
            libc::AT_FDCWD,
            new.as_ptr(),
            RENAME_NOREPLACE,
        )
    };
    Errno::result(r).map(drop)
}

pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub const RESOLVE_IN_ROOT: u64 = 0x10;

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// openat2(2): open `path` relative to `dir` with the given `RESOLVE_*` restrictions.
pub fn openat2(
    dir: BorrowedFd<'_>,
    path: &CStr,
    flags: i32,
    mode: u32,
    resolve: u64,
) -> nix::Result<OwnedFd> {
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: mode as u64,
        resolve,
    };
    loop {
        // SAFETY: `how` is a valid open_how of the size we pass; `path` is NUL-terminated.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                path.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if fd >= 0 {
            // SAFETY: the kernel just returned this fd to us; nobody else owns it.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
        }
        match Errno::last() {
            // openat2 returns EAGAIN when a concurrent rename raced a RESOLVE_IN_ROOT lookup.
            Errno::EAGAIN | Errno::EINTR => continue,
            e => return Err(e),
        }
    }
}

/// close_range(2) with CLOSE_RANGE_CLOEXEC: mark every fd from `first` on close-on-exec.
pub fn cloexec_from(first: u32) -> nix::Result<()> {
    const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;
    // SAFETY: close_range takes plain integers.
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    Errno::result(r).map(drop)
}

/// pidfd_open(2).
pub fn pidfd_open(pid: i32) -> nix::Result<OwnedFd> {
    // SAFETY: pidfd_open takes plain integers.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = Errno::result(fd)?;
    // SAFETY: the kernel just returned this fd to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// pidfd_send_signal(2).
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: i32) -> nix::Result<()> {
    // SAFETY: a null siginfo is allowed; the rest are integers.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    Errno::result(r).map(drop)
}

/// mount_setattr(2) attributes (`MOUNT_ATTR_*`).
pub mod mount_attr {
    pub const RDONLY: u64 = 0x01;
    pub const NOSUID: u64 = 0x02;
    pub const NODEV: u64 = 0x04;
    pub const NOEXEC: u64 = 0x08;
    /// The atime mode field, which RELATIME (0), NOATIME and STRICTATIME are values of.
    pub const ATIME_MODE: u64 = 0x70;
    pub const RELATIME: u64 = 0x00;
    pub const NOATIME: u64 = 0x10;
    pub const STRICTATIME: u64 = 0x20;
    pub const NODIRATIME: u64 = 0x80;
    pub const NOSYMFOLLOW: u64 = 0x0020_0000;
}

/// mount_setattr(2) on the mount at `fd` and every mount under it (AT_RECURSIVE): clear
/// `clear`, then set `set`.
pub fn mount_setattr_recursive(fd: BorrowedFd<'_>, set: u64, clear: u64) -> nix::Result<()> {
    let attr = mount_api::MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: 0,
    };
    mount_api::mount_setattr(fd.as_raw_fd(), &attr, true)
}

/// Room for one control message carrying one fd, aligned as `cmsghdr` wants.
#[repr(C, align(8))]
struct CmsgBuf([u8; 64]);

/// sendmsg(2) of one message made of `parts` (at most 4), with `fd` passed along
/// (SCM_RIGHTS) if given. Allocates nothing: forked children send with it.
pub fn send_parts(
    sock: BorrowedFd<'_>,
    parts: &[&[u8]],
    fd: Option<BorrowedFd<'_>>,
) -> nix::Result<()> {
    let mut iov = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; 4];
    if parts.len() > iov.len() {
        return Err(Errno::E2BIG);
    }
    for (slot, part) in iov.iter_mut().zip(parts) {
        slot.iov_base = part.as_ptr() as *mut libc::c_void;
        slot.iov_len = part.len();
    }
    let mut cmsg = CmsgBuf([0; 64]);
    // SAFETY: an all-zero msghdr is valid (no name, no iov, no control data).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = parts.len();
    if let Some(fd) = fd {
        let raw = fd.as_raw_fd();
        let data_len = std::mem::size_of_val(&raw) as u32;
        // SAFETY: CMSG_SPACE and CMSG_LEN only compute sizes. The buffer is 64 bytes, more than
        // CMSG_SPACE(4), and aligned for cmsghdr; CMSG_FIRSTHDR of a msghdr whose control
        // length covers one header returns a pointer into it, CMSG_DATA one past that header;
        // the fd is written within CMSG_LEN(4) of it.
        unsafe {
            msg.msg_control = cmsg.0.as_mut_ptr().cast();
            msg.msg_controllen = libc::CMSG_SPACE(data_len) as usize;
            let hdr = libc::CMSG_FIRSTHDR(&msg);
            (*hdr).cmsg_level = libc::SOL_SOCKET;
            (*hdr).cmsg_type = libc::SCM_RIGHTS;
            (*hdr).cmsg_len = libc::CMSG_LEN(data_len) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(hdr).cast::<RawFd>(), raw);
        }
    }
    // SAFETY: msg points at live buffers described by their lengths, for the call's duration.
    let r = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// recvmsg(2) of one message into `buf`, with the first fd passed along (SCM_RIGHTS) owned
/// by the caller and close-on-exec; any further fds are closed. Allocates nothing.
pub fn recv_with_fd(sock: BorrowedFd<'_>, buf: &mut [u8]) -> nix::Result<(usize, Option<OwnedFd>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut cmsg = CmsgBuf([0; 64]);
    // SAFETY: an all-zero msghdr is valid; the iov and the control buffer outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.0.as_mut_ptr().cast();
    msg.msg_controllen = cmsg.0.len();
    // SAFETY: as above; the kernel writes at most the lengths given.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(Errno::last());
    }
    let mut fd = None;
    // SAFETY: the kernel filled msg_control up to msg_controllen with well-formed headers;
    // CMSG_FIRSTHDR/CMSG_NXTHDR walk them and return null past the end. An SCM_RIGHTS
    // payload is an array of ints, (cmsg_len - CMSG_LEN(0)) / 4 of them, each an fd the kernel
    // installed in our table for this message, owned by nobody else.
    unsafe {
        let mut hdr = libc::CMSG_FIRSTHDR(&msg);
        while !hdr.is_null() {
            if (*hdr).cmsg_level == libc::SOL_SOCKET && (*hdr).cmsg_type == libc::SCM_RIGHTS {
                let count = ((*hdr).cmsg_len - libc::CMSG_LEN(0) as usize) / 4;
                let data = libc::CMSG_DATA(hdr).cast::<RawFd>();
                for i in 0..count {
                    let owned = OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i)));
                    fd.get_or_insert(owned);
                }
            }
            hdr = libc::CMSG_NXTHDR(&msg, hdr);
        }
    }
    Ok((n as usize, fd))
}

/// setdomainname(2).
pub fn setdomainname(name: &[u8]) -> nix::Result<()> {
    // SAFETY: the pointer and length describe `name`.
    let r = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    Errno::result(r).map(drop)
}

/// keyctl(KEYCTL_JOIN_SESSION_KEYRING, name): join the session keyring called `name` where
/// this process may search it, else a new one of that name. Returns the keyring's serial.
pub fn join_session_keyring(name: &CStr) -> nix::Result<i32> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_int = 1;
    // SAFETY: `name` is NUL-terminated and outlives the call.
    let r = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    Errno::result(r).map(|serial| serial as i32)
}

/// keyctl(KEYCTL_DESCRIBE, key) into `buf`: "type;uid;gid;perm;description", NUL-terminated.
/// Returns the description's full length (with its NUL), which may exceed `buf`.
pub fn describe_key(key: i32, buf: &mut [u8]) -> nix::Result<usize> {
    const KEYCTL_DESCRIBE: libc::c_int = 6;
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_DESCRIBE,
            key,
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    Errno::result(r).map(|n| n as usize)
}

/// keyctl(KEYCTL_SETPERM, key, perm).
pub fn set_key_perm(key: i32, perm: u32) -> nix::Result<()> {
    const KEYCTL_SETPERM: libc::c_int = 5;
    // SAFETY: plain integer arguments.
    let r = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_SETPERM, key, perm) };
    Errno::result(r).map(drop)
}

/// Room for execve's argv and envp pointer arrays, reserved before a fork so that the child
/// fills them in without allocating (nix's execve builds them on the heap).
#[derive(Debug, Default)]
pub struct ExecScratch(Vec<usize>);

impl ExecScratch {
    /// Room for `argc` arguments and `envc` environment entries, one extra entry and the two
    /// terminating nulls.
    pub fn with_room(argc: usize, envc: usize) -> ExecScratch {
        ExecScratch(Vec::with_capacity(argc + envc + 3))
    }
}

/// execve(2) of a prepared argv and envp, with `extra` (an entry made in the child, such as
/// `HOME`) at the end of the environment, the pointer arrays laid out in `scratch`. Returns
/// only on failure (E2BIG, without trying, if `scratch` has too little room).
pub fn execve(
    path: &CStr,
    argv: &[CString],
    envp: &[CString],
    extra: Option<&CStr>,
    scratch: &mut ExecScratch,
) -> Errno {
    let ptrs = &mut scratch.0;
    if ptrs.capacity() < argv.len() + envp.len() + 3 {
        return Errno::E2BIG;
    }
    ptrs.clear();
    ptrs.extend(argv.iter().map(|a| a.as_ptr() as usize));
    ptrs.push(0);
    let env_at = ptrs.len();
    ptrs.extend(envp.iter().map(|e| e.as_ptr() as usize));
    ptrs.extend(extra.map(|e| e.as_ptr() as usize));
    ptrs.push(0);
    let base = ptrs.as_ptr().cast::<*const libc::c_char>();
    // SAFETY: both arrays are null-terminated arrays of pointers to NUL-terminated strings
    // that outlive the call (a usize holds a pointer on Linux); execve only returns on failure.
    unsafe { libc::execve(path.as_ptr(), base, base.add(env_at)) };
    Errno::last()
}

/// Standard fd `fd` (0, 1 or 2) of this process, borrowed, or `None` for another number.
pub fn stdio_fd(fd: RawFd) -> Option<BorrowedFd<'static>> {
    // SAFETY: fds 0 to 2 are never closed by this crate, only replaced in place by dup2; a
    // call on one that is not open fails with EBADF, which the callers handle.
    (0..=2)
        .contains(&fd)
        .then(|| unsafe { BorrowedFd::borrow_raw(fd) })
}

/// Set every signal's disposition back to the default and unblock them all, so that the user
/// program does not inherit the runtime's signal setup.
pub fn reset_signals() {
    for sig in 1..libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: SIG_DFL is a valid disposition for every catchable signal; failures for
        // reserved signals are harmless and ignored.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    let empty = nix::sys::signal::SigSet::empty();
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&empty),
        None,
    );
}

/// The signals that end a created container's init while it waits for start, as they end the
/// reference runtime's (whose init dies on them): an engine or a `--pidfd-socket` holder that
/// sends SIGTERM to a container that was never started expects it to stop. The init of a pid
/// namespace gets no signal that it does not handle (SIGKILL and SIGSTOP excepted), so it
/// needs a handler for these.
const STOP_SIGNALS: [libc::c_int; 4] = [libc::SIGHUP, libc::SIGINT, libc::SIGQUIT, libc::SIGTERM];

extern "C" fn exit_on_signal(sig: libc::c_int) {
    // SAFETY: _exit is async-signal-safe and ends the process; nothing runs after it.
    unsafe { libc::_exit(128 + sig) }
}

/// Make [`STOP_SIGNALS`] end this process (exit status 128 + the signal, as a shell reports a
/// death by signal) until its execve, which resets caught signals to their default.
/// Async-signal-safe.
pub fn exit_on_stop_signals() {
    let handler = exit_on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    for sig in STOP_SIGNALS {
        // SAFETY: `exit_on_signal` only calls _exit, which is async-signal-safe.
        unsafe { libc::signal(sig, handler) };
    }
}

/// Whether a process `pid` exists (kill with signal 0; EPERM means it exists).
pub fn pid_exists(pid: i32) -> bool {
    pid > 0
        && !matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
            Err(Errno::ESRCH)
        )
}

/// The start time of a process in clock ticks since boot (field 22 of /proc/PID/stat) and
/// its state letter; None if the process does not exist.
pub fn proc_start_time(pid: i32) -> Option<(u64, char)> {
    let stat = procfs::process::Process::new(pid).ok()?.stat().ok()?;
    Some((stat.starttime, stat.state))
}

/// close(2) of an fd this process image still holds a copy of after fork (the parent's
/// objects that the child must not keep, such as the state-dir lock).
pub fn close_inherited(fd: RawFd) {
    // SAFETY: called in the forked child on fds whose owners (in the parent's frames) are never
    // used or dropped again in this process, which only exits or execs from here on.
    unsafe { libc::close(fd) };
}

/// The fds from `first` on that this process holds without close-on-exec: the ones it got
/// from whoever started it (every fd the runtime opens itself is close-on-exec). Listed
/// before a fork so that the child can close them at once ([`close_fds`]) instead of holding
/// its caller's files until its execve.
pub fn inherited_fds(first: RawFd) -> std::io::Result<Vec<RawFd>> {
    let mut fds = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let Some(fd) = entry?
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<RawFd>().ok())
        else {
            continue;
        };
        // SAFETY: F_GETFD only reads the fd table.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        // The directory's own fd, open while it is listed, is close-on-exec: not listed.
        if fd >= first && flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
            fds.push(fd);
        }
    }
    Ok(fds)
}

/// close(2) of each fd of a list made before the fork ([`inherited_fds`]), in the forked
/// child. Async-signal-safe.
pub fn close_fds(fds: &[RawFd]) {
    for &fd in fds {
        // SAFETY: these fds belong to no object of the runtime (they were inherited and never
        // wrapped), so no owner will use or close them again in this process.
        unsafe { libc::close(fd) };
    }
}

/// Whether `fd` is open in this process.
pub fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the fd table.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// Clear close-on-exec on `fd`, so that it reaches the exec'd program.
pub fn clear_cloexec(fd: RawFd) -> nix::Result<()> {
    // SAFETY: F_SETFD with 0 only changes the fd's flags.
    let r = unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    Errno::result(r).map(drop)
}

/// The access mode (`O_RDONLY`, `O_WRONLY` or `O_RDWR`) of open fd `fd`.
pub fn fd_access_mode(fd: RawFd) -> nix::Result<i32> {
    // SAFETY: F_GETFL only reads the fd's flags.
    let r = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    Errno::result(r).map(|f| f & libc::O_ACCMODE)
}

/// Write the byte `b` to fd `fd`, a number a caller gave (a command line's `--status-fd`).
pub fn write_byte(fd: RawFd, b: u8) -> nix::Result<()> {
    let byte = [b];
    loop {
        // SAFETY: write(2) reads one byte from a live local array; a closed or wrong fd is an
        // error (EBADF), not undefined behaviour.
        let r = unsafe { libc::write(fd, byte.as_ptr().cast(), 1) };
        match Errno::result(r) {
            Err(Errno::EINTR) => continue,
            other => return other.map(drop),
        }
    }
}

/// Set close-on-exec on `fd` again (after a spawn that was to inherit it).
pub fn set_cloexec(fd: RawFd) -> nix::Result<()> {
    // SAFETY: F_SETFD with FD_CLOEXEC only changes the fd's flags.
    let r = unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    Errno::result(r).map(drop)
}

/// Own an fd that the kernel just passed to this process in an SCM_RIGHTS message: nothing
/// else refers to it, so it is closed when the result drops.
pub fn received_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: the fd was installed by recvmsg for this call alone; no other owner exists.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// kill(2) with any signal number, real-time ones included. Errors (the process is gone) are
/// ignored: callers signal sets of processes that may be exiting.
pub fn kill(pid: i32, sig: i32) {
    // SAFETY: kill takes plain integers.
    unsafe { libc::kill(pid, sig) };
}

/// Whether `sig` is pending for this thread or process.
pub fn signal_pending(sig: i32) -> bool {
    let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigpending fills the sigset_t it is given; it is only read after success.
    unsafe {
        if libc::sigpending(set.as_mut_ptr()) != 0 {
            return false;
        }
        libc::sigismember(set.as_ptr(), sig) == 1
    }
}

/// The bounds of this process's argument area (what `/proc/<pid>/cmdline` shows), for
/// [`hide_cmdline`] in a fork of it: read before the fork, since the child must not allocate
/// and a fork has the same addresses.
#[derive(Debug, Clone, Copy)]
pub struct ArgArea {
    start: usize,
    end: usize,
}

impl ArgArea {
    /// The area, from /proc/self/stat, read once per process (it never moves); `None` without
    /// it (hiding is then skipped).
    pub fn of_self() -> Option<ArgArea> {
        static AREA: std::sync::OnceLock<Option<ArgArea>> = std::sync::OnceLock::new();
        *AREA.get_or_init(|| {
            use procfs::FromRead;
            let stat = procfs::process::Stat::from_file("/proc/self/stat").ok()?;
            let (start, end) = (stat.arg_start? as usize, stat.arg_end? as usize);
            (start != 0 && end > start).then_some(ArgArea { start, end })
        })
    }
}

/// Replace this process's command line, as `/proc/<pid>/cmdline` shows it, with `title`: the
/// forks of the runtime that enter a container must not show the container the runtime's
/// arguments (its binary path, state root, flags). The argument area the kernel set up at exec
/// (`area`, found before the fork) is overwritten in place (`title`, truncated to fit, then
/// NULs). Best effort: without the area nothing changes.
pub fn hide_cmdline(area: Option<ArgArea>, title: &[u8]) {
    let Some(ArgArea { start, end }) = area else {
        return;
    };
    let len = end - start;
    let n = title.len().min(len.saturating_sub(1));
    // SAFETY: [start, end) is this process's argument area, which the kernel mapped writable
    // at exec (the initial stack), read from our own /proc/self/stat (or our parent's, of
    // which we are a fork); nothing holds a Rust reference to it, and this fork of the runtime
    // never reads its arguments again.
    unsafe {
        let area = start as *mut u8;
        std::ptr::copy_nonoverlapping(title.as_ptr(), area, n);
        std::ptr::write_bytes(area.add(n), 0, len - n);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn proc_start_time_of_a_live_and_a_missing_process() {
        let me = std::process::id() as i32;
        let (start, state) = super::proc_start_time(me).expect("own /proc/PID/stat");
        assert!(start > 0);
        assert!(matches!(state, 'R' | 'S'), "state {state}");
        // Above the kernel's pid_max limit (2^22): no such process.
        assert_eq!(super::proc_start_time(1 << 23), None);
    }
}
