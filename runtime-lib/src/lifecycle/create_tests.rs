//! create's order and its undo, checked without root: [`run`] and [`undo`] against a double
//! that plays the child's messages from a script and records each step.

use std::collections::VecDeque;

use super::*;
use crate::lifecycle::test_plan::plan;

const STAGE: i32 = 10;
const INIT: i32 = 20;

#[derive(Default)]
struct Recorder {
    /// What the child sends, in order; an empty script is a closed channel.
    script: VecDeque<Msg<'static>>,
    steps: Vec<String>,
    fail_at: Option<String>,
}

impl Recorder {
    fn new(script: impl IntoIterator<Item = Msg<'static>>) -> Recorder {
        Recorder {
            script: script.into_iter().collect(),
            ..Recorder::default()
        }
    }

    fn step(&mut self, name: impl Into<String>) -> Result<()> {
        let name = name.into();
        let fail = self.fail_at.as_deref() == Some(name.as_str());
        self.steps.push(name.clone());
        if fail {
            Err(crate::Error::new(
                "order",
                Step::Create,
                ProcessError::Invalid(format!("{name}: injected failure")),
            ))
        } else {
            Ok(())
        }
    }

    fn position(&self, name: &str) -> usize {
        self.steps
            .iter()
            .position(|s| s == name)
            .unwrap_or_else(|| panic!("no step {name:?} in {:?}", self.steps))
    }

    fn undone(&self) -> Vec<&str> {
        self.steps
            .iter()
            .filter(|s| s.starts_with("undo"))
            .map(|s| s.as_str())
            .collect()
    }
}

impl CreateSteps for Recorder {
    fn make_state_dir(&mut self) -> Result<()> {
        self.step("make_state_dir")
    }
    fn fork_stage(&mut self) -> Result<i32> {
        self.step("fork_stage").map(|()| STAGE)
    }
    fn send(&mut self, msg: Msg<'static>, _fd: Option<OwnedFd>) -> Result<()> {
        let name = match msg {
            Msg::State(_) => "send State".to_string(),
            other => format!("send {other:?}"),
        };
        self.step(name)
    }
    fn recv(&mut self) -> Result<(Msg<'static>, Option<OwnedFd>)> {
        match self.script.pop_front() {
            Some(m) => self.step(format!("recv {m:?}")).map(|()| (m, None)),
            None => self.step("recv closed").and_then(|()| {
                Err(crate::Error::new(
                    "order",
                    Step::Create,
                    ProcessError::Init("exited during setup".into()),
                ))
            }),
        }
    }
    fn make_cgroup(&mut self) -> Result<()> {
        self.step("make_cgroup")
    }
    fn write_id_maps(&mut self, stage: i32) -> Result<()> {
        self.step(format!("write_id_maps {stage}"))
    }
    fn init_started(&mut self, init: i32, stage: i32) -> Result<()> {
        self.step(format!("init_started {init} {stage}"))
    }
    fn enter_cgroup(&mut self, init: i32) -> Result<()> {
        self.step(format!("enter_cgroup {init}"))
    }
    fn move_net_devices(&mut self, init: i32) -> Result<()> {
        self.step(format!("move_net_devices {init}"))
    }
    fn states(&mut self) -> Vec<Msg<'static>> {
        vec![Msg::State(b"{}".as_slice().into())]
    }
    fn run_hooks(&mut self, point: HookPoint) -> Result<()> {
        self.step(format!("hooks {}", point.name()))
    }
    fn mount_source(&mut self, n: u32, idmapped: bool, _fd: Option<OwnedFd>) -> Result<OwnedFd> {
        self.step(format!("mount_source {n} {idmapped}"))?;
        Ok(std::fs::File::open("/dev/null").unwrap().into())
    }
    fn send_pidfd(&mut self) -> Result<()> {
        self.step("send_pidfd")
    }
    fn save_state(&mut self) -> Result<()> {
        self.step("save_state")
    }
    fn write_pid_file(&mut self) -> Result<()> {
        self.step("write_pid_file")
    }
    fn undo_init(&mut self, pid: i32) {
        self.steps.push(format!("undo_init {pid}"));
    }
    fn undo_stage(&mut self, pid: i32) {
        self.steps.push(format!("undo_stage {pid}"));
    }
    fn undo_cgroup_members(&mut self) {
        self.steps.push("undo_cgroup_members".into());
    }
    fn undo_net_devices(&mut self) {
        self.steps.push("undo_net_devices".into());
    }
    fn undo_host_rootfs(&mut self) {
        self.steps.push("undo_host_rootfs".into());
    }
    fn undo_cgroup(&mut self) {
        self.steps.push("undo_cgroup".into());
    }
    fn undo_state_dir(&mut self) {
        self.steps.push("undo_state_dir".into());
    }
}

