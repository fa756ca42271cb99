//! A plan for the unit tests of the lifecycle's order (no side effects: nothing is mounted).

use crate::bundle::Bundle;
use crate::plan::{CreateOptions, InitPlan};

/// The plan of a config with a tmpfs, a cgroup mount between two others, every hook, a
/// terminal and a hostname, in a scratch bundle (nothing is mounted: the plan has no side
/// effects).
pub(super) fn plan(extra: serde_json::Value) -> InitPlan {
    let dir = std::env::temp_dir().join(format!(
        "casulo-init-order-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(dir.join("rootfs")).unwrap();
    let hook = serde_json::json!([{"path": "/bin/true"}]);
    let mut config = serde_json::json!({
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs"},
        "hostname": "h",
        "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup"},
            {"destination": "/run", "type": "tmpfs", "source": "tmpfs"}
        ],
        "hooks": {
            "prestart": hook, "createRuntime": hook, "createContainer": hook,
            "startContainer": hook, "poststart": hook, "poststop": hook
        },
        "linux": {"namespaces": [
            {"type": "mount"}, {"type": "pid"}, {"type": "uts"}, {"type": "cgroup"}
        ]}
    });
    if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    let spec = serde_json::from_value(config).unwrap();
    let plan = Bundle::from_spec(dir.clone(), spec)
        .map_err(crate::error::Cause::from)
        .and_then(|b| InitPlan::build("order", &b, &CreateOptions::default(), None));
    let _ = std::fs::remove_dir_all(&dir);
    plan.unwrap()
}
