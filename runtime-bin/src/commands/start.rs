use super::{CmdResult, Ctx};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Container id.
    id: String,
}

pub fn run(ctx: &Ctx, a: Args) -> CmdResult {
    super::load(ctx, &a.id, casulo::Step::Start)
        .and_then(|c| c.start())
        .map_err(|e| e.to_string())?;
    Ok(0)
}
