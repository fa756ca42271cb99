//! runc-style logging: `--log FILE` (default stderr) and `--log-format text|json`. In json,
//! one object per line with `level`, `msg` and `time`; containerd and conmon show the last
//! `"level":"error"` line to users, so errors carry the real cause.
//! Library messages (tracing events) go through the same writer.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

pub struct Logger {
    out: Mutex<Option<File>>,
    format: Format,
    debug: bool,
}

impl Logger {
    pub fn new(
        path: Option<&std::path::Path>,
        format: Format,
        debug: bool,
    ) -> std::io::Result<Logger> {
        let out = match path {
            Some(p) => Some(OpenOptions::new().create(true).append(true).open(p)?),
            None => None,
        };
        Ok(Logger {
            out: Mutex::new(out),
            format,
            debug,
        })
    }

    pub fn log(&self, level: Level, msg: &str) {
        if level == Level::DEBUG && !self.debug || level == Level::TRACE {
            return;
        }
        let name = level.as_str().to_ascii_lowercase();
        let name = if name == "warn" {
            "warning".to_string()
        } else {
            name
        };
        let time = casulo::now_rfc3339();
        let line = match self.format {
            Format::Json => {
                serde_json::json!({"level": name, "msg": msg, "time": time}).to_string() + "\n"
            }
            Format::Text => format!("time={time:?} level={name} msg={msg:?}\n"),
        };
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        match out.as_mut() {
            Some(f) => {
                let _ = f.write_all(line.as_bytes());
            }
            None => {
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
        }
    }

    /// Whether the log goes somewhere other than stderr (then errors are also printed plainly
    /// on stderr for a person at the terminal).
    pub fn to_file(&self) -> bool {
        self.out.lock().map(|o| o.is_some()).unwrap_or(false)
    }
}

struct MsgVisitor(String);

impl Visit for MsgVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        } else {
            self.0 += &format!(" {}={value:?}", field.name());
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0 = value.to_string();
        } else {
            self.0 += &format!(" {}={value:?}", field.name());
        }
    }
}

/// Routes the library's tracing events to the logger.
pub struct Bridge(pub &'static Logger);

impl Subscriber for Bridge {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        *m.level() <= Level::INFO || self.0.debug && *m.level() <= Level::DEBUG
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut v = MsgVisitor(String::new());
        event.record(&mut v);
        self.0.log(*event.metadata().level(), &v.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}
