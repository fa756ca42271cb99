use super::{CmdResult, CreateFlags, Ctx};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    flags: CreateFlags,
    /// Container id.
    id: String,
}

pub fn run(ctx: &Ctx, mut a: Args) -> CmdResult {
    a.flags
        .builder(ctx, &a.id)?
        .create()
        .map_err(|e| e.to_string())?;
    Ok(0)
}
