use super::{CmdResult, Ctx};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Kill the container first if it is still running.
    #[arg(short, long)]
    force: bool,
    /// Container id.
    id: String,
}

pub fn run(ctx: &Ctx, a: Args) -> CmdResult {
    if a.force {
        // Whatever is left of it; a container that does not exist is not an error (runc).
        casulo::force_delete(&ctx.root, &a.id).map_err(|e| e.to_string())?;
        return Ok(0);
    }
    super::load(ctx, &a.id, casulo::Step::Delete)
        .and_then(|c| c.delete())
        .map_err(|e| e.to_string())?;
    Ok(0)
}
