//! The probes: each reads one aspect of the process's view of the system.

use casulo_conformance::parse::{self, CgroupEntry};
use nix::sys::resource::{getrlimit, Resource};
use serde_json::{json, Map, Value};
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// What the flags asked for.
#[derive(Debug, Default)]
pub struct Options {
    pub masked: Vec<String>,
    pub readonly: Vec<String>,
    pub sysctls: Vec<String>,
    pub cgroup_files: Vec<String>,
}

/// The name of an errno value, for the report (falls back to `errno N`).
pub fn errno_name(e: i32) -> String {
    let name = match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::EACCES => "EACCES",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::ENOSYS => "ENOSYS",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ELOOP => "ELOOP",
        _ => return format!("errno {e}"),
    };
    name.to_string()
}

fn io_err_name(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => errno_name(n),
        None => e.to_string(),
    }
}

/// The open fds of this process with their link targets. The directory is listed and closed
/// first; the fd that listing used is then gone, so its readlink fails and it is left out.
pub fn open_fds() -> Result<Vec<(i32, String)>, String> {
    let names: Vec<i32> = fs::read_dir("/proc/self/fd")
        .map_err(|e| format!("listing /proc/self/fd: {e}"))?
        .filter_map(|ent| ent.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    let mut out = Vec::new();
    for fd in names {
        match fs::read_link(format!("/proc/self/fd/{fd}")) {
            Ok(t) => out.push((fd, t.to_string_lossy().into_owned())),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(format!("readlink /proc/self/fd/{fd}: {e}")),
        }
    }
    out.sort();
    Ok(out)
}

fn file_type_name(ft: fs::FileType) -> &'static str {
    if ft.is_symlink() {
        "symlink"
    } else if ft.is_dir() {
        "dir"
    } else if ft.is_file() {
        "file"
    } else if ft.is_char_device() {
        "char"
    } else if ft.is_block_device() {
        "block"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_socket() {
        "socket"
    } else {
        "unknown"
    }
}

/// The triple returned by getresuid.
fn resuid() -> io::Result<(u32, u32, u32)> {
    let ids = nix::unistd::getresuid()?;
    Ok((
        ids.real.as_raw(),
        ids.effective.as_raw(),
        ids.saved.as_raw(),
    ))
}

fn resgid() -> io::Result<(u32, u32, u32)> {
    let ids = nix::unistd::getresgid()?;
    Ok((
        ids.real.as_raw(),
        ids.effective.as_raw(),
        ids.saved.as_raw(),
    ))
}

fn groups() -> io::Result<Vec<u32>> {
    Ok(nix::unistd::getgroups()?
        .into_iter()
        .map(|g| g.as_raw())
        .collect())
}

/// (nodename, domainname) from uname(2).
fn uts_names() -> io::Result<(String, String)> {
    let u = nix::sys::utsname::uname()?;
    Ok((
        u.nodename().to_string_lossy().into_owned(),
        u.domainname().to_string_lossy().into_owned(),
    ))
}

/// getrlimit for one resource. RLIM_INFINITY is reported as JSON null.
macro_rules! rlimit_table {
    ($($name:ident),* $(,)?) => {
        fn rlimits() -> Map<String, Value> {
            let mut m = Map::new();
            $(
                let v = match getrlimit(Resource::$name) {
                    Ok((soft, hard)) => {
                        let conv = |x: libc::rlim_t| -> Value {
                            if x == libc::RLIM_INFINITY { Value::Null } else { json!(x as u64) }
                        };
                        json!({ "soft": conv(soft), "hard": conv(hard) })
                    }
                    Err(e) => json!({ "error": io_err_name(&e.into()) }),
                };
                m.insert(stringify!($name).to_string(), v);
            )*
            m
        }
    };
}

rlimit_table!(
    RLIMIT_AS,
    RLIMIT_CORE,
    RLIMIT_CPU,
    RLIMIT_DATA,
    RLIMIT_FSIZE,
    RLIMIT_LOCKS,
    RLIMIT_MEMLOCK,
    RLIMIT_MSGQUEUE,
    RLIMIT_NICE,
    RLIMIT_NOFILE,
    RLIMIT_NPROC,
    RLIMIT_RSS,
    RLIMIT_RTPRIO,
    RLIMIT_RTTIME,
    RLIMIT_SIGPENDING,
    RLIMIT_STACK,
);

const NAMESPACES: [&str; 8] = ["mnt", "uts", "ipc", "pid", "net", "cgroup", "user", "time"];

/// Reads up to 4096 bytes; `Ok(true)` when there was nothing to read.
fn reads_empty(path: &Path) -> io::Result<bool> {
    let mut f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let mut buf = [0u8; 4096];
    Ok(f.read(&mut buf)? == 0)
}

/// Tries to write: opens a non-directory O_WRONLY (no O_TRUNC, nothing written), or creates
/// and removes a file in a directory. `Ok(())` when the write was possible.
fn try_write(path: &Path, is_dir: bool) -> io::Result<()> {
    if is_dir {
        let probe = path.join(format!(".casulo-checker-{}", std::process::id()));
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&probe)?;
        fs::remove_file(&probe)
    } else {
        fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map(drop)
    }
}

