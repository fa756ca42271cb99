//! `restore`: a container made again from a bundle, its processes recreated by CRIU from a
//! checkpoint's images (see the module above). The order: the state dir (the id is claimed),
//! the cgroup, the rootfs bind-mounted where CRIU wants a mount point, CRIU started and moved
//! into the cgroup, then the request; the prestart and createRuntime hooks run when CRIU has
//! made the namespaces, as with runc. A failure undoes every step, newest first.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use rust_criu::rust_criu_protobuf::rpc::{
    Cgroup_root, Criu_notify, Criu_req_type, Ext_mount_map, Inherit_fd,
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
    /// the images in `opts.image_path`, as container `id` of this builder's bundle (the
    /// checkpointed one's, or one like it). Returns once its processes run again; the
    /// builder's pid file and console socket are used as by create.
    ///
    /// ```no_run
    /// use casulo::{ContainerBuilder, RestoreOptions};
    ///
    /// let c = ContainerBuilder::new("web", "/srv/bundles/web").restore(&RestoreOptions {
    ///     image_path: "/var/lib/web-checkpoint".into(),
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
/// stored checkpoint) lacks those the runtime made there.
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
    for m in &mounts {
        let dest = m.destination();
        if tmpfs.iter().any(|t| dest != *t && dest.starts_with(t)) {
            continue;
        }
        let bind_source = binds.iter().find(|(d, _)| d == dest).map(|(_, s)| s);
        let made = match bind_source {
            Some(source) if !source.is_dir() => ensure_file_in_root(root.as_fd(), dest, 0o644),
            _ => mkdir_all_in_root(root.as_fd(), dest),
        };
        made.map_err(CheckpointError::sys(format!(
            "make mount point {} in {}",
            dest.display(),
            bundle.rootfs.display()
        )))?;
    }
    Ok(())
}

