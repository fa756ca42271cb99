//! `casulo-checker`: runs as a container's process and prints one JSON document on stdout
//! describing what the process sees. See conformance/README.md for the fields.
//!
//! Flags (each may be repeated):
//!   --masked PATH       probe PATH as a masked path
//!   --readonly PATH     probe PATH as a read-only path
//!   --sysctl KEY        report the value of /proc/sys/<KEY with '.' as '/'>
//!   --cgroup-file PATH  report the contents of PATH
//!
//! A probe that fails is reported in place (null or an "error" field) and also listed in the
//! top-level "errors" array; the checker itself exits 0 whenever it could print its report.

mod probe;

use probe::Probes;
use std::process::ExitCode;

fn usage() -> &'static str {
    "usage: casulo-checker [--masked PATH]... [--readonly PATH]... [--sysctl KEY]... [--cgroup-file PATH]..."
}

fn main() -> ExitCode {
    // The open fds are listed before anything else can open one.
    let fds = probe::open_fds();
    let mut opts = probe::Options::default();
    let mut args = std::env::args_os().skip(1);
    while let Some(flag) = args.next() {
        let flag = flag.to_string_lossy().into_owned();
        let list = match flag.as_str() {
            "--masked" => &mut opts.masked,
            "--readonly" => &mut opts.readonly,
            "--sysctl" => &mut opts.sysctls,
            "--cgroup-file" => &mut opts.cgroup_files,
            "-h" | "--help" => {
                println!("{}", usage());
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("casulo-checker: unknown argument {other:?}\n{}", usage());
                return ExitCode::from(2);
            }
        };
        match args.next() {
            Some(v) => list.push(v.to_string_lossy().into_owned()),
            None => {
                eprintln!("casulo-checker: {flag} needs a value\n{}", usage());
                return ExitCode::from(2);
            }
        }
    }
    let report = Probes::new(fds).report(&opts);
    match serde_json::to_string_pretty(&report) {
        Ok(s) => {
            println!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("casulo-checker: serializing the report: {e}");
            ExitCode::from(1)
        }
    }
}
