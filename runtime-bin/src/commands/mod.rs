//! One module per subcommand. Each parses nothing itself (clap did) and calls the library;
//! it returns the exit status or the error message.

pub mod create;
pub mod delete;
pub mod kill;
pub mod list;
pub mod run;
pub mod spec;
pub mod start;
pub mod state;

use std::path::PathBuf;

/// What every command gets from the global flags.
pub struct Ctx {
    pub root: PathBuf,
    pub systemd_cgroup: bool,
}

pub type CmdResult = Result<u8, String>;

/// The flags `create` and `run` share.
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
    pub fn builder(&self, ctx: &Ctx, id: &str) -> casulo::ContainerBuilder {
        let mut b = casulo::ContainerBuilder::new(id, &self.bundle)
            .root(&ctx.root)
            .preserve_fds(self.preserve_fds)
            .no_pivot(self.no_pivot)
            .no_new_keyring(self.no_new_keyring)
            .systemd_cgroup(ctx.systemd_cgroup);
        if let Some(p) = &self.pid_file {
            b = b.pid_file(p);
        }
        if let Some(s) = &self.console_socket {
            b = b.console_socket(s);
        }
        b
    }
}

/// Print a value as indented JSON, as runc does.
pub fn print_json<T: serde::Serialize>(v: &T) -> Result<(), String> {
    let s = serde_json::to_string_pretty(v).map_err(|e| e.to_string())?;
    println!("{s}");
    Ok(())
}
