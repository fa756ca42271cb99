//! OOM notifications from a container's memory cgroup.
//!
//! * cgroup v1: an eventfd registered on `memory.oom_control` through
//!   `cgroup.event_control`; the kernel signals it at each OOM of the cgroup (and once more
//!   when the cgroup is removed, which is told apart by `cgroup.event_control` being gone).
//! * cgroup v2: an inotify watch (`IN_MODIFY`) on `memory.events`; an OOM is a rise of its
//!   `oom_kill` counter (`oom` on kernels without it) since the last look.
//!
//! The watcher exposes a pollable fd ([`OomWatcher::as_fd`]) so that a caller can wait for
//! OOMs, a timer and other fds at once, then call [`OomWatcher::check`].

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use super::stats::parse_keyed;
use super::CgroupError;

/// What a look at the watcher found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OomNotice {
    /// Whether one or more OOM kills happened since the last look (notifications that
    /// arrive together count once, as the kernel coalesces them).
    pub oom: bool,
    /// The cgroup no longer exists: no further notification can come.
    pub gone: bool,
}

enum Kind {
    V1 {
        efd: EventFd,
        /// Kept open for as long as the registration lives.
        _oom_control: File,
        event_control: PathBuf,
    },
    V2 {
        inotify: Inotify,
        events: PathBuf,
        last: u64,
    },
}

/// A registration for the OOM notifications of one memory cgroup.
pub struct OomWatcher {
    kind: Kind,
}

impl std::fmt::Debug for OomWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::V1 { event_control, .. } => write!(f, "OomWatcher(v1 {event_control:?})"),
            Kind::V2 { events, last, .. } => write!(f, "OomWatcher(v2 {events:?}, {last})"),
        }
    }
}

fn sys_err(step: &'static str, path: &Path, e: Errno) -> CgroupError {
    CgroupError::Io {
        step,
        path: path.to_path_buf(),
        source: std::io::Error::from(e),
    }
}

/// The OOM count of a v2 `memory.events`: `oom_kill`, or `oom` on kernels without it.
fn oom_count(memory_events: &str) -> Option<u64> {
    let kv = parse_keyed(memory_events);
    kv.get("oom_kill").or_else(|| kv.get("oom")).copied()
}

impl OomWatcher {
    /// Register for the OOMs of the cgroup whose directories are `dirs`: the v1 memory
    /// hierarchy if there is one, else the cgroup2 directory with the memory controller.
    /// None when the cgroup has no memory controller.
    pub fn new(dirs: &[PathBuf]) -> Result<Option<OomWatcher>, CgroupError> {
        if let Some(d) = dirs.iter().find(|d| {
            d.join("memory.oom_control").exists() && d.join("cgroup.event_control").exists()
        }) {
            return Self::v1(d).map(Some);
        }
        if let Some(d) = dirs.iter().find(|d| d.join("memory.events").exists()) {
            return Self::v2(d).map(Some);
        }
        Ok(None)
    }

    fn v1(dir: &Path) -> Result<OomWatcher, CgroupError> {
        let oom_path = dir.join("memory.oom_control");
        let event_control = dir.join("cgroup.event_control");
        let oom_control = File::open(&oom_path).map_err(|source| CgroupError::Io {
            step: "open",
            path: oom_path.clone(),
            source,
        })?;
        let efd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
            .map_err(|e| sys_err("eventfd for", &oom_path, e))?;
        let line = format!("{} {}", efd.as_raw_fd(), oom_control.as_raw_fd());
        std::fs::OpenOptions::new()
            .write(true)
            .open(&event_control)
            .and_then(|mut f| f.write_all(line.as_bytes()))
            .map_err(|source| CgroupError::Io {
                step: "register with",
                path: event_control.clone(),
                source,
            })?;
        Ok(OomWatcher {
            kind: Kind::V1 {
                efd,
                _oom_control: oom_control,
                event_control,
            },
        })
    }

    fn v2(dir: &Path) -> Result<OomWatcher, CgroupError> {
        let events = dir.join("memory.events");
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
            .map_err(|e| sys_err("inotify for", &events, e))?;
        inotify
            .add_watch(&events, AddWatchFlags::IN_MODIFY)
            .map_err(|e| sys_err("watch", &events, e))?;
        // Start from the current count: only OOMs from now on are reported.
        let last = read_count(&events)?.unwrap_or(0);
        Ok(OomWatcher {
            kind: Kind::V2 {
                inotify,
                events,
                last,
            },
        })
    }

