//! The runtime-spec features document (`casulo features`): what this runtime supports, built
//! from the same tables the validation uses and probed against the running kernel.

use serde::Serialize;
use serde_json::{json, Value};

use crate::process::mempolicy::{FLAGS as MPOL_FLAGS, MODES as MPOL_MODES};
use crate::rootfs::mounts::KNOWN_OPTIONS;
use crate::security::seccomp::{
    action_supported, flag_supported, ACTIONS, ARCHES, KNOWN_FLAGS, OPERATORS, SUPPORTED_FLAGS,
};

/// The oldest runtime-spec version whose configs this runtime runs.
pub const OCI_VERSION_MIN: &str = "1.0.0";
/// The newest runtime-spec version whose configs this runtime runs: its additions (netDevices,
/// memoryPolicy) are applied, and its intelRdt fields are refused with the host's reason.
pub const OCI_VERSION_MAX: &str = "1.3.0";

const HOOKS: [&str; 6] = [
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// The namespace types this kernel has (`/proc/self/ns/<name>`), by their spec names.
fn namespaces() -> Vec<&'static str> {
    [
        ("cgroup", "cgroup"),
        ("ipc", "ipc"),
        ("mount", "mnt"),
        ("network", "net"),
        ("pid", "pid"),
        ("user", "user"),
        ("uts", "uts"),
        ("time", "time"),
    ]
    .into_iter()
    .filter(|(_, file)| std::path::Path::new("/proc/self/ns").join(file).exists())
    .map(|(spec, _)| spec)
    .collect()
}

/// The runtime-spec features document of this runtime on this kernel (`casulo features`
/// prints it), from [`features`].
///
/// It serializes as the JSON document; [`Features::to_typed`] reads it as oci-spec's type.
///
/// ```
/// let features = casulo::features();
/// println!("{}", serde_json::to_string_pretty(&features).unwrap());
/// assert_eq!(features.as_json()["ociVersionMin"], casulo::OCI_VERSION_MIN);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Features(Value);

impl Features {
    /// The document as JSON, in the runtime-spec's field names.
    pub fn as_json(&self) -> &Value {
        &self.0
    }

    /// The document as oci-spec's [`Features`](oci_spec::runtime::Features).
    pub fn to_typed(&self) -> oci_spec::runtime::Features {
        // The document is built below from constants and probes of fixed types; the unit test
        // parses it: a failure would be a bug in the literal, not a runtime condition.
        serde_json::from_value(self.0.clone()).expect("the features document fits its schema")
    }
}

/// What this runtime supports, from the same tables the validation uses, probed against the
/// running kernel (namespaces, capabilities, seccomp actions and flags, LSMs, idmapped
/// mounts).
///
/// ```
/// let features = casulo::features().to_typed();
/// assert_eq!(features.oci_version_max(), casulo::OCI_VERSION_MAX);
/// assert!(features.hooks().as_ref().unwrap().contains(&"poststop".to_string()));
/// ```
pub fn features() -> Features {
    Features(document())
}

/// The features document as JSON.
fn document() -> Value {
    let capabilities = crate::security::known_capabilities().unwrap_or_default();
    // The actions and flags this runtime applies and the running kernel has.
    let actions: Vec<&str> = ACTIONS
        .into_iter()
        .filter(|a| action_supported(a))
        .collect();
    let flags: Vec<&str> = SUPPORTED_FLAGS
        .into_iter()
        .filter(|f| flag_supported(f))
        .collect();
    json!({
        "ociVersionMin": OCI_VERSION_MIN,
        "ociVersionMax": OCI_VERSION_MAX,
        "hooks": HOOKS,
        "mountOptions": &KNOWN_OPTIONS[..],
        "linux": {
            "namespaces": namespaces(),
            "capabilities": capabilities,
            "cgroup": {"v1": true, "v2": true, "systemd": true, "systemdUser": true, "rdma": true},
            "seccomp": {
                "enabled": true,
                "actions": actions,
                "operators": OPERATORS,
                "archs": &ARCHES[..],
                "knownFlags": KNOWN_FLAGS,
                "supportedFlags": flags,
            },
            // The spec's `enabled` here is support built into the runtime, "unrelated to whether
            // the host supports" the LSM (runc says true as well): a profile or label is applied
            // wherever the host runs the LSM, and ignored where it does not.
            "apparmor": {"enabled": true},
            "selinux": {"enabled": true},
            "intelRdt": {"enabled": false},
            "memoryPolicy": {
                "modes": MPOL_MODES.iter().map(|(n, _, _)| *n).collect::<Vec<_>>(),
                "flags": MPOL_FLAGS.iter().map(|(n, _, _)| *n).collect::<Vec<_>>(),
            },
            "netDevices": {"enabled": true},
            "mountExtensions": {"idmap": {"enabled": crate::sys::mount_api::idmap_supported()}},
        },
        "annotations": {
            "io.github.casulo.version": env!("CARGO_PKG_VERSION"),
            // runc's key, which engines read before they offer checkpoints: casulo's
            // checkpoint and restore take runc's flags (CRIU itself is checked when used).
            "org.opencontainers.runc.checkpoint.enabled": "true",
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_a_valid_features_document() {
        let doc = document();
        let parsed = features().to_typed();
        assert_eq!(parsed.oci_version_max(), OCI_VERSION_MAX);
        assert!(doc["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "pid"));
        let actions = doc["linux"]["seccomp"]["actions"].as_array().unwrap();
        assert!(actions.iter().any(|a| a == "SCMP_ACT_ERRNO"));
        // Every kernel casulo runs on (5.x and later) has user notification and LOG.
        assert!(actions.iter().any(|a| a == "SCMP_ACT_NOTIFY"));
        let supported = doc["linux"]["seccomp"]["supportedFlags"]
            .as_array()
            .unwrap();
        assert!(supported.iter().any(|f| f == "SECCOMP_FILTER_FLAG_TSYNC"));
        assert!(supported.iter().any(|f| f == "SECCOMP_FILTER_FLAG_LOG"));
        assert_eq!(doc["linux"]["netDevices"]["enabled"], true);
        assert_eq!(
            doc["linux"]["mountExtensions"]["idmap"]["enabled"],
            crate::sys::mount_api::idmap_supported()
        );
        let options = doc["mountOptions"].as_array().unwrap();
        assert!(options.iter().any(|o| o == "idmap") && options.iter().any(|o| o == "ridmap"));
        assert_eq!(
            doc["linux"]["memoryPolicy"]["modes"],
            serde_json::json!([
                "MPOL_DEFAULT",
                "MPOL_PREFERRED",
                "MPOL_BIND",
                "MPOL_INTERLEAVE",
                "MPOL_LOCAL",
                "MPOL_PREFERRED_MANY",
                "MPOL_WEIGHTED_INTERLEAVE"
            ])
        );
        assert!(doc["linux"]["memoryPolicy"]["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "MPOL_F_STATIC_NODES"));
        assert!(doc["linux"]["capabilities"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "CAP_SYS_ADMIN"));
        assert_eq!(
            doc["annotations"]["org.opencontainers.runc.checkpoint.enabled"],
            "true"
        );
    }
}
