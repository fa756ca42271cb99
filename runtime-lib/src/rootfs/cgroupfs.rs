//! The `cgroup` mount inside the container. On a pure cgroup-v2 host it is a cgroup2 mount; on
//! a v1 or hybrid host it is a tmpfs holding one mount per host hierarchy, each showing only the
//! container's own subtree (a fresh cgroup mount in a new cgroup namespace, else a bind of the
//! container's directory), as runc lays it out.

use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};

use super::mounts::MountPlan;
use super::paths::{fd_path, mkdir_all_in_root, open_in_root, parent_in_root, PathBuffer};
use super::remount::remount_bind;
use super::{mount_err as err, remount_err};
use crate::cgroups::{CgroupMount, CgroupMounts};
use crate::lifecycle::text::ChildError;

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
    /// The layout of the host's cgroup mounts `mounts`.
    pub fn from_mounts(mounts: &CgroupMounts) -> HostCgroups {
        Self::parse(&mounts.0, |name| {
            std::fs::read_link(Path::new(ROOT).join(name)).ok()
        })
    }

    fn parse(mounts: &[CgroupMount], link: impl Fn(&str) -> Option<PathBuf>) -> HostCgroups {
        let mut host = HostCgroups::default();
        let mut names = Vec::new();
        for m in mounts {
            let fstype = if m.v2 { "cgroup2" } else { "cgroup" };
            // Cgroup mount points under /sys/fs/cgroup hold no characters mountinfo escapes.
            let mountpoint = m.mount_point.as_path();
            if mountpoint == Path::new(ROOT) && m.v2 {
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
            // The superblock options as the kernel takes them again, sorted since procfs
            // keeps them unordered.
            let mut options: Vec<&str> = m
                .options
                .iter()
                .map(String::as_str)
                .filter(|o| {
                    let key = o.split('=').next().unwrap_or_default();
                    !matches!(key, "rw" | "ro" | "release_agent" | "nsdelegate")
                })
                .collect();
            options.sort_unstable();
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

/// The init's own /proc/self/cgroup (it is in its cgroup before it mounts anything), read
/// into `buf`: the text, or "" when it cannot be read (then every path is the root).
fn read_own_cgroups(buf: &mut [u8]) -> Result<&str, nix::Error> {
    use std::io::Read;
    // Read by path, not through procfs::process::Process, and into the caller's buffer: this
    // runs in the init, a forked child, which must not allocate.
    let Ok(mut f) = std::fs::File::open("/proc/self/cgroup") else {
        return Ok("");
    };
    let mut len = 0;
    loop {
        match f.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Ok(""),
        }
        if len == buf.len() {
            // Cut short: the paths it holds cannot be trusted.
            return Err(nix::Error::E2BIG);
        }
    }
    Ok(std::str::from_utf8(&buf[..len]).unwrap_or(""))
}

/// The container's path (without its leading `/`) in the first hierarchy of /proc/self/cgroup
/// text whose controllers `wanted` accepts ("" for the root: when there is none, or the text
/// does not parse). `wanted` gets the controllers field as written, e.g. `cpu,cpuacct`.
fn own_cgroup_path(text: &str, wanted: impl Fn(&str) -> bool) -> &str {
    let lines = || text.lines().filter(|l| !l.starts_with('#'));
    // Each line `hierarchy-id:controllers:path`; one that is not makes the whole text unusable.
    let parses = |line: &str| {
        let mut f = line.splitn(3, ':');
        let id = f.next().is_some_and(|id| id.parse::<u32>().is_ok());
        id && f.next().is_some() && f.next().is_some()
    };
    if !lines().all(parses) {
        return "";
    }
    lines()
        .filter_map(|line| {
            let mut f = line.splitn(3, ':').skip(1);
            Some((f.next()?, f.next()?))
        })
        .find(|(controllers, _)| wanted(controllers))
        .map(|(_, path)| path.trim_start_matches('/'))
        .unwrap_or("")
}

/// The controllers of a /proc/self/cgroup line, empty parts dropped.
fn controllers(field: &str) -> impl Iterator<Item = &str> {
    field.split(',').filter(|c| !c.is_empty())
}

/// Whether hierarchy `h` is the one of a /proc/self/cgroup line with `field` as controllers.
fn is_hierarchy(h: &Hierarchy, field: &str) -> bool {
    if h.fstype == "cgroup2" {
        controllers(field).next().is_none()
    } else {
        controllers(field).next().is_some()
            && controllers(field).all(|x| h.options.split(',').any(|o| o == x))
    }
}

/// `base` joined with `name`, as [`Path::join`] would, on the stack.
fn join(base: &Path, name: &str) -> Result<PathBuffer, nix::Error> {
    let mut p = PathBuffer::from_bytes(base.as_os_str().as_bytes())?;
    p.push(name.as_bytes())?;
    Ok(p)
}

/// Mount the `cgroup` entry `m` inside `root`.
pub fn mount_cgroup(
    root: BorrowedFd<'_>,
    m: &MountPlan,
    host: &HostCgroups,
    new_cgroupns: bool,
) -> Result<(), ChildError> {
    let dest = &m.destination;
    let flags = m.options.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    let target = mkdir_all_in_root(root, dest).map_err(err("create mount point", dest))?;
    // /proc/self/cgroup of a v1 or hybrid host: a dozen lines of a controller list and a path.
    let mut own = [0u8; 16384];
    if host.unified {
        if new_cgroupns {
            // In its own cgroup namespace a fresh mount shows the container's cgroup as root.
            return mount(
                Some(c"cgroup2"),
                fd_path(&target).as_c_str(),
                Some(c"cgroup2"),
                flags,
                None::<&str>,
            )
            .map_err(err("mount cgroup2", dest));
        }
        // Without one a fresh mount would show the host's whole tree: bind the container's
        // own directory instead (this also works in a user namespace, where mounting cgroup2
        // outside a cgroup namespace of its own is refused).
        let own = read_own_cgroups(&mut own).map_err(err("read /proc/self/cgroup", dest))?;
        let rel = own_cgroup_path(own, |c| controllers(c).next().is_none());
        let source = join(Path::new(ROOT), rel).map_err(err("bind cgroup2", dest))?;
        mount(
            Some(source.as_c_str()),
            fd_path(&target).as_c_str(),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(err("bind cgroup2", dest))?;
        let top = open_in_root(root, dest, OFlag::O_PATH).map_err(err("reopen", dest))?;
        return remount_bind(top.as_fd(), flags, MsFlags::empty()).map_err(remount_err(dest));
    }
    mount(
        Some(c"tmpfs"),
        fd_path(&target).as_c_str(),
        Some(c"tmpfs"),
        flags & !MsFlags::MS_RDONLY,
        Some(c"mode=755"),
    )
    .map_err(err("mount cgroup tmpfs", dest))?;
    let own = if new_cgroupns {
        ""
    } else {
        read_own_cgroups(&mut own).map_err(err("read /proc/self/cgroup", dest))?
    };
    for h in &host.hierarchies {
        mount_hierarchy(root, dest, h, flags, new_cgroupns, own)?;
    }
    for (name, target) in &host.links {
        let link = join(dest, name).map_err(err("symlink", dest))?;
        let link = link.as_path();
        let (parent, name) = parent_in_root(root, link).map_err(err("symlink", link))?;
        match nix::unistd::symlinkat(target.as_path(), parent.as_fd(), name.as_c_str()) {
            Ok(()) | Err(nix::Error::EEXIST) => {}
            Err(e) => return Err(err("symlink", link)(e)),
        }
    }
    if flags.contains(MsFlags::MS_RDONLY) {
        let top = open_in_root(root, dest, OFlag::O_PATH).map_err(err("reopen", dest))?;
        remount_bind(top.as_fd(), flags, MsFlags::empty()).map_err(remount_err(dest))?;
    }
    Ok(())
}

/// On a v1 or hybrid host, hierarchy `h` in the cgroup tmpfs at `dest`: a fresh mount in a
/// new cgroup namespace, else a bind of the container's directory in it (`own` is the init's
/// /proc/self/cgroup).
fn mount_hierarchy(
    root: BorrowedFd<'_>,
    dest: &Path,
    h: &Hierarchy,
    flags: MsFlags,
    new_cgroupns: bool,
    own: &str,
) -> Result<(), ChildError> {
    let sub = join(dest, &h.name).map_err(err("create mount point", dest))?;
    let sub = sub.as_path();
    let point = mkdir_all_in_root(root, sub).map_err(err("create mount point", sub))?;
    if new_cgroupns {
        let fstype =
            PathBuffer::from_bytes(h.fstype.as_bytes()).map_err(err("mount cgroup", sub))?;
        let data =
            PathBuffer::from_bytes(h.options.as_bytes()).map_err(err("mount cgroup", sub))?;
        let data = (!data.is_empty()).then_some(data.as_c_str());
        return mount(
            Some(fstype.as_c_str()),
            fd_path(&point).as_c_str(),
            Some(fstype.as_c_str()),
            flags,
            data,
        )
        .map_err(err("mount cgroup", sub));
    }
    let rel = own_cgroup_path(own, |c| is_hierarchy(h, c));
    let source = join(&h.mountpoint, rel).map_err(err("bind cgroup", sub))?;
    mount(
        Some(source.as_c_str()),
        fd_path(&point).as_c_str(),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(err("bind cgroup", sub))?;
    let top = open_in_root(root, sub, OFlag::O_PATH).map_err(err("reopen", sub))?;
    remount_bind(top.as_fd(), flags, MsFlags::empty()).map_err(remount_err(sub))
}

#[cfg(test)]
mod tests {
    use super::*;
    use procfs::FromBufRead;

    /// What the parse with procfs's ProcessCGroups (which allocates) gave.
    fn by_procfs(text: &str, wanted: impl Fn(&str) -> bool) -> String {
        procfs::ProcessCGroups::from_buf_read(text.as_bytes())
            .map(|c| c.0)
            .unwrap_or_default()
            .into_iter()
            .map(|c| (c.controllers.join(","), c.pathname))
            .find(|(c, _)| wanted(c))
            .map(|(_, p)| p.trim_start_matches('/').to_string())
            .unwrap_or_default()
    }

    #[test]
    fn own_paths_as_procfs_parses_them() {
        let hybrid = "12:cpu,cpuacct:/ctr/a\n4:name=systemd:/sys/ctr\n0::/ctr/u\n";
        let cases = [
            hybrid,
            "# comment\n3:memory:/m\n0::/x:y\n",
            "3:memory:/m\nbad line\n0::/u\n",
            "x:memory:/m\n",
            "3:,memory,:/m\r\n0:,:/u",
            "",
        ];
        let hierarchies = [
            ("cpu,cpuacct", "cgroup", "cpu,cpuacct"),
            ("cpu", "cgroup", "cpu"),
            ("systemd", "cgroup", "name=systemd,xattr"),
            ("memory", "cgroup", "memory"),
            ("unified", "cgroup2", ""),
        ];
        for text in cases {
            for (name, fstype, options) in hierarchies {
                let h = Hierarchy {
                    name: name.into(),
                    mountpoint: Path::new(ROOT).join(name),
                    fstype: fstype.into(),
                    options: options.into(),
                };
                let want = by_procfs(text, |c| {
                    if h.fstype == "cgroup2" {
                        c.is_empty()
                    } else {
                        !c.is_empty() && c.split(',').all(|x| h.options.split(',').any(|o| o == x))
                    }
                });
                assert_eq!(
                    own_cgroup_path(text, |c| is_hierarchy(&h, c)),
                    want,
                    "{text:?} {name}"
                );
            }
        }
        assert_eq!(
            own_cgroup_path(hybrid, |c| is_hierarchy(
                &Hierarchy {
                    name: "cpu,cpuacct".into(),
                    mountpoint: PathBuf::new(),
                    fstype: "cgroup".into(),
                    options: "cpu,cpuacct".into(),
                },
                c
            )),
            "ctr/a"
        );
    }

    fn mountinfo(text: &str) -> Vec<CgroupMount> {
        procfs::process::MountInfos::from_buf_read(text.as_bytes())
            .unwrap()
            .0
            .into_iter()
            .filter_map(CgroupMount::from_info)
            .collect()
    }

    #[test]
    fn hybrid_layout() {
        let info = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate";
        let h = HostCgroups::parse(&mountinfo(info), |n| {
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
        let h = HostCgroups::parse(&mountinfo(info), |_| None);
        assert!(h.unified);
        assert!(h.hierarchies.is_empty());
    }
}
