//! Mount options of config.json, parsed before the fork: per-mount flags to set and to clear,
//! propagation, recursive attributes, runc's extensions, and filesystem data.

use nix::mount::MsFlags;

use super::RootfsError;
use crate::sys::mount_attr;

/// MS_NOSYMFOLLOW (Linux 5.10), which nix does not name.
const NOSYMFOLLOW: MsFlags = MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW);

/// Parsed mount options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags to set.
    pub flags: MsFlags,
    /// Flags explicitly cleared (`rw`, `suid`, `dev`, ...): relevant when remounting a bind.
    pub cleared: MsFlags,
    /// Propagation changes applied after the mount, in order.
    pub propagation: Vec<MsFlags>,
    /// Filesystem-specific options, comma-joined, for mount(2)'s data.
    pub data: String,
    /// `bind` or `rbind` was given.
    pub bind: bool,
    /// `tmpcopyup` (runc's extension, tmpfs only): the new tmpfs starts with a copy of what
    /// the rootfs has at the destination.
    pub copy_up: bool,
    /// Recursive options (`rro`, `rnosuid`, ...): mount attributes set on the mount and every
    /// mount under it, with mount_setattr(2).
    pub recursive_set: u64,
    /// Recursive options that clear an attribute (`rrw`, `rsuid`, ...), and the atime mode
    /// field when one of the recursive atime options is given.
    pub recursive_clear: u64,
    /// `idmap` or `ridmap` (runc's extension, bind mounts only): the mount is idmapped, with
    /// the mount's own uidMappings/gidMappings or else the container's user namespace.
    pub idmap: bool,
    /// `ridmap`: the mounts under the bind (of an `rbind`) are idmapped too.
    pub idmap_recursive: bool,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            flags: MsFlags::empty(),
            cleared: MsFlags::empty(),
            propagation: Vec::new(),
            data: String::new(),
            bind: false,
            copy_up: false,
            recursive_set: 0,
            recursive_clear: 0,
            idmap: false,
            idmap_recursive: false,
        }
    }
}

/// Every mount option [`parse_options`] gives a meaning of its own (others are passed to the
/// filesystem as data); `features` reports this list.
pub const KNOWN_OPTIONS: [&str; 62] = [
    "defaults",
    "ro",
    "rw",
    "nosuid",
    "suid",
    "nodev",
    "dev",
    "noexec",
    "exec",
    "sync",
    "async",
    "dirsync",
    "remount",
    "mand",
    "nomand",
    "atime",
    "noatime",
    "diratime",
    "nodiratime",
    "relatime",
    "norelatime",
    "strictatime",
    "nostrictatime",
    "lazytime",
    "nolazytime",
    "silent",
    "loud",
    "iversion",
    "noiversion",
    "nosymfollow",
    "symfollow",
    "bind",
    "rbind",
    "private",
    "rprivate",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "unbindable",
    "runbindable",
    "tmpcopyup",
    "rro",
    "rrw",
    "rnosuid",
    "rsuid",
    "rnodev",
    "rdev",
    "rnoexec",
    "rexec",
    "rnodiratime",
    "rdiratime",
    "rrelatime",
    "rnorelatime",
    "rnoatime",
    "ratime",
    "rstrictatime",
    "rnostrictatime",
    "rnosymfollow",
    "rsymfollow",
    "idmap",
    "ridmap",
];

/// The recursive option `opt` as (attribute, whether it clears it), if it is one.
fn recursive_option(opt: &str) -> Option<(u64, bool)> {
    use mount_attr as a;
    Some(match opt {
        "rro" => (a::RDONLY, false),
        "rrw" => (a::RDONLY, true),
        "rnosuid" => (a::NOSUID, false),
        "rsuid" => (a::NOSUID, true),
        "rnodev" => (a::NODEV, false),
        "rdev" => (a::NODEV, true),
        "rnoexec" => (a::NOEXEC, false),
        "rexec" => (a::NOEXEC, true),
        "rnodiratime" => (a::NODIRATIME, false),
        "rdiratime" => (a::NODIRATIME, true),
        "rrelatime" => (a::RELATIME, false),
        "rnorelatime" => (a::RELATIME, true),
        "rnoatime" => (a::NOATIME, false),
        "ratime" => (a::NOATIME, true),
        "rstrictatime" => (a::STRICTATIME, false),
        "rnostrictatime" => (a::STRICTATIME, true),
        "rnosymfollow" => (a::NOSYMFOLLOW, false),
        "rsymfollow" => (a::NOSYMFOLLOW, true),
        _ => return None,
    })
}

