use super::{print_json, CmdResult, Ctx};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Container id.
    id: String,
}

pub fn run(ctx: &Ctx, a: Args) -> CmdResult {
    let state = casulo::state_of(&ctx.root, &a.id).map_err(|e| e.to_string())?;
    print_json(&state)?;
    Ok(0)
}
