//! `casulo`: an OCI runtime with runc's command line. Parses, then calls the library.

mod commands;
mod logging;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "casulo",
    about = "casulo creates and runs containers from OCI bundles, with runc's command line.",
    // -v and --version, as runc (see `command`).
    disable_version_flag = true,
    // A flag given twice is given once (engines repeat --systemd-cgroup), as runc accepts.
    args_override_self = true
)]
pub struct Cli {
    /// Root directory for container state.
    #[arg(long, global = true, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Log file (default: stderr).
    #[arg(long, global = true, value_name = "FILE")]
    log: Option<PathBuf>,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: logging::Format,
    /// Log debug messages.
    #[arg(long, global = true)]
    debug: bool,
    /// Interpret cgroupsPath as systemd's slice:prefix:name.
    #[arg(long, global = true)]
    systemd_cgroup: bool,
    /// Ignore cgroup permission errors: true, false or auto (rootless when not root, or in a
    /// user namespace); before the subcommand, as with runc.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    rootless: Option<String>,
    /// Path to the criu binary (checkpoint and restore; default: criu in PATH).
    #[arg(long, global = true, value_name = "PATH")]
    criu: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// Each command's arguments are built only when that command is the one run (`defer`): the
/// whole tree, built and dropped on every start, was most of what parsing cost.
#[derive(Subcommand, Debug)]
#[command(defer = true)]
enum Command {
    /// Write a default config.json for a new bundle.
    Spec(commands::spec::Args),
    /// Create a container: its init is set up and waits for start.
    Create(commands::create::Args),
    /// Start a created container.
    Start(commands::start::Args),
    /// Create, start and (in the foreground) wait for a container.
    Run(commands::run::Args),
    /// Print the state of a container as JSON.
    State(commands::state::Args),
    /// Send a signal to a container's init (default SIGTERM).
    Kill(commands::kill::Args),
    /// Delete a container.
    Delete(commands::delete::Args),
    /// List containers.
    List(commands::list::Args),
    /// Print the features this runtime supports (runtime-spec features document).
    Features(commands::features::Args),
    /// Run a new process in a running container.
    Exec(commands::exec::Args),
    /// Freeze every process of a container.
    Pause(commands::pause::Args),
    /// Thaw a paused container.
    Resume(commands::pause::Args),
    /// Change a running container's resource limits.
    Update(commands::update::Args),
    /// Show a container's processes.
    Ps(commands::ps::Args),
    /// Checkpoint a running container with CRIU.
    Checkpoint(commands::checkpoint::CheckpointArgs),
    /// Restore a container from a checkpoint with CRIU.
    Restore(commands::checkpoint::RestoreArgs),
    /// Display container events such as OOM notifications, cpu, memory, and IO usage
    /// statistics.
    ///
    /// Prints one JSON object per line: `{"type":"stats","id":ID,"data":{...}}` every
    /// --interval (the first after one interval), and `{"type":"oom","id":ID}` as soon as the
    /// OOM killer acts in the container's memory cgroup. With --stats, prints one stats event
    /// and exits.
    ///
    /// Unlike runc, whose stream runs until its cgroup is removed, the stream ends (exit 0)
    /// when the container stops, after reporting an OOM that stopped it.
    Events(commands::events::Args),
}

/// The name this program was started as (its help and version say it, as scripts that
/// install it under another name expect).
fn program_name() -> String {
    std::env::args_os()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "casulo".into())
}

/// What `-v` prints after the program's name: the version, the commit it was built from
/// (`CASULO_COMMIT` at build time) and the newest runtime-spec version it implements.
fn version_text() -> String {
    format!(
        "version {}\ncommit: {}\nspec: {}",
        env!("CARGO_PKG_VERSION"),
        option_env!("CASULO_COMMIT").unwrap_or("unknown"),
        casulo::OCI_VERSION_MAX
    )
}

