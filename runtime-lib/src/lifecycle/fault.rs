//! Fault injection for the tests of a runtime killed in the middle of create (debug builds
//! only: release builds have none of this). With `CASULO_TEST_KILL_AT_STEP=N` in the
//! environment, the runtime SIGKILLs itself as step N (from 0) of create begins, counting every
//! call of [`CreateSteps`] but the undo ones, as an engine's timeout would kill it. Nothing is
//! undone: what is left is what a real kill leaves, for `delete --force` to clean up.

use std::os::fd::OwnedFd;

use super::create::CreateSteps;
use super::protocol::Msg;
use crate::error::Result;
use crate::hooks::HookPoint;

/// The variable that names the step.
pub(super) const KILL_AT_STEP: &str = "CASULO_TEST_KILL_AT_STEP";

/// `inner`'s steps, with a SIGKILL of the runtime as step `kill_at` begins.
pub(super) struct Faulty<S> {
    pub inner: S,
    pub kill_at: usize,
    pub step: usize,
}

impl<S> Faulty<S> {
    /// The step to kill at, from the environment.
    pub(super) fn from_env() -> Option<usize> {
        std::env::var(KILL_AT_STEP).ok()?.parse().ok()
    }

    fn tick(&mut self) {
        if self.step == self.kill_at {
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        }
        self.step += 1;
    }
}

impl<S: CreateSteps> CreateSteps for Faulty<S> {
    fn make_state_dir(&mut self) -> Result<()> {
        self.tick();
        self.inner.make_state_dir()
    }
    fn fork_stage(&mut self) -> Result<i32> {
        self.tick();
        self.inner.fork_stage()
    }
    fn send(&mut self, msg: Msg<'static>, fd: Option<OwnedFd>) -> Result<()> {
        self.tick();
        self.inner.send(msg, fd)
    }
    fn recv(&mut self) -> Result<(Msg<'static>, Option<OwnedFd>)> {
        self.tick();
        self.inner.recv()
    }
    fn make_cgroup(&mut self) -> Result<()> {
        self.tick();
        self.inner.make_cgroup()
    }
    fn write_id_maps(&mut self, stage: i32) -> Result<()> {
        self.tick();
        self.inner.write_id_maps(stage)
    }
    fn init_started(&mut self, init: i32, stage: i32) -> Result<()> {
        self.tick();
        self.inner.init_started(init, stage)
    }
    fn enter_cgroup(&mut self, init: i32) -> Result<()> {
        self.tick();
        self.inner.enter_cgroup(init)
    }
    fn move_net_devices(&mut self, init: i32) -> Result<()> {
        self.tick();
        self.inner.move_net_devices(init)
    }
    fn states(&mut self) -> Vec<Msg<'static>> {
        self.tick();
        self.inner.states()
    }
    fn run_hooks(&mut self, point: HookPoint) -> Result<()> {
        self.tick();
        self.inner.run_hooks(point)
    }
    fn mount_source(&mut self, n: u32, idmapped: bool, fd: Option<OwnedFd>) -> Result<OwnedFd> {
        self.tick();
        self.inner.mount_source(n, idmapped, fd)
    }
    fn send_pidfd(&mut self) -> Result<()> {
        self.tick();
        self.inner.send_pidfd()
    }
    fn save_state(&mut self) -> Result<()> {
        self.tick();
        self.inner.save_state()
    }
    fn write_pid_file(&mut self) -> Result<()> {
        self.tick();
        self.inner.write_pid_file()
    }
    fn undo_init(&mut self, pid: i32) {
        self.inner.undo_init(pid)
    }
    fn undo_stage(&mut self, pid: i32) {
        self.inner.undo_stage(pid)
    }
    fn undo_cgroup_members(&mut self) {
        self.inner.undo_cgroup_members()
    }
    fn undo_net_devices(&mut self) {
        self.inner.undo_net_devices()
    }
    fn undo_host_rootfs(&mut self) {
        self.inner.undo_host_rootfs()
    }
    fn undo_cgroup(&mut self) {
        self.inner.undo_cgroup()
    }
    fn undo_state_dir(&mut self) {
        self.inner.undo_state_dir()
    }
}
