//! The `cgroup` mount inside the container. On a pure cgroup-v2 host it is a cgroup2 mount; on
//! a v1 or hybrid host it is a tmpfs holding one mount per host hierarchy, each showing only the
//! container's own subtree (a fresh cgroup mount in a new cgroup namespace, else a bind of the
//! container's directory), as runc lays it out.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use procfs::process::MountInfo;
use procfs::{FromBufRead, ProcessCGroups};

use super::mounts::MountPlan;
use super::paths::{fd_path, mkdir_all_in_root, open_in_root, parent_in_root};
use super::remount::remount_bind;
use super::RootfsError;

/// One cgroup hierarchy mounted on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// Its directory name under the cgroup root, e.g. `cpu,cpuacct` or `unified`.
    pub name: String,
    /// Its mount point on the host.
    pub mountpoint: PathBuf,
    /// `cgroup` or `cgroup2`.
    pub fstype: String,
    /// The controller options to mount it again, e.g. `cpu,cpuacct` or `name=systemd`.
    pub options: String,
}

/// The host's cgroup layout, read before the fork.
#[derive(Debug, Clone, Default)]
pub struct HostCgroups {
    /// True when /sys/fs/cgroup itself is cgroup2.
    pub unified: bool,
    pub hierarchies: Vec<Hierarchy>,
    /// Symlinks in /sys/fs/cgroup, e.g. `cpu -> cpu,cpuacct`.
    pub links: Vec<(String, PathBuf)>,
}

const ROOT: &str = "/sys/fs/cgroup";

impl HostCgroups {
    /// The layout from /proc/self/mountinfo; empty when it cannot be read.
    pub fn read() -> HostCgroups {
        let mounts = procfs::process::Process::myself()
            .and_then(|me| me.mountinfo())
            .map(|m| m.0)
            .unwrap_or_default();
        Self::parse(mounts, |name| {
            std::fs::read_link(Path::new(ROOT).join(name)).ok()
        })
    }

    fn parse(mounts: Vec<MountInfo>, link: impl Fn(&str) -> Option<PathBuf>) -> HostCgroups {
        let mut host = HostCgroups::default();
        let mut names = Vec::new();
        for m in mounts {
            let fstype = m.fs_type.as_str();
            if fstype != "cgroup" && fstype != "cgroup2" {
                continue;
            }
            // Cgroup mount points under /sys/fs/cgroup hold no characters mountinfo escapes.
            let mountpoint = m.mount_point.as_path();
            if mountpoint == Path::new(ROOT) && fstype == "cgroup2" {
                host.unified = true;
                continue;
            }
            let Some(name) = mountpoint
                .strip_prefix(ROOT)
                .ok()
                .and_then(|n| n.to_str())
                .filter(|n| !n.is_empty() && !n.contains('/'))
            else {
                continue;
            };
            // The superblock options as the kernel takes them again (procfs splits `name=x`),
            // sorted since procfs keeps them unordered.
            let mut options: Vec<String> = m
                .super_options
                .into_iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "rw" | "ro" | "release_agent" | "nsdelegate")
                })
                .map(|(k, v)| match v {
                    Some(v) => format!("{k}={v}"),
                    None => k,
                })
                .collect();
            options.sort();
            names.push(name.to_string());
            host.hierarchies.push(Hierarchy {
                name: name.to_string(),
                mountpoint: mountpoint.to_path_buf(),
                fstype: fstype.to_string(),
                options: options.join(","),
            });
        }
        // Controllers that share a hierarchy appear as symlinks (cpu -> cpu,cpuacct).
        for h in &host.hierarchies {
            if !h.name.contains(',') {
                continue;
            }
            for part in h.name.split(',') {
                if !names.iter().any(|n| n == part) {
                    if let Some(target) = link(part) {
                        host.links.push((part.to_string(), target));
                    }
                }
            }
        }
        host
    }
}

/// The container's path in each hierarchy, from the init's own /proc/self/cgroup (it is in its
/// cgroup before it mounts anything).
fn own_cgroup_paths() -> Vec<(String, String)> {
    // Read by path, not through procfs::process::Process: this runs in the init, a forked child.
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    ProcessCGroups::from_buf_read(text.as_bytes())
        .map(|c| c.0)
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c.controllers.join(","), c.pathname))
        .collect()
}

