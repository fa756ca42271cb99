use std::path::PathBuf;

use super::{CmdResult, Ctx};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where to write config.json.
    #[arg(short, long, default_value = ".", value_name = "DIR")]
    bundle: PathBuf,
    /// A spec for a rootless container.
    #[arg(long)]
    rootless: bool,
}

pub fn run(_ctx: &Ctx, a: Args) -> CmdResult {
    let path = a.bundle.join("config.json");
    if path.exists() {
        return Err(format!(
            "spec: {} already exists: remove it first",
            path.display()
        ));
    }
    // The JSON form keeps runc's order of capability lists.
    let spec = casulo::default_spec_json(casulo::SpecOptions {
        rootless: a.rootless,
    });
    let json = serde_json::to_string_pretty(&spec).map_err(|e| e.to_string())?;
    std::fs::write(&path, json + "\n")
        .map_err(|e| format!("spec: write {}: {e}", path.display()))?;
    Ok(0)
}
