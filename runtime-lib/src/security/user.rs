//! The user switch and no_new_privs.
//!
//! Raw system calls are used rather than the C library's wrappers: glibc's set*id wrappers
//! signal every thread it knows of to change them all, which is both needless (the process
//! being set up has one thread) and wrong in a child created by a raw clone, whose view of
//! the thread list is stale. The raw calls change the calling thread only.

use super::SecurityError;
use crate::sys::security::{prctl1 as prctl, setgroups, setresgid, setresuid};

/// Switch to uid/gid/additional gids keeping capabilities (PR_SET_KEEPCAPS) so that
/// `CapsPlan::apply` can set them afterwards.
///
/// The order matters:
/// 1. PR_SET_KEEPCAPS 1: otherwise the kernel empties the permitted set when all uids
///    leave 0, and `CapsPlan::apply` could no longer grant anything.
/// 2. setgroups(additional_gids), only if `set_groups` (in a user namespace whose
///    `setgroups` file says "deny" the kernel refuses it). An empty list clears the
///    groups inherited from the runtime. Needs CAP_SETGID, so before the uid change.
/// 3. setresgid(gid, gid, gid): also needs CAP_SETGID, so before the uid change.
/// 4. setresuid(uid, uid, uid): with a non-zero uid this clears the effective set (the
///    permitted set survives thanks to step 1); no set*id call is possible after it.
/// 5. PR_SET_KEEPCAPS 0: the flag must not leak into the container's program.
///
/// Call after `CapsPlan::drop_bounding` (which needs CAP_SETPCAP effective) and before
/// `CapsPlan::apply`. Allocation-free.
pub fn switch_user(
    uid: u32,
    gid: u32,
    additional_gids: &[u32],
    set_groups: bool,
) -> Result<(), SecurityError> {
    let fail = |step| move |errno| SecurityError::Apply { step, errno };
    prctl(libc::PR_SET_KEEPCAPS, 1).map_err(fail("keep capabilities (PR_SET_KEEPCAPS 1)"))?;
    if set_groups {
        setgroups(additional_gids).map_err(fail("set additional groups (setgroups)"))?;
    }
    setresgid(gid).map_err(fail("set group id (setresgid)"))?;
    setresuid(uid).map_err(fail("set user id (setresuid)"))?;
    prctl(libc::PR_SET_KEEPCAPS, 0).map_err(fail("reset PR_SET_KEEPCAPS to 0"))?;
    Ok(())
}

/// prctl(PR_SET_NO_NEW_PRIVS, 1): execve can no longer grant privileges (setuid bits, file
/// capabilities), and a seccomp filter may be loaded without CAP_SYS_ADMIN. Irreversible.
pub fn set_no_new_privs() -> Result<(), SecurityError> {
    prctl(libc::PR_SET_NO_NEW_PRIVS, 1).map_err(|errno| SecurityError::Apply {
        step: "set no_new_privs (PR_SET_NO_NEW_PRIVS)",
        errno,
    })
}

/// Give the process's stdin, stdout and stderr to `uid` (the user it is about to become), so
/// that a user other than root can use the terminal or pipes the runtime set up for it, as
/// runc does: only the owner changes (the devpts mount chose the group, `gid=5` usually);
/// an fd that `uid` already owns, or that is the container's /dev/null, is left alone; and an
/// fd the kernel will not change (EINVAL: a uid the fd's user namespace does not map; EPERM:
/// an owner not mapped in ours; EROFS) is left as it is. Call inside the container's root,
/// before the user switch (fchown needs CAP_CHOWN).
pub fn give_stdio_to(uid: u32) -> Result<(), SecurityError> {
    use nix::sys::stat::{fstat, stat};
    let fail = |step| move |errno| SecurityError::Apply { step, errno };
    let null = stat("/dev/null").map_err(fail("stat /dev/null"))?;
    for fd in (0..3).filter_map(crate::sys::stdio_fd) {
        let st = match fstat(fd) {
            Ok(st) => st,
            Err(nix::Error::EBADF) => continue,
            Err(errno) => return Err(fail("fstat stdio")(errno)),
        };
        if st.st_uid == uid || st.st_rdev == null.st_rdev {
            continue;
        }
        match nix::unistd::fchown(fd, Some(uid.into()), None) {
            Ok(()) | Err(nix::Error::EINVAL | nix::Error::EPERM | nix::Error::EROFS) => {}
            Err(errno) => return Err(fail("give stdio to the process user (fchown)")(errno)),
        }
    }
    Ok(())
}