/// Parse the `options` of a mount entry. Unknown options are filesystem data, as mount(8) does.
pub fn parse_options<S: AsRef<str>>(options: &[S]) -> Result<MountOptions, RootfsError> {
    let mut o = MountOptions::default();
    let mut data = Vec::new();
    for opt in options {
        let opt = opt.as_ref();
        if let Some((attr, clear)) = recursive_option(opt) {
            if clear {
                o.recursive_clear |= attr;
                o.recursive_set &= !attr;
            } else {
                o.recursive_set |= attr;
                o.recursive_clear &= !attr;
            }
            // An atime mode is a field: setting one (or clearing one, which falls back to
            // relatime) means clearing the field first.
            if attr & mount_attr::ATIME_MODE == attr {
                o.recursive_clear |= mount_attr::ATIME_MODE;
            }
            continue;
        }
        let (set, clear) = match opt {
            "defaults" => (MsFlags::empty(), MsFlags::empty()),
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "lazytime" => (MsFlags::MS_LAZYTIME, MsFlags::empty()),
            "nolazytime" => (MsFlags::empty(), MsFlags::MS_LAZYTIME),
            "silent" => (MsFlags::MS_SILENT, MsFlags::empty()),
            "loud" => (MsFlags::empty(), MsFlags::MS_SILENT),
            "iversion" => (MsFlags::MS_I_VERSION, MsFlags::empty()),
            "noiversion" => (MsFlags::empty(), MsFlags::MS_I_VERSION),
            "nosymfollow" => (NOSYMFOLLOW, MsFlags::empty()),
            "symfollow" => (MsFlags::empty(), NOSYMFOLLOW),
            "bind" => {
                o.bind = true;
                (MsFlags::MS_BIND, MsFlags::empty())
            }
            "rbind" => {
                o.bind = true;
                (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty())
            }
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => {
                let mut p = match opt.trim_start_matches('r') {
                    "private" => MsFlags::MS_PRIVATE,
                    "shared" => MsFlags::MS_SHARED,
                    "slave" => MsFlags::MS_SLAVE,
                    _ => MsFlags::MS_UNBINDABLE,
                };
                if opt.starts_with('r') {
                    p |= MsFlags::MS_REC;
                }
                o.propagation.push(p);
                continue;
            }
            "tmpcopyup" => {
                o.copy_up = true;
                continue;
            }
            "idmap" | "ridmap" => {
                o.idmap = true;
                o.idmap_recursive = opt == "ridmap";
                continue;
            }
            "" => return Err(RootfsError::Invalid("empty mount option".into())),
            other => {
                data.push(other);
                continue;
            }
        };
        o.flags = (o.flags | set) & !clear;
        o.cleared = (o.cleared | clear) & !set;
    }
    o.data = data.join(",");
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_data() {
        let o =
            parse_options(&["nosuid", "noexec", "nodev", "mode=755", "size=65536k", "ro"]).unwrap();
        assert_eq!(
            o.flags,
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV | MsFlags::MS_RDONLY
        );
        assert_eq!(o.data, "mode=755,size=65536k");
        let o = parse_options(&["ro", "rw"]).unwrap();
        assert!(!o.flags.contains(MsFlags::MS_RDONLY));
        assert!(o.cleared.contains(MsFlags::MS_RDONLY));
    }

    #[test]
    fn bind_and_propagation() {
        let o = parse_options(&["rbind", "rslave", "private"]).unwrap();
        assert!(o.bind);
        assert!(o.flags.contains(MsFlags::MS_BIND | MsFlags::MS_REC));
        assert_eq!(
            o.propagation,
            vec![MsFlags::MS_SLAVE | MsFlags::MS_REC, MsFlags::MS_PRIVATE]
        );
    }

    #[test]
    fn recursive_options() {
        let o = parse_options(&["rbind", "rro", "rnosuid", "rsuid", "rnoatime"]).unwrap();
        assert_eq!(o.recursive_set, mount_attr::RDONLY | mount_attr::NOATIME);
        assert_eq!(
            o.recursive_clear,
            mount_attr::NOSUID | mount_attr::ATIME_MODE
        );
        let o = parse_options(&["ratime"]).unwrap();
        assert_eq!(
            (o.recursive_set, o.recursive_clear),
            (0, mount_attr::ATIME_MODE)
        );
        assert_eq!(o.flags, MsFlags::empty());
    }

    #[test]
    fn idmap_options() {
        let o = parse_options(&["rbind", "idmap"]).unwrap();
        assert!(o.idmap && !o.idmap_recursive);
        let o = parse_options(&["rbind", "ridmap"]).unwrap();
        assert!(o.idmap && o.idmap_recursive);
        assert!(o.data.is_empty());
        assert!(parse_options(&[""]).is_err());
    }

    #[test]
    fn known_options_have_a_meaning() {
        for opt in KNOWN_OPTIONS {
            let o = parse_options(&[opt]).unwrap_or_else(|e| panic!("{opt}: {e}"));
            assert!(o.data.is_empty(), "{opt} was passed as filesystem data");
        }
    }
}
