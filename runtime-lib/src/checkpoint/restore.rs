//! `restore`: a container made again from a bundle, its processes recreated by CRIU from a
//! checkpoint's images (see the module above). The order: the state dir (the id is claimed),
//! the cgroup, the rootfs bind-mounted where CRIU wants a mount point, CRIU started and moved
//! into the cgroup, then the request; the prestart and createRuntime hooks run when CRIU has
//! made the namespaces, as with runc. A failure undoes every step, newest first.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use rust_criu::rust_criu_protobuf::rpc::{
    Cgroup_root, Criu_notify, Criu_opts, Criu_req_type, Ext_mount_map, Inherit_fd,
};

use super::swrk::{self, Swrk, SwrkIo};
use super::{CheckpointError, RestoreOptions};
use crate::bundle::Bundle;
use crate::cgroups::{self, CgroupManager};
use crate::container::{Container, ContainerBuilder};
use crate::error::{Context, Error, Result, Step};
use crate::hooks::HooksPlan;
use crate::plan::{CreateOptions, InitPlan};
use crate::state::{Saved, StateDir, Status};

const STEP: Step = Step::Restore;

/// Where the rootfs is bind-mounted for CRIU, in the container's state dir.
pub(crate) const CRIU_ROOT: &str = "criu-root";

impl ContainerBuilder {
    /// Restore a container checkpointed by [`Container::checkpoint`] (by casulo or runc) from
    /// the images in `opts.criu.image_path`, as container `id` of this builder's bundle (the
    /// checkpointed one's, or one like it). Returns once its processes run again; the
    /// builder's pid file and console socket are used as by create.
    ///
    /// ```no_run
    /// use casulo::{ContainerBuilder, CriuFlags, RestoreOptions};
    ///
    /// let c = ContainerBuilder::new("web", "/srv/bundles/web").restore(&RestoreOptions {
    ///     criu: CriuFlags {
    ///         image_path: "/var/lib/web-checkpoint".into(),
    ///         ..Default::default()
    ///     },
    ///     ..Default::default()
    /// })?;
    /// println!("{} runs again as pid {}", c.id(), c.pid());
    /// # Ok::<(), casulo::Error>(())
    /// ```
    pub fn restore(self, opts: &RestoreOptions) -> Result<Container> {
        let bundle = self.load_bundle().map_err(|mut e| {
            e.step = STEP;
            e
        })?;
        let (id, root, create) = self.parts();
        crate::bundle::validate_id(&id).ctx(&id, STEP)?;
        // CRIU restores the filter itself: the program is only checked here, never loaded.
        let plan =
            InitPlan::build(&id, &bundle, create, None).map_err(|k| Error::new(&id, STEP, k))?;
        let saved = restore(&id, root, &bundle, &plan, create, opts)?;
        Ok(Container::new(root.to_path_buf(), saved))
    }

    /// [`ContainerBuilder::restore`], then wait for the restored init as
    /// [`ContainerBuilder::run_foreground`] waits for its process, forwarding signals, and
    /// delete the container when it exits (runc's `restore` without `--detach`).
    pub fn restore_foreground(self, opts: &RestoreOptions) -> Result<i32> {
        let id = self.id().to_string();
        crate::run::prepare_wait(&id, STEP)?;
        let c = self.restore(opts)?;
        let code = crate::run::wait_relaying(c.pid(), None);
        if let Err(e) = c.clone().force_delete() {
            tracing::warn!("{e}");
        }
        code.ctx(&id, STEP)
    }
}

/// What restore has made so far, undone newest first on failure.
struct Made<'a> {
    root: &'a Path,
    id: &'a str,
    dir: Option<StateDir>,
    cgroup: Option<Box<dyn CgroupManager>>,
    criu_root: Option<PathBuf>,
    pid: Option<i32>,
}

impl Made<'_> {
    fn undo(&mut self) {
        if let Some(pid) = self.pid.take() {
            crate::lifecycle::pidfd::kill_and_reap(pid);
        }
        if let Some(cg) = &self.cgroup {
            for p in cg.pids().unwrap_or_default() {
                crate::sys::kill(p, libc::SIGKILL);
            }
        }
        if let Some(r) = self.criu_root.take() {
            detach_criu_root(&r);
        }
        if let Some(mut cg) = self.cgroup.take() {
            if let Err(e) = cg.destroy() {
                tracing::warn!("container {:?}: restore: cleanup: {e}", self.id);
            }
        }
        if let Some(dir) = self.dir.take() {
            if let Err(e) = dir.remove() {
                tracing::warn!("container {:?}: restore: cleanup: {e}", self.id);
            }
        }
    }
}

