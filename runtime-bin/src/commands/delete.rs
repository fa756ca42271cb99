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
    match super::load(ctx, &a.id, casulo::Step::Delete) {
        Ok(c) if a.force => c.force_delete().map_err(|e| e.to_string())?,
        Ok(c) => c.delete().map_err(|e| e.to_string())?,
        // As runc: deleting a container that does not exist is not an error with --force.
        Err(e) if a.force && e.kind() == casulo::ErrorKind::NotFound => {}
        Err(e) => return Err(e.to_string()),
    }
    Ok(0)
}
