use super::{CmdResult, Ctx};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Container id.
    id: String,
}

/// `pause`: freeze every process of the container.
pub fn pause(ctx: &Ctx, a: Args) -> CmdResult {
    super::load(ctx, &a.id, casulo::Step::Pause)
        .and_then(|c| c.pause())
        .map_err(|e| e.to_string())?;
    Ok(0)
}

/// `resume`: thaw a paused container.
pub fn resume(ctx: &Ctx, a: Args) -> CmdResult {
    super::load(ctx, &a.id, casulo::Step::Resume)
        .and_then(|c| c.resume())
        .map_err(|e| e.to_string())?;
    Ok(0)
}
