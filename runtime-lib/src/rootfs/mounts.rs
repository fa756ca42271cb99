//! The mounts of config.json: checked before the fork, mounted in the init onto fds resolved
//! inside the root.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::fcntl::{AtFlags, OFlag};
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{fstat, fstatat, SFlag};
use oci_spec::runtime::Mount;

use super::copyup;
use super::idmap::{self, IdmapPlan};
pub use super::options::{parse_options, MountOptions, KNOWN_OPTIONS};
use super::paths::{ensure_file_in_root, fd_path, mkdir_all_in_root, open_in_root, PathBuffer};
use super::remount::remount_bind;
use super::{mount_err, remount_err, RootfsError};
use crate::lifecycle::text::{child_err, ChildError};

/// Option flags that say how to mount, not what the mount's own flags are.
const NOT_PER_MOUNT: MsFlags = MsFlags::MS_BIND
    .union(MsFlags::MS_REC)
    .union(MsFlags::MS_REMOUNT);

/// What kind of mount an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Bind,
    Cgroup,
    Other,
}

/// A mount entry, checked and parsed before the fork.
#[derive(Debug, Clone)]
pub struct MountPlan {
    pub kind: Kind,
    pub source: Option<PathBuf>,
    /// The container path (a destination given as a host path inside the rootfs is made
    /// relative to it, as runc does).
    pub destination: PathBuf,
    pub fstype: String,
    pub options: MountOptions,
    /// For a bind whose source is outside the rootfs: whether it is a directory (else a file
    /// is made as mount point). For a source inside the rootfs, `source_in_root` instead.
    pub source_is_dir: bool,
    /// For a bind whose source is inside the rootfs: that source as a container path. It is
    /// opened when its turn comes, resolved inside the root, so that it sees what the mounts
    /// before it in the list made there, and no symlink of the image leads it out.
    pub source_in_root: Option<PathBuf>,
    /// For an idmapped bind: its mapping.
    pub idmap: Option<IdmapPlan>,
}

/// What the init asks the runtime for, for a bind mount.
pub enum SourceRequest<'a> {
    /// Open the host source, which the init cannot reach (an O_PATH fd comes back).
    Open,
    /// Make the idmapped tree of the mount from this source inside the rootfs, or from the
    /// host source when there is none (a detached mount comes back).
    Idmapped(Option<BorrowedFd<'a>>),
}

