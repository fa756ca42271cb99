//! Rootless: what is decided from who runs the runtime. The effective uid alone decides how
//! the id maps are written (`namespaces::write_id_maps`) and that devices are bind-mounted;
//! runc's `--rootless` flag (true, false, auto) decides how the cgroup is made
//! (`cgroups::rootless`).

/// Whether this process is in a user namespace that is not the host's: its `uid_map` is not
/// the initial namespace's identity map (`0 0 4294967295`).
///
/// ```
/// // The test runs on a host, or in a container with a user namespace of its own.
/// let _ = casulo::in_user_namespace();
/// ```
pub fn in_user_namespace() -> bool {
    match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(map) => id_map_ranges(&map).ne([IdRange {
            inside: 0,
            outside: 0,
            len: u32::MAX.into(),
        }]),
        Err(_) => false,
    }
}

/// One line of a `/proc/PID/uid_map` or `gid_map`: `len` ids from `inside` map to the parent
/// namespace's ids from `outside`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IdRange {
    pub inside: u64,
    pub outside: u64,
    pub len: u64,
}

impl IdRange {
    /// The parent's id for `id`, where this range maps it.
    pub(crate) fn parent_id(&self, id: u32) -> Option<u32> {
        let id = u64::from(id);
        (self.inside <= id && id < self.inside + self.len)
            .then(|| u32::try_from(self.outside + id - self.inside).ok())
            .flatten()
    }
}

/// The ranges of an id map's text; a line that is not three numbers is left out.
pub(crate) fn id_map_ranges(map: &str) -> impl Iterator<Item = IdRange> + '_ {
    map.lines().filter_map(|l| {
        let mut f = l.split_whitespace().map(|n| n.parse::<u64>());
        match (f.next(), f.next(), f.next(), f.next()) {
            (Some(Ok(inside)), Some(Ok(outside)), Some(Ok(len)), None) => Some(IdRange {
                inside,
                outside,
                len,
            }),
            _ => None,
        }
    })
}

/// runc's `--rootless auto`: rootless when the effective uid is not 0; as root, when in a
/// user namespace that does not map the host's root. With `systemd_cgroup` runc asks the
/// systemd manager who owns it; casulo decides from the namespace alone: a namespace that
/// does not map the host's root (rootless podman's) cannot have the system manager make
/// units for it, so that is rootless too (and its systemd cgroup is then a unit of the user's
/// own manager, on the session bus, rather than a failed handshake on the system bus).
///
/// ```
/// if !nix::unistd::geteuid().is_root() {
///     assert!(casulo::rootless_auto(false));
/// }
/// ```
pub fn rootless_auto(systemd_cgroup: bool) -> bool {
    if !nix::unistd::geteuid().is_root() {
        return true;
    }
    in_user_namespace() && (!systemd_cgroup || !maps_host_root())
}

/// Whether this process's user namespace maps the host's root (a namespace made by root with
/// a mapping of id 0, as some nested setups have).
fn maps_host_root() -> bool {
    std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|map| maps_id_zero(&map))
}

/// Whether a `uid_map` text maps the parent's id 0.
fn maps_id_zero(map: &str) -> bool {
    id_map_ranges(map).any(|r| r.outside == 0 && r.len > 0)
}

/// Parse runc's `--rootless` value: `true`, `false` (and the other spellings Go's
/// `strconv.ParseBool` takes: `1`, `t`, `TRUE`, `0`, `f`, ...) or `auto`/empty (`None`).
///
/// ```
/// assert_eq!(casulo::parse_rootless("auto"), Ok(None));
/// assert_eq!(casulo::parse_rootless("TRUE"), Ok(Some(true)));
/// assert_eq!(casulo::parse_rootless("0"), Ok(Some(false)));
/// assert!(casulo::parse_rootless("yes").is_err());
/// ```
pub fn parse_rootless(value: &str) -> Result<Option<bool>, String> {
    match value {
        "" => Ok(None),
        v if v.eq_ignore_ascii_case("auto") => Ok(None),
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(Some(true)),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(Some(false)),
        v => Err(format!("--rootless: {v:?} is not true, false or auto")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn maps_id_zero_reads_the_host_column() {
        assert!(super::maps_id_zero("         0          0 4294967295\n"));
        assert!(super::maps_id_zero("0 1002 1\n1 0 1\n"));
        assert!(!super::maps_id_zero("0 1002 1\n1 100000 65536\n"));
        assert!(!super::maps_id_zero(""));
    }

    #[test]
    fn id_map_ranges_and_parent_ids() {
        let map = "         0       1000          1\n         1     100000      65536\nbad 1 2\n";
        let r: Vec<_> = super::id_map_ranges(map).collect();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].parent_id(0), Some(1000));
        assert_eq!(r[0].parent_id(1), None);
        assert_eq!(r[1].parent_id(1), Some(100000));
        assert_eq!(r[1].parent_id(65536), Some(165535));
        assert_eq!(r[1].parent_id(65537), None);
    }
}
