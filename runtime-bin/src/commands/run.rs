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
    /// Container id.
    id: String,
}

pub fn run(ctx: &Ctx, a: Args) -> CmdResult {
    if a.detach {
        let c = a.flags.builder(ctx, &a.id).create().map_err(|e| e.to_string())?;
        if let Err(e) = c.start() {
            let _ = c.delete(true);
            return Err(e.to_string());
        }
        return Ok(0);
    }
    // The init may be a grandchild (forked after entering its pid namespace): become its
    // reaper, and hold every signal until we can forward it.
    nix::sys::prctl::set_child_subreaper(true).map_err(|e| format!("prctl(PR_SET_CHILD_SUBREAPER): {e}"))?;
    casulo::process::foreground::block_signals().map_err(|e| e.to_string())?;
    let c = a.flags.builder(ctx, &a.id).create().map_err(|e| e.to_string())?;
    if let Err(e) = c.start() {
        let _ = c.clone().delete(true);
        return Err(e.to_string());
    }
    let code = c.wait_forwarding_signals();
    if !a.keep {
        if let Err(e) = c.clone().delete(true) {
            tracing::warn!("{e}");
        }
    }
    let code = code.map_err(|e| e.to_string())?;
    Ok(u8::try_from(code).unwrap_or(255))
}
