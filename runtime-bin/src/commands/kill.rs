use super::{CmdResult, Ctx};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Signal every process of the container, not only its init.
    #[arg(short, long)]
    all: bool,
    /// Container id.
    id: String,
    /// Signal, by name (TERM, SIGTERM) or number.
    #[arg(default_value = "SIGTERM")]
    signal: String,
}

/// Parse a signal as runc does: a number, or a name with or without SIG, in any case. 0
/// sends nothing and checks that the container is running, as kill(2) does.
pub fn parse_signal(s: &str) -> Result<i32, String> {
    let max = libc::SIGRTMAX();
    if let Ok(n) = s.parse::<i32>() {
        return if (0..=max).contains(&n) {
            Ok(n)
        } else {
            Err(format!("invalid signal {s:?}: out of range 0..{max}"))
        };
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    if let Some(rest) = name.strip_prefix("SIGRTMIN") {
        let off: i32 = if rest.is_empty() {
            0
        } else {
            rest.trim_start_matches('+')
                .parse()
                .map_err(|_| format!("invalid signal {s:?}"))?
        };
        let n = libc::SIGRTMIN() + off;
        return if n <= max {
            Ok(n)
        } else {
            Err(format!("invalid signal {s:?}"))
        };
    }
    if let Some(rest) = name.strip_prefix("SIGRTMAX") {
        let off: i32 = if rest.is_empty() {
            0
        } else {
            rest.parse::<i32>()
                .map_err(|_| format!("invalid signal {s:?}"))?
        };
        let n = max + off;
        return if n >= libc::SIGRTMIN() && off <= 0 {
            Ok(n)
        } else {
            Err(format!("invalid signal {s:?}"))
        };
    }
    name.parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .map_err(|_| format!("invalid signal {s:?}"))
}

pub fn run(ctx: &Ctx, a: Args) -> CmdResult {
    let sig = parse_signal(&a.signal)?;
    super::load(ctx, &a.id, casulo::Step::Kill)
        .and_then(|c| if a.all { c.kill_all(sig) } else { c.kill(sig) })
        .map_err(|e| e.to_string())?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::parse_signal;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("9"), Ok(9));
        assert_eq!(parse_signal("KILL"), Ok(9));
        assert_eq!(parse_signal("sigterm"), Ok(15));
        assert_eq!(parse_signal("SIGUSR1"), Ok(10));
        assert_eq!(parse_signal("SIGRTMIN+1"), Ok(libc::SIGRTMIN() + 1));
        assert_eq!(parse_signal("0"), Ok(0));
        assert!(parse_signal("-1").is_err());
        assert!(parse_signal("65").is_err());
        assert!(parse_signal("SIGBOGUS").is_err());
    }
}
