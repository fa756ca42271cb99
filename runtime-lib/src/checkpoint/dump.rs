//! `checkpoint`: the container's processes dumped by CRIU (see the module above).

use std::path::{Path, PathBuf};

use rust_criu::rust_criu_protobuf::rpc::{
    Criu_notify, Criu_page_server_info, Criu_req_type, Ext_mount_map,
};

use super::swrk::{self, Swrk, SwrkIo};
use super::{CheckpointError, CheckpointOptions};
use crate::error::{Context, Result, Step};
use crate::state::Status;
use crate::Container;

const STEP: Step = Step::Checkpoint;

impl Container {
    /// Checkpoint the running (or paused) container with CRIU into `opts.criu.image_path`. Unless
    /// `opts.leave_running` or `opts.pre_dump`, the container's processes end with the dump
    /// and the container is deleted (its poststop hooks run), as with runc; a later
    /// [`ContainerBuilder::restore`](crate::ContainerBuilder::restore) brings it back.
    ///
    /// ```no_run
    /// use casulo::{CheckpointOptions, Container, CriuFlags};
    ///
    /// let c = Container::load("/run/casulo", "web")?;
    /// c.checkpoint(&CheckpointOptions {
    ///     criu: CriuFlags {
    ///         image_path: "/var/lib/web-checkpoint".into(),
    ///         ..Default::default()
    ///     },
    ///     ..Default::default()
    /// })?;
    /// # Ok::<(), casulo::Error>(())
    /// ```
    pub fn checkpoint(&self, opts: &CheckpointOptions) -> Result<()> {
        let id = self.id().to_string();
        {
            let dir = self.lock(STEP)?;
            let status = dir.status(&self.saved);
            if status != Status::Running && status != Status::Paused {
                return Err(crate::container::invalid_state(
                    &id,
                    STEP,
                    format!("cannot checkpoint a container that is {status}"),
                ));
            }
            dump(self, opts, dir.path()).ctx(&id, STEP)?;
        }
        if !opts.leave_running && !opts.pre_dump {
            // CRIU killed the processes after the dump; what is left is runc's destroy.
            self.clone().force_delete().map_err(|mut e| {
                e.step = STEP;
                e
            })?;
        }
        Ok(())
    }
}

/// `--parent-path` as runc checks it: relative to the image path, and a directory there.
fn check_parent(image: &Path, parent: &Path) -> Result<(), CheckpointError> {
    if parent.is_absolute() {
        return Err(CheckpointError::Invalid(
            "--parent-path must be relative".into(),
        ));
    }
    let real = image.join(parent);
    match std::fs::metadata(&real) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(CheckpointError::Invalid(format!(
            "invalid --parent-path: {}: not a directory",
            real.display()
        ))),
        Err(e) => Err(CheckpointError::Invalid(format!(
            "invalid --parent-path: {}: {e}",
            real.display()
        ))),
    }
}

