//! Runtime-spec conformance: each case runs the checker in a container whose config.json is
//! a variation of `<runtime> spec`, and compares the checker's report with the config.
//!
//! Runtime under test: $CASULO_TEST_RUNTIME, else the workspace's `casulo`.

mod common;

use common::*;
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::process::Command;

fn s(v: &str) -> String {
    v.to_string()
}

/// The checks every case makes: the runtime-spec basics that no variation changes.
fn check_common(c: &mut Check, r: &Value, cfg: &Value) {
    check_namespaces(c, r, cfg);
    check_paths(c, r);
    let want_args: Vec<Value> = cfg["process"]["args"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    c.eq(
        "args",
        r["args"].as_array().cloned().unwrap_or_default(),
        want_args,
    );
    c.eq("cwd", r["cwd"].as_str(), cfg["process"]["cwd"].as_str());
    let fds: Vec<u64> = r["fds"]
        .as_array()
        .map(|a| a.iter().filter_map(|f| f["fd"].as_u64()).collect())
        .unwrap_or_default();
    c.eq("open fds", fds, vec![0, 1, 2]);
    let env: Vec<String> = r["env"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    for want in cfg["process"]["env"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let want = want.as_str().unwrap_or_default();
        c.that(env.iter().any(|e| e == want), || {
            format!("env {want:?} missing from {env:?}")
        });
    }
    // Anything else in the environment must be HOME, which runtimes add when it is unset.
    for e in &env {
        let listed = cfg["process"]["env"]
            .as_array()
            .is_some_and(|a| a.iter().any(|w| w == e.as_str()));
        c.that(listed || e.starts_with("HOME="), || {
            format!("env {e:?} is not in config.json")
        });
    }
    if let Some(h) = cfg["hostname"].as_str() {
        c.eq("hostname", r["hostname"].as_str(), Some(h));
    }
    if cfg["linux"]["seccomp"].is_null() {
        c.eq(
            "seccomp mode without a filter",
            r["seccomp"].as_u64(),
            Some(0),
        );
    }
    let nnp = cfg["process"]["noNewPrivileges"].as_bool().unwrap_or(false);
    c.eq("NoNewPrivs", r["no_new_privs"].as_bool(), Some(nnp));
    let pid_ns_new = cfg["linux"]["namespaces"]
        .as_array()
        .is_some_and(|a| a.iter().any(|n| n["type"] == "pid" && n["path"].is_null()));
    if pid_ns_new {
        c.eq("pid", r["pid"].as_u64(), Some(1));
    }
    for rl in cfg["process"]["rlimits"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let kind = rl["type"].as_str().unwrap_or_default();
        let got = &r["rlimits"][kind];
        for (k, cfgk) in [("soft", "soft"), ("hard", "hard")] {
            let want = rl[cfgk].as_u64().filter(|v| *v != u64::MAX);
            c.eq(&format!("{kind} {k}"), got[k].as_u64(), want);
            if want.is_none() {
                c.that(got[k].is_null(), || {
                    format!("{kind} {k}: want unlimited, got {}", got[k])
                });
            }
        }
    }
}

fn finish(name: &str, r: &Value, cfg: &Value, extra: impl FnOnce(&mut Check)) {
    let mut c = Check::new(name, r);
    check_common(&mut c, r, cfg);
    extra(&mut c);
    c.finish();
}

/// The checker must run in a rootfs with no libc: an ELF without a PT_INTERP header.
#[test]
fn checker_is_static() {
    if skip("checker_is_static") {
        return;
    }
    let path = checker();
    let elf = fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    assert_eq!(
        &elf[..4],
        b"\x7fELF",
        "{} is not an ELF file",
        path.display()
    );
    assert_eq!(elf[4], 2, "not a 64-bit ELF");
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().expect("8 bytes")) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    assert!(phnum > 0, "no program headers");
    const PT_INTERP: u32 = 3;
    for i in 0..phnum {
        let o = phoff + i * phentsize;
        let p_type = u32::from_le_bytes(elf[o..o + 4].try_into().expect("4 bytes"));
        assert_ne!(
            p_type,
            PT_INTERP,
            "{} asks for a dynamic loader",
            path.display()
        );
    }
}

#[test]
fn default_config() {
    if skip("default_config") {
        return;
    }
    let mut case = Case::new("default");
    let mut flags = case.path_flags();
    flags.extend([s("--readonly"), s("/")]);
    case.checker_flags(&flags);
    let r = case.report();
    let cfg = case.config.clone();
    finish("default_config", &r, &cfg, |c| {
        check_mounts(c, &r, &cfg);
        let root = path_probe(&r, "/").cloned().unwrap_or_default();
        c.eq(
            "root / is read-only",
            root["write_error"].as_str(),
            Some("EROFS"),
        );
        c.eq(
            "uid",
            r["uid"].clone(),
            json!({"real": 0, "effective": 0, "saved": 0}),
        );
        c.eq(
            "gid",
            r["gid"].clone(),
            json!({"real": 0, "effective": 0, "saved": 0}),
        );
        for (name, minor) in [
            ("null", 3),
            ("zero", 5),
            ("full", 7),
            ("random", 8),
            ("urandom", 9),
        ] {
            check_device(
                c,
                &r,
                &format!("/dev/{name}"),
                "char",
                1,
                minor,
                0o666,
                0,
                0,
            );
        }
        check_device(c, &r, "/dev/tty", "char", 5, 0, 0o666, 0, 0);
        for (link, target) in [
            ("/dev/fd", "/proc/self/fd"),
            ("/dev/stdin", "/proc/self/fd/0"),
            ("/dev/stdout", "/proc/self/fd/1"),
            ("/dev/stderr", "/proc/self/fd/2"),
        ] {
            let d = device(&r, link).cloned().unwrap_or_default();
            c.eq(
                &format!("{link} symlink"),
                d["symlink_target"].as_str(),
                Some(target),
            );
        }
        // /dev/ptmx must lead to the container's devpts instance (a symlink or a bind).
        let ptmx = device(&r, "/dev/ptmx").cloned().unwrap_or_default();
        let ok = ptmx["symlink_target"] == "pts/ptmx" || ptmx["file_type"] == "char";
        c.that(ok, || format!("/dev/ptmx: {ptmx}"));
        // The default spec, bit for bit. Its ambient list is not in its (empty) inheritable
        // set, and the kernel only lets a capability be ambient when it is both permitted and
        // inheritable, so what can be expected there is the intersection.
        for key in ["bounding", "effective", "permitted", "inheritable"] {
            c.eq(
                &format!("capabilities {key}"),
                r["capabilities"][key].as_u64(),
                Some(config_caps(&cfg, key)),
            );
        }
        let ambient = config_caps(&cfg, "ambient")
            & config_caps(&cfg, "inheritable")
            & config_caps(&cfg, "permitted");
        c.eq(
            "capabilities ambient",
            r["capabilities"]["ambient"].as_u64(),
            Some(ambient),
        );
    });
}

#[test]
fn user_uid_gid_additional_gids() {
    if skip("user_uid_gid_additional_gids") {
        return;
    }
    let mut case = Case::new("user");
    case.config["process"]["user"] =
        json!({"uid": 1000, "gid": 1001, "additionalGids": [10, 20, 5]});
    let r = case.report();
    let cfg = case.config.clone();
    finish("user_uid_gid_additional_gids", &r, &cfg, |c| {
        c.eq(
            "uid",
            r["uid"].clone(),
            json!({"real": 1000, "effective": 1000, "saved": 1000}),
        );
        c.eq(
            "gid",
            r["gid"].clone(),
            json!({"real": 1001, "effective": 1001, "saved": 1001}),
        );
        let mut groups: Vec<u64> = r["groups"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default();
        groups.sort();
        c.eq("supplementary groups", groups, vec![5, 10, 20]);
    });
}

#[test]
fn umask() {
    if skip("umask") {
        return;
    }
    let mut case = Case::new("umask");
    case.config["process"]["user"]["umask"] = json!(0o027);
    let r = case.report();
    let cfg = case.config.clone();
    finish("umask", &r, &cfg, |c| {
        c.eq(
            "umask",
            r["umask"].as_u64().map(|u| format!("{u:04o}")),
            Some(s("0027")),
        );
    });
}

fn check_caps(c: &mut Check, r: &Value, cfg: &Value) {
    for key in [
        "bounding",
        "effective",
        "permitted",
        "inheritable",
        "ambient",
    ] {
        c.eq(
            &format!("capabilities {key}"),
            r["capabilities"][key]
                .as_u64()
                .map(|v| format!("{v:#018x}")),
            Some(format!("{:#018x}", config_caps(cfg, key))),
        );
    }
}

/// As root, exec keeps effective = permitted = bounding (plus inheritable), so a
/// consistent reduced set has those three equal; inheritable and ambient are smaller.
#[test]
fn capabilities_root() {
    if skip("capabilities_root") {
        return;
    }
    let mut case = Case::new("caps-root");
    let b = [
        "CAP_CHOWN",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_SETUID",
        "CAP_SETGID",
    ];
    case.config["process"]["capabilities"] = json!({
        "bounding": b, "effective": b, "permitted": b,
        "inheritable": ["CAP_KILL", "CAP_CHOWN"], "ambient": ["CAP_KILL"],
    });
    let r = case.report();
    let cfg = case.config.clone();
    finish("capabilities_root", &r, &cfg, |c| check_caps(c, &r, &cfg));
}

/// For a non-root user exec keeps only the ambient set in permitted and effective, so a
/// consistent config has permitted = effective = ambient, inside inheritable, inside bounding.
#[test]
fn capabilities_non_root() {
    if skip("capabilities_non_root") {
        return;
    }
    let mut case = Case::new("caps-user");
    let a = ["CAP_KILL", "CAP_NET_BIND_SERVICE"];
    case.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    case.config["process"]["capabilities"] = json!({
        "bounding": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL",
                     "CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_SETGID"],
        "inheritable": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "permitted": a, "effective": a, "ambient": a,
    });
    let r = case.report();
    let cfg = case.config.clone();
    finish("capabilities_non_root", &r, &cfg, |c| {
        check_caps(c, &r, &cfg)
    });
}

#[test]
fn rlimits() {
    if skip("rlimits") {
        return;
    }
    let mut case = Case::new("rlimits");
    case.config["process"]["rlimits"] = json!([
        {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 2048},
        {"type": "RLIMIT_NPROC", "soft": 300, "hard": 400},
        {"type": "RLIMIT_CORE", "soft": 1048576, "hard": u64::MAX},
    ]);
    let r = case.report();
    let cfg = case.config.clone();
    // check_common compares every configured rlimit, unlimited as null.
    finish("rlimits", &r, &cfg, |c| {
        c.eq(
            "NOFILE soft",
            r["rlimits"]["RLIMIT_NOFILE"]["soft"].as_u64(),
            Some(512),
        );
        c.that(r["rlimits"]["RLIMIT_CORE"]["hard"].is_null(), || {
            format!(
                "CORE hard should be unlimited: {}",
                r["rlimits"]["RLIMIT_CORE"]
            )
        });
    });
}

#[test]
fn no_new_privileges_false() {
    if skip("no_new_privileges_false") {
        return;
    }
    let mut case = Case::new("nnp");
    case.config["process"]["noNewPrivileges"] = json!(false);
    let r = case.report();
    let cfg = case.config.clone();
    finish("no_new_privileges_false", &r, &cfg, |c| {
        c.eq("NoNewPrivs", r["no_new_privs"].as_bool(), Some(false));
    });
}

#[test]
fn oom_score_adj() {
    if skip("oom_score_adj") {
        return;
    }
    let mut case = Case::new("oom");
    case.config["process"]["oomScoreAdj"] = json!(123);
    let r = case.report();
    let cfg = case.config.clone();
    finish("oom_score_adj", &r, &cfg, |c| {
        c.eq("oom_score_adj", r["oom_score_adj"].as_i64(), Some(123));
    });
}

#[test]
fn hostname_domainname() {
    if skip("hostname_domainname") {
        return;
    }
    let mut case = Case::new("uts");
    case.config["hostname"] = json!("conf-host");
    case.config["domainname"] = json!("conf.example");
    let r = case.report();
    let cfg = case.config.clone();
    finish("hostname_domainname", &r, &cfg, |c| {
        c.eq("hostname", r["hostname"].as_str(), Some("conf-host"));
        c.eq("domainname", r["domainname"].as_str(), Some("conf.example"));
    });
}

#[test]
fn sysctl() {
    if skip("sysctl") {
        return;
    }
    let mut case = Case::new("sysctl");
    case.config["linux"]["sysctl"] = json!({
        "net.ipv4.ip_forward": "1",
        "kernel.shmmax": "68719476736",
    });
    case.checker_flags(&[
        s("--sysctl"),
        s("net.ipv4.ip_forward"),
        s("--sysctl"),
        s("kernel.shmmax"),
    ]);
    let r = case.report();
    let cfg = case.config.clone();
    finish("sysctl", &r, &cfg, |c| {
        c.eq(
            "net.ipv4.ip_forward",
            r["sysctls"]["net.ipv4.ip_forward"].clone(),
            json!({"value": "1"}),
        );
        c.eq(
            "kernel.shmmax",
            r["sysctls"]["kernel.shmmax"].clone(),
            json!({"value": "68719476736"}),
        );
    });
}

#[test]
fn cwd_non_root() {
    if skip("cwd_non_root") {
        return;
    }
    let mut case = Case::new("cwd");
    case.config["process"]["cwd"] = json!("/usr/bin");
    let r = case.report();
    let cfg = case.config.clone();
    finish("cwd_non_root", &r, &cfg, |c| {
        c.eq("cwd", r["cwd"].as_str(), Some("/usr/bin"));
    });
}

#[test]
fn env_variations() {
    if skip("env_variations") {
        return;
    }
    let mut case = Case::new("env");
    case.config["process"]["env"] = json!([
        "PATH=/bin:/usr/bin",
        "EMPTY=",
        "SPACES=a b  c",
        "EQUALS=x=y=z",
        "UNICODE=caf\u{e9}",
        "HOME=/root",
    ]);
    let r = case.report();
    let cfg = case.config.clone();
    // check_common asserts each entry is present and that nothing else is.
    finish("env_variations", &r, &cfg, |c| {
        let n = r["env"].as_array().map(Vec::len);
        c.eq("env entries", n, Some(6));
    });
}

#[test]
fn tmpfs_mount_options() {
    if skip("tmpfs_mount_options") {
        return;
    }
    let mut case = Case::new("tmpfs");
    case.config["mounts"]
        .as_array_mut()
        .expect("mounts")
        .push(json!({
            "destination": "/mnt/scratch",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "noexec", "nodev", "size=2m", "mode=1770"],
        }));
    let r = case.report();
    let cfg = case.config.clone();
    finish("tmpfs_mount_options", &r, &cfg, |c| {
        check_mounts(c, &r, &cfg);
        let m = mount_at(&r, "/mnt/scratch").cloned().unwrap_or_default();
        c.eq("tmpfs fstype", m["fstype"].as_str(), Some("tmpfs"));
    });
}