    /// Look for OOMs since the last call, without blocking.
    pub fn check(&mut self) -> Result<OomNotice, CgroupError> {
        match &mut self.kind {
            Kind::V1 {
                efd, event_control, ..
            } => match efd.read() {
                Ok(_) => {
                    // Removing the cgroup also signals the eventfd.
                    if event_control.exists() {
                        Ok(OomNotice {
                            oom: true,
                            gone: false,
                        })
                    } else {
                        Ok(OomNotice {
                            oom: false,
                            gone: true,
                        })
                    }
                }
                Err(Errno::EAGAIN) => Ok(OomNotice {
                    oom: false,
                    gone: !event_control.exists(),
                }),
                Err(e) => Err(sys_err("read the OOM eventfd of", event_control, e)),
            },
            Kind::V2 {
                inotify,
                events,
                last,
            } => {
                // Drain the queue; the counter itself says what happened.
                loop {
                    match inotify.read_events() {
                        Ok(evs) if !evs.is_empty() => continue,
                        Ok(_) | Err(Errno::EAGAIN) => break,
                        Err(e) => return Err(sys_err("read inotify events of", events, e)),
                    }
                }
                match read_count(events)? {
                    None => Ok(OomNotice {
                        oom: false,
                        gone: true,
                    }),
                    Some(n) => {
                        let oom = n > *last;
                        *last = n;
                        Ok(OomNotice { oom, gone: false })
                    }
                }
            }
        }
    }
}

impl AsFd for OomWatcher {
    /// Readable when [`OomWatcher::check`] may have something to report.
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.kind {
            Kind::V1 { efd, .. } => efd.as_fd(),
            Kind::V2 { inotify, .. } => inotify.as_fd(),
        }
    }
}

/// The OOM count in a v2 `memory.events`; None when the file is gone (cgroup removed).
fn read_count(events: &Path) -> Result<Option<u64>, CgroupError> {
    Ok(super::stats::read_path_opt(events)?.map(|t| oom_count(&t).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

    #[test]
    fn oom_count_prefers_oom_kill() {
        assert_eq!(
            oom_count("low 0\nhigh 3\nmax 9\noom 4\noom_kill 2\n"),
            Some(2)
        );
        assert_eq!(oom_count("low 0\nhigh 0\nmax 1\noom 1\n"), Some(1));
        assert_eq!(oom_count("low 0\n"), None);
    }

    #[test]
    fn oom_no_memory_controller_is_none() {
        let d = std::env::temp_dir().join(format!("casulo-oom-none-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        assert!(OomWatcher::new(std::slice::from_ref(&d)).unwrap().is_none());
        std::fs::remove_dir_all(d).unwrap();
    }

    /// The v2 mechanism on a plain file: inotify wakes the poll, the counter decides.
    #[test]
    fn oom_v2_counter_rises() {
        let d = std::env::temp_dir().join(format!("casulo-oom-v2-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let ev = d.join("memory.events");
        std::fs::write(&ev, "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n").unwrap();
        let mut w = OomWatcher::new(std::slice::from_ref(&d)).unwrap().unwrap();
        assert_eq!(
            w.check().unwrap(),
            OomNotice::default(),
            "earlier OOMs are not news"
        );

        // A change that is not an OOM wakes the watcher but reports nothing.
        std::fs::write(&ev, "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\n").unwrap();
        let mut fds = [PollFd::new(w.as_fd(), PollFlags::POLLIN)];
        assert_eq!(poll(&mut fds, PollTimeout::from(1000u16)).unwrap(), 1);
        assert_eq!(w.check().unwrap(), OomNotice::default());

        std::fs::write(&ev, "low 0\nhigh 0\nmax 6\noom 3\noom_kill 3\n").unwrap();
        let mut fds = [PollFd::new(w.as_fd(), PollFlags::POLLIN)];
        assert_eq!(poll(&mut fds, PollTimeout::from(1000u16)).unwrap(), 1);
        assert_eq!(
            w.check().unwrap(),
            OomNotice {
                oom: true,
                gone: false
            }
        );
        let mut fds = [PollFd::new(w.as_fd(), PollFlags::POLLIN)];
        assert_eq!(
            poll(&mut fds, PollTimeout::ZERO).unwrap(),
            0,
            "queue drained"
        );

        std::fs::remove_dir_all(&d).unwrap();
        assert!(w.check().unwrap().gone);
    }
}
