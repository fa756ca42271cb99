//! Bundle loading and validation: everything about `config.json` that can be checked before
//! any side effect is checked here, so that bad input never leaves anything behind.

use crate::namespaces::ns_name;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("bundle {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: invalid JSON: {msg}")]
    Json { path: PathBuf, msg: String },
    #[error("config: {field}: {msg}")]
    Invalid { field: String, msg: String },
    #[error("config: {0}: not supported by this runtime")]
    Unsupported(String),
    #[error(
        "invalid container id {0:?}: use letters, digits and _ + - . only, not \".\" or \"..\""
    )]
    InvalidId(String),
}

fn invalid(field: impl Into<String>, msg: impl Into<String>) -> BundleError {
    BundleError::Invalid {
        field: field.into(),
        msg: msg.into(),
    }
}

/// A loaded and validated bundle.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The bundle directory, absolute.
    pub dir: PathBuf,
    /// The parsed config.json.
    pub spec: Spec,
    /// The rootfs, absolute and canonical.
    pub rootfs: PathBuf,
}

/// Check a container id the way runc does: `[A-Za-z0-9_+.-]+`, and not `.` or `..`.
pub fn validate_id(id: &str) -> Result<(), BundleError> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 1024
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(BundleError::InvalidId(id.to_string()))
    }
}

