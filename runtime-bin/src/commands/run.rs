use std::os::fd::AsFd;
use std::time::Duration;

use super::{CmdResult, CreateFlags, Ctx};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    flags: CreateFlags,
    /// Return once started instead of waiting for the container.
    #[arg(short, long)]
    detach: bool,
    /// Keep the container's state after it exits (foreground only).
    #[arg(long)]
    keep: bool,
    /// Container id.
    id: String,
}

pub fn run(ctx: &Ctx, mut a: Args) -> CmdResult {
    let mut builder = a.flags.builder(ctx, &a.id)?;
    let bundle = builder.load_bundle().map_err(|e| e.to_string())?;
    if a.detach {
        let c = builder.create_from(bundle).map_err(|e| e.to_string())?;
        if let Err(e) = c.start() {
            let _ = c.delete(true);
            return Err(e.to_string());
        }
        return Ok(0);
    }
    // A terminal in the foreground without a console socket: receive the pty master ourselves
    // and proxy it to our stdio.
    let terminal = bundle
        .spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let listener = if terminal && a.flags.console_socket.is_none() {
        let l = casulo::tty::ConsoleListener::new()
            .map_err(|e| format!("container {:?}: run: {e}", a.id))?;
        builder = builder.console_socket(l.path());
        Some(l)
    } else {
        None
    };
    // The init may be a grandchild (forked after entering its pid namespace): become its
    // reaper, and hold every signal until we can forward it.
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|e| format!("prctl(PR_SET_CHILD_SUBREAPER): {e}"))?;
    casulo::lifecycle::foreground::block_signals().map_err(|e| e.to_string())?;
    let c = builder.create_from(bundle).map_err(|e| e.to_string())?;
    let master = match &listener {
        Some(l) => match l.recv_master(Duration::from_secs(10)).and_then(|m| {
            // Before start: the program's first line already comes without `\r`.
            casulo::tty::disable_onlcr(m.as_fd())?;
            Ok(m)
        }) {
            Ok(m) => Some(m),
            Err(e) => {
                let _ = c.clone().delete(true);
                return Err(format!("container {:?}: run: {e}", a.id));
            }
        },
        None => None,
    };
    drop(listener);
    if let Err(e) = c.start() {
        let _ = c.clone().delete(true);
        return Err(e.to_string());
    }
    let code = super::wait_foreground(c.pid(), master);
    if !a.keep {
        if let Err(e) = c.clone().delete(true) {
            tracing::warn!("{e}");
        }
    }
    let code = code.map_err(|e| format!("container {:?}: run: {e}", a.id))?;
    Ok(u8::try_from(code).unwrap_or(255))
}