/// `p` with `.` dropped and `..` applied, without looking at the filesystem.
pub fn lexical_clean(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Whether [`lexical_clean`] makes `p` into `/dev`, told without building the clean path
/// (this runs in the init). Read backwards, each `..` cancels the nearest name before it
/// that no other `..` cancelled, as it pops that name going forwards; `/` is never popped.
fn cleans_to_dev(p: &Path) -> bool {
    let mut skip = 0usize;
    let mut kept = p.components().rev().filter(|c| match c {
        Component::ParentDir => {
            skip += 1;
            false
        }
        Component::CurDir => false,
        Component::Normal(_) if skip > 0 => {
            skip -= 1;
            false
        }
        _ => true,
    });
    kept.next() == Some(Component::Normal("dev".as_ref()))
        && kept.next() == Some(Component::RootDir)
        && kept.next().is_none()
}

/// The container path that host path `p` names if it is lexically inside `rootfs`.
fn inside_rootfs(p: &Path, rootfs: &Path) -> Option<PathBuf> {
    if !p.is_absolute() {
        return None;
    }
    lexical_clean(p)
        .strip_prefix(rootfs)
        .ok()
        .map(|rel| Path::new("/").join(rel))
}

impl MountPlan {
    pub fn from_spec(m: &Mount, bundle: &Path, rootfs: &Path) -> Result<MountPlan, RootfsError> {
        let options = parse_options(m.options().as_deref().unwrap_or(&[]))?;
        let fstype = m.typ().clone().unwrap_or_default();
        let kind = if options.bind || fstype == "bind" {
            Kind::Bind
        } else if fstype == "cgroup" {
            Kind::Cgroup
        } else {
            Kind::Other
        };
        let destination =
            inside_rootfs(m.destination(), rootfs).unwrap_or_else(|| m.destination().clone());
        let mut source = m.source().clone();
        let mut source_is_dir = true;
        let mut source_in_root = None;
        if kind == Kind::Bind {
            let src = source.as_ref().ok_or_else(|| {
                RootfsError::Invalid(format!(
                    "bind mount {} has no source",
                    m.destination().display()
                ))
            })?;
            let src = if src.is_absolute() {
                src.clone()
            } else {
                bundle.join(src)
            };
            source_in_root = inside_rootfs(&src, rootfs);
            if source_in_root.is_none() {
                let meta = std::fs::metadata(&src).map_err(|e| {
                    RootfsError::Invalid(format!("bind mount source {}: {e}", src.display()))
                })?;
                source_is_dir = meta.is_dir();
            }
            source = Some(src);
        }
        let idmap = IdmapPlan::from_spec(m, &options, &kind)?;
        if options.copy_up && (kind != Kind::Other || fstype != "tmpfs") {
            return Err(RootfsError::Invalid(format!(
                "mount {}: option \"tmpcopyup\" is for tmpfs mounts only",
                m.destination().display()
            )));
        }
        if kind == Kind::Cgroup && (options.recursive_set | options.recursive_clear) != 0 {
            return Err(RootfsError::Unsupported(format!(
                "recursive mount options on the cgroup mount {}",
                m.destination().display()
            )));
        }
        if fstype.is_empty() && kind != Kind::Bind {
            return Err(RootfsError::Invalid(format!(
                "mount {} has no type",
                m.destination().display()
            )));
        }
        Ok(MountPlan {
            kind,
            source,
            destination,
            fstype,
            options,
            source_is_dir,
            source_in_root,
            idmap,
        })
    }

    /// Whether this mount is made read-write and only remounted read-only in
    /// [`super::RootfsPlan::finalize`]: a read-only tmpfs or `/dev` may still need mount points
    /// and device nodes made in it (by later mounts, tmpcopyup, the devices, the console).
    pub fn read_only_later(&self) -> bool {
        self.kind == Kind::Other
            && self.options.flags.contains(MsFlags::MS_RDONLY)
            && (self.fstype == "tmpfs" || cleans_to_dev(&self.destination))
    }

    /// Remount read-only what [`Self::read_only_later`] left read-write (`root` is `/` now).
    pub fn make_read_only(&self, root: BorrowedFd<'_>) -> Result<(), ChildError> {
        let dest = &self.destination;
        let top = open_in_root(root, dest, OFlag::O_PATH).map_err(mount_err("reopen", dest))?;
        let set = self.options.flags & !NOT_PER_MOUNT;
        remount_bind(top.as_fd(), set, self.options.cleared).map_err(remount_err(dest))
    }

    /// procfs and sysfs go on a directory only: never through a symlink, whose target the
    /// image chooses (CVE-2019-19921), nor on a file. A missing destination is made later.
    fn check_ordinary_dir(&self, root: BorrowedFd<'_>) -> Result<(), ChildError> {
        let dest = &self.destination;
        let (Some(parent), Some(name)) = (dest.parent(), dest.file_name()) else {
            return Ok(());
        };
        let dir = match open_in_root(root, parent, OFlag::O_PATH | OFlag::O_DIRECTORY) {
            Ok(dir) => dir,
            Err(nix::Error::ENOENT) => return Ok(()),
            Err(source) => return Err(mount_err("open mount point", dest)(source)),
        };
        match fstatat(dir.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Err(nix::Error::ENOENT) => Ok(()),
            Err(source) => Err(mount_err("stat mount point", dest)(source)),
            Ok(st) if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR => {
                Ok(())
            }
            Ok(_) => Err(child_err!(
                "mount {}: filesystem {:?} must be mounted on ordinary directory",
                dest.display(),
                self.fstype
            )),
        }
    }

    /// The mount point, opened (O_PATH) inside `root`, made if missing: an empty file for a
    /// bind of a file, else a directory. Also the mode it had if it existed.
    fn mount_point(
        &self,
        root: BorrowedFd<'_>,
        source_is_dir: bool,
    ) -> Result<(OwnedFd, Option<u32>), nix::Error> {
        let dest = &self.destination;
        match open_in_root(root, dest, OFlag::O_PATH) {
            Ok(fd) => {
                let mode = fstat(fd.as_fd())?.st_mode & 0o7777;
                Ok((fd, Some(mode)))
            }
            Err(nix::Error::ENOENT) if self.kind == Kind::Bind && !source_is_dir => {
                Ok((ensure_file_in_root(root, dest, 0o644)?, None))
            }
            Err(nix::Error::ENOENT) => Ok((mkdir_all_in_root(root, dest)?, None)),
            Err(e) => Err(e),
        }
    }

    /// Mount this entry inside `root` (the rootfs, before pivot_root). A bind source the
    /// init cannot look at (in a user namespace: EACCES on the way), and the tree of an
    /// idmapped bind, are asked of the runtime with `host_source`.
    pub fn mount(
        &self,
        root: BorrowedFd<'_>,
        host_source: &mut dyn FnMut(SourceRequest<'_>) -> Result<OwnedFd, ChildError>,
    ) -> Result<(), ChildError> {
        let dest = &self.destination;
        let err = |step| mount_err(step, dest);
        if self.kind == Kind::Other && matches!(self.fstype.as_str(), "proc" | "sysfs") {
            self.check_ordinary_dir(root)?;
        }
        let source_fd = match (&self.kind, &self.source_in_root, &self.source) {
            (Kind::Bind, Some(src), _) => Some(
                open_in_root(root, src, OFlag::O_PATH)
                    .map_err(err("open bind source in the rootfs"))?,
            ),
            (Kind::Bind, None, Some(_)) if self.idmap.is_some() => None,
            (Kind::Bind, None, Some(src)) if nix::sys::stat::stat(src).is_err() => {
                Some(host_source(SourceRequest::Open)?)
            }
            _ => None,
        };
        // An idmapped bind: the runtime makes the tree (see rootfs/idmap.rs) and it is
        // attached instead of a bind of the source.
        let tree = match &self.idmap {
            Some(_) => Some(host_source(SourceRequest::Idmapped(
                source_fd.as_ref().map(|fd| fd.as_fd()),
            ))?),
            None => None,
        };
        let source_fd = tree.or(source_fd);
        let source_is_dir = match &source_fd {
            Some(fd) => {
                let st = fstat(fd.as_fd()).map_err(err("stat bind source"))?;
                SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
            }
            None => self.source_is_dir,
        };
        let (target, old_mode) = self
            .mount_point(root, source_is_dir)
            .map_err(err("create mount point"))?;
        let o = &self.options;
        match self.kind {
            Kind::Bind => {
                match (&self.idmap, &source_fd) {
                    (Some(_), Some(tree)) => {
                        idmap::attach(tree, &target).map_err(err("attach idmapped mount"))?
                    }
                    (_, source_fd) => {
                        let fd_source = source_fd.as_ref().map(fd_path);
                        let source = match &fd_source {
                            Some(p) => p.as_bytes(),
                            None => self.source.as_deref().map_or(&[][..], path_bytes),
                        };
                        let source = PathBuffer::from_bytes(source).map_err(err("bind"))?;
                        mount(
                            Some(source.as_c_str()),
                            fd_path(&target).as_c_str(),
                            None::<&str>,
                            o.flags & (MsFlags::MS_BIND | MsFlags::MS_REC),
                            None::<&str>,
                        )
                        .map_err(err("bind"))?;
                    }
                }
                drop(source_fd);
                // The bind keeps the source's flags; any flag named, set or cleared, means
                // the mount gets exactly the flags asked for.
                let set = o.flags & !NOT_PER_MOUNT;
                if !set.is_empty() || !o.cleared.is_empty() {
                    let top = open_in_root(root, dest, OFlag::O_PATH).map_err(err("reopen"))?;
                    remount_bind(top.as_fd(), set, o.cleared).map_err(remount_err(dest))?;
                }
            }
            Kind::Cgroup | Kind::Other => self.mount_fs(root, &target, old_mode)?,
        }
        if o.recursive_set != 0 || o.recursive_clear != 0 {
            let top = open_in_root(root, dest, OFlag::O_PATH).map_err(err("reopen"))?;
            crate::sys::mount_setattr_recursive(top.as_fd(), o.recursive_set, o.recursive_clear)
                .map_err(err("set recursive mount options"))?;
        }
        if !o.propagation.is_empty() {
            let top = open_in_root(root, dest, OFlag::O_PATH).map_err(err("reopen"))?;
            for p in &o.propagation {
                mount(
                    None::<&str>,
                    fd_path(&top).as_c_str(),
                    None::<&str>,
                    *p,
                    None::<&str>,
                )
                .map_err(err("set propagation"))?;
            }
        }
        Ok(())
    }

    /// A filesystem mount on `target`. A tmpfs without `mode=` takes the mode of the directory
    /// it covers (`old_mode`, when there was one), as runc does.
    fn mount_fs(
        &self,
        root: BorrowedFd<'_>,
        target: &OwnedFd,
        old_mode: Option<u32>,
    ) -> Result<(), ChildError> {
        let dest = &self.destination;
        let err = |step| mount_err(step, dest);
        let o = &self.options;
        let data = mount_data(&o.data, old_mode.filter(|_| self.fstype == "tmpfs"))
            .map_err(err("mount"))?;
        let data = (!data.is_empty()).then_some(data.as_c_str());
        let source = self.source.as_deref().unwrap_or(Path::new(&self.fstype));
        let source = PathBuffer::from_bytes(path_bytes(source)).map_err(err("mount"))?;
        let fstype = PathBuffer::from_bytes(self.fstype.as_bytes()).map_err(err("mount"))?;
        // What the tmpfs will cover, opened while it still can be.
        let lower = o
            .copy_up
            .then(|| copyup::open_lower(target.as_fd()))
            .transpose()
            .map_err(err("open for tmpcopyup"))?;
        let mut flags = o.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
        if self.read_only_later() {
            flags.remove(MsFlags::MS_RDONLY);
        }
        mount(
            Some(source.as_c_str()),
            fd_path(target).as_c_str(),
            Some(fstype.as_c_str()),
            flags,
            data,
        )
        .map_err(err("mount"))?;
        if let Some(lower) = lower {
            let top = open_in_root(root, dest, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
                .map_err(err("reopen"))?;
            copyup::copy_tree(lower.as_fd(), top.as_fd()).map_err(err("tmpcopyup"))?;
        }
        Ok(())
    }
}

fn path_bytes(p: &Path) -> &[u8] {
    p.as_os_str().as_bytes()
}

/// mount(2)'s data for a filesystem mount: the options' `data`, after `mode=` of the
/// directory the mount covers when that is given (first, so that a mode= of the options still
/// wins).
fn mount_data(data: &str, mode: Option<u32>) -> Result<PathBuffer, nix::Error> {
    let mut out = PathBuffer::new();
    if let Some(mode) = mode {
        // "mode=" and four or more octal digits, as format!("{mode:04o}") writes them.
        out.extend(b"mode=")?;
        let mut digits = [0u8; 11];
        let mut n = mode;
        let mut i = digits.len();
        while n > 0 || digits.len() - i < 4 {
            i -= 1;
            digits[i] = b'0' + (n % 8) as u8;
            n /= 8;
        }
        out.extend(&digits[i..])?;
        if !data.is_empty() {
            out.extend(b",")?;
        }
    }
    out.extend(data.as_bytes())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_told_as_lexical_clean_tells_it() {
        for p in [
            "/dev",
            "/dev/",
            "/./dev",
            "/dev/.",
            "/x/../dev",
            "/../dev",
            "/dev/x/..",
            "/dev/..",
            "dev",
            "/devx",
            "/x/dev",
            "/dev/../dev",
            "/a/b/../../dev",
            "/a/../../dev",
            "../dev",
            "/dev/x/../..",
            "/",
            "",
        ] {
            let p = Path::new(p);
            assert_eq!(
                cleans_to_dev(p),
                lexical_clean(p) == Path::new("/dev"),
                "{}",
                p.display()
            );
        }
    }

    #[test]
    fn tmpfs_data_with_the_covered_mode() {
        for (data, mode) in [
            ("", None),
            ("size=1m", None),
            ("", Some(0o755)),
            ("size=1m,mode=700", Some(0o1777)),
            ("", Some(0)),
            ("x", Some(0o7)),
        ] {
            let want = match (mode, data) {
                (None, _) => data.to_string(),
                (Some(m), "") => format!("mode={m:04o}"),
                (Some(m), _) => format!("mode={m:04o},{data}"),
            };
            let got = mount_data(data, mode).unwrap();
            assert_eq!(got.as_bytes(), want.as_bytes());
        }
    }
}