fn dump(c: &Container, opts: &CheckpointOptions, state_dir: &Path) -> Result<(), CheckpointError> {
    // The flags first, then the directories (made if missing), then CRIU.
    let page_server = opts
        .page_server
        .as_deref()
        .map(parse_page_server)
        .transpose()?;
    if let Some(fd) = opts.status_fd {
        check_status_fd(fd)?;
    }
    let session = opts.criu.session("dump.log", true)?;
    if let Some(parent) = &opts.parent_path {
        check_parent(&opts.criu.image_path, parent)?;
    }
    swrk::check_version(opts.criu.criu.as_deref())?;
    let saved = &c.saved;

    let mut o = session.opts(&saved.rootfs);
    o.set_pid(saved.pid);
    o.set_leave_running(opts.leave_running);
    o.set_tcp_skip_in_flight(opts.tcp_skip_in_flight);
    o.set_link_remap(opts.link_remap);
    if let Some((address, port)) = page_server {
        let mut ps = Criu_page_server_info::new();
        ps.set_address(address);
        ps.set_port(port);
        o.ps = protobuf::MessageField::some(ps);
    }
    if let Some(parent) = &opts.parent_path {
        o.set_parent_img(parent.to_string_lossy().into_owned());
        o.set_track_mem(true);
    }
    // CRIU freezes the container with its cgroup's freezer rather than task by task.
    if let Some(freezer) = freezer_path(&saved.cgroup_paths) {
        o.set_freeze_cgroup(freezer.to_string_lossy().into_owned());
    }
    let bundle = crate::bundle::Bundle::load(&saved.bundle)
        .map_err(|e| CheckpointError::Invalid(format!("the container's bundle: {e}")))?;
    for (name, path) in super::joined_namespaces(&bundle.spec) {
        let meta = std::fs::metadata(&path).map_err(CheckpointError::io(format!(
            "{name} namespace {}",
            path.display()
        )))?;
        o.external.push(format!(
            "{name}[{}]:{}",
            std::os::unix::fs::MetadataExt::ino(&meta),
            super::ns_key(name)
        ));
    }
    let typ = if opts.pre_dump {
        o.set_track_mem(true);
        Criu_req_type::PRE_DUMP
    } else {
        let mounts = super::external_mounts(&bundle.spec, &saved.bundle, &saved.rootfs);
        let cgroups = super::cgroup_mounts(&bundle.spec, &saved.cgroup_paths);
        for (dest, _) in mounts.into_iter().chain(cgroups) {
            let mut m = Ext_mount_map::new();
            m.set_key(dest.clone());
            m.set_val(dest);
            o.ext_mnt.push(m);
        }
        write_descriptors(saved.pid, &opts.criu.image_path)?;
        Criu_req_type::DUMP
    };

    let req = swrk::request(typ, o);
    // The lazy page server's readiness goes to --status-fd from here, at CRIU's status-ready
    // notification, as runc does: CRIU's own status_fd option is obsolete (it warns).
    let mut on_notify = |n: &Criu_notify, _: Option<std::os::fd::OwnedFd>| match opts.status_fd {
        Some(fd) if n.script() == "status-ready" => status_ready(fd),
        _ => Ok(()),
    };
    let criu = Swrk::start(&SwrkIo {
        criu: opts.criu.criu.as_deref(),
        stdio: false,
        keep: &[],
    })?;
    let busy = match InProgress::record(state_dir, criu.pid()) {
        Ok(busy) => busy,
        Err(e) => {
            criu.abandon();
            return Err(e);
        }
    };
    let resp = criu.call(&req, &mut on_notify);
    drop(busy);
    let resp = resp.map_err(|e| super::with_log(e, &session.log))?;
    if !resp.success() {
        let what = if opts.pre_dump { "pre-dump" } else { "dump" };
        return Err(super::criu_failed(what, &resp, &session.log));
    }
    Ok(())
}

/// The file in the container's state directory that names the CRIU of a dump in progress,
/// and the runtime that started it, for `delete --force` (see [`stop_dump`]).
const IN_PROGRESS: &str = "criu.pid";

/// A dump in progress, recorded while CRIU runs; the record goes with it.
struct InProgress(PathBuf);

