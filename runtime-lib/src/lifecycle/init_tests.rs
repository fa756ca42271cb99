//! The init's order, checked without root: [`build`] and [`after_start`] run against a double
//! that records each step (and the mount it makes) instead of making it.

use super::super::test_plan::plan;
use super::*;

/// Records the steps; fails the one named in `fail_at`.
#[derive(Default)]
struct Recorder<'p> {
    plan: Option<&'p InitPlan>,
    steps: Vec<String>,
    fail_at: Option<&'static str>,
}

impl Recorder<'_> {
    fn step(&mut self, name: impl Into<String>) -> Result<(), ChildError> {
        let name = name.into();
        let fail = self.fail_at.is_some_and(|f| name.starts_with(f));
        self.steps.push(name.clone());
        if fail {
            Err(child_err!("{name}: injected failure"))
        } else {
            Ok(())
        }
    }

    fn position(&self, prefix: &str) -> usize {
        self.steps
            .iter()
            .position(|s| s.starts_with(prefix))
            .unwrap_or_else(|| panic!("no step {prefix:?} in {:?}", self.steps))
    }
}

impl InitSteps for Recorder<'_> {
    fn bind_root(&mut self) -> Result<(), ChildError> {
        self.step("bind_root")
    }
    fn mount(&mut self, n: usize) -> Result<(), ChildError> {
        let m = &self.plan.expect("plan").rootfs.mounts[n];
        let name = format!("mount {} {}", m.fstype, m.destination.display());
        self.step(name)
    }
    fn wait_in_cgroup(&mut self) -> Result<(), ChildError> {
        self.step("wait_in_cgroup")
    }
    fn unshare_cgroup(&mut self) -> Result<(), ChildError> {
        self.step("unshare_cgroup")
    }
    fn make_devices(&mut self) -> Result<(), ChildError> {
        self.step("make_devices")
    }
    fn runtime_hooks(&mut self) -> Result<(), ChildError> {
        self.step("runtime_hooks")
    }
    fn run_hooks(&mut self, point: HookPoint) -> Result<(), ChildError> {
        self.step(format!("hooks {}", point.name()))
    }
    fn set_kernel_settings(&mut self) -> Result<(), ChildError> {
        self.step("set_kernel_settings")
    }
    fn pivot_root(&mut self) -> Result<(), ChildError> {
        self.step("pivot_root")
    }
    fn terminal(&mut self) -> Result<(), ChildError> {
        self.step("terminal")
    }
    fn finalize_rootfs(&mut self) -> Result<(), ChildError> {
        self.step("finalize_rootfs")
    }
    fn join_keyring(&mut self) -> Result<(), ChildError> {
        self.step("join_keyring")
    }
    fn process_setup(&mut self) -> Result<(), ChildError> {
        self.step("process_setup")
    }
    fn ready(&mut self) -> Result<(), ChildError> {
        self.step("ready")
    }
    fn wait_for_start(&mut self) -> Result<(), ChildError> {
        self.step("wait_for_start")
    }
    fn late_seccomp(&mut self) -> Result<(), ChildError> {
        self.step("late_seccomp")
    }
    fn exec(&mut self) -> Result<(), ChildError> {
        self.step("exec")
    }
}

fn run<'p>(
    plan: &'p InitPlan,
    fail_at: Option<&'static str>,
) -> (Recorder<'p>, Result<(), ChildError>) {
    let mut r = Recorder {
        plan: Some(plan),
        fail_at,
        ..Recorder::default()
    };
    let result = build(&mut r, plan).and_then(|()| after_start(&mut r, plan));
    (r, result)
}

#[test]
fn cgroup_mounts_and_device_nodes_wait_for_the_cgroup() {
    let plan = plan(serde_json::json!({}));
    let (r, result) = run(&plan, None);
    result.unwrap();
    let in_cgroup = r.position("wait_in_cgroup");
    // The mounts before the cgroup one overlap the runtime's cgroup work.
    assert!(r.position("mount proc /proc") < in_cgroup);
    assert!(r.position("mount tmpfs /tmp") < in_cgroup);
    assert!(in_cgroup < r.position("unshare_cgroup"));
    assert!(r.position("unshare_cgroup") < r.position("mount cgroup /sys/fs/cgroup"));
    assert!(in_cgroup < r.position("make_devices"));
    // Config order is kept.
    assert!(r.position("mount cgroup") < r.position("mount tmpfs /run"));
}

#[test]
fn hooks_run_at_their_points() {
    let plan = plan(serde_json::json!({}));
    let (r, _) = run(&plan, None);
    let create_container = r.position("hooks createContainer");
    assert!(r.position("make_devices") < r.position("runtime_hooks"));
    assert!(r.position("mount tmpfs /run") < create_container);
    assert!(r.position("runtime_hooks") < create_container);
    assert!(create_container < r.position("pivot_root"));
    let start_container = r.position("hooks startContainer");
    assert!(r.position("wait_for_start") < r.position("late_seccomp"));
    assert!(r.position("late_seccomp") < start_container);
    assert!(start_container < r.position("exec"));
    // poststart and poststop are the runtime's, never the init's.
    assert!(!r
        .steps
        .iter()
        .any(|s| s.contains("poststart") || s.contains("poststop")));
}

#[test]
fn the_setup_before_ready_is_in_the_documented_order() {
    // A terminal needs a console socket in the create options: set it on the plan instead.
    let mut plan = plan(serde_json::json!({}));
    plan.process.terminal = true;
    let (r, _) = run(&plan, None);
    let order = [
        "set_kernel_settings",
        "pivot_root",
        "terminal",
        "finalize_rootfs",
        "join_keyring",
        "process_setup",
        "ready",
        "wait_for_start",
    ];
    for pair in order.windows(2) {
        assert!(
            r.position(pair[0]) < r.position(pair[1]),
            "{} before {}: {:?}",
            pair[0],
            pair[1],
            r.steps
        );
    }
}

#[test]
fn a_failing_step_is_the_last() {
    let plan = plan(serde_json::json!({}));
    for fail_at in [
        "bind_root",
        "mount tmpfs /tmp",
        "wait_in_cgroup",
        "runtime_hooks",
        "ready",
    ] {
        let (r, result) = run(&plan, Some(fail_at));
        let e = result.unwrap_err();
        assert!(e.as_str().contains("injected failure"), "{e}");
        assert!(
            r.steps.last().unwrap().starts_with(fail_at),
            "{:?}",
            r.steps
        );
    }
}

#[test]
fn no_hooks_no_hook_steps() {
    let plan = plan(serde_json::json!({"hooks": {}}));
    let (r, _) = run(&plan, None);
    assert!(!r
        .steps
        .iter()
        .any(|s| s.starts_with("hooks") || s == "runtime_hooks"));
}
