//! `events`: a container's resource usage and OOM notifications, in runc's event format.
//!
//! [`Container::stats`] reads the cgroup once; [`Container::events`] reports a stats event
//! every interval and an OOM event as soon as the kernel reports one, until the container
//! stops or the caller has had enough. The state lock is held only while the container is
//! looked up, never while waiting, so other commands (`kill`, `delete`) go on meanwhile.

use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use serde::{Deserialize, Serialize};

use crate::cgroups::{stats, OomWatcher, Stats};
use crate::container::{invalid_state, Container};
use crate::error::{Context, Error, Result, Step};
use crate::state::Status;

/// The kind of an [`Event`].
///
/// ```
/// use casulo::{Event, EventKind};
///
/// assert_eq!(Event::oom("web").kind, EventKind::Oom);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// Resource usage, in `data`.
    Stats,
    /// The kernel's OOM killer acted in the container's memory cgroup.
    Oom,
}

/// One event of [`Container::events`], serialized as runc does:
/// `{"type":"stats","id":ID,"data":{...}}` or `{"type":"oom","id":ID}`.
///
/// ```
/// use casulo::{Event, EventKind, Stats};
///
/// let line = serde_json::to_string(&Event::oom("web")).unwrap();
/// assert_eq!(line, r#"{"type":"oom","id":"web"}"#);
/// let ev = Event::stats("web", Stats::default());
/// assert_eq!((ev.kind, ev.data.is_some()), (EventKind::Stats, true));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// The container's id.
    pub id: String,
    /// The resource usage, for a stats event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Stats>,
}

impl Event {
    /// A stats event of container `id`.
    pub fn stats(id: &str, stats: Stats) -> Event {
        Event {
            kind: EventKind::Stats,
            id: id.to_string(),
            data: Some(stats),
        }
    }

    /// An OOM event of container `id`.
    pub fn oom(id: &str) -> Event {
        Event {
            kind: EventKind::Oom,
            id: id.to_string(),
            data: None,
        }
    }
}

/// The poll timeout until `deadline`, rounded up to a whole millisecond so that the wake-up
/// is never early.
fn timeout_until(deadline: Instant, now: Instant) -> PollTimeout {
    let left = deadline.saturating_duration_since(now);
    let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
}

impl Container {
    /// The cgroup directories of a container that is created, running or paused; none for a
    /// rootless container without a cgroup.
    fn live_cgroup_dirs(&self, step: Step) -> Result<Vec<PathBuf>> {
        let id = self.id();
        let dir = self.lock(step)?;
        let status = dir.status(&self.saved);
        if matches!(status, Status::Stopped | Status::Creating) {
            return Err(invalid_state(
                id,
                step,
                format!("cannot report events of a container that is {status}"),
            ));
        }
        // The directories recorded at create, when there are: no manager is needed to read
        // them.
        if self.saved.cgroup.is_some() && !self.saved.cgroup_paths.is_empty() {
            return Ok(self.saved.cgroup_paths.clone());
        }
        match self.cgroup().ctx(id, step)? {
            Some(cg) => Ok(cg.paths()),
            // A rootless container without a cgroup: nothing to read, and its stats are
            // empty, as runc reports them (rather than an error that stats clients such as
            // podman's would pass on).
            None => {
                tracing::debug!(container = id, "no cgroup: the stats are empty");
                Ok(Vec::new())
            }
        }
    }

    /// The container's resource usage now (runc's `events --stats`). Fails if the container
    /// is stopped.
    ///
    /// ```no_run
    /// let stats = casulo::Container::load("/run/casulo", "web")?.stats()?;
    /// println!("{} processes, {} ns of CPU", stats.pids.current, stats.cpu.usage.total);
    /// # Ok::<(), casulo::Error>(())
    /// ```
    pub fn stats(&self) -> Result<Stats> {
        let step = Step::Events;
        let dirs = self.live_cgroup_dirs(step)?;
        stats::read(&dirs).ctx(self.id(), step)
    }

