//! The raw syscalls of a process's scheduling, execution domain and memory placement:
//! sched_setattr, ioprio_set, personality and set_mempolicy. libc wraps none of the first two,
//! nor has the structure sched_setattr takes.

use nix::errno::Errno;

/// `struct sched_attr` of the kernel's UAPI header `linux/sched/types.h`, at its second size
/// (`SCHED_ATTR_SIZE_VER1`, 56 bytes: with the utilization clamps). Kernels that only know the
/// first size (48 bytes) accept the larger one as long as the fields they do not know are zero.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchedAttr {
    pub size: u32,
    pub sched_policy: u32,
    pub sched_flags: u64,
    /// SCHED_OTHER, SCHED_BATCH: the nice value.
    pub sched_nice: i32,
    /// SCHED_FIFO, SCHED_RR: the static priority.
    pub sched_priority: u32,
    /// SCHED_DEADLINE, in nanoseconds.
    pub sched_runtime: u64,
    pub sched_deadline: u64,
    pub sched_period: u64,
    /// Utilization clamps, read only with SCHED_FLAG_UTIL_CLAMP_MIN / _MAX.
    pub sched_util_min: u32,
    pub sched_util_max: u32,
}

/// `SCHED_ATTR_SIZE_VER1`.
pub const SCHED_ATTR_SIZE: u32 = std::mem::size_of::<SchedAttr>() as u32;

/// sched_setattr(2) of the calling thread (pid 0) with `attr` (whose `size` the caller set).
pub fn sched_setattr(attr: &SchedAttr) -> nix::Result<()> {
    // SAFETY: `attr` is a live, properly aligned sched_attr whose `size` field says how many
    // bytes the kernel may read; the kernel only reads it. The other arguments are integers.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_sched_setattr,
            0 as libc::pid_t,
            attr as *const SchedAttr,
            0 as libc::c_uint,
        )
    };
    Errno::result(rc).map(drop)
}

/// `IOPRIO_WHO_PROCESS` of `linux/ioprio.h`.
const IOPRIO_WHO_PROCESS: libc::c_int = 1;

/// ioprio_set(IOPRIO_WHO_PROCESS, 0, ioprio): the I/O priority of the calling thread, which its
/// children inherit. `ioprio` is `class << 13 | level`.
pub fn ioprio_set_self(ioprio: u16) -> nix::Result<()> {
    // SAFETY: ioprio_set takes plain integers.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            0 as libc::c_int,
            libc::c_int::from(ioprio),
        )
    };
    Errno::result(rc).map(drop)
}

/// personality(2): set the execution domain (and its flags) of the calling process.
pub fn set_personality(persona: u32) -> nix::Result<()> {
    // SAFETY: personality takes one integer. It returns the previous persona, or -1 and errno.
    let rc = unsafe { libc::syscall(libc::SYS_personality, libc::c_ulong::from(persona)) };
    Errno::result(rc).map(drop)
}

/// set_mempolicy(2) of the calling thread: `mode` (an `MPOL_*` mode or'ed with its `MPOL_F_*`
/// flags) over the nodes whose bits are set in `nodemask` (bit n of word n / 64 is node n); an
/// empty mask passes no nodes. The policy lasts across fork and execve.
pub fn set_mempolicy(mode: libc::c_int, nodemask: &[libc::c_ulong]) -> nix::Result<()> {
    let (mask, maxnode) = if nodemask.is_empty() {
        (std::ptr::null(), 0)
    } else {
        // The kernel reads `maxnode - 1` bits (an off-by-one kept for compatibility): one more
        // than the mask holds makes it read every word and no further.
        let bits = nodemask.len() * libc::c_ulong::BITS as usize;
        (nodemask.as_ptr(), (bits + 1) as libc::c_ulong)
    };
    // SAFETY: `mask` is null with a `maxnode` of 0, or points to `nodemask`, which is live for
    // the call and holds the whole words the kernel reads for that `maxnode`; it only reads.
    let rc = unsafe { libc::syscall(libc::SYS_set_mempolicy, mode, mask, maxnode) };
    Errno::result(rc).map(drop)
}

/// sched_setaffinity(2) of the thread `pid` (0: the caller): run it only on the CPUs whose bits
/// are set in `mask` (bit n of word n / 64 is CPU n). The kernel ignores bits past its own CPU
/// count and narrows the mask to the CPUs of the thread's cpuset cgroup (EINVAL if none is left).
pub fn sched_setaffinity(pid: libc::pid_t, mask: &[libc::c_ulong]) -> nix::Result<()> {
    // SAFETY: `mask` is live for the call and `len` is its size in bytes; the kernel only
    // reads it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_sched_setaffinity,
            pid,
            std::mem::size_of_val(mask),
            mask.as_ptr(),
        )
    };
    Errno::result(rc).map(drop)
}

/// sched_getaffinity(2) of the thread `pid` (0: the caller) into `mask`, which must hold at
/// least the kernel's CPU count in bits (EINVAL otherwise). Returns how many words the kernel
/// wrote; the rest of `mask` is left as it was.
pub fn sched_getaffinity(pid: libc::pid_t, mask: &mut [libc::c_ulong]) -> nix::Result<usize> {
    // SAFETY: `mask` is live and writable for the call and `len` is its size in bytes, the most
    // the kernel writes. The raw syscall returns the number of bytes written.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_sched_getaffinity,
            pid,
            std::mem::size_of_val(mask),
            mask.as_mut_ptr(),
        )
    };
    Errno::result(rc).map(|bytes| bytes as usize / std::mem::size_of::<libc::c_ulong>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sched_attr_has_the_kernel_layout() {
        assert_eq!(SCHED_ATTR_SIZE, 56);
        assert_eq!(std::mem::offset_of!(SchedAttr, sched_nice), 16);
        assert_eq!(std::mem::offset_of!(SchedAttr, sched_runtime), 24);
        assert_eq!(std::mem::offset_of!(SchedAttr, sched_util_min), 48);
    }
}