/// The mount points of the bundle's mounts, made in its rootfs where missing as `create` makes
/// them (for a bind of anything but a directory an empty file, else a directory), but none
/// below a tmpfs, whose content CRIU restores whole: CRIU mounts on them but makes none, and a
/// rootfs other than the checkpointed container's (a restore elsewhere, from an exported or
/// stored checkpoint) lacks those the runtime made there. A mount point below an earlier bind
/// mount is made in that mount's source, where `create` made it (through the mount).
fn make_mount_points(bundle: &Bundle) -> std::result::Result<(), CheckpointError> {
    use crate::rootfs::paths::{ensure_file_in_root, mkdir_all_in_root};
    let root = nix::fcntl::open(
        &bundle.rootfs,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(CheckpointError::sys(format!(
        "open rootfs {}",
        bundle.rootfs.display()
    )))?;
    let mounts = bundle.spec.mounts().clone().unwrap_or_default();
    let tmpfs: Vec<&Path> = mounts
        .iter()
        .filter(|m| m.typ().as_deref() == Some("tmpfs"))
        .map(|m| m.destination().as_path())
        .collect();
    let binds = super::bind_mounts(&bundle.spec, &bundle.dir);
    for (i, m) in mounts.iter().enumerate() {
        let dest = m.destination();
        if tmpfs.iter().any(|t| dest != *t && dest.starts_with(t)) {
            continue;
        }
        let bind_source = binds.iter().find(|(d, _)| d == dest).map(|(_, s)| s);
        let (base, base_path, path) = match enclosing_bind(&mounts[..i], &binds, dest) {
            Some((above, source)) => {
                let fd = nix::fcntl::open(
                    source,
                    nix::fcntl::OFlag::O_PATH
                        | nix::fcntl::OFlag::O_DIRECTORY
                        | nix::fcntl::OFlag::O_CLOEXEC,
                    nix::sys::stat::Mode::empty(),
                )
                .map_err(CheckpointError::sys(format!(
                    "open {} (the source of the bind mount on {}, which {} is below)",
                    source.display(),
                    above.display(),
                    dest.display()
                )))?;
                let below = dest.strip_prefix(above).unwrap_or(dest);
                (Some(fd), source, below)
            }
            None => (None, bundle.rootfs.as_path(), dest.as_path()),
        };
        let base_fd = base.as_ref().map_or(root.as_fd(), |fd| fd.as_fd());
        let made = match bind_source {
            Some(source) if !source.is_dir() => ensure_file_in_root(base_fd, path, 0o644),
            _ => mkdir_all_in_root(base_fd, path),
        };
        made.map_err(CheckpointError::sys(format!(
            "make mount point {} in {}",
            path.display(),
            base_path.display()
        )))?;
    }
    Ok(())
}

/// Of `earlier` mounts, the deepest bind mount whose destination holds `dest`, with its source.
fn enclosing_bind<'a>(
    earlier: &[oci_spec::runtime::Mount],
    binds: &'a [(PathBuf, PathBuf)],
    dest: &Path,
) -> Option<(&'a Path, &'a Path)> {
    earlier
        .iter()
        .filter_map(|m| binds.iter().find(|(d, _)| d == m.destination()))
        .filter(|(d, _)| d.as_path() != dest && dest.starts_with(d))
        .max_by_key(|(d, _)| d.components().count())
        .map(|(d, s)| (d.as_path(), s.as_path()))
}

/// Detach the rootfs's bind mount for CRIU and remove its mount point (best effort: also
/// what `delete --force` does for a restore that was killed).
pub(crate) fn detach_criu_root(path: &Path) {
    let _ = umount2(path, MntFlags::MNT_DETACH);
    let _ = std::fs::remove_dir(path);
}

