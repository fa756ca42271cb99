use std::path::PathBuf;

use oci_spec::runtime::{Capability, Process};

use super::{CmdResult, Ctx};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A process.json to run instead of the container's process with the flags below.
    #[arg(short, long, value_name = "FILE")]
    process: Option<PathBuf>,
    /// Give the process a terminal.
    #[arg(short, long)]
    tty: bool,
    /// Return once the process has started.
    #[arg(short, long)]
    detach: bool,
    /// File to write the process's pid to.
    #[arg(long, value_name = "FILE")]
    pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master.
    #[arg(long, value_name = "PATH")]
    console_socket: Option<PathBuf>,
    /// Unix socket that receives a pidfd of the process (SCM_RIGHTS).
    #[arg(long, value_name = "PATH")]
    pidfd_socket: Option<PathBuf>,
    /// Working directory in the container.
    #[arg(long, value_name = "DIR")]
    cwd: Option<PathBuf>,
    /// Environment variables to set (NAME=value), repeatable.
    #[arg(short, long, value_name = "NAME=value")]
    env: Vec<String>,
    /// UID[:GID] to run as.
    #[arg(short, long, value_name = "UID[:GID]")]
    user: Option<String>,
    /// Additional groups, repeatable.
    #[arg(short = 'g', long, value_name = "GID")]
    additional_gids: Vec<u32>,
    /// Capabilities to add, repeatable.
    #[arg(short, long, value_name = "CAP")]
    cap: Vec<String>,
    /// Set no_new_privileges.
    #[arg(long)]
    no_new_privs: bool,
    /// Pass this many fds (from 3 on) to the process.
    #[arg(long, default_value_t = 0, value_name = "N")]
    preserve_fds: u32,
    /// Run the process in an existing sub-cgroup of the container, [CONTROLLER:]PATH
    /// (repeatable).
    #[arg(long, value_name = "[CTRL:]PATH")]
    cgroup: Vec<String>,
    /// Exec into a paused container too: the process starts once the container is resumed.
    #[arg(long)]
    ignore_paused: bool,

    /// SELinux label of the process.
    #[arg(long, value_name = "LABEL")]
    process_label: Option<String>,
    /// AppArmor profile of the process.
    #[arg(long, value_name = "PROFILE")]
    apparmor: Option<String>,
    /// Container id.
    id: String,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

fn parse_user(s: &str) -> Result<(u32, Option<u32>), String> {
    let (u, g) = match s.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (s, None),
    };
    let uid = u
        .parse()
        .map_err(|_| format!("--user {s:?}: not UID[:GID]"))?;
    let gid = g
        .map(|g| {
            g.parse()
                .map_err(|_| format!("--user {s:?}: not UID[:GID]"))
        })
        .transpose()?;
    Ok((uid, gid))
}

/// The process to run: process.json as given, or the container's process with the flags
/// applied, as runc builds it.
fn build_process(a: &Args, base: Option<&Process>) -> Result<Process, String> {
    if let Some(path) = &a.process {
        let text = std::fs::read(path).map_err(|e| format!("--process {}: {e}", path.display()))?;
        return casulo::parse_process(&text)
            .map_err(|e| format!("--process {}: invalid JSON: {e}", path.display()));
    }
    if a.command.is_empty() {
        return Err("exec: no command given (and no --process)".into());
    }
    let mut p = base
        .cloned()
        .ok_or("exec: the container has no process config")?;
    p.set_args(Some(a.command.clone()));
    p.set_terminal(Some(a.tty));
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.clone());
    }
    if !a.env.is_empty() {
        let mut env = p.env().clone().unwrap_or_default();
        for e in &a.env {
            let key = e.split('=').next().unwrap_or("");
            env.retain(|x| x.split('=').next() != Some(key));
            env.push(e.clone());
        }
        p.set_env(Some(env));
    }
    let mut user = p.user().clone();
    if let Some(u) = &a.user {
        let (uid, gid) = parse_user(u)?;
        user.set_uid(uid);
        if let Some(gid) = gid {
            user.set_gid(gid);
        }
    }
    if !a.additional_gids.is_empty() {
        user.set_additional_gids(Some(a.additional_gids.clone()));
    }
    p.set_user(user);
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if !a.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        let mut unknown = Vec::new();
        for c in &a.cap {
            // Read as config.json's names are read: CAP_KILL or KILL, any case. One that
            // names no capability is left out with a warning, as a config's would be.
            let Ok(cap) = serde_json::from_value::<Capability>(c.as_str().into()) else {
                unknown.push(c.as_str());
                continue;
            };
            let add = |set: &Option<std::collections::HashSet<Capability>>| {
                let mut s = set.clone().unwrap_or_default();
                s.insert(cap);
                Some(s)
            };
            caps.set_bounding(add(caps.bounding()));
            caps.set_effective(add(caps.effective()));
            caps.set_permitted(add(caps.permitted()));
            // Ambient needs inheritable: only where the config has inheritable bits, as runc.
            if caps.inheritable().as_ref().is_some_and(|i| !i.is_empty()) {
                caps.set_ambient(add(caps.ambient()));
            }
        }
        p.set_capabilities(Some(caps));
        if !unknown.is_empty() {
            // runc's words, as the library's for a capability the kernel lacks.
            tracing::warn!(
                "ignoring unknown or unavailable capabilities: [{}]",
                unknown.join(" ")
            );
        }
    }
    if let Some(l) = &a.process_label {
        p.set_selinux_label(Some(l.clone()));
    }
    if let Some(ap) = &a.apparmor {
        p.set_apparmor_profile(Some(ap.clone()));
    }
    Ok(p)
}

pub fn run(ctx: &Ctx, a: Args) -> CmdResult {
    let c = super::load(ctx, &a.id, casulo::Step::Exec).map_err(|e| e.to_string())?;
    let process = build_process(&a, c.process_config())
        .map_err(|e| format!("container {:?}: exec: {e}", a.id))?;
    let abs = |p: &PathBuf| std::path::absolute(p).unwrap_or_else(|_| p.clone());
    let opts = casulo::ExecOptions {
        console_socket: a.console_socket.as_ref().map(abs),
        pidfd_socket: a.pidfd_socket.as_ref().map(abs),
        ignore_paused: a.ignore_paused,
        pid_file: a.pid_file.as_ref().map(abs),
        preserve_fds: a.preserve_fds,
        // CTRL may name several controllers, comma-separated (cpu,cpuacct:sub).
        sub_cgroups: a
            .cgroup
            .iter()
            .flat_map(|s| match s.split_once(':') {
                Some((c, p)) => c
                    .split(',')
                    .map(|c| casulo::SubCgroup {
                        controller: Some(c.to_string()),
                        path: PathBuf::from(p),
                    })
                    .collect::<Vec<_>>(),
                None => vec![casulo::SubCgroup {
                    controller: None,
                    path: PathBuf::from(s),
                }],
            })
            .collect(),
    };
    if a.detach {
        c.exec(&process, &opts).map_err(|e| e.to_string())?;
        return Ok(0);
    }
    let code = c
        .exec_foreground(&process, &opts)
        .map_err(|e| e.to_string())?;
    Ok(u8::try_from(code).unwrap_or(255))
}

#[cfg(test)]
mod tests {
    use super::parse_user;

    #[test]
    fn users() {
        assert_eq!(parse_user("1000"), Ok((1000, None)));
        assert_eq!(parse_user("1000:100"), Ok((1000, Some(100))));
        assert!(parse_user("bob").is_err());
        assert!(parse_user("1:x").is_err());
    }
}
