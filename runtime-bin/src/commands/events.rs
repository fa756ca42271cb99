use std::io::Write;
use std::time::Duration;

use super::{CmdResult, Ctx};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Set the stats collection interval (Go duration: 5s, 500ms, 1m30s, 1h).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_interval,
        allow_hyphen_values = true)]
    interval: Duration,
    /// Display the container's stats then exit.
    #[arg(long)]
    stats: bool,
    /// Container id.
    id: String,
}

/// A duration in Go's `time.ParseDuration` syntax: an optional sign, then one or more
/// decimal numbers (with an optional fraction) each followed by a unit: `ns`, `us` (`µs`,
/// `μs`), `ms`, `s`, `m`, `h`. `0` alone is zero. Negative values are refused, having no
/// meaning here.
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let invalid = || format!("invalid duration {s:?}");
    let (negative, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    // Nanoseconds, at most i64::MAX as in Go.
    const MAX: u128 = i64::MAX as u128;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int, after) = rest.split_at(int_len);
        let (frac, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.bytes().take_while(u8::is_ascii_digit).count();
                a.split_at(n)
            }
            None => ("", after),
        };
        if int.is_empty() && frac.is_empty() {
            return Err(invalid());
        }
        let unit_len = after
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(after.len(), |(i, _)| i);
        let (unit, after) = after.split_at(unit_len);
        let per: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(format!("missing unit in duration {s:?}")),
            u => return Err(format!("unknown unit {u:?} in duration {s:?}")),
        };
        let too_big = || format!("duration {s:?} is too large");
        let whole: u128 = if int.is_empty() {
            0
        } else {
            int.parse::<u128>().map_err(|_| too_big())?
        };
        let mut value = whole.checked_mul(per).ok_or_else(too_big)?;
        // The fraction, exactly: digits beyond nanosecond precision are dropped.
        let mut scale: u128 = 1;
        let mut digits: u128 = 0;
        for d in frac.bytes().take(20) {
            digits = digits * 10 + u128::from(d - b'0');
            scale *= 10;
        }
        value += digits * per / scale;
        total = total.checked_add(value).ok_or_else(too_big)?;
        if total > MAX {
            return Err(too_big());
        }
        rest = after;
    }
    if negative && total > 0 {
        return Err(format!("duration {s:?} is negative"));
    }
    Ok(Duration::from_nanos(total as u64))
}

/// `--interval`: a Go duration greater than zero (runc's rule).
fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = parse_go_duration(s)?;
    if d.is_zero() {
        return Err("duration interval must be greater than 0".into());
    }
    Ok(d)
}

/// Write one event as a line of JSON and flush it; false when stdout is gone.
fn emit(ev: &casulo::Event) -> bool {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, ev).is_ok()
        && out.write_all(b"\n").is_ok()
        && out.flush().is_ok()
}

pub fn run(ctx: &Ctx, a: Args) -> CmdResult {
    let c = super::load(ctx, &a.id, casulo::Step::Events).map_err(|e| e.to_string())?;
    if a.stats {
        let stats = c.stats().map_err(|e| e.to_string())?;
        emit(&casulo::Event::stats(c.id(), stats));
        return Ok(0);
    }
    c.events(a.interval, emit).map_err(|e| e.to_string())?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("5s"), Ok(ms(5000)));
        assert_eq!(parse_go_duration("500ms"), Ok(ms(500)));
        assert_eq!(parse_go_duration("1m30s"), Ok(ms(90_000)));
        assert_eq!(parse_go_duration("1h"), Ok(ms(3_600_000)));
        assert_eq!(parse_go_duration("1.5h"), Ok(ms(5_400_000)));
        assert_eq!(parse_go_duration(".5s"), Ok(ms(500)));
        assert_eq!(parse_go_duration("5.s"), Ok(ms(5000)));
        assert_eq!(parse_go_duration("+2s"), Ok(ms(2000)));
        assert_eq!(
            parse_go_duration("1h2m3s4ms5us6ns"),
            Ok(Duration::new(3723, 4_005_006))
        );
        assert_eq!(parse_go_duration("10µs"), Ok(Duration::from_micros(10)));
        assert_eq!(parse_go_duration("10μs"), Ok(Duration::from_micros(10)));
        assert_eq!(parse_go_duration("1.0000000009s"), Ok(Duration::new(1, 0)));
        assert_eq!(
            parse_go_duration("0.333333333s"),
            Ok(Duration::new(0, 333_333_333))
        );
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_go_duration("-0"), Ok(Duration::ZERO));
        assert_eq!(
            parse_go_duration("2562047h"),
            Ok(Duration::from_secs(2562047 * 3600))
        );
    }

    #[test]
    fn go_durations_rejected() {
        for (input, want) in [
            ("", "invalid duration"),
            ("s", "invalid duration"),
            (".s", "invalid duration"),
            ("-", "invalid duration"),
            ("5", "missing unit"),
            ("1m5", "missing unit"),
            ("5x", "unknown unit \"x\""),
            ("5 s", "unknown unit \" s\""),
            ("5sec", "unknown unit \"sec\""),
            ("-5s", "negative"),
            ("2562048h", "too large"),
            ("99999999999999999999999999999999999999999h", "too large"),
        ] {
            let e = parse_go_duration(input).expect_err(input);
            assert!(e.contains(want), "{input:?}: {e}");
        }
    }

    #[test]
    fn interval_must_be_positive() {
        assert_eq!(parse_interval("1s"), Ok(ms(1000)));
        assert!(parse_interval("0").unwrap_err().contains("greater than 0"));
        assert!(parse_interval("0s").unwrap_err().contains("greater than 0"));
        assert!(parse_interval("-1s").unwrap_err().contains("negative"));
    }
}