#[test]
fn bind_mount_readonly() {
    if skip("bind_mount_readonly") {
        return;
    }
    let mut case = Case::new("bind");
    let src = case.dir.join("bind-src");
    fs::create_dir(&src).expect("mkdir bind source");
    fs::write(src.join("hello"), "hi\n").expect("write bind source file");
    case.config["mounts"]
        .as_array_mut()
        .expect("mounts")
        .push(json!({
            "destination": "/mnt/bound",
            "type": "bind",
            "source": src.to_string_lossy(),
            "options": ["rbind", "ro"],
        }));
    case.checker_flags(&[
        s("--readonly"),
        s("/mnt/bound"),
        s("--readonly"),
        s("/mnt/bound/hello"),
    ]);
    let r = case.report();
    let cfg = case.config.clone();
    finish("bind_mount_readonly", &r, &cfg, |c| {
        check_mounts(c, &r, &cfg);
        let m = mount_at(&r, "/mnt/bound").cloned().unwrap_or_default();
        // The host's temp dir is on its root filesystem or a filesystem of its own; either
        // way the mount's root is the source's path relative to that filesystem.
        let root = m["root"].as_str().unwrap_or_default().to_string();
        let srcs = src.to_string_lossy().into_owned();
        c.that(!root.is_empty() && srcs.ends_with(&root), || {
            format!("bind mount root {root:?} is not a suffix of the source {srcs:?}")
        });
        let f = path_probe(&r, "/mnt/bound/hello")
            .cloned()
            .unwrap_or_default();
        c.eq("bound file exists", f["exists"].as_bool(), Some(true));
        c.eq(
            "bound file is not empty",
            f["read_empty"].as_bool(),
            Some(false),
        );
    });
}