/// Whether the filesystem holding `path` is mounted read-only (statvfs ST_RDONLY). Some
/// filesystems (procfs) answer a create in a read-only directory with ENOENT before the
/// read-only check, so the write probe alone cannot tell.
fn mount_readonly(path: &Path) -> io::Result<bool> {
    let st = nix::sys::statvfs::statvfs(path)?;
    Ok(st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
}

fn probe_path(path: &str, role: &str) -> Value {
    let p = Path::new(path);
    let meta = match fs::metadata(p) {
        Ok(m) => m,
        Err(e) => {
            return json!({
                "path": path, "role": role, "exists": false,
                "stat_error": io_err_name(&e),
            })
        }
    };
    let is_dir = meta.is_dir();
    let (read_empty, read_error) = if is_dir {
        match fs::read_dir(p) {
            Ok(mut rd) => (Some(rd.next().is_none()), None),
            Err(e) => (None, Some(io_err_name(&e))),
        }
    } else {
        match reads_empty(p) {
            Ok(empty) => (Some(empty), None),
            Err(e) => (None, Some(io_err_name(&e))),
        }
    };
    let write_error = try_write(p, is_dir).err().map(|e| io_err_name(&e));
    let (ro, ro_err) = match mount_readonly(p) {
        Ok(ro) => (Some(ro), None),
        Err(e) => (None, Some(io_err_name(&e))),
    };
    json!({
        "path": path,
        "role": role,
        "exists": true,
        "file_type": file_type_name(meta.file_type()),
        "read_empty": read_empty,
        "read_error": read_error,
        "writable": write_error.is_none(),
        "write_error": write_error,
        "mount_readonly": ro,
        "statvfs_error": ro_err,
    })
}

fn devices(errors: &mut Vec<String>) -> Vec<Value> {
    let mut names: Vec<String> = match fs::read_dir("/dev") {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(e) => {
            errors.push(format!("listing /dev: {e}"));
            return Vec::new();
        }
    };
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let path = format!("/dev/{name}");
        let m = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) => {
                errors.push(format!("lstat {path}: {e}"));
                continue;
            }
        };
        let ft = m.file_type();
        let is_dev = ft.is_char_device() || ft.is_block_device();
        let target = if ft.is_symlink() {
            fs::read_link(&path)
                .ok()
                .map(|t| t.to_string_lossy().into_owned())
        } else {
            None
        };
        out.push(json!({
            "path": path,
            "file_type": file_type_name(ft),
            "major": if is_dev { Some(libc::major(m.rdev())) } else { None },
            "minor": if is_dev { Some(libc::minor(m.rdev())) } else { None },
            "mode": m.mode() & 0o7777,
            "uid": m.uid(),
            "gid": m.gid(),
            "symlink_target": target,
        }));
    }
    out
}

fn id_map(file: &str, errors: &mut Vec<String>) -> Value {
    match fs::read_to_string(file) {
        Ok(t) => {
            let rows: Vec<Vec<u64>> = t
                .lines()
                .map(|l| {
                    l.split_whitespace()
                        .filter_map(|n| n.parse().ok())
                        .collect()
                })
                .filter(|r: &Vec<u64>| r.len() == 3)
                .collect();
            json!(rows)
        }
        Err(e) => {
            errors.push(format!("reading {file}: {e}"));
            Value::Null
        }
    }
}

fn cgroup_json(c: &CgroupEntry) -> Value {
    json!({
        "hierarchy_id": c.hierarchy_id,
        "controllers": c.controllers,
        "path": c.path,
    })
}

/// Everything gathered before the flags were read, plus the report builder.
pub struct Probes {
    fds: Result<Vec<(i32, String)>, String>,
}

impl Probes {
    pub fn new(fds: Result<Vec<(i32, String)>, String>) -> Self {
        Probes { fds }
    }