impl InProgress {
    fn record(state_dir: &Path, criu: i32) -> Result<InProgress, CheckpointError> {
        let path = state_dir.join(IN_PROGRESS);
        let text = format!("{criu} {}\n", std::process::id());
        crate::state::write_atomic(&path, text.as_bytes(), 0o600)
            .map_err(CheckpointError::io(format!("write {}", path.display())))?;
        Ok(InProgress(path))
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Stop the dump in progress of the container whose state directory is `state_dir`, if there
/// is one: its CRIU is killed, so that the checkpoint fails and lets go of the container. A
/// dump holds the container's lock for as long as CRIU runs, and a lazy one until its last page
/// is fetched, which may be never: `delete --force` must not wait for that. Only a CRIU whose
/// parent is still the checkpoint that recorded it is killed (through a pidfd, so a reused pid
/// is never signalled); a record left by a checkpoint that died is ignored.
pub(crate) fn stop_dump(state_dir: &Path) {
    let Ok(text) = std::fs::read_to_string(state_dir.join(IN_PROGRESS)) else {
        return;
    };
    let mut words = text.split_whitespace().map(str::parse::<i32>);
    let (Some(Ok(criu)), Some(Ok(holder))) = (words.next(), words.next()) else {
        return;
    };
    let Ok(fd) = crate::sys::pidfd_open(criu) else {
        return;
    };
    let ours = procfs::process::Process::new(criu)
        .and_then(|p| p.stat())
        .is_ok_and(|st| st.ppid == holder && st.comm == "criu");
    if ours {
        tracing::warn!("stopping the checkpoint in progress: killing its criu (pid {criu})");
        let _ = crate::sys::pidfd_send_signal(std::os::fd::AsFd::as_fd(&fd), libc::SIGKILL);
    }
}

/// The freezer of the container's cgroup: v2's only directory, or v1's freezer hierarchy.
fn freezer_path(paths: &[PathBuf]) -> Option<PathBuf> {
    match paths {
        [only] if !only.to_string_lossy().contains("/freezer") => Some(only.clone()),
        _ => paths
            .iter()
            .find(|p| p.to_string_lossy().contains("/freezer/"))
            .cloned(),
    }
}

/// runc's descriptors.json: where the init's stdio pointed, for restore to map its pipes.
fn write_descriptors(pid: i32, images: &Path) -> Result<(), CheckpointError> {
    let mut fds = Vec::new();
    for n in 0..3 {
        let target = std::fs::read_link(format!("/proc/{pid}/fd/{n}"))
            .map(|t| t.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "/dev/null".into());
        fds.push(target);
    }
    let json = serde_json::to_vec(&fds).unwrap_or_default();
    let path = images.join(super::DESCRIPTORS);
    crate::state::write_atomic(&path, &json, 0o600)
        .map_err(CheckpointError::io(format!("write {}", path.display())))
}

/// `ADDRESS:PORT`, as runc reads `--page-server`.
fn parse_page_server(s: &str) -> Result<(String, i32), CheckpointError> {
    let bad =
        || CheckpointError::Invalid("Use --page-server ADDRESS:PORT to specify page server".into());
    let (address, port) = s.rsplit_once(':').ok_or_else(bad)?;
    if address.is_empty() || port.is_empty() {
        return Err(bad());
    }
    let port = port.parse::<u16>().map_err(|_| {
        CheckpointError::Invalid(format!("--page-server {s:?}: invalid port number"))
    })?;
    Ok((
        address.trim_matches(['[', ']']).to_string(),
        i32::from(port),
    ))
}

/// Tell `--status-fd` that the lazy page server is ready: one `\0` byte.
fn status_ready(fd: i32) -> Result<(), String> {
    crate::sys::write_byte(fd, 0).map_err(|e| format!("write to --status-fd {fd}: {e}"))
}

/// `--status-fd` must be an open, writable fd.
fn check_status_fd(fd: i32) -> Result<(), CheckpointError> {
    let bad =
        |why: String| CheckpointError::Invalid(format!("invalid --status-fd argument {fd}: {why}"));
    let mode = crate::sys::fd_access_mode(fd).map_err(|e| bad(e.to_string()))?;
    if mode != libc::O_WRONLY && mode != libc::O_RDWR {
        return Err(bad("not writable".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_server_is_address_and_port() {
        assert_eq!(
            parse_page_server("10.0.0.1:8080").unwrap(),
            ("10.0.0.1".to_string(), 8080)
        );
        assert_eq!(
            parse_page_server("[::1]:27").unwrap(),
            ("::1".to_string(), 27)
        );
        for bad in ["10.0.0.1", ":80", "host:", "host:port", "host:70000"] {
            assert!(parse_page_server(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parent_path_is_relative_and_a_directory() {
        let dir = std::env::temp_dir().join(format!("casulo-parent-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("pre")).unwrap();
        std::fs::write(dir.join("file"), "").unwrap();
        assert!(check_parent(&dir, Path::new("pre")).is_ok());
        let abs = check_parent(&dir, &dir.join("pre"))
            .unwrap_err()
            .to_string();
        assert_eq!(abs, "--parent-path must be relative");
        assert!(check_parent(&dir, Path::new("file"))
            .unwrap_err()
            .to_string()
            .contains("not a directory"));
        assert!(check_parent(&dir, Path::new("missing"))
            .unwrap_err()
            .to_string()
            .contains("invalid --parent-path"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn freezer_is_v2_directory_or_v1_freezer() {
        let v2 = [PathBuf::from("/sys/fs/cgroup/a/b")];
        assert_eq!(freezer_path(&v2), Some(v2[0].clone()));
        let v1 = [
            PathBuf::from("/sys/fs/cgroup/cpu/a"),
            PathBuf::from("/sys/fs/cgroup/freezer/a"),
        ];
        assert_eq!(freezer_path(&v1), Some(v1[1].clone()));
        assert_eq!(freezer_path(&[]), None);
    }
}
