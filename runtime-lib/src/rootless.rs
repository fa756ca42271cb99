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
        Ok(map) => map.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"],
        Err(_) => false,
    }
}

/// runc's `--rootless auto`: rootless when the effective uid is not 0; as root, when in a
/// user namespace that does not map the host's root (with `systemd_cgroup`, where runc asks
/// the systemd manager who owns it and takes root when it cannot tell, casulo takes root).
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
    in_user_namespace() && !systemd_cgroup
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