    pub fn report(self, opts: &Options) -> Value {
        let mut errors: Vec<String> = Vec::new();
        let mut r = Map::new();

        let fds = match self.fds {
            Ok(list) => json!(list
                .iter()
                .map(|(fd, t)| json!({ "fd": fd, "target": t }))
                .collect::<Vec<_>>()),
            Err(e) => {
                errors.push(e);
                Value::Null
            }
        };
        r.insert("fds".into(), fds);

        let mut ns = Map::new();
        for n in NAMESPACES {
            let link = format!("/proc/self/ns/{n}");
            let v = match fs::read_link(&link) {
                Ok(t) => json!(parse::ns_inode(&t.to_string_lossy())),
                Err(e) => {
                    if e.raw_os_error() != Some(libc::ENOENT) {
                        errors.push(format!("readlink {link}: {e}"));
                    }
                    Value::Null
                }
            };
            ns.insert(n.to_string(), v);
        }
        r.insert("namespaces".into(), Value::Object(ns));
        r.insert("uid_map".into(), id_map("/proc/self/uid_map", &mut errors));
        r.insert("gid_map".into(), id_map("/proc/self/gid_map", &mut errors));

        r.insert("pid".into(), json!(std::process::id()));
        r.insert("ppid".into(), json!(std::os::unix::process::parent_id()));

        for (key, res) in [("uid", resuid()), ("gid", resgid())] {
            let v = match res {
                Ok((real, eff, saved)) => json!({"real": real, "effective": eff, "saved": saved}),
                Err(e) => {
                    errors.push(format!("getres{key}: {e}"));
                    Value::Null
                }
            };
            r.insert(key.into(), v);
        }
        r.insert(
            "groups".into(),
            match groups() {
                Ok(g) => json!(g),
                Err(e) => {
                    errors.push(format!("getgroups: {e}"));
                    Value::Null
                }
            },
        );

        let status = fs::read_to_string("/proc/self/status")
            .map_err(|e| format!("reading /proc/self/status: {e}"))
            .and_then(|t| parse::parse_status(&t).map_err(|e| e.to_string()));
        match status {
            Ok(st) => {
                r.insert("umask".into(), json!(st.umask));
                r.insert(
                    "capabilities".into(),
                    json!({
                        "inheritable": st.cap_inh,
                        "permitted": st.cap_prm,
                        "effective": st.cap_eff,
                        "bounding": st.cap_bnd,
                        "ambient": st.cap_amb,
                    }),
                );
                r.insert("no_new_privs".into(), json!(st.no_new_privs));
                r.insert("seccomp".into(), json!(st.seccomp));
            }
            Err(e) => {
                errors.push(e);
                for k in ["umask", "capabilities", "no_new_privs", "seccomp"] {
                    r.insert(k.into(), Value::Null);
                }
            }
        }

        r.insert("rlimits".into(), Value::Object(rlimits()));
        let oom = fs::read_to_string("/proc/self/oom_score_adj")
            .map_err(|e| format!("reading /proc/self/oom_score_adj: {e}"))
            .and_then(|t| {
                t.trim()
                    .parse::<i32>()
                    .map_err(|e| format!("parsing oom_score_adj {t:?}: {e}"))
            });
        r.insert(
            "oom_score_adj".into(),
            match oom {
                Ok(v) => json!(v),
                Err(e) => {
                    errors.push(e);
                    Value::Null
                }
            },
        );

        match uts_names() {
            Ok((h, d)) => {
                r.insert("hostname".into(), json!(h));
                r.insert("domainname".into(), json!(d));
            }
            Err(e) => {
                errors.push(format!("uname: {e}"));
                r.insert("hostname".into(), Value::Null);
                r.insert("domainname".into(), Value::Null);
            }
        }
        r.insert(
            "cwd".into(),
            match std::env::current_dir() {
                Ok(p) => json!(p.to_string_lossy()),
                Err(e) => {
                    errors.push(format!("getcwd: {e}"));
                    Value::Null
                }
            },
        );
        let env: Vec<String> = std::env::vars_os()
            .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
            .collect();
        r.insert("env".into(), json!(env));
        let args: Vec<String> = std::env::args_os()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        r.insert("args".into(), json!(args));

        let mounts = fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| format!("reading /proc/self/mountinfo: {e}"))
            .and_then(|t| parse::parse_mountinfo(&t).map_err(|e| e.to_string()));
        r.insert(
            "mounts".into(),
            match mounts {
                Ok(ms) => json!(ms.iter().map(|m| m.to_json()).collect::<Vec<_>>()),
                Err(e) => {
                    errors.push(e);
                    Value::Null
                }
            },
        );

        let mut paths = Vec::new();
        for p in &opts.masked {
            paths.push(probe_path(p, "masked"));
        }
        for p in &opts.readonly {
            paths.push(probe_path(p, "readonly"));
        }
        r.insert("paths".into(), json!(paths));
        r.insert("devices".into(), json!(devices(&mut errors)));