impl Bundle {
    /// Load `<dir>/config.json` and validate it.
    pub fn load(dir: &Path) -> Result<Bundle, BundleError> {
        let dir = std::path::absolute(dir).map_err(|source| BundleError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let config = dir.join("config.json");
        let text = std::fs::read(&config).map_err(|source| BundleError::Io {
            path: config.clone(),
            source,
        })?;
        let spec = parse_spec(&text).map_err(|msg| BundleError::Json { path: config, msg })?;
        Bundle::from_spec(dir, spec)
    }

    /// Validate an already parsed spec whose relative paths are relative to `dir`.
    pub fn from_spec(dir: PathBuf, mut spec: Spec) -> Result<Bundle, BundleError> {
        absolute_mount_destinations(&mut spec);
        empty_namespace_paths_are_new(&mut spec);
        validate(&spec)?;
        let root = spec
            .root()
            .as_ref()
            .ok_or_else(|| invalid("root", "missing"))?;
        // A relative root.path is taken from the bundle's real directory, as runc does (it
        // changes into the bundle and asks for the working directory): a bundle reached through
        // a symlink is fine; a symlink in root.path itself is not.
        let base = if root.path().is_absolute() {
            dir.clone()
        } else {
            dir.canonicalize().map_err(|source| BundleError::Io {
                path: dir.clone(),
                source,
            })?
        };
        let given = lexically_clean(&base.join(root.path()));
        let rootfs = given.canonicalize().map_err(|source| BundleError::Io {
            path: given.clone(),
            source,
        })?;
        // As runc: the rootfs is named by its real path, no symlink on the way.
        if rootfs != given {
            return Err(invalid(
                "root.path",
                format!(
                    "{} is not an absolute path without symlinks (it resolves to {})",
                    given.display(),
                    rootfs.display()
                ),
            ));
        }
        if !rootfs.is_dir() {
            return Err(invalid(
                "root.path",
                format!("{} is not a directory", rootfs.display()),
            ));
        }
        Ok(Bundle { dir, spec, rootfs })
    }
}

/// Parse config.json text. Fields are checked by [`validate`]; this only reports JSON errors.
pub fn parse_spec(text: &[u8]) -> Result<Spec, String> {
    serde_json::from_slice(text).or_else(|e| {
        reparse(text, e, |v| {
            let mut changed = false;
            if let Some(p) = v.get_mut("process") {
                changed |= crate::process::fix_process_json(p)?;
            }
            if let Some(l) = v.get("linux") {
                crate::process::personality::check_json(l)?;
                crate::process::mempolicy::check_json(l)?;
            }
            Ok(changed)
        })
    })
}

/// Parse a process object (`exec --process`) the way [`parse_spec`] parses config.json's.
pub fn parse_process(text: &[u8]) -> Result<oci_spec::runtime::Process, String> {
    serde_json::from_slice(text).or_else(|e| reparse(text, e, crate::process::fix_process_json))
}

/// The slow path of a typed parse that failed: look at the document as plain JSON, where the
/// error can name the field of a value the types do not know, and where values spelled as the
/// runtime-spec spells them but oci-spec's types do not are respelled (then parse again).
fn reparse<T: serde::de::DeserializeOwned>(
    text: &[u8],
    first: serde_json::Error,
    fix: impl FnOnce(&mut serde_json::Value) -> Result<bool, String>,
) -> Result<T, String> {
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(text) else {
        return Err(first.to_string());
    };
    if fix(&mut v)? {
        serde_json::from_value(v).map_err(|e| e.to_string())
    } else {
        Err(first.to_string())
    }
}

/// The checks that need nothing but the spec itself.
pub fn validate(spec: &Spec) -> Result<(), BundleError> {
    validate_version(spec.version())?;
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| invalid("root", "missing"))?;
    if root.path().as_os_str().is_empty() {
        return Err(invalid("root.path", "empty"));
    }
    // The process (args, cwd, env) is checked where it is prepared, ProcessPlan::from_spec,
    // which also serves `exec`.
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if !m.destination().is_absolute() {
            return Err(invalid(
                format!("mounts[{i}].destination"),
                format!(
                    "{} is not absolute (a loaded bundle takes it from /)",
                    m.destination().display()
                ),
            ));
        }
    }
    if let Some(hooks) = spec.hooks() {
        let all = [
            hooks.prestart(),
            hooks.create_runtime(),
            hooks.create_container(),
            hooks.start_container(),
            hooks.poststart(),
            hooks.poststop(),
        ];
        for h in all.into_iter().flatten().flatten() {
            if !h.path().is_absolute() {
                return Err(invalid(
                    "hooks",
                    format!("hook path {} is not absolute", h.path().display()),
                ));
            }
            if h.timeout().is_some_and(|t| t <= 0) {
                return Err(invalid(
                    "hooks",
                    format!("hook {} has a timeout <= 0", h.path().display()),
                ));
            }
        }
    }
    if let Some(linux) = spec.linux() {
        let mut seen = HashSet::new();
        for ns in linux.namespaces().iter().flatten() {
            if !seen.insert(ns.typ()) {
                return Err(invalid(
                    "linux.namespaces",
                    format!("{} listed twice", ns_name(ns.typ())),
                ));
            }
            if let Some(p) = ns.path() {
                if !p.is_absolute() {
                    return Err(invalid(
                        "linux.namespaces",
                        format!("{} path {} is not absolute", ns_name(ns.typ()), p.display()),
                    ));
                }
            }
        }
        let has_userns = seen.contains(&LinuxNamespaceType::User);
        if !has_userns && (linux.uid_mappings().is_some() || linux.gid_mappings().is_some()) {
            let non_empty = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
                || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
            if non_empty {
                return Err(invalid(
                    "linux.uidMappings",
                    "id mappings need a user namespace",
                ));
            }
        }
        if let Some(p) = linux.cgroups_path() {
            if p.components().any(|c| c == std::path::Component::ParentDir) {
                return Err(invalid(
                    "linux.cgroupsPath",
                    format!("{} escapes with ..", p.display()),
                ));
            }
        }
        for (i, p) in linux.masked_paths().iter().flatten().enumerate() {
            if !Path::new(p).is_absolute() {
                return Err(invalid(
                    format!("linux.maskedPaths[{i}]"),
                    format!("{p} is not absolute"),
                ));
            }
        }
        for (i, p) in linux.readonly_paths().iter().flatten().enumerate() {
            if !Path::new(p).is_absolute() {
                return Err(invalid(
                    format!("linux.readonlyPaths[{i}]"),
                    format!("{p} is not absolute"),
                ));
            }
        }
        for (i, d) in linux.devices().iter().flatten().enumerate() {
            if !d.path().is_absolute() {
                return Err(invalid(
                    format!("linux.devices[{i}].path"),
                    format!("{} is not absolute", d.path().display()),
                ));
            }
        }
        if linux.intel_rdt().is_some() {
            return Err(intel_rdt_refusal(resctrl_mounted()));
        }
        crate::security::label::check_mount_label(
            crate::security::label::HostLsm::probe(),
            linux.mount_label().as_deref(),
        )
        .map_err(|e| invalid("linux.mountLabel", e.to_string()))?;
    }
    Ok(())
}

/// Where the kernel's resctrl filesystem (Intel RDT, AMD QoS) is mounted when it is.
const RESCTRL: &str = "/sys/fs/resctrl";

