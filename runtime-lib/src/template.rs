//! The starter `config.json` that `spec` writes: the same document as the reference runtime's
//! `spec` command, with or without `--rootless`.
use oci_spec::runtime::Spec;
use serde_json::{json, Value};

use crate::SpecOptions;

/// The `ociVersion` the template carries (the spec version the reference template was written for).
const TEMPLATE_OCI_VERSION: &str = "1.0.2-dev";

/// The starter config, as `casulo spec` writes it: a read-only `rootfs`, `sh` on a terminal,
/// a minimal capability set, the usual pseudo-filesystems and masked paths; the same document
/// as the reference runtime's.
///
/// With [`SpecOptions::rootless`], the template is adapted for an unprivileged user: a user
/// namespace mapping root in the container to the caller's effective uid and gid, no network
/// namespace, `/sys` bind-mounted from the host instead of a new sysfs, no `gid=5` on devpts
/// (that group is not mapped) and no device cgroup rules.
///
/// ```
/// use casulo::{default_spec, SpecOptions};
///
/// let spec = default_spec(SpecOptions::default());
/// assert_eq!(spec.root().as_ref().unwrap().path().to_str(), Some("rootfs"));
/// assert_eq!(spec.process().as_ref().unwrap().args().as_deref(), Some(&["sh".to_string()][..]));
/// ```
pub fn default_spec(opts: SpecOptions) -> Spec {
    // The document is a constant apart from two integers, and the unit tests deserialize it;
    // a failure here would be a bug in the literal below, not a runtime condition.
    serde_json::from_value(default_spec_json(opts))
        .expect("the built-in spec template is a valid runtime spec")
}

/// The same template as a JSON document. Prefer this for writing `config.json`: `Spec` keeps
/// capabilities in hash sets, so serializing it does not keep the reference order of the
/// capability lists, while this document does.
///
/// ```no_run
/// let doc = casulo::default_spec_json(casulo::SpecOptions::default());
/// let text = serde_json::to_string_pretty(&doc).unwrap();
/// std::fs::write("/srv/bundles/web/config.json", text + "\n").unwrap();
/// ```
pub fn default_spec_json(opts: SpecOptions) -> Value {
    default_spec_value(
        opts.rootless,
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    )
}