/// The command line with runc's help layout (a NAME section first: scripts read it) and
/// runc's `-v`/`--version`.
fn command(prog: &str) -> clap::Command {
    use clap::CommandFactory;
    // clap keeps these for the life of the program: leaked once, as the command lives that long.
    let name: &'static str = Box::leak(prog.to_string().into_boxed_str());
    let version: &'static str = Box::leak(version_text().into_boxed_str());
    let mut cmd = Cli::command()
        .name(name)
        .version(version)
        .arg(
            clap::Arg::new("version")
                .short('v')
                .long("version")
                .action(clap::ArgAction::Version)
                .help("Print the version"),
        )
        .help_template(
            "NAME:\n   {name} - Open Container Initiative runtime\n\n{about-with-newline}\n\
             USAGE:\n   {usage}\n\n{all-args}{after-help}",
        );
    let subs: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    for sub in subs {
        let template = format!(
            "NAME:\n   {prog} {sub} - {{about}}\n\nUSAGE:\n   {{usage}}\n\n{{all-args}}{{after-help}}"
        );
        cmd = cmd.mut_subcommand(&sub, |s| s.help_template(template));
    }
    // runc's `h` for `help`. clap adds its help command when the command is built, and the
    // build makes every command's arguments (see `Command`): done only where the top-level
    // help may be asked for, that is, where the command line names no other command.
    if command_word().is_some_and(|w| w != "h" && w != "help") {
        return cmd;
    }
    cmd.build();
    cmd.mut_subcommand("help", |s| s.visible_alias("h"))
}

/// Parse the command line. Usage errors exit 1 like every other failure (clap's default is
/// 2); help and version exit 0. An unknown command is answered in runc's words, which
/// scripts match.
fn parse() -> Result<Cli, ExitCode> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    use clap::FromArgMatches;
    let prog = program_name();
    let matches = command(&prog).try_get_matches_from(go_runc_flags(std::env::args_os()));
    let e = match matches.and_then(|m| Cli::from_arg_matches(&m)) {
        Ok(cli) => return Ok(cli),
        Err(e) => e,
    };
    if e.kind() == ErrorKind::InvalidSubcommand {
        if let Some(ContextValue::String(topic)) = e.get(ContextKind::InvalidSubcommand) {
            eprintln!("{prog}: No help topic for '{topic}'");
            return Err(ExitCode::from(1));
        }
    }
    let _ = e.print();
    Err(ExitCode::from(if e.use_stderr() { 1 } else { 0 }))
}

/// The command line with the one flag containerd's runc client (go-runc) writes with a single
/// dash, `restore -no-subreaper`, as `--no-subreaper`: runc's flag parser takes any long flag
/// with one dash, and containerd's shim passes it to every restore it runs.
fn go_runc_flags(args: impl Iterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = args.collect();
    let mut i = 1;
    while i < args.len() {
        let Some(a) = args[i].to_str() else { break };
        if VALUE_FLAGS.contains(&a) {
            i += 2;
            continue;
        }
        if !a.starts_with('-') {
            if a == "restore" {
                for a in &mut args[i + 1..] {
                    if a == "-no-subreaper" {
                        *a = "--no-subreaper".into();
                    }
                }
            }
            break;
        }
        i += 1;
    }
    args
}

/// The global flags that take a value in the next argument (see [`Cli`]).
const VALUE_FLAGS: [&str; 4] = ["--root", "--log", "--log-format", "--criu"];

/// Whether the command line names `create`, `run` or `exec`, found by a look at the
/// arguments before clap builds its parser: those commands re-execute the program
/// ([`casulo::prepare_process`]), and whatever the first image did before is done twice.
/// A command line this misreads is still protected: `main` checks again after parsing.
fn early_needs_protection() -> bool {
    command_word().is_some_and(|w| matches!(w.as_str(), "create" | "run" | "exec"))
}

/// The command the command line names (its first word that is not a global flag or a flag's
/// value), found without clap; None without one, or where a word before it is not UTF-8.
fn command_word() -> Option<String> {
    let mut args = std::env::args_os().skip(1);
    while let Some(a) = args.next() {
        let a = a.to_str()?;
        if VALUE_FLAGS.contains(&a) {
            args.next();
        } else if !a.starts_with('-') {
            return Some(a.to_string());
        }
    }
    None
}

