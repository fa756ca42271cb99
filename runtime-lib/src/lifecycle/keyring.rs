//! The container's session keyring, `_ses.<id>` as runc names it: the init creates it (so the
//! container does not share the caller's session keyring) and makes it searchable, and each
//! exec'd process joins it by name. Runs after the fork: prepared data and syscalls only.

use std::ffi::CStr;
use std::os::fd::OwnedFd;

use super::hostproc::{write_label, write_proc};
use super::text::{child_err, CPath, ChildError};
use super::WithStep;
use crate::security::label::LabelPlan;

/// Room for "_ses." and a container id.
pub(crate) type KeyringName = CPath<512>;

/// The permission bit that lets processes of the keyring's own uid search it: what joining it
/// by name takes.
const USER_SEARCH: u32 = 0x0008_0000;
/// The permission bit that lets any process search it. In a user namespace the keyring's uid
/// need not be the one an exec'd process has when it joins, so runc grants "other" there.
const OTHER_SEARCH: u32 = 0x0000_0008;

/// The session keyring's name for container `id`, or `None` if it does not fit a key name.
pub(crate) fn name(id: &str) -> Option<KeyringName> {
    CPath::concat(&[b"_ses.", id.as_bytes()])
}

/// Who may search a new session keyring, so that exec can join it.
pub(super) fn search_bit(in_user_ns: bool) -> u32 {
    if in_user_ns {
        OTHER_SEARCH
    } else {
        USER_SEARCH
    }
}

/// Join the session keyring `name` (an existing one this process may search, else a new one)
/// with `key_label` as its SELinux label, and add `search` to its permissions (0: leave them).
pub(super) fn join(
    name: &CStr,
    key_label: Option<&LabelPlan>,
    proc: &OwnedFd,
    search: u32,
) -> Result<(), ChildError> {
    // Under SELinux the keyring gets the process label, as with runc, and the label of the
    // keys created later goes back to the default once it exists.
    if let Some(l) = key_label {
        write_label(proc, l)?;
    }
    // Kernels without keyrings (or with them restricted by seccomp) are not an error, as for
    // runc: the session keyring is a hardening, not part of the spec.
    let joined = match crate::sys::join_session_keyring(name) {
        Ok(serial) if search != 0 => add_permission(serial, search),
        Ok(_) | Err(nix::Error::ENOSYS) | Err(nix::Error::EPERM) | Err(nix::Error::EACCES) => {
            Ok(())
        }
        Err(e) => Err(child_err!("join session keyring: {e}")),
    };
    if let Some(l) = key_label {
        write_proc(proc, &l.rel, b"").step(format_args!("reset {}", l.rel.display()))?;
    }
    joined
}

/// Add `bits` to key `serial`'s permissions. A keyring whose permissions cannot be read or
/// set is an error, as with runc: better no container than one with a keyring set up wrong.
fn add_permission(serial: i32, bits: u32) -> Result<(), ChildError> {
    let mut buf = [0u8; 256];
    let n = crate::sys::describe_key(serial, &mut buf).step("describe the session keyring")?;
    let perm = permission(&buf[..n.min(buf.len())])
        .ok_or_else(|| child_err!("session keyring: unexpected description from the kernel"))?;
    crate::sys::set_key_perm(serial, perm | bits).step("set the session keyring's permissions")
}

/// The permission field of a key description, "type;uid;gid;perm;description" with `perm` in
/// hexadecimal.
fn permission(desc: &[u8]) -> Option<u32> {
    let field = desc.split(|&b| b == b';').nth(3)?;
    if field.is_empty() || field.len() > 8 {
        return None;
    }
    field.iter().try_fold(0u32, |acc, &b| {
        let digit = (b as char).to_digit(16)?;
        Some(acc << 4 | digit)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_is_read_from_the_fourth_field() {
        assert_eq!(
            permission(b"keyring;0;0;3f130000;_ses.web\0"),
            Some(0x3f13_0000)
        );
        assert_eq!(
            permission(b"keyring;0;0;3f1b0008;_ses.a;b\0"),
            Some(0x3f1b_0008)
        );
        assert_eq!(permission(b"keyring;0;0"), None);
        assert_eq!(permission(b"keyring;0;0;;x"), None);
        assert_eq!(permission(b"keyring;0;0;3g;x"), None);
        assert_eq!(permission(b"keyring;0;0;123456789;x"), None);
    }

    #[test]
    fn names_and_search_bits() {
        assert_eq!(name("web").unwrap().as_cstr().to_bytes(), b"_ses.web");
        assert!(name(&"x".repeat(600)).is_none());
        assert_eq!(search_bit(false), USER_SEARCH);
        assert_eq!(search_bit(true), OTHER_SEARCH);
    }
}