/// The child's side of a create with a new user namespace, a pid namespace (the stage forks
/// the init), the runtime's hooks and a mount source to open.
fn script() -> Vec<Msg<'static>> {
    vec![
        Msg::NeedMaps,
        Msg::Pid(INIT),
        Msg::NeedMountSource(2),
        Msg::RunHooks,
        Msg::Ready,
    ]
}

/// `run`, then `undo` if it failed, as `create` does.
fn create_with(r: &mut Recorder, plan: &InitPlan) -> Result<()> {
    let mut begun = Begun::default();
    let result = run(r, plan, &mut begun);
    if result.is_err() {
        undo(r, &begun);
    }
    result
}

#[test]
fn the_order_of_create() {
    let plan = plan(serde_json::json!({}));
    let mut r = Recorder::new(script());
    create_with(&mut r, &plan).unwrap();
    let order = [
        "make_state_dir",
        "fork_stage",
        "send Go",
        "make_cgroup",
        "recv NeedMaps",
        "write_id_maps 10",
        "send MapsDone",
        "recv Pid(20)",
        "init_started 20 10",
        "send_pidfd",
        "enter_cgroup 20",
        "send State",
        "recv NeedMountSource(2)",
        "mount_source 2 false",
        "send MountSource",
        "recv RunHooks",
        "hooks prestart",
        "hooks createRuntime",
        "send HooksDone",
        "recv Ready",
        "save_state",
        "write_pid_file",
    ];
    assert_eq!(r.steps, order);
}

#[test]
fn network_devices_move_in_before_the_init_learns_the_state() {
    let mut plan = plan(serde_json::json!({}));
    plan.net_devices = Some(crate::netdev::NetDevPlan::default());
    let mut r = Recorder::new(script());
    create_with(&mut r, &plan).unwrap();
    assert!(r.position("enter_cgroup 20") < r.position("move_net_devices 20"));
    assert!(r.position("move_net_devices 20") < r.position("send State"));
}

#[test]
fn every_failure_undoes_what_was_begun_newest_first() {
    let plan = plan(serde_json::json!({}));
    let mut full = Recorder::new(script());
    create_with(&mut full, &plan).unwrap();
    for (k, failing) in full.steps.iter().enumerate() {
        let mut r = Recorder::new(script());
        r.fail_at = Some(failing.clone());
        let e = create_with(&mut r, &plan).unwrap_err();
        assert!(e.to_string().contains("injected failure"), "{e}");
        // Nothing after the failing step.
        assert_eq!(r.steps[..=k], full.steps[..=k], "failing at {failing}");
        // A step counts as done once it returned; the cgroup is begun before it is made (its
        // undo must cover a half-made one).
        let done = |name: &str| full.steps[..k].iter().any(|s| s == name);
        let mut want = Vec::new();
        if done("recv Pid(20)") {
            // The stage forked the init (a pid namespace) and was reaped.
            want.push("undo_init 20");
        } else if done("fork_stage") {
            want.push("undo_stage 10");
        }
        if done("make_cgroup") || failing == "make_cgroup" {
            want.push("undo_cgroup_members");
            want.push("undo_cgroup");
        }
        want.push("undo_state_dir");
        assert_eq!(r.undone(), want, "failing at {failing}: {:?}", r.steps);
    }
}

#[test]
fn an_init_that_reports_an_error_or_dies_is_undone() {
    let plan = plan(serde_json::json!({}));
    let mut r = Recorder::new([Msg::Pid(STAGE), Msg::Error("rootfs: no".into())]);
    let e = create_with(&mut r, &plan).unwrap_err();
    assert!(e.to_string().contains("rootfs: no"), "{e}");
    // No pid namespace fork: the init is the stage.
    assert_eq!(
        r.undone(),
        [
            "undo_init 10",
            "undo_cgroup_members",
            "undo_cgroup",
            "undo_state_dir"
        ]
    );

    let mut r = Recorder::new([Msg::NeedMaps]);
    let e = create_with(&mut r, &plan).unwrap_err();
    assert!(e.to_string().contains("exited during setup"), "{e}");
    assert_eq!(
        r.undone(),
        [
            "undo_stage 10",
            "undo_cgroup_members",
            "undo_cgroup",
            "undo_state_dir"
        ]
    );
}

#[test]
fn a_rootfs_in_the_hosts_mount_namespace_is_detached_on_failure() {
    let mut plan = plan(serde_json::json!({}));
    plan.rootfs.host_mount_ns = true;
    let mut r = Recorder::new([Msg::Error("x".into())]);
    assert!(create_with(&mut r, &plan).is_err());
    assert!(r.undone().contains(&"undo_host_rootfs"), "{:?}", r.steps);
}