/// What restore checked and opened before its first side effect.
struct Inputs<'a> {
    bundle: &'a Bundle,
    plan: &'a InitPlan,
    create: &'a CreateOptions,
    opts: &'a RestoreOptions,
    session: super::Session<'a>,
    /// runc's descriptors.json: the checkpointed init's stdio.
    descriptors: Vec<String>,
    console: Option<OwnedFd>,
    /// The container's cgroup, and whether it is a rootless one.
    cgroup: Option<(cgroups::CgroupConfig, bool)>,
}

fn restore(
    id: &str,
    root: &Path,
    bundle: &Bundle,
    plan: &InitPlan,
    create: &CreateOptions,
    opts: &RestoreOptions,
) -> Result<Saved> {
    // Everything that can be checked is, before the first side effect.
    let descriptors = read_descriptors(&opts.criu.image_path).ctx(id, STEP)?;
    let version = swrk::check_version(opts.criu.criu.as_deref()).ctx(id, STEP)?;
    if (opts.lsm_profile.is_some() || opts.lsm_mount_context.is_some()) && version < 31600 {
        return Err(CheckpointError::Invalid(
            "--lsm-profile and --lsm-mount-context need CRIU 3.16 or later".into(),
        ))
        .ctx(id, STEP);
    }
    let (cgroup_cfg, rootless) = crate::lifecycle::cgroup_for(id, bundle, create).ctx(id, STEP)?;
    let mut saved = crate::lifecycle::initial_saved(id, bundle, plan, cgroup_cfg.clone());
    let console = crate::plan::connect_console(create.console_socket.as_deref()).ctx(id, STEP)?;
    // The work directory is the first thing made (as with runc, if missing).
    let session = opts.criu.session("restore.log", false).ctx(id, STEP)?;
    let input = Inputs {
        bundle,
        plan,
        create,
        opts,
        session,
        descriptors,
        console,
        cgroup: cgroup_cfg.map(|c| (c, rootless)),
    };

    let mut made = Made {
        root,
        id,
        dir: None,
        cgroup: None,
        criu_root: None,
        pid: None,
    };
    match restore_steps(&mut made, &mut saved, &input) {
        Ok(()) => {
            if let Some(path) = made.criu_root.take() {
                // The restored mount namespace has its own copy.
                detach_criu_root(&path);
            }
            Ok(saved)
        }
        Err(e) => {
            made.undo();
            Err(e)
        }
    }
}

/// Restore's side effects, in order, each recorded in `made` as it is made.
fn restore_steps(made: &mut Made<'_>, saved: &mut Saved, input: &Inputs<'_>) -> Result<()> {
    let id = made.id;
    let criu_root = prepare(made, saved, input)?;
    let (mut o, ns_fds) = criu_opts(input, made.cgroup.as_deref(), &criu_root).ctx(id, STEP)?;
    let keep: Vec<i32> = ns_fds.iter().map(|f| f.as_raw_fd()).collect();
    let criu = Swrk::start(&SwrkIo {
        criu: input.opts.criu.criu.as_deref(),
        stdio: true,
        keep: &keep,
    })
    .ctx(id, STEP)?;
    // CRIU forks the restored tree: in the container's cgroup, so are they.
    if let (Some(cg), Some((_, rootless))) = (made.cgroup.as_mut(), &input.cgroup) {
        cg.apply(criu.pid()).ctx(id, STEP)?;
        cg.set(&crate::lifecycle::resources_for(
            input.bundle.spec.linux().as_ref(),
            *rootless,
        ))
        .ctx(id, STEP)?;
        o.cg_root = cgroup_roots(criu.pid()).ctx(id, STEP)?;
    }
    let req = swrk::request(Criu_req_type::RESTORE, o);

    let mut restored: Option<i32> = None;
    let mut on_notify = |n: &Criu_notify, fd: Option<OwnedFd>| -> std::result::Result<(), String> {
        notified(
            n,
            fd,
            &input.plan.hooks,
            saved,
            input.console.as_ref(),
            &mut restored,
        )
    };
    let log = &input.session.log;
    let resp = criu
        .call(&req, &mut on_notify)
        .map_err(|e| super::with_log(e, log))
        .ctx(id, STEP);
    drop(ns_fds);
    made.pid = restored;
    let resp = resp?;
    if !resp.success() {
        return Err(super::criu_failed("restore", &resp, log)).ctx(id, STEP);
    }
    record(
        made,
        saved,
        input,
        restored.unwrap_or_else(|| resp.restore.pid()),
    )
}

