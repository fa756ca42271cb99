//! `checkpoint` and `restore`, with runc's flags, through the library's CRIU support.
use std::path::PathBuf;

use super::{load, CmdResult, CreateFlags, Ctx};

// The flags both commands share (runc's names; a plain comment: clap would make a doc
// comment the about text of both commands).
#[derive(clap::Args, Debug)]
pub struct CriuFlags {
    /// Path for the CRIU image files (default: ./checkpoint).
    #[arg(long, value_name = "DIR")]
    image_path: Option<PathBuf>,
    /// Path for CRIU's work files and log (default: the image path).
    #[arg(long, value_name = "DIR")]
    work_path: Option<PathBuf>,
    /// Allow open TCP connections.
    #[arg(long)]
    tcp_established: bool,
    /// Allow external unix sockets.
    #[arg(long)]
    ext_unix_sk: bool,
    /// Allow shell jobs (a terminal of the caller's).
    #[arg(long)]
    shell_job: bool,
    /// Handle file locks.
    #[arg(long)]
    file_locks: bool,
    /// cgroups mode: soft, full, strict or ignore (default: soft).
    #[arg(long, value_name = "MODE")]
    manage_cgroups_mode: Option<String>,
    /// Create a namespace, but do not restore its properties (network only).
    #[arg(long, value_name = "NS")]
    empty_ns: Vec<String>,
    /// Enable auto deduplication of memory images.
    #[arg(long)]
    auto_dedup: bool,
    /// Use userfaultfd to restore memory pages lazily.
    #[arg(long)]
    lazy_pages: bool,
}

impl CriuFlags {
    fn image_path(&self) -> Result<PathBuf, String> {
        let p = self
            .image_path
            .clone()
            .unwrap_or_else(|| PathBuf::from("checkpoint"));
        std::path::absolute(&p).map_err(|e| format!("--image-path {}: {e}", p.display()))
    }

    fn work_path(&self) -> Result<Option<PathBuf>, String> {
        self.work_path
            .as_ref()
            .map(|p| {
                std::path::absolute(p).map_err(|e| format!("--work-path {}: {e}", p.display()))
            })
            .transpose()
    }

    fn cgroups_mode(&self) -> Result<casulo::CgroupsMode, String> {
        self.manage_cgroups_mode
            .as_deref()
            .map(casulo::CgroupsMode::parse)
            .transpose()
            .map(Option::unwrap_or_default)
    }

    /// The library's form, with `criu` the CRIU binary to run (`--criu`).
    fn library(&self, criu: Option<PathBuf>) -> Result<casulo::CriuFlags, String> {
        Ok(casulo::CriuFlags {
            criu,
            image_path: self.image_path()?,
            work_path: self.work_path()?,
            tcp_established: self.tcp_established,
            ext_unix_sk: self.ext_unix_sk,
            shell_job: self.shell_job,
            file_locks: self.file_locks,
            cgroups_mode: self.cgroups_mode()?,
            empty_ns: self.empty_ns.clone(),
            auto_dedup: self.auto_dedup,
            lazy_pages: self.lazy_pages,
        })
    }
}

#[derive(clap::Args, Debug)]
pub struct CheckpointArgs {
    #[command(flatten)]
    criu: CriuFlags,
    /// Path of a pre-dump's images, relative to the image path.
    #[arg(long, value_name = "DIR")]
    parent_path: Option<PathBuf>,
    /// Leave the container running after the checkpoint.
    #[arg(long)]
    leave_running: bool,
    /// Skip in-flight TCP connections.
    #[arg(long)]
    tcp_skip_in_flight: bool,
    /// Link unlinked files back when possible.
    #[arg(long)]
    link_remap: bool,
    /// Dump the memory only, and leave the container running.
    #[arg(long)]
    pre_dump: bool,
    /// With --lazy-pages: CRIU writes \0 to this fd once the lazy pages are served.
    #[arg(long, value_name = "FD")]
    status_fd: Option<i32>,
    /// ADDRESS:PORT of a page server.
    #[arg(long, value_name = "ADDRESS:PORT")]
    page_server: Option<String>,
    /// Container id.
    id: String,
}

#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    #[command(flatten)]
    criu: CriuFlags,
    /// Path to the bundle directory.
    #[arg(short, long, default_value = ".", value_name = "DIR")]
    bundle: PathBuf,
    /// File to write the restored init's pid to.
    #[arg(long, value_name = "FILE")]
    pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master of a checkpointed terminal.
    #[arg(long, value_name = "PATH")]
    console_socket: Option<PathBuf>,
    /// Accepted as runc's: CRIU switches to the container's root itself.
    #[arg(long)]
    no_pivot: bool,
    /// The LSM profile of the restored processes (CRIU's "type:label").
    #[arg(long, value_name = "TYPE:LABEL")]
    lsm_profile: Option<String>,
    /// The LSM mount context of the restored mounts.
    #[arg(long, value_name = "CONTEXT")]
    lsm_mount_context: Option<String>,
    /// Return once restored instead of waiting for the container.
    #[arg(short, long)]
    detach: bool,
    /// Accepted as runc's: casulo never makes itself a subreaper (the restored init is its
    /// child, as a created one is).
    #[arg(long)]
    no_subreaper: bool,
    /// Container id.
    id: String,
}

/// `checkpoint [flags] ID`.
pub fn checkpoint(ctx: &Ctx, criu: Option<PathBuf>, a: CheckpointArgs) -> CmdResult {
    let c = load(ctx, &a.id, casulo::Step::Checkpoint).map_err(|e| e.to_string())?;
    let fail = |e: String| format!("container {:?}: checkpoint: {e}", a.id);
    let opts = casulo::CheckpointOptions {
        criu: a.criu.library(criu).map_err(fail)?,
        parent_path: a.parent_path.clone(),
        leave_running: a.leave_running,
        tcp_skip_in_flight: a.tcp_skip_in_flight,
        link_remap: a.link_remap,
        pre_dump: a.pre_dump,
        status_fd: a.status_fd,
        page_server: a.page_server.clone(),
    };
    c.checkpoint(&opts).map_err(|e| e.to_string())?;
    Ok(0)
}

/// `restore [flags] ID`.
pub fn restore(ctx: &Ctx, criu: Option<PathBuf>, a: RestoreArgs) -> CmdResult {
    let fail = |e: String| format!("container {:?}: restore: {e}", a.id);
    // Before the builder: it works from the bundle directory, and relative paths are ours.
    let opts = casulo::RestoreOptions {
        criu: a.criu.library(criu).map_err(fail)?,
        lsm_profile: a.lsm_profile.clone(),
        lsm_mount_context: a.lsm_mount_context.clone(),
    };
    let mut create = CreateFlags {
        bundle: a.bundle.clone(),
        pid_file: a.pid_file.clone(),
        console_socket: a.console_socket.clone(),
        no_pivot: a.no_pivot,
        no_new_keyring: false,
        preserve_fds: 0,
        pidfd_socket: None,
    };
    let builder = create.builder(ctx, &a.id)?;
    if a.detach {
        builder.restore(&opts).map_err(|e| e.to_string())?;
        return Ok(0);
    }
    let code = builder
        .restore_foreground(&opts)
        .map_err(|e| e.to_string())?;
    Ok(u8::try_from(code).unwrap_or(255))
}