    /// Report the container's events to `on_event`: a stats event every `interval` (the
    /// first one after one interval, as runc does) and an OOM event whenever the OOM killer
    /// acts in its memory cgroup. Returns when the container stops (after reporting any OOM
    /// that stopped it), when its cgroup is removed, or as soon as `on_event` returns false.
    ///
    /// A stats read that fails midway (the container is exiting) is logged and skipped, as
    /// runc does. Fails at once if the container is stopped or `interval` is zero.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use casulo::EventKind;
    ///
    /// let c = casulo::Container::load("/run/casulo", "web")?;
    /// // Stop at the first OOM kill.
    /// c.events(Duration::from_secs(1), |ev| ev.kind != EventKind::Oom)?;
    /// # Ok::<(), casulo::Error>(())
    /// ```
    pub fn events(
        &self,
        interval: Duration,
        mut on_event: impl FnMut(&Event) -> bool,
    ) -> Result<()> {
        let id = self.id();
        let step = Step::Events;
        if interval.is_zero() {
            return Err(invalid_state(
                id,
                step,
                "the interval must be greater than 0".into(),
            ));
        }
        let dirs = self.live_cgroup_dirs(step)?;
        let pidfd = self.init_pidfd(step, "cannot report events of a container that is stopped")?;
        let mut oom = OomWatcher::new(&dirs).ctx(id, step)?;
        if oom.is_none() {
            tracing::debug!(
                container = id,
                "no memory cgroup: OOM events are not reported"
            );
        }
        let mut next = Instant::now() + interval;
        loop {
            let now = Instant::now();
            if now >= next {
                match stats::read(&dirs) {
                    Ok(s) => {
                        if !on_event(&Event::stats(id, s)) {
                            return Ok(());
                        }
                    }
                    Err(e) => tracing::warn!("{}", Error::new(id, step, e)),
                }
                // Like a ticker: a slow consumer skips ticks instead of bunching them.
                next += interval;
                if next <= now {
                    next = now + interval;
                }
                continue;
            }
            let (exited, oom_ready) = {
                let mut fds = vec![PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
                if let Some(w) = &oom {
                    fds.push(PollFd::new(w.as_fd(), PollFlags::POLLIN));
                }
                match poll(&mut fds, timeout_until(next, now)) {
                    Ok(_) => {}
                    Err(nix::Error::EINTR) => continue,
                    Err(e) => return Err(Error::new(id, step, crate::process::sys("poll")(e))),
                }
                let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
                (ready(&fds[0]), fds.get(1).is_some_and(ready))
            };
            // When the init has exited, look once more: the OOM that killed it comes first.
            if oom_ready || exited {
                if let Some(w) = &mut oom {
                    let notice = w.check().ctx(id, step)?;
                    if notice.oom && !on_event(&Event::oom(id)) {
                        return Ok(());
                    }
                    if notice.gone {
                        return Ok(());
                    }
                }
            }
            if exited {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_json_like_runc() {
        let oom = serde_json::to_string(&Event::oom("web")).unwrap();
        assert_eq!(oom, r#"{"type":"oom","id":"web"}"#);
        let st = serde_json::to_value(Event::stats("web", Stats::default())).unwrap();
        assert_eq!(st["type"], "stats");
        assert_eq!(st["id"], "web");
        assert!(st["data"]["memory"]["usage"].is_object());
        let back: Event = serde_json::from_str(&oom).unwrap();
        assert_eq!(back, Event::oom("web"));
    }

    #[test]
    fn events_timeout_rounds_up() {
        let now = Instant::now();
        let t = |d: Duration| i32::from(timeout_until(now + d, now));
        assert_eq!(t(Duration::from_micros(1)), 1);
        assert_eq!(t(Duration::from_millis(5)), 5);
        assert_eq!(t(Duration::ZERO), 0);
        assert_eq!(
            i32::from(timeout_until(now, now + Duration::from_secs(1))),
            0
        );
    }
}
