use std::process::Command;

use super::{CmdResult, Ctx, Format};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Output format: the host's ps output for the container's processes, or their pids.
    #[arg(short, long, value_enum, default_value = "table")]
    format: Format,
    /// Container id.
    id: String,
    /// Arguments for ps(1) (default -ef).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    ps_args: Vec<String>,
}

pub fn run(ctx: &Ctx, a: Args) -> CmdResult {
    let pids = super::load(ctx, &a.id, casulo::Step::Ps)
        .and_then(|c| c.processes())
        .map_err(|e| e.to_string())?;
    if a.format == Format::Json {
        super::outln!(
            "{}",
            serde_json::to_string(&pids).map_err(|e| e.to_string())?
        );
        return Ok(0);
    }
    let args = if a.ps_args.is_empty() {
        vec!["-ef".to_string()]
    } else {
        a.ps_args
    };
    let out = Command::new("ps")
        .args(&args)
        .output()
        .map_err(|e| format!("container {:?}: ps: run ps: {e}", a.id))?;
    if !out.status.success() {
        return Err(format!(
            "container {:?}: ps: ps {}: {}",
            a.id,
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| {
            format!(
                "container {:?}: ps: no PID column in the output of ps {}",
                a.id,
                args.join(" ")
            )
        })?;
    super::outln!("{header}");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            super::outln!("{line}");
        }
    }
    Ok(0)
}
