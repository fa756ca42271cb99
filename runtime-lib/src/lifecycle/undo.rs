//! The undo guard of create: what a half-made container leaves, reverted in reverse order
//! unless create succeeds.

use std::os::fd::{AsFd, OwnedFd};

use nix::sys::signal::Signal;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use super::pidfd::kill_and_wait;
use crate::cgroups::CgroupManager;
use crate::state::StateDir;

/// What to undo if create fails half-way: network devices moved in, processes, the cgroup,
/// the state dir.
pub(super) struct Undo {
    /// The container's network namespace (held open: it outlives the container's processes
    /// while this lives) and the devices moved into it.
    pub net: Option<(OwnedFd, Vec<crate::netdev::Moved>)>,
    /// A rootfs whose bind mount lives in the host's mount namespace.
    pub host_rootfs: Option<std::path::PathBuf>,
    pub dir: Option<StateDir>,
    pub stage: Option<i32>,
    pub init: Option<i32>,
    pub cgroup: Option<Box<dyn CgroupManager>>,
}

impl Undo {
    pub fn disarm(mut self) {
        self.net = None;
        self.host_rootfs = None;
        self.dir = None;
        self.cgroup = None;
        self.stage = None;
        self.init = None;
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        if let Some(pid) = self.init.take() {
            kill_and_wait(pid, self.stage != Some(pid));
        }
        if let Some(pid) = self.stage.take() {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(pid), None);
        }
        // Every other process of the container, before its devices go back to the host and
        // its cgroup is removed.
        if let Some(cg) = &self.cgroup {
            for p in cg.pids().unwrap_or_default() {
                let _ = nix::sys::signal::kill(Pid::from_raw(p), Signal::SIGKILL);
            }
        }
        if let Some((netns, moved)) = self.net.take() {
            // Nothing of the container can touch the devices now; the namespace lives on
            // through our fd.
            for e in crate::netdev::move_back(&moved, netns.as_fd()) {
                tracing::warn!("cleanup: {e}");
            }
        }
        if let Some(rootfs) = self.host_rootfs.take() {
            if let Err(e) = crate::rootfs::detach_host_mounts(&rootfs) {
                tracing::warn!("cleanup: {e}");
            }
        }
        if let Some(mut cg) = self.cgroup.take() {
            if let Err(e) = cg.destroy() {
                tracing::warn!("cleanup: {e}");
            }
        }
        if let Some(dir) = self.dir.take() {
            if let Err(e) = dir.remove() {
                tracing::warn!("cleanup: {e}");
            }
        }
    }
}
