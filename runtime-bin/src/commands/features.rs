use super::{print_json, CmdResult, Ctx};

#[derive(clap::Args, Debug)]
pub struct Args {}

/// `features`: the runtime-spec features document of this runtime on this kernel.
pub fn run(_ctx: &Ctx, _a: Args) -> CmdResult {
    print_json(&casulo::features())?;
    Ok(0)
}