fn main() -> ExitCode {
    // Re-execute before parsing when the command will need it; the error, if any, is
    // reported by the check after parsing, where the logger is set up.
    if early_needs_protection() {
        let _ = casulo::prepare_process();
    }
    let cli = match parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let logger = match logging::Logger::new(cli.log.as_deref(), cli.log_format, cli.debug) {
        Ok(l) => Box::leak(Box::new(l)),
        Err(e) => {
            eprintln!(
                "casulo: --log {}: {e}",
                cli.log
                    .as_deref()
                    .unwrap_or(std::path::Path::new(""))
                    .display()
            );
            return ExitCode::from(1);
        }
    };
    let _ = tracing::subscriber::set_global_default(logging::Bridge(logger));
    if cli.criu.is_some() {
        tracing::debug!("--criu is accepted for compatibility and ignored");
    }
    let rootless = match casulo::parse_rootless(cli.rootless.as_deref().unwrap_or("auto")) {
        Ok(r) => r,
        Err(e) => {
            logger.log(tracing::Level::ERROR, &e);
            return ExitCode::from(1);
        }
    };
    // The commands that put a fork of this process into a container first re-execute it from
    // an image the container cannot write (runc CVE-2019-5736) and become the reaper of what
    // they start (the library's process-wide duties).
    if matches!(
        cli.command,
        Command::Create(_) | Command::Run(_) | Command::Exec(_)
    ) {
        if let Err(e) = casulo::prepare_process() {
            logger.log(tracing::Level::ERROR, &e.to_string());
            return ExitCode::from(1);
        }
    }
    let ctx = commands::Ctx {
        root: cli.root.clone().unwrap_or_else(casulo::default_root),
        root_given: cli.root.is_some(),
        systemd_cgroup: cli.systemd_cgroup,
        rootless,
    };
    // As runc: a failed exec exits 255, so that its caller can tell it from the exit status
    // of the process it ran.
    let failure = if matches!(cli.command, Command::Exec(_)) {
        255
    } else {
        1
    };
    let result = match cli.command {
        Command::Spec(a) => commands::spec::run(&ctx, a),
        Command::Create(a) => commands::create::run(&ctx, a),
        Command::Start(a) => commands::start::run(&ctx, a),
        Command::Run(a) => commands::run::run(&ctx, a),
        Command::State(a) => commands::state::run(&ctx, a),
        Command::Kill(a) => commands::kill::run(&ctx, a),
        Command::Delete(a) => commands::delete::run(&ctx, a),
        Command::List(a) => commands::list::run(&ctx, a),
        Command::Features(a) => commands::features::run(&ctx, a),
        Command::Exec(a) => commands::exec::run(&ctx, a),
        Command::Pause(a) => commands::pause::pause(&ctx, a),
        Command::Resume(a) => commands::pause::resume(&ctx, a),
        Command::Update(a) => commands::update::run(&ctx, a),
        Command::Ps(a) => commands::ps::run(&ctx, a),
        Command::Events(a) => commands::events::run(&ctx, a),
        Command::Checkpoint(a) => commands::checkpoint::checkpoint(&ctx, cli.criu, a),
        Command::Restore(a) => commands::checkpoint::restore(&ctx, cli.criu, a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(msg) => {
            logger.log(tracing::Level::ERROR, &msg);
            if logger.to_file() {
                eprintln!("casulo: {msg}");
            }
            ExitCode::from(failure)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::go_runc_flags;

    fn args(line: &str) -> Vec<String> {
        go_runc_flags(line.split(' ').map(std::ffi::OsString::from))
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn restore_takes_go_runcs_single_dash_no_subreaper() {
        assert_eq!(
            args("casulo --root R --log L restore --detach -no-subreaper --bundle B c1"),
            "casulo --root R --log L restore --detach --no-subreaper --bundle B c1"
                .split(' ')
                .collect::<Vec<_>>()
        );
        // Only restore's: an exec'd program's own arguments are left alone.
        assert_eq!(
            args("casulo exec c1 prog -no-subreaper"),
            ["casulo", "exec", "c1", "prog", "-no-subreaper"]
        );
    }
}