/// `RDTGROUP_SUPER_MAGIC` of `linux/magic.h`.
const RDTGROUP_SUPER_MAGIC: nix::sys::statfs::FsType = nix::sys::statfs::FsType(0x0765_5821);

/// Whether resctrl is mounted at [`RESCTRL`].
fn resctrl_mounted() -> bool {
    nix::sys::statfs::statfs(RESCTRL).is_ok_and(|fs| fs.filesystem_type() == RDTGROUP_SUPER_MAGIC)
}

/// The refusal of `linux.intelRdt`: this runtime manages no resctrl groups; where the host has
/// no resctrl mounted, no runtime could apply the field, and the message says so first.
fn intel_rdt_refusal(resctrl_mounted: bool) -> BundleError {
    let msg = if resctrl_mounted {
        format!(
            "not implemented by this runtime (resctrl is mounted at {RESCTRL}, but this runtime \
             does not manage resctrl groups)"
        )
    } else {
        format!("resctrl is not mounted on this host ({RESCTRL})")
    };
    invalid("linux.intelRdt", msg)
}

/// `p` with `.` removed and `..` applied to the components before it, without touching the
/// filesystem.
fn lexically_clean(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The runtime-spec versions this runtime implements: 1.x.
fn validate_version(v: &str) -> Result<(), BundleError> {
    let major = v.split('.').next().unwrap_or("");
    match major.parse::<u32>() {
        Ok(1) => Ok(()),
        Ok(_) => Err(invalid(
            "ociVersion",
            format!("{v:?}: only 1.x is supported"),
        )),
        Err(_) => Err(invalid("ociVersion", format!("{v:?} is not a version"))),
    }
}

/// Runtime-spec 1.2 lets a Linux mount destination be relative, meaning relative to the
/// container's `/` (runc takes it so too): made absolute here, once, so that every later
/// step sees one form.
fn absolute_mount_destinations(spec: &mut Spec) {
    let Some(mounts) = spec.mounts().clone() else {
        return;
    };
    if mounts.iter().all(|m| m.destination().is_absolute()) {
        return;
    }
    let mounts = mounts
        .into_iter()
        .map(|mut m| {
            if !m.destination().is_absolute() {
                let abs = Path::new("/").join(m.destination());
                m.set_destination(abs);
            }
            m
        })
        .collect();
    spec.set_mounts(Some(mounts));
}

/// A namespace whose `path` is the empty string is a new one, as runc takes it (engines and
/// jq-edited configs write `"path": ""`); made `None` once, here.
fn empty_namespace_paths_are_new(spec: &mut Spec) {
    let Some(linux) = spec.linux_mut() else {
        return;
    };
    let Some(mut namespaces) = linux.namespaces().clone() else {
        return;
    };
    if !namespaces
        .iter()
        .any(|n| n.path().as_ref().is_some_and(|p| p.as_os_str().is_empty()))
    {
        return;
    }
    for n in &mut namespaces {
        if n.path().as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            n.set_path(None);
        }
    }
    linux.set_namespaces(Some(namespaces));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> Result<(), BundleError> {
        let spec = parse_spec(json.as_bytes()).map_err(|m| invalid("json", m))?;
        validate(&spec)
    }

    #[test]
    fn empty_namespace_path_and_relative_mount_destination_are_normalized() {
        let mut spec = parse_spec(
            br#"{"ociVersion": "1.0.2", "root": {"path": "rootfs"},
                 "mounts": [{"destination": "tmp/x", "type": "tmpfs", "source": "tmpfs"}],
                 "linux": {"namespaces": [{"type": "mount"}, {"type": "network", "path": ""}]}}"#,
        )
        .unwrap();
        absolute_mount_destinations(&mut spec);
        empty_namespace_paths_are_new(&mut spec);
        validate(&spec).unwrap();
        let ns = spec.linux().as_ref().unwrap().namespaces().clone().unwrap();
        assert!(ns.iter().all(|n| n.path().is_none()));
        let m = spec.mounts().clone().unwrap();
        assert_eq!(m[0].destination(), Path::new("/tmp/x"));
    }

    #[test]
    fn ids() {
        for ok in ["a", "web-1", "a.b_c+d"] {
            validate_id(ok).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "a b", "../x"] {
            assert!(validate_id(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn versions() {
        assert!(spec(r#"{"ociVersion":"1.0.2","root":{"path":"r"}}"#).is_ok());
        let e = spec(r#"{"ociVersion":"2.0.0","root":{"path":"r"}}"#).unwrap_err();
        assert!(e.to_string().contains("only 1.x"), "{e}");
        assert!(spec(r#"{"ociVersion":"x","root":{"path":"r"}}"#).is_err());
    }

    #[test]
    fn relative_paths_rejected() {
        let e = spec(r#"{"ociVersion":"1.0.2","root":{"path":"r"},"mounts":[{"destination":"proc","type":"proc"}]}"#)
            .unwrap_err();
        assert!(e.to_string().contains("mounts[0].destination"), "{e}");
    }

    #[test]
    fn duplicate_namespace_rejected() {
        let e = spec(r#"{"ociVersion":"1.0.2","root":{"path":"r"},"linux":{"namespaces":[{"type":"pid"},{"type":"pid"}]}}"#)
            .unwrap_err();
        assert!(e.to_string().contains("pid listed twice"), "{e}");
    }

    #[test]
    fn unknown_namespace_is_a_json_error() {
        assert!(parse_spec(br#"{"ociVersion":"1.0.2","root":{"path":"r"},"linux":{"namespaces":[{"type":"bogus"}]}}"#).is_err());
    }

    #[test]
    fn scheduling_values_name_their_field() {
        let proc_with = |extra: &str| {
            format!(
                r#"{{"ociVersion":"1.0.2","root":{{"path":"r"}},"process":{{"cwd":"/","args":["sh"],"user":{{"uid":0,"gid":0}},{extra}}}}}"#
            )
        };
        let e =
            parse_spec(proc_with(r#""scheduler":{"policy":"SCHED_NOPE"}"#).as_bytes()).unwrap_err();
        assert!(e.contains("process.scheduler.policy"), "{e}");
        let e = parse_spec(
            proc_with(r#""ioPriority":{"class":"IOPRIO_CLASS_NOPE","priority":1}"#).as_bytes(),
        )
        .unwrap_err();
        assert!(e.contains("process.ioPriority.class"), "{e}");
        let e = parse_spec(
            br#"{"ociVersion":"1.0.2","root":{"path":"r"},"linux":{"personality":{"domain":"LINUX64"}}}"#,
        )
        .unwrap_err();
        assert!(e.contains("linux.personality.domain"), "{e}");
        // Another error in the same document keeps serde's message, with its position.
        let e =
            parse_spec(br#"{"ociVersion":"1.0.2","root":{"path":"r"},"hostname":7}"#).unwrap_err();
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn scheduler_flags_as_the_runtime_spec_spells_them() {
        let text = br#"{"ociVersion":"1.2.0","root":{"path":"r"},"process":{"cwd":"/","args":["sh"],"user":{"uid":0,"gid":0},
            "scheduler":{"policy":"SCHED_FIFO","priority":5,"flags":["SCHED_FLAG_RESET_ON_FORK","SCHED_FLAG_DL_OVERRUN"]}}}"#;
        let spec = parse_spec(text).unwrap();
        let flags = spec
            .process()
            .as_ref()
            .unwrap()
            .scheduler()
            .as_ref()
            .unwrap()
            .flags()
            .clone();
        assert_eq!(flags.map(|f| f.len()), Some(2));
        // What the runtime saves (state.json) reads back.
        let saved = serde_json::to_vec(&spec).unwrap();
        assert_eq!(parse_spec(&saved).unwrap(), spec);
    }

    #[test]
    fn intel_rdt_says_why_it_is_refused() {
        let e = intel_rdt_refusal(false).to_string();
        assert_eq!(
            e,
            "config: linux.intelRdt: resctrl is not mounted on this host (/sys/fs/resctrl)"
        );
        let e = intel_rdt_refusal(true).to_string();
        assert!(
            e.starts_with("config: linux.intelRdt: not implemented by this runtime"),
            "{e}"
        );
        // Whatever this host has, the config is refused with one of the two.
        let e = spec(
            r#"{"ociVersion":"1.0.2","root":{"path":"r"},"linux":{"intelRdt":{"closID":"x"}}}"#,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(e, intel_rdt_refusal(resctrl_mounted()).to_string());
    }

    #[test]
    fn escaping_cgroup_path_rejected() {
        let e = spec(
            r#"{"ociVersion":"1.0.2","root":{"path":"r"},"linux":{"cgroupsPath":"/a/../../b"}}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("escapes"), "{e}");
    }
}
