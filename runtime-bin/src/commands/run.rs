use super::{CmdResult, CreateFlags, Ctx};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    flags: CreateFlags,
    /// Return once started instead of waiting for the container.
    #[arg(short, long)]
    detach: bool,
    /// Keep the container's state after it exits (foreground only).
    #[arg(long)]
    keep: bool,
    /// Do not make this process a child subreaper. casulo never makes itself one (the
    /// container's init is its child already), so there is nothing to turn off.
    #[arg(long)]
    no_subreaper: bool,
    /// Container id.
    id: String,
}

pub fn run(ctx: &Ctx, mut a: Args) -> CmdResult {
    if a.no_subreaper {
        tracing::debug!("--no-subreaper: casulo never makes itself a child subreaper");
    }
    let builder = a.flags.builder(ctx, &a.id)?;
    if a.detach {
        builder.run_detached().map_err(|e| e.to_string())?;
        return Ok(0);
    }
    let code = builder
        .run_foreground(casulo::RunOptions { keep: a.keep })
        .map_err(|e| e.to_string())?;
    Ok(u8::try_from(code).unwrap_or(255))
}