/// Mount the `cgroup` entry `m` inside `root`.
pub fn mount_cgroup(
    root: BorrowedFd<'_>,
    m: &MountPlan,
    host: &HostCgroups,
    new_cgroupns: bool,
) -> Result<(), RootfsError> {
    let dest = &m.destination;
    let flags = m.options.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    let err = |step: &'static str, dest: &Path| {
        let dest = dest.to_path_buf();
        move |source: nix::Error| RootfsError::Mount { step, dest, source }
    };
    let remount_err = |dest: &Path| {
        let dest = dest.to_path_buf();
        move |source| RootfsError::Remount { dest, source }
    };
    if host.unified {
        let target = mkdir_all_in_root(root, dest).map_err(err("create mount point", dest))?;
        if new_cgroupns {
            // In its own cgroup namespace a fresh mount shows the container's cgroup as root.
            return mount(
                Some("cgroup2"),
                fd_path(&target).as_c_str(),
                Some("cgroup2"),
                flags,
                None::<&str>,
            )
            .map_err(err("mount cgroup2", dest));
        }
        // Without one a fresh mount would show the host's whole tree: bind the container's
        // own directory instead (this also works in a user namespace, where mounting cgroup2
        // outside a cgroup namespace of its own is refused).
        let rel = own_cgroup_paths()
            .into_iter()
            .find(|(c, _)| c.is_empty())
            .map(|(_, p)| p.trim_start_matches('/').to_string())
            .unwrap_or_default();
        let source = Path::new(ROOT).join(rel);
        mount(
            Some(&source),
            fd_path(&target).as_c_str(),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(err("bind cgroup2", dest))?;
        let top = open_in_root(root, dest, OFlag::O_PATH).map_err(err("reopen", dest))?;
        return remount_bind(top.as_fd(), flags, MsFlags::empty()).map_err(remount_err(dest));
    }
    let target = mkdir_all_in_root(root, dest).map_err(err("create mount point", dest))?;
    mount(
        Some("tmpfs"),
        fd_path(&target).as_c_str(),
        Some("tmpfs"),
        flags & !MsFlags::MS_RDONLY,
        Some("mode=755"),
    )
    .map_err(err("mount cgroup tmpfs", dest))?;
    let own = own_cgroup_paths();
    for h in &host.hierarchies {
        let sub = dest.join(&h.name);
        let point = mkdir_all_in_root(root, &sub).map_err(err("create mount point", &sub))?;
        if new_cgroupns {
            let data = (!h.options.is_empty()).then_some(h.options.as_str());
            mount(
                Some(h.fstype.as_str()),
                fd_path(&point).as_c_str(),
                Some(h.fstype.as_str()),
                flags,
                data,
            )
            .map_err(err("mount cgroup", &sub))?;
        } else {
            let rel = own
                .iter()
                .find(|(c, _)| {
                    if h.fstype == "cgroup2" {
                        c.is_empty()
                    } else {
                        !c.is_empty() && c.split(',').all(|x| h.options.split(',').any(|o| o == x))
                    }
                })
                .map(|(_, p)| p.trim_start_matches('/').to_string())
                .unwrap_or_default();
            let source = h.mountpoint.join(rel);
            mount(
                Some(&source),
                fd_path(&point).as_c_str(),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(err("bind cgroup", &sub))?;
            let top = open_in_root(root, &sub, OFlag::O_PATH).map_err(err("reopen", &sub))?;
            remount_bind(top.as_fd(), flags, MsFlags::empty()).map_err(remount_err(&sub))?;
        }
    }
    for (name, target) in &host.links {
        let link = dest.join(name);
        let (parent, name) = parent_in_root(root, &link).map_err(err("symlink", &link))?;
        match nix::unistd::symlinkat(target.as_path(), parent.as_fd(), name.as_c_str()) {
            Ok(()) | Err(nix::Error::EEXIST) => {}
            Err(e) => return Err(err("symlink", &link)(e)),
        }
    }
    if flags.contains(MsFlags::MS_RDONLY) {
        let top = open_in_root(root, dest, OFlag::O_PATH).map_err(err("reopen", dest))?;
        remount_bind(top.as_fd(), flags, MsFlags::empty()).map_err(remount_err(dest))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mountinfo(text: &str) -> Vec<MountInfo> {
        procfs::process::MountInfos::from_buf_read(text.as_bytes())
            .unwrap()
            .0
    }

    #[test]
    fn hybrid_layout() {
        let info = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate";
        let h = HostCgroups::parse(mountinfo(info), |n| {
            Some(PathBuf::from(format!("{n}-target")))
        });
        assert!(!h.unified);
        let names: Vec<_> = h.hierarchies.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["cpu,cpuacct", "systemd", "unified"]);
        assert_eq!(h.hierarchies[0].options, "cpu,cpuacct");
        assert_eq!(h.hierarchies[1].options, "name=systemd,xattr");
        assert_eq!(h.hierarchies[2].options, "");
        assert_eq!(h.links.len(), 2);
    }

    #[test]
    fn unified_layout() {
        let info = "30 23 0:27 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate";
        let h = HostCgroups::parse(mountinfo(info), |_| None);
        assert!(h.unified);
        assert!(h.hierarchies.is_empty());
    }
}
