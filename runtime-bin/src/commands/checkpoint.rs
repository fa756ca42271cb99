//! `checkpoint` and `restore`: runc's commands for CRIU, which casulo does not implement. They
//! exist so that their help answers and a client that tries them gets a refusal that names
//! what is missing, not a usage error.
use super::{CmdResult, Ctx};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// runc's options for the command, then the container id (all refused).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    args: Vec<String>,
}

/// Refuse `what` (checkpoint or restore) for the container named last on the command line.
pub fn refuse(_ctx: &Ctx, what: &str, a: Args) -> CmdResult {
    let id = a.args.last().map(String::as_str).unwrap_or("");
    Err(format!(
        "container {id:?}: {what}: not supported: casulo has no checkpoint/restore (CRIU) support"
    ))
}
