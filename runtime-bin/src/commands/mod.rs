//! One module per subcommand. Each parses nothing itself (clap did) and calls the library;
//! it returns the exit status or the error message.

/// println! that treats a closed stdout (`casulo list | head`) as the end of the output
/// instead of a panic.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
pub(crate) use outln;

pub mod checkpoint;
pub mod create;
pub mod delete;
pub mod events;
pub mod exec;
pub mod features;
pub mod kill;
pub mod list;
pub mod pause;
pub mod ps;
pub mod run;
pub mod spec;
pub mod start;
pub mod state;
pub mod update;

use std::path::PathBuf;

/// `--format` of `list` and `ps`: a table for people or JSON for programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// What every command gets from the global flags.
pub struct Ctx {
    pub root: PathBuf,
    /// Whether `root` was given with --root (rather than the default).
    pub root_given: bool,
    pub systemd_cgroup: bool,
    /// `--rootless`: `None` for auto.
    pub rootless: Option<bool>,
}

pub type CmdResult = Result<u8, String>;

// The flags `create` and `run` share (a plain comment: clap would make a doc comment the
// about text of both commands).
#[derive(clap::Args, Debug, Clone)]
pub struct CreateFlags {
    /// Path to the bundle directory.
    #[arg(short, long, default_value = ".", value_name = "DIR")]
    pub bundle: PathBuf,
    /// File to write the init's pid to.
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master (process.terminal).
    #[arg(long, value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Unix socket that receives a pidfd of the container's init (SCM_RIGHTS).
    #[arg(long, value_name = "PATH")]
    pub pidfd_socket: Option<PathBuf>,
    /// Use chroot instead of pivot_root.
    #[arg(long)]
    pub no_pivot: bool,
    /// Do not create a new session keyring.
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Pass this many fds (from 3 on) to the container.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub preserve_fds: u32,
}

impl CreateFlags {
    /// The builder for these flags. Like runc, the command then works from the bundle
    /// directory (hooks run there); paths given on the command line are made absolute first.
    pub fn builder(&mut self, ctx: &Ctx, id: &str) -> Result<casulo::ContainerBuilder, String> {
        let abs = |p: &PathBuf| std::path::absolute(p).map_err(|e| format!("{}: {e}", p.display()));
        self.bundle = abs(&self.bundle)?;
        self.pid_file = self.pid_file.as_ref().map(abs).transpose()?;
        self.console_socket = self.console_socket.as_ref().map(abs).transpose()?;
        self.pidfd_socket = self.pidfd_socket.as_ref().map(abs).transpose()?;
        if let Err(e) = std::env::set_current_dir(&self.bundle) {
            return Err(format!(
                "container {id:?}: create: bundle {}: {e}",
                self.bundle.display()
            ));
        }
        let mut b = casulo::ContainerBuilder::new(id, &self.bundle)
            .root(&ctx.root)
            .preserve_fds(self.preserve_fds)
            .no_pivot(self.no_pivot)
            .no_new_keyring(self.no_new_keyring)
            .systemd_cgroup(ctx.systemd_cgroup)
            .rootless_cgroups(ctx.rootless);
        if let Some(p) = &self.pid_file {
            b = b.pid_file(p);
        }
        if let Some(s) = &self.console_socket {
            b = b.console_socket(s);
        }
        if let Some(s) = &self.pidfd_socket {
            b = b.pidfd_socket(s);
        }
        Ok(b)
    }
}

/// Load container `id`; an error is reported as a failure of the command's own `step`.
pub fn load(ctx: &Ctx, id: &str, step: casulo::Step) -> Result<casulo::Container, casulo::Error> {
    casulo::Container::load(&ctx.root, id).map_err(|mut e| {
        e.step = step;
        e
    })
}

/// Print a value as indented JSON, as runc does.
pub fn print_json<T: serde::Serialize>(v: &T) -> Result<(), String> {
    let s = serde_json::to_string_pretty(v).map_err(|e| e.to_string())?;
    outln!("{s}");
    Ok(())
}