/// rootfsPropagation: the bundle sits on a shared mount of its own, so that "slave" has a
/// master to follow; "/" in the container then carries the matching optional fields.
fn propagation_case(mode: &str) {
    let name = format!("rootfs_propagation_{mode}");
    if skip(&name) {
        return;
    }
    let mut case = Case::new(&format!("prop-{mode}"));
    let bundle = case.bundle.clone();
    host(
        Command::new("mount")
            .arg("--bind")
            .arg(&bundle)
            .arg(&bundle),
        "bind-mounting the bundle onto itself",
    );
    let b2 = bundle.clone();
    case.on_cleanup(move || {
        let _ = umount_detach(&b2);
    });
    host(
        Command::new("mount").arg("--make-shared").arg(&bundle),
        "making the bundle mount shared",
    );
    case.config["linux"]["rootfsPropagation"] = json!(mode);
    let r = case.report();
    let cfg = case.config.clone();
    finish(&name, &r, &cfg, |c| {
        let root = mount_at(&r, "/").cloned().unwrap_or_default();
        let fields: Vec<String> = root["optional_fields"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|f| f.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let shared = fields.iter().any(|f| f.starts_with("shared:"));
        let master = fields.iter().any(|f| f.starts_with("master:"));
        match mode {
            "shared" => c.that(shared, || format!("/ should be shared: {fields:?}")),
            "slave" => c.that(master && !shared, || {
                format!("/ should be a slave (master: and no shared:): {fields:?}")
            }),
            "private" => c.that(!master && !shared, || {
                format!("/ should be private (no shared:/master:): {fields:?}")
            }),
            _ => unreachable!("modes are fixed by the tests"),
        }
    });
}

#[test]
fn rootfs_propagation_slave() {
    propagation_case("slave");
}

#[test]
fn rootfs_propagation_private() {
    propagation_case("private");
}

#[test]
fn rootfs_propagation_shared() {
    propagation_case("shared");
}

#[test]
fn readonly_root_false() {
    if skip("readonly_root_false") {
        return;
    }
    let mut case = Case::new("rw-root");
    case.config["root"]["readonly"] = json!(false);
    // The write probe runs on /tmp; on a read-write root it must succeed, so check_paths
    // (which expects read-only paths to refuse writes) is not used here.
    case.checker_flags(&[s("--readonly"), s("/tmp")]);
    let r = case.report();
    let cfg = case.config.clone();
    let mut c = Check::new("readonly_root_false", &r);
    check_namespaces(&mut c, &r, &cfg);
    let t = path_probe(&r, "/tmp").cloned().unwrap_or_default();
    c.eq(
        "/tmp writable on a read-write root",
        t["writable"].as_bool(),
        Some(true),
    );
    let root = mount_at(&r, "/").cloned().unwrap_or_default();
    let opts: Vec<Value> = root["mount_options"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    c.that(opts.contains(&json!("rw")), || {
        format!("/ should be rw: {opts:?}")
    });
    c.finish();
}

#[test]
fn extra_devices() {
    if skip("extra_devices") {
        return;
    }
    let mut case = Case::new("devices");
    case.config["linux"]["devices"] = json!([
        {"path": "/dev/conf-null", "type": "c", "major": 1, "minor": 3,
         "fileMode": 0o640, "uid": 7, "gid": 8},
        {"path": "/dev/conf-loop", "type": "b", "major": 7, "minor": 200,
         "fileMode": 0o600, "uid": 0, "gid": 6},
    ]);
    let r = case.report();
    let cfg = case.config.clone();
    finish("extra_devices", &r, &cfg, |c| {
        check_device(c, &r, "/dev/conf-null", "char", 1, 3, 0o640, 7, 8);
        check_device(c, &r, "/dev/conf-loop", "block", 7, 200, 0o600, 0, 6);
    });
}

#[test]
fn user_namespace() {
    if skip("user_namespace") {
        return;
    }
    let mut case = Case::new("userns");
    case.config["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces")
        .push(json!({"type": "user"}));
    case.config["linux"]["uidMappings"] =
        json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    case.config["linux"]["gidMappings"] =
        json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    let r = case.report();
    let cfg = case.config.clone();
    finish("user_namespace", &r, &cfg, |c| {
        c.eq("uid_map", r["uid_map"].clone(), json!([[0, 100000, 65536]]));
        c.eq("gid_map", r["gid_map"].clone(), json!([[0, 200000, 65536]]));
        c.eq(
            "uid",
            r["uid"].clone(),
            json!({"real": 0, "effective": 0, "saved": 0}),
        );
        c.eq(
            "gid",
            r["gid"].clone(),
            json!({"real": 0, "effective": 0, "saved": 0}),
        );
    });
}

/// Make a persistent namespace of `kind` (unshare(1)'s --net/--mount...) bound to `file`,
/// unmounted when the case ends, and point the config's `spec_type` namespace at it. Returns
/// the namespace's inode.
fn join_persistent_namespace(
    case: &mut Case,
    file: &std::path::Path,
    flag: &str,
    spec_type: &str,
) -> u64 {
    fs::write(file, "").expect("create the namespace bind target");
    let f = file.to_path_buf();
    case.on_cleanup(move || {
        let _ = umount_detach(&f);
        let _ = fs::remove_file(&f);
    });
    host(
        Command::new("unshare")
            .arg(format!("--{flag}={}", file.display()))
            .arg("true"),
        "creating a persistent namespace",
    );
    let ino = fs::metadata(file).expect("stat the namespace file").ino();
    for ns in case.config["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces")
    {
        if ns["type"] == spec_type {
            ns["path"] = json!(file.to_string_lossy());
        }
    }
    ino
}

#[test]
fn joined_network_namespace() {
    if skip("joined_network_namespace") {
        return;
    }
    if !have("unshare") {
        println!("SKIP joined_network_namespace: unshare(1) is not installed");
        return;
    }
    let mut case = Case::new("netns");
    let nsfile = case.dir.join("netns");
    let ino = join_persistent_namespace(&mut case, &nsfile, "net", "network");
    let r = case.report();
    let cfg = case.config.clone();
    finish("joined_network_namespace", &r, &cfg, |c| {
        c.eq(
            "net namespace inode",
            r["namespaces"]["net"].as_u64(),
            Some(ino),
        );
    });
}

#[test]
fn cgroup_namespace() {
    if skip("cgroup_namespace") {
        return;
    }
    let mut case = Case::new("cgroupns");
    let nss = case.config["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces");
    if !nss.iter().any(|n| n["type"] == "cgroup") {
        nss.push(json!({"type": "cgroup"}));
    }
    let r = case.report();
    let cfg = case.config.clone();
    finish("cgroup_namespace", &r, &cfg, |c| {
        let entries = r["cgroup"].as_array().cloned().unwrap_or_default();
        c.that(!entries.is_empty(), || {
            "no /proc/self/cgroup entries".into()
        });
        for e in entries {
            c.that(e["path"] == "/", || {
                format!("cgroup entry not at the namespace root: {e}")
            });
        }
    });
}

/// config-linux: a namespace type that is not listed is inherited from the runtime, for every
/// type at once (the mount namespace included: nothing of the container's may stay mounted
/// on the host afterwards — the Case guard checks that).
#[test]
fn no_namespaces_inherit_the_runtimes() {
    if skip("no_namespaces_inherit_the_runtimes") {
        return;
    }
    let mut case = Case::new("nons");
    case.config["linux"]["namespaces"] = json!([]);
    case.config["hostname"] = Value::Null;
    let r = case.report();
    let cfg = case.config.clone();
    finish("no_namespaces_inherit_the_runtimes", &r, &cfg, |c| {
        for kind in ["mnt", "uts", "ipc", "net", "pid", "cgroup"] {
            c.eq(
                &format!("{kind} namespace inode"),
                r["namespaces"][kind].as_u64(),
                Some(host_ns(kind)),
            );
        }
    });
    let rootfs = case.dir.join("rootfs");
    let info = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(
        !info.contains(rootfs.to_str().expect("utf-8 path")),
        "mounts of the container stayed on the host"
    );
}

/// config-linux: a mount namespace joined by path is used as it is.
#[test]
fn joined_mount_namespace() {
    if skip("joined_mount_namespace") {
        return;
    }
    if !have("unshare") {
        println!("SKIP joined_mount_namespace: unshare(1) is not installed");
        return;
    }
    let mut case = Case::new("mntns");
    // A persistent mount namespace needs a bind target on a private mount.
    let holder = case.dir.join("nsholder");
    fs::create_dir_all(&holder).expect("create the ns holder dir");
    host(
        Command::new("mount")
            .args(["--bind"])
            .arg(&holder)
            .arg(&holder),
        "binding the ns holder",
    );
    host(
        Command::new("mount").args(["--make-private"]).arg(&holder),
        "making the ns holder private",
    );
    let h = holder.clone();
    case.on_cleanup(move || {
        let _ = umount_detach(&h);
    });
    let nsfile = holder.join("mnt");
    let ino = join_persistent_namespace(&mut case, &nsfile, "mount", "mount");
    let r = case.report();
    let cfg = case.config.clone();
    finish("joined_mount_namespace", &r, &cfg, |c| {
        c.eq(
            "mnt namespace inode",
            r["namespaces"]["mnt"].as_u64(),
            Some(ino),
        );
        check_mounts(c, &r, &cfg);
    });
}

/// config-linux seccomp: the filter is in force in the container's process, with and without
/// no_new_privileges (without it the filter is loaded while the runtime still has
/// CAP_SYS_ADMIN, and must not stop the runtime's own setup).
#[test]
fn seccomp_filter_in_force() {
    if skip("seccomp_filter_in_force") {
        return;
    }
    for nnp in [true, false] {
        let mut case = Case::new(if nnp { "seccomp-nnp" } else { "seccomp" });
        case.config["process"]["noNewPrivileges"] = json!(nnp);
        // An allow-list default with errors for two syscalls the checker never makes, and a
        // rule on an argument.
        case.config["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                {"names": ["kexec_load", "open_by_handle_at"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 0, "value": 4294967295u64, "op": "SCMP_CMP_EQ"}]}
            ]
        });
        let r = case.report();
        let cfg = case.config.clone();
        finish("seccomp_filter_in_force", &r, &cfg, |c| {
            c.eq("seccomp mode (2 = filter)", r["seccomp"].as_u64(), Some(2));
            c.eq("NoNewPrivs", r["no_new_privs"].as_bool(), Some(nnp));
        });
    }
}

