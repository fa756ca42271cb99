use serde::Serialize;

use super::{CmdResult, Ctx, Format};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    format: Format,
    /// Print only the ids.
    #[arg(short, long)]
    quiet: bool,
}

/// One row of `list --format json`, with runc's field names.
#[derive(Serialize)]
#[allow(non_snake_case)]
struct Row<'a> {
    ociVersion: &'a str,
    id: &'a str,
    pid: i32,
    status: String,
    bundle: &'a std::path::Path,
    rootfs: &'a std::path::Path,
    created: &'a str,
    owner: &'a str,
}

pub fn run(ctx: &Ctx, a: Args) -> CmdResult {
    // As runc: no containers under the default root is an empty list, but a root given with
    // --root that does not exist is a mistake worth reporting.
    if ctx.root_given {
        if let Err(e) = std::fs::metadata(&ctx.root) {
            return Err(format!("list: --root {}: {e}", ctx.root.display()));
        }
    }
    let states = casulo::list(&ctx.root).map_err(|e| e.to_string())?;
    // One write for the whole list: stdout is line-buffered, and a list of thousands of
    // containers would otherwise be thousands of writes.
    if a.quiet {
        let ids: Vec<&str> = states.iter().map(|s| s.id.as_str()).collect();
        if !ids.is_empty() {
            super::outln!("{}", ids.join("\n"));
        }
        return Ok(0);
    }
    match a.format {
        Format::Json => {
            let rows: Vec<Row> = states
                .iter()
                .map(|s| Row {
                    ociVersion: &s.oci_version,
                    id: &s.id,
                    pid: s.pid,
                    status: s.status.to_string(),
                    bundle: &s.bundle,
                    rootfs: &s.rootfs,
                    created: &s.created,
                    owner: &s.owner,
                })
                .collect();
            super::outln!(
                "{}",
                serde_json::to_string(&rows).map_err(|e| e.to_string())?
            );
        }
        Format::Table => {
            let mut rows = vec![[
                "ID".to_string(),
                "PID".into(),
                "STATUS".into(),
                "BUNDLE".into(),
                "CREATED".into(),
                "OWNER".into(),
            ]];
            for s in &states {
                rows.push([
                    s.id.clone(),
                    s.pid.to_string(),
                    s.status.to_string(),
                    s.bundle.display().to_string(),
                    s.created.clone(),
                    s.owner.clone(),
                ]);
            }
            let widths: Vec<usize> = (0..6)
                .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
                .collect();
            let lines: Vec<String> = rows
                .iter()
                .map(|r| {
                    let cells: Vec<String> = r
                        .iter()
                        .zip(&widths)
                        .map(|(c, w)| format!("{c:<w$}"))
                        .collect();
                    cells.join("   ").trim_end().to_string()
                })
                .collect();
            super::outln!("{}", lines.join("\n"));
        }
    }
    Ok(0)
}