/// Detach the rootfs's bind mount for CRIU and remove its mount point (best effort: also
/// what `delete --force` does for a restore that was killed).
pub(crate) fn detach_criu_root(path: &Path) {
    let _ = umount2(path, MntFlags::MNT_DETACH);
    let _ = std::fs::remove_dir(path);
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
    let images = super::open_dir(&opts.image_path, "image directory").ctx(id, STEP)?;
    let descriptors = read_descriptors(&opts.image_path).ctx(id, STEP)?;
    let empty_ns = super::empty_ns_mask(&opts.empty_ns).ctx(id, STEP)?;
    let version = swrk::check_version(opts.criu.as_deref()).ctx(id, STEP)?;
    if (opts.lsm_profile.is_some() || opts.lsm_mount_context.is_some()) && version < 31600 {
        return Err(CheckpointError::Invalid(
            "--lsm-profile and --lsm-mount-context need CRIU 3.16 or later".into(),
        ))
        .ctx(id, STEP);
    }
    let (cgroup_cfg, rootless) = crate::lifecycle::cgroup_for(id, bundle, create).ctx(id, STEP)?;
    let mut saved = crate::lifecycle::initial_saved(id, bundle, plan, cgroup_cfg.clone());
    let console = crate::plan::connect_console(create.console_socket.as_deref()).ctx(id, STEP)?;

    let mut made = Made {
        root,
        id,
        dir: None,
        cgroup: None,
        criu_root: None,
        pid: None,
    };
    let r = restore_steps(
        &mut made,
        &mut saved,
        bundle,
        plan,
        create,
        opts,
        &images,
        &descriptors,
        empty_ns,
        console,
        cgroup_cfg.map(|c| (c, rootless)),
    );
    match r {
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

#[allow(clippy::too_many_arguments)]
fn restore_steps(
    made: &mut Made<'_>,
    saved: &mut Saved,
    bundle: &Bundle,
    plan: &InitPlan,
    create: &CreateOptions,
    opts: &RestoreOptions,
    images: &OwnedFd,
    descriptors: &[String],
    empty_ns: u32,
    console: Option<OwnedFd>,
    cgroup: Option<(cgroups::CgroupConfig, bool)>,
) -> Result<()> {
    let id = made.id;
    let dir = StateDir::create(made.root, id, saved).ctx(id, STEP)?;
    // Restore never waits for a start: without the fifo the container is running once its
    // pid is known.
    let _ = std::fs::remove_file(dir.fifo());
    let criu_root = dir.path().join(CRIU_ROOT);
    made.dir = Some(dir);
    if let Some((cfg, rootless)) = &cgroup {
        let mut cg = crate::lifecycle::cgroup_manager_for(cfg, *rootless).ctx(id, STEP)?;
        cgroups::check_unused(cg.as_ref()).ctx(id, STEP)?;
        cg.create().ctx(id, STEP)?;
        made.cgroup = Some(cg);
    }

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

    let work = opts
        .work_path
        .as_ref()
        .map(|w| super::open_dir(w, "work directory"))
        .transpose()
        .ctx(id, STEP)?;
    let log = opts
        .work_path
        .as_deref()
        .unwrap_or(&opts.image_path)
        .join("restore.log");
    let mut o = super::Common {
        images,
        work: work.as_ref(),
        log_file: "restore.log",
        root: &criu_root,
        cgroups_mode: opts.cgroups_mode,
        shell_job: opts.shell_job,
        ext_unix_sk: opts.ext_unix_sk,
        tcp_established: opts.tcp_established,
        file_locks: opts.file_locks,
        empty_ns,
        auto_dedup: opts.auto_dedup,
        lazy_pages: opts.lazy_pages,
    }
    .opts();
    o.set_evasive_devices(true);
    // The restored init is then our child, as a created one is: run and restore wait for it.
    o.set_rst_sibling(true);
    if let Some(p) = &opts.lsm_profile {
        o.set_lsm_profile(p.clone());
    }
    if let Some(c) = &opts.lsm_mount_context {
        o.set_lsm_mount_context(c.clone());
    }
    for (dest, source) in super::external_mounts(&bundle.spec, &bundle.dir, &bundle.rootfs) {
        let mut m = Ext_mount_map::new();
        m.set_key(dest);
        m.set_val(source);
        o.ext_mnt.push(m);
    }
    if let Some(cg) = &made.cgroup {
        for (dest, dir) in super::cgroup_mounts(&bundle.spec, &cg.paths()) {
            let mut m = Ext_mount_map::new();
            m.set_key(dest);
            m.set_val(dir);
            o.ext_mnt.push(m);
        }
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
        )))
        .ctx(id, STEP)?;
        let mut inherit = Inherit_fd::new();
        inherit.set_key(super::ns_key(name));
        inherit.set_fd(fd.as_raw_fd());
        o.inherit_fd.push(inherit);
        ns_fds.push(fd);
    }
    // The container's stdio pipes (an engine's) are ours now, at the same numbers.
    for (n, d) in descriptors.iter().enumerate() {
        if d.contains("pipe:") {
            let mut inherit = Inherit_fd::new();
            inherit.set_key(d.clone());
            inherit.set_fd(n as i32);
            o.inherit_fd.push(inherit);
        }
    }
    let keep: Vec<i32> = ns_fds.iter().map(|f| f.as_raw_fd()).collect();
    let criu = Swrk::start(&SwrkIo {
        criu: opts.criu.as_deref(),
        stdio: true,
        keep: &keep,
    })
    .ctx(id, STEP)?;
    // CRIU forks the restored tree: in the container's cgroup, so are they.
    if let (Some(cg), Some((_, rootless))) = (made.cgroup.as_mut(), &cgroup) {
        cg.apply(criu.pid()).ctx(id, STEP)?;
        cg.set(&crate::lifecycle::resources_for(
            bundle.spec.linux().as_ref(),
            *rootless,
        ))
        .ctx(id, STEP)?;
        o.cg_root = cgroup_roots(criu.pid());
    }
    let req = swrk::request(Criu_req_type::RESTORE, o);

    let hooks = plan.hooks.clone();
    let mut restored: Option<i32> = None;
    let state_for_hooks = saved.clone();
    let mut on_notify = |n: &Criu_notify, fd: Option<OwnedFd>| -> std::result::Result<(), String> {
        notified(
            n,
            fd,
            &hooks,
            &state_for_hooks,
            console.as_ref(),
            &mut restored,
        )
    };
    let resp = criu
        .call(&req, &mut on_notify)
        .map_err(|e| super::with_log(e, &log))
        .ctx(id, STEP);
    drop((work, ns_fds));
    made.pid = restored;
    let resp = resp?;
    if !resp.success() {
        return Err(super::criu_failed("restore", &resp, log)).ctx(id, STEP);
    }
    let pid = restored.unwrap_or_else(|| resp.restore.pid());
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
    if let Some(pf) = &create.pid_file {
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
fn cgroup_roots(criu: i32) -> Vec<Cgroup_root> {
    let text = std::fs::read_to_string(format!("/proc/{criu}/cgroup")).unwrap_or_default();
    let mut out = Vec::new();
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrls, path) = match (f.next(), f.next(), f.next()) {
            (Some(h), Some(c), Some(p)) => (h, c, p),
            _ => continue,
        };
        let mut r = Cgroup_root::new();
        if !ctrls.is_empty() {
            r.set_ctrl(ctrls.to_string());
        }
        r.set_path(path.to_string());
        out.push(r);
    }
    out
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
