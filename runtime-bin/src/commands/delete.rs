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
        Ok(c) => c.delete(a.force).map_err(|e| e.to_string())?,
        // As runc: deleting a container that does not exist is not an error with --force.
        Err(casulo::Error {
            kind: casulo::ErrorKind::State(casulo::state::StateError::NotFound),
            ..
        }) if a.force => {}
        Err(e) => return Err(e.to_string()),
    }
    Ok(0)
}