        let mut sysctls = Map::new();
        for key in &opts.sysctls {
            let file = format!("/proc/sys/{}", key.replace('.', "/"));
            let v = match fs::read_to_string(&file) {
                Ok(t) => json!({ "value": t.trim_end_matches('\n') }),
                Err(e) => json!({ "error": format!("reading {file}: {}", io_err_name(&e)) }),
            };
            sysctls.insert(key.clone(), v);
        }
        r.insert("sysctls".into(), Value::Object(sysctls));

        let cg = fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| format!("reading /proc/self/cgroup: {e}"))
            .and_then(|t| parse::parse_cgroup(&t).map_err(|e| e.to_string()));
        r.insert(
            "cgroup".into(),
            match cg {
                Ok(list) => json!(list.iter().map(cgroup_json).collect::<Vec<_>>()),
                Err(e) => {
                    errors.push(e);
                    Value::Null
                }
            },
        );
        let mut cgfiles = Map::new();
        for f in &opts.cgroup_files {
            let v = match fs::read_to_string(f) {
                Ok(t) => json!({ "content": t }),
                Err(e) => json!({ "error": format!("reading {f}: {}", io_err_name(&e)) }),
            };
            cgfiles.insert(f.clone(), v);
        }
        r.insert("cgroup_files".into(), Value::Object(cgfiles));

        r.insert("errors".into(), json!(errors));
        Value::Object(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let d =
            std::env::temp_dir().join(format!("casulo-checker-ut-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn errno_names() {
        assert_eq!(errno_name(libc::EROFS), "EROFS");
        assert_eq!(errno_name(libc::EACCES), "EACCES");
        assert_eq!(errno_name(4095), "errno 4095");
    }

    #[test]
    fn fd_listing_leaves_out_its_own_fd() {
        let fds = open_fds().unwrap();
        for (fd, target) in &fds {
            assert!(
                !target.ends_with("/fd") || !target.starts_with("/proc/"),
                "fd {fd} is the listing's own fd ({target})"
            );
        }
        assert!(fds.windows(2).all(|w| w[0].0 < w[1].0), "fds are sorted");
    }

    #[test]
    fn path_probe_of_a_writable_dir_and_file() {
        let d = scratch("rw");
        fs::write(d.join("f"), "data").unwrap();
        let p = probe_path(d.to_str().unwrap(), "readonly");
        assert_eq!(p["exists"], true);
        assert_eq!(p["file_type"], "dir");
        assert_eq!(p["read_empty"], false);
        assert_eq!(p["writable"], true);
        assert!(p["write_error"].is_null());
        // The directory probe removes the file it created.
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
        let f = probe_path(d.join("f").to_str().unwrap(), "masked");
        assert_eq!(f["file_type"], "file");
        assert_eq!(f["read_empty"], false);
        assert_eq!(f["writable"], true);
        // The file probe opened for writing without truncating.
        assert_eq!(fs::read_to_string(d.join("f")).unwrap(), "data");
        let empty = d.join("empty");
        fs::create_dir(&empty).unwrap();
        assert_eq!(
            probe_path(empty.to_str().unwrap(), "masked")["read_empty"],
            true
        );
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn path_probe_of_a_missing_path() {
        let p = probe_path("/nonexistent/casulo-checker-probe", "masked");
        assert_eq!(p["exists"], false);
        assert_eq!(p["stat_error"], "ENOENT");
    }

    #[test]
    fn dev_null_reads_empty() {
        let p = probe_path("/dev/null", "masked");
        assert_eq!(p["file_type"], "char");
        assert_eq!(p["read_empty"], true);
    }

    #[test]
    fn report_has_every_section() {
        let opts = Options {
            sysctls: vec!["kernel.ostype".into()],
            cgroup_files: vec!["/proc/self/cgroup".into()],
            ..Options::default()
        };
        let r = Probes::new(open_fds()).report(&opts);
        for key in [
            "fds",
            "namespaces",
            "uid_map",
            "gid_map",
            "pid",
            "ppid",
            "uid",
            "gid",
            "groups",
            "umask",
            "capabilities",
            "no_new_privs",
            "seccomp",
            "rlimits",
            "oom_score_adj",
            "hostname",
            "domainname",
            "cwd",
            "env",
            "args",
            "mounts",
            "paths",
            "devices",
            "sysctls",
            "cgroup",
            "cgroup_files",
            "errors",
        ] {
            assert!(r.get(key).is_some(), "missing {key}");
        }
        assert_eq!(r["sysctls"]["kernel.ostype"]["value"], "Linux");
        assert_eq!(r["pid"], std::process::id());
        assert_eq!(r["rlimits"].as_object().unwrap().len(), 16);
        assert!(r["cgroup_files"]["/proc/self/cgroup"]["content"].is_string());
    }
}