/// The template as JSON; `host_uid`/`host_gid` are the ids root in the container maps to when
/// `rootless` is set.
fn default_spec_value(rootless: bool, host_uid: u32, host_gid: u32) -> Value {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);

    let mut devpts_options = vec![
        "nosuid",
        "noexec",
        "newinstance",
        "ptmxmode=0666",
        "mode=0620",
    ];
    if !rootless {
        devpts_options.push("gid=5");
    }

    let sys_mount = if rootless {
        json!({
            "destination": "/sys",
            "type": "none",
            "source": "/sys",
            "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]
        })
    } else {
        json!({
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", "ro"]
        })
    };

    let mut namespaces = vec![json!({"type": "pid"})];
    if !rootless {
        namespaces.push(json!({"type": "network"}));
    }
    namespaces.extend([
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ]);
    if rootless {
        namespaces.push(json!({"type": "user"}));
    }

    let mut linux = json!({
        "namespaces": namespaces,
        "maskedPaths": [
            "/proc/acpi",
            "/proc/asound",
            "/proc/kcore",
            "/proc/keys",
            "/proc/latency_stats",
            "/proc/timer_list",
            "/proc/timer_stats",
            "/proc/sched_debug",
            "/sys/firmware",
            "/proc/scsi"
        ],
        "readonlyPaths": [
            "/proc/bus",
            "/proc/fs",
            "/proc/irq",
            "/proc/sys",
            "/proc/sysrq-trigger"
        ]
    });
    if rootless {
        linux["uidMappings"] = json!([{"containerID": 0, "hostID": host_uid, "size": 1}]);
        linux["gidMappings"] = json!([{"containerID": 0, "hostID": host_gid, "size": 1}]);
    } else {
        linux["resources"] = json!({"devices": [{"allow": false, "access": "rwm"}]});
    }

    json!({
        "ociVersion": TEMPLATE_OCI_VERSION,
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": caps,
                "effective": caps,
                "permitted": caps
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "runc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {
                "destination": "/dev",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]
            },
            {
                "destination": "/dev/pts",
                "type": "devpts",
                "source": "devpts",
                "options": devpts_options
            },
            {
                "destination": "/dev/shm",
                "type": "tmpfs",
                "source": "shm",
                "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]
            },
            {
                "destination": "/dev/mqueue",
                "type": "mqueue",
                "source": "mqueue",
                "options": ["nosuid", "noexec", "nodev"]
            },
            sys_mount,
            {
                "destination": "/sys/fs/cgroup",
                "type": "cgroup",
                "source": "cgroup",
                "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]
            }
        ],
        "linux": linux
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../tests/fixtures/runc-spec.json");
    const FIXTURE_ROOTLESS: &str = include_str!("../tests/fixtures/runc-spec-rootless.json");

    fn fixture(text: &str) -> Value {
        serde_json::from_str(text).expect("fixture is JSON")
    }

    /// The fixtures were written by the reference runtime running as root, so their id
    /// mappings point at host id 0; the template maps to the caller's effective ids.
    fn rootless_fixture_for_caller() -> Value {
        let mut expected = fixture(FIXTURE_ROOTLESS);
        expected["linux"]["uidMappings"][0]["hostID"] = json!(nix::unistd::geteuid().as_raw());
        expected["linux"]["gidMappings"][0]["hostID"] = json!(nix::unistd::getegid().as_raw());
        expected
    }

    /// `Spec` stores capabilities in hash sets: sort those lists before comparing.
    fn sort_capabilities(mut value: Value) -> Value {
        if let Some(caps) = value["process"]["capabilities"].as_object_mut() {
            for list in caps.values_mut() {
                if let Some(items) = list.as_array_mut() {
                    items.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
                }
            }
        }
        value
    }

    #[test]
    fn template_json_matches_reference_output() {
        assert_eq!(
            default_spec_json(SpecOptions { rootless: false }),
            fixture(FIXTURE)
        );
        assert_eq!(
            default_spec_json(SpecOptions { rootless: true }),
            rootless_fixture_for_caller()
        );
    }

    #[test]
    fn template_spec_matches_reference_output() {
        let ours = serde_json::to_value(default_spec(SpecOptions { rootless: false })).unwrap();
        assert_eq!(sort_capabilities(ours), sort_capabilities(fixture(FIXTURE)));
    }

    #[test]
    fn template_spec_rootless_matches_reference_output() {
        let ours = serde_json::to_value(default_spec(SpecOptions { rootless: true })).unwrap();
        assert_eq!(
            sort_capabilities(ours),
            sort_capabilities(rootless_fixture_for_caller())
        );
    }

    #[test]
    fn template_rootless_maps_given_host_ids() {
        let value = default_spec_value(true, 1000, 1001);
        assert_eq!(value["linux"]["uidMappings"][0]["hostID"], json!(1000));
        assert_eq!(value["linux"]["gidMappings"][0]["hostID"], json!(1001));
        // The raw template for root must equal the fixture exactly (it was generated as root).
        assert_eq!(default_spec_value(true, 0, 0), fixture(FIXTURE_ROOTLESS));
        assert_eq!(default_spec_value(false, 0, 0), fixture(FIXTURE));
    }

    #[test]
    fn template_oci_version_is_the_reference_value() {
        let spec = default_spec(SpecOptions { rootless: false });
        assert_eq!(spec.version(), TEMPLATE_OCI_VERSION);
        assert_eq!(fixture(FIXTURE)["ociVersion"], json!(TEMPLATE_OCI_VERSION));
    }
}