/// config-linux cgroups: cpu and device limits, read back from inside the container through
/// its cgroup mount (its own cgroup, as runtime-tools' cgroup programs read it).
#[test]
fn cgroup_cpu_and_device_limits() {
    if skip("cgroup_cpu_and_device_limits") {
        return;
    }
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        println!(
            "SKIP cgroup_cpu_and_device_limits: reads cgroup-v1 files; this host is pure cgroup v2"
        );
        return;
    }
    let mut case = Case::new("cgcpu");
    case.config["linux"]["resources"]["cpu"] =
        json!({"shares": 512, "quota": 20000, "period": 100000, "cpus": "0"});
    case.config["linux"]["resources"]["devices"] = json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw"}
    ]);
    let files = [
        "/sys/fs/cgroup/cpu/cpu.shares",
        "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
        "/sys/fs/cgroup/cpu/cpu.cfs_period_us",
        "/sys/fs/cgroup/cpuset/cpuset.cpus",
        "/sys/fs/cgroup/devices/devices.list",
    ];
    let mut flags = Vec::new();
    for f in files {
        flags.extend([s("--cgroup-file"), s(f)]);
    }
    case.checker_flags(&flags);
    let r = case.report();
    let cfg = case.config.clone();
    let content = |f: &str| {
        r["cgroup_files"][f]["content"]
            .as_str()
            .unwrap_or("")
            .trim()
            .to_string()
    };
    finish("cgroup_cpu_and_device_limits", &r, &cfg, |c| {
        c.eq("cpu.shares", content(files[0]), s("512"));
        c.eq("cpu.cfs_quota_us", content(files[1]), s("20000"));
        c.eq("cpu.cfs_period_us", content(files[2]), s("100000"));
        c.eq("cpuset.cpus", content(files[3]), s("0"));
        let devices = content(files[4]);
        c.that(devices.lines().any(|l| l == "c 10:229 rw"), || {
            format!("c 10:229 rw allowed: {devices:?}")
        });
        c.that(!devices.lines().any(|l| l.starts_with("b 8:")), || {
            format!("disks not allowed: {devices:?}")
        });
        c.that(!devices.lines().any(|l| l == "a *:* rwm"), || {
            format!("not everything allowed: {devices:?}")
        });
    });
}