/// The state dir (the id is claimed), the cgroup, the bundle's mount points, and the rootfs
/// bind-mounted where CRIU wants a mount point, whose path is returned.
fn prepare(made: &mut Made<'_>, saved: &Saved, input: &Inputs<'_>) -> Result<PathBuf> {
    let id = made.id;
    let dir = StateDir::create(made.root, id, saved).ctx(id, STEP)?;
    // Restore never waits for a start: without the fifo the container is running once its
    // pid is known.
    let _ = std::fs::remove_file(dir.fifo());
    let criu_root = dir.path().join(CRIU_ROOT);
    made.dir = Some(dir);
    if let Some((cfg, rootless)) = &input.cgroup {
        let mut cg = crate::lifecycle::cgroup_manager_for(cfg, *rootless, None).ctx(id, STEP)?;
        cgroups::check_unused(cg.as_ref()).ctx(id, STEP)?;
        cg.create().ctx(id, STEP)?;
        made.cgroup = Some(cg);
    }

    let bundle = input.bundle;
    make_mount_points(bundle).ctx(id, STEP)?;
    // CRIU wants the root to be a mount point.
    std::fs::create_dir(&criu_root)
        .map_err(CheckpointError::io(format!(
            "mkdir {}",
            criu_root.display()
        )))
        .ctx(id, STEP)?;
    made.criu_root = Some(criu_root.clone());
    mount(
        Some(&bundle.rootfs),
        &criu_root,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(CheckpointError::sys(format!(
        "bind mount {} on {}",
        bundle.rootfs.display(),
        criu_root.display()
    )))
    .ctx(id, STEP)?;
    Ok(criu_root)
}

/// CRIU's restore options: the shared flags, the bind mounts and cgroup mounts mapped to
/// their sources now, the joined namespaces as inherited fds (returned: they must stay open
/// until CRIU is done), and the container's stdio pipes mapped onto ours.
fn criu_opts(
    input: &Inputs<'_>,
    cgroup: Option<&dyn CgroupManager>,
    criu_root: &Path,
) -> std::result::Result<(Criu_opts, Vec<OwnedFd>), CheckpointError> {
    let (bundle, opts) = (input.bundle, input.opts);
    let mut o = input.session.opts(criu_root);
    o.set_evasive_devices(true);
    // The restored init is then our child, as a created one is: run and restore wait for it.
    o.set_rst_sibling(true);
    if let Some(p) = &opts.lsm_profile {
        o.set_lsm_profile(p.clone());
    }
    if let Some(c) = &opts.lsm_mount_context {
        o.set_lsm_mount_context(c.clone());
    }
    let mounts = super::external_mounts(&bundle.spec, &bundle.dir, &bundle.rootfs);
    let cgroup_mounts = cgroup
        .map(|cg| super::cgroup_mounts(&bundle.spec, &cg.paths()))
        .unwrap_or_default();
    for (dest, source) in mounts.into_iter().chain(cgroup_mounts) {
        let mut m = Ext_mount_map::new();
        m.set_key(dest);
        m.set_val(source);
        o.ext_mnt.push(m);
    }
    // Joined namespaces come back as the bundle names them now.
    let mut ns_fds = Vec::new();
    for (name, path) in super::joined_namespaces(&bundle.spec) {
        let fd = nix::fcntl::open(
            &path,
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(CheckpointError::sys(format!(
            "open {name} namespace {}",
            path.display()
        )))?;
        let mut inherit = Inherit_fd::new();
        inherit.set_key(super::ns_key(name));
        inherit.set_fd(fd.as_raw_fd());
        o.inherit_fd.push(inherit);
        ns_fds.push(fd);
    }
    // The container's stdio pipes (an engine's) are ours now, at the same numbers.
    for (n, d) in input.descriptors.iter().enumerate() {
        if d.contains("pipe:") {
            let mut inherit = Inherit_fd::new();
            inherit.set_key(d.clone());
            inherit.set_fd(n as i32);
            o.inherit_fd.push(inherit);
        }
    }
    Ok((o, ns_fds))
}

/// The restored init `pid` recorded: in the state (with its cgroup's directories) and the
/// pid file. The container is then the caller's: nothing of it is undone any more.
fn record(made: &mut Made<'_>, saved: &mut Saved, input: &Inputs<'_>, pid: i32) -> Result<()> {
    let id = made.id;
    made.pid = Some(pid);
    saved.pid = pid;
    saved.pid_start = crate::sys::proc_start_time(pid)
        .map(|(t, _)| t)
        .ok_or_else(|| CheckpointError::Rpc(format!("the restored init {pid} is gone")))
        .ctx(id, STEP)?;
    if let Some(cg) = &made.cgroup {
        saved.cgroup_paths = cg.paths();
    }
    made.dir
        .as_ref()
        .map(|d| d.save(saved))
        .transpose()
        .ctx(id, STEP)?;
    if let Some(pf) = &input.create.pid_file {
        crate::state::write_atomic(pf, pid.to_string().as_bytes(), 0o644)
            .map_err(CheckpointError::io(format!("pid file {}", pf.display())))
            .ctx(id, STEP)?;
    }
    // Ours from here: the state dir's lock goes with `made.dir`.
    made.pid = None;
    made.cgroup = None;
    made.dir = None;
    Ok(())
}

/// CRIU's notifications during restore: the hooks once the namespaces exist, the restored
/// init's pid, a terminal's master for the console socket.
fn notified(
    n: &Criu_notify,
    fd: Option<OwnedFd>,
    hooks: &HooksPlan,
    saved: &Saved,
    console: Option<&OwnedFd>,
    restored: &mut Option<i32>,
) -> std::result::Result<(), String> {
    match n.script() {
        "setup-namespaces" => {
            let mut s = saved.clone();
            s.pid = n.pid();
            let st = serde_json::to_vec(&s.oci_state(Status::Created)).unwrap_or_default();
            crate::hooks::run_hooks("prestart", &hooks.prestart, &st).map_err(|e| e.to_string())?;
            crate::hooks::run_hooks("createRuntime", &hooks.create_runtime, &st)
                .map_err(|e| e.to_string())
        }
        "post-restore" => {
            *restored = Some(n.pid());
            Ok(())
        }
        "orphan-pts-master" => {
            let master = fd.ok_or("no master fd came with it")?;
            let socket = console.ok_or(
                "the checkpointed container has a terminal: restore needs --console-socket",
            )?;
            crate::tty::send_fd(socket.as_fd(), b"/dev/ptmx", master.as_fd())
                .map_err(|e| e.to_string())
        }
        _ => Ok(()),
    }
}

/// The cgroups CRIU now runs in (the container's), as its cgroup roots: the dumped tree's
/// cgroups are recreated below them.
fn cgroup_roots(criu: i32) -> std::result::Result<Vec<Cgroup_root>, CheckpointError> {
    let groups = procfs::process::Process::new(criu)
        .and_then(|p| p.cgroups())
        .map_err(|e| CheckpointError::Rpc(format!("the cgroups of criu ({criu}): {e}")))?;
    Ok(groups
        .0
        .into_iter()
        .map(|g| {
            let mut r = Cgroup_root::new();
            if !g.controllers.is_empty() {
                r.set_ctrl(g.controllers.join(","));
            }
            r.set_path(g.pathname);
            r
        })
        .collect())
}

/// runc's descriptors.json beside the images.
fn read_descriptors(images: &Path) -> std::result::Result<Vec<String>, CheckpointError> {
    let path = images.join(super::DESCRIPTORS);
    let text = std::fs::read(&path).map_err(CheckpointError::io(format!(
        "{} (is this a checkpoint's image directory?)",
        path.display()
    )))?;
    serde_json::from_slice(&text)
        .map_err(|e| CheckpointError::Invalid(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_are_required_and_parsed() {
        let dir = std::env::temp_dir().join(format!("casulo-desc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let e = read_descriptors(&dir).unwrap_err().to_string();
        assert!(e.contains("descriptors.json"), "{e}");
        std::fs::write(
            dir.join("descriptors.json"),
            r#"["/dev/null","pipe:[12]","pipe:[13]"]"#,
        )
        .unwrap();
        assert_eq!(
            read_descriptors(&dir).unwrap(),
            ["/dev/null", "pipe:[12]", "pipe:[13]"]
        );
        std::fs::write(dir.join("descriptors.json"), "{").unwrap();
        assert!(read_descriptors(&dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
