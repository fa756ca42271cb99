//! The default seccomp profiles of Docker (moby) and podman (containers-common), as Debian ships
//! them, loaded into real containers.
//!
//! Both files are in moby's profile format, which engines turn into the OCI `linux.seccomp`
//! object before they call the runtime: entries carry conditions (`includes` / `excludes` on
//! capabilities, architectures and kernel version) and the architectures come as a map from a
//! native architecture to its sub-architectures. [`convert`] does that conversion for the
//! container's capabilities and this host, so the runtime sees what it would get from the
//! engine. Each test skips visibly when the profile's Debian package is not installed.
mod common;
use common::*;

use serde_json::{json, Map, Value};

/// Moby's default profile (Debian package golang-github-docker-docker-dev).
const DOCKER: &str = "/usr/share/gocode/src/github.com/docker/docker/profiles/seccomp/default.json";
/// Podman's default profile (Debian package golang-github-containers-common).
const PODMAN: &str = "/usr/share/containers/seccomp.json";

/// What an entry's conditions are evaluated against.
struct Host {
    /// The architecture as profiles name it in `includes.arches` (Go's names: amd64, arm64...).
    arch: &'static str,
    /// The native architecture as libseccomp names it, the key of `archMap`.
    native: &'static str,
    /// The running kernel's version (major, minor, patch).
    kernel: (u64, u64, u64),
}

impl Host {
    /// This machine, or None on an architecture the tests do not know the names of.
    fn this() -> Option<Host> {
        let little = cfg!(target_endian = "little");
        let (arch, native) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", "SCMP_ARCH_X86_64"),
            "x86" => ("x86", "SCMP_ARCH_X86"),
            "aarch64" => ("arm64", "SCMP_ARCH_AARCH64"),
            "arm" => ("arm", "SCMP_ARCH_ARM"),
            "s390x" => ("s390x", "SCMP_ARCH_S390X"),
            "powerpc64" if little => ("ppc64le", "SCMP_ARCH_PPC64LE"),
            "riscv64" => ("riscv64", "SCMP_ARCH_RISCV64"),
            _ => return None,
        };
        let release = nix::sys::utsname::uname().ok()?;
        let kernel = parse_version(release.release().to_str()?)?;
        Some(Host {
            arch,
            native,
            kernel,
        })
    }
}

/// "6.1.0-18-amd64" or "4.8" as (major, minor, patch); missing parts are 0.
fn parse_version(s: &str) -> Option<(u64, u64, u64)> {
    let mut parts = s.split('.').map(|p| {
        let digits: String = p.chars().take_while(|c| c.is_ascii_digit()).collect();
        digits.parse::<u64>().ok()
    });
    let major = parts.next()??;
    let minor = parts.next().flatten().unwrap_or(0);
    let patch = parts.next().flatten().unwrap_or(0);
    Some((major, minor, patch))
}

/// Whether one `includes` or `excludes` condition holds. Each field is a separate condition:
/// `caps` holds when the container has every listed capability, `arches` when this host's
/// architecture is listed, `minKernel` when the kernel is at least that version. `all` asks
/// whether every present condition holds (includes), otherwise whether any does (excludes).
fn conditions(filter: Option<&Value>, caps: &[String], host: &Host, all: bool) -> bool {
    let Some(f) = filter.and_then(Value::as_object) else {
        return all;
    };
    let mut results = Vec::new();
    if let Some(list) = f.get("caps").and_then(Value::as_array) {
        if all {
            // Included only if the container has every one of them.
            results.push(
                list.iter()
                    .all(|c| caps.iter().any(|have| Some(have.as_str()) == c.as_str())),
            );
        } else {
            // Excluded as soon as the container has any one of them.
            results.push(
                list.iter()
                    .any(|c| caps.iter().any(|have| Some(have.as_str()) == c.as_str())),
            );
        }
    }
    if let Some(list) = f.get("arches").and_then(Value::as_array) {
        if !list.is_empty() {
            results.push(list.iter().any(|a| a.as_str() == Some(host.arch)));
        }
    }
    if let Some(min) = f.get("minKernel").and_then(Value::as_str) {
        if !min.is_empty() {
            let min = parse_version(min).unwrap_or_else(|| panic!("minKernel {min:?}"));
            results.push(host.kernel >= min);
        }
    }
    if all {
        results.iter().all(|r| *r)
    } else {
        results.iter().any(|r| *r)
    }
}

/// A moby-format profile as the OCI `linux.seccomp` object for a container whose bounding
/// capabilities are `caps`, on `host`.
///
/// `defaultAction`, `defaultErrnoRet`, `flags` and `listenerPath` are kept; `archMap` becomes
/// `architectures`, the native architecture followed by its sub-architectures (a profile with
/// plain `architectures` keeps them); an entry is kept when all its `includes` hold and none of
/// its `excludes` does, with its `names` (or an old single `name`), `action`, `errnoRet` and
/// `args`, and without its conditions and comment.
fn convert(profile: &Value, caps: &[String], host: &Host) -> Value {
    let mut out = Map::new();
    for key in ["defaultAction", "defaultErrnoRet", "flags", "listenerPath"] {
        if let Some(v) = profile.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    let mut arches = Vec::new();
    if let Some(map) = profile.get("archMap").and_then(Value::as_array) {
        for m in map {
            if m["architecture"].as_str() == Some(host.native) {
                arches.push(m["architecture"].clone());
                arches.extend(
                    m["subArchitectures"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .cloned(),
                );
            }
        }
    } else if let Some(list) = profile.get("architectures").and_then(Value::as_array) {
        arches.extend(list.iter().cloned());
    }
    if !arches.is_empty() {
        out.insert("architectures".into(), Value::Array(arches));
    }
    let mut syscalls = Vec::new();
    for entry in profile["syscalls"].as_array().into_iter().flatten() {
        if !conditions(entry.get("includes"), caps, host, true)
            || conditions(entry.get("excludes"), caps, host, false)
        {
            continue;
        }
        let names = match (entry.get("names"), entry.get("name")) {
            (Some(n), _) => n.clone(),
            (None, Some(n)) => json!([n]),
            (None, None) => panic!("syscall entry without names: {entry}"),
        };
        let mut s = Map::new();
        s.insert("names".into(), names);
        s.insert("action".into(), entry["action"].clone());
        for key in ["errnoRet", "args"] {
            match entry.get(key) {
                Some(Value::Null) | None => {}
                Some(Value::Array(a)) if a.is_empty() => {}
                Some(v) => {
                    s.insert(key.into(), v.clone());
                }
            }
        }
        syscalls.push(Value::Object(s));
    }
    out.insert("syscalls".into(), Value::Array(syscalls));
    Value::Object(out)
}

/// The profile at `path`, or None after a visible skip line when its package is missing.
fn load(test: &str, path: &str) -> Option<Value> {
    match std::fs::read(path) {
        Ok(data) => Some(serde_json::from_slice(&data).expect("profile JSON")),
        Err(e) => {
            eprintln!("SKIPPED {test}: {path}: {e} (install the profile's Debian package)");
            None
        }
    }
}

fn this_host(test: &str) -> Option<Host> {
    let h = Host::this();
    if h.is_none() {
        eprintln!(
            "SKIPPED {test}: no profile architecture names for {}",
            std::env::consts::ARCH
        );
    }
    h
}

/// The container's bounding capabilities.
fn bounding(b: &Bundle) -> Vec<String> {
    b.config["process"]["capabilities"]["bounding"]
        .as_array()
        .expect("bounding capabilities")
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect()
}

/// What a syscall whose first argument is `arg0` gets from the converted profile: the action
/// and, for SCMP_ACT_ERRNO, the errno. Only unconditional rules and rules comparing argument 0
/// for equality are understood; finding two matching rules is an error of the probe.
fn verdict(seccomp: &Value, syscall: &str, arg0: u64) -> (String, Option<i64>) {
    let mut found = None;
    for s in seccomp["syscalls"].as_array().unwrap() {
        if !s["names"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str() == Some(syscall))
        {
            continue;
        }
        let matches = match s.get("args").and_then(Value::as_array) {
            None => true,
            Some(args) => args.iter().all(|a| {
                assert_eq!(
                    a["index"], 0,
                    "probe of {syscall} understands argument 0 only"
                );
                assert_eq!(a["op"], "SCMP_CMP_EQ", "probe of {syscall}: {a}");
                a["value"].as_u64() == Some(arg0)
            }),
        };
        if matches {
            assert!(found.is_none(), "two rules for {syscall}({arg0:#x})");
            found = Some((
                s["action"].as_str().unwrap().to_string(),
                s.get("errnoRet").and_then(Value::as_i64),
            ));
        }
    }
    found.unwrap_or_else(|| {
        (
            seccomp["defaultAction"].as_str().unwrap().to_string(),
            seccomp.get("defaultErrnoRet").and_then(Value::as_i64),
        )
    })
}

/// How busybox reports `errno` (glibc's strerror text), for the errnos the profiles return.
fn strerror(errno: i64) -> &'static str {
    match errno {
        1 => "Operation not permitted",
        22 => "Invalid argument",
        38 => "Function not implemented",
        other => panic!("no message known for errno {other}"),
    }
}

/// What the shell prints for a probe: "ok" or the error text busybox reports.
fn expectation(seccomp: &Value, syscall: &str, arg0: u64) -> String {
    match verdict(seccomp, syscall, arg0) {
        (a, _) if a == "SCMP_ACT_ALLOW" => "ok".into(),
        // The OCI default errno of SCMP_ACT_ERRNO is EPERM.
        (a, errno) if a == "SCMP_ACT_ERRNO" => strerror(errno.unwrap_or(1)).into(),
        (a, _) => panic!("probe of {syscall}: action {a} not expected in a default profile"),
    }
}

/// A writable /tmp on the read-only shared rootfs.
fn with_tmp(b: &mut Bundle) {
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "nodev", "mode=1777"]
    }));
}

/// Add `cap` to the bounding, effective and permitted sets.
fn add_cap(b: &mut Bundle, cap: &str) {
    for set in ["bounding", "effective", "permitted"] {
        let list = b.config["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap_or_else(|| panic!("capabilities.{set}"));
        if !list.iter().any(|c| c == cap) {
            list.push(cap.into());
        }
    }
}

/// A bundle running `script` under `profile` converted for its capabilities (plus `extra`).
fn bundle(name: &str, profile: &Value, host: &Host, extra: &[&str], script: &str) -> Bundle {
    let mut b = Bundle::new(name, &["sh", "-c", script]);
    with_tmp(&mut b);
    for cap in extra {
        add_cap(&mut b, cap);
    }
    let seccomp = convert(profile, &bounding(&b), host);
    b.config["linux"]["seccomp"] = seccomp;
    b.save();
    b
}

/// The probes: a shell line per syscall that prints "NAME: ok" or "NAME: <error>", the
/// syscall and the first argument it is made with. Both syscalls succeed for root without
/// capabilities when no filter is loaded (checked by [`probes_pass_without_seccomp`]), so a
/// failure under a profile is the profile's.
const PROBES: [(&str, &str, &str, u64); 2] = [
    // personality(PER_LINUX32 | ADDR_NO_RANDOMIZE): the profiles allow a few personalities only.
    ("personality", "linux32 -R true", "personality", 0x0040_0008),
    // unshare(CLONE_NEWUSER): a new user namespace needs no capability.
    ("userns", "unshare -U true", "unshare", 0x1000_0000),
];

fn probe_script() -> String {
    PROBES
        .iter()
        .map(|(name, cmd, _, _)| {
            format!("if err=$({cmd} 2>&1); then echo '{name}: ok'; else echo \"{name}: $err\"; fi")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Check each probe's line in `stdout` against what `seccomp` says of its syscall.
fn check_probes(stdout: &str, seccomp: &Value, context: &str) {
    for (name, _, syscall, arg0) in PROBES {
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("{context}: no {name} line in {stdout:?}"));
        let want = expectation(seccomp, syscall, arg0);
        if want == "ok" {
            assert_eq!(line, "ok", "{context}: {name}: {stdout}");
        } else {
            assert!(
                line.contains(&want),
                "{context}: {name} should fail with {want:?}: {stdout}"
            );
        }
    }
}

const WORKLOAD: &str = "set -e
ls / > /dev/null
grep '^Seccomp:' /proc/self/status
mkdir -p /tmp/work/sub
echo hello > /tmp/work/sub/file
cat /tmp/work/sub/file
rm -r /tmp/work
test ! -e /tmp/work
date +%Y > /dev/null
echo abc | tr abc xyz | cat
echo done";

fn workload(test: &str, path: &str) {
    if !can_run(test) {
        return;
    }
    let (Some(profile), Some(host)) = (load(test, path), this_host(test)) else {
        return;
    };
    let b = bundle("profwork", &profile, &host, &[], WORKLOAD);
    let r = b.run();
    assert!(r.ok(), "status {:?}: {}{}", r.status, r.stdout, r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(
        lines,
        ["Seccomp:\t2", "hello", "xyz", "done"],
        "stderr: {}",
        r.stderr
    );
}

fn blocks(test: &str, path: &str) {
    if !can_run(test) {
        return;
    }
    let (Some(profile), Some(host)) = (load(test, path), this_host(test)) else {
        return;
    };
    let b = bundle("profblock", &profile, &host, &[], &probe_script());
    let seccomp = b.config["linux"]["seccomp"].clone();
    let r = b.run();
    assert!(r.ok(), "status {:?}: {}{}", r.status, r.stdout, r.stderr);
    check_probes(&r.stdout, &seccomp, test);
    // The unprivileged container must not be allowed everything: the personality probe is
    // outside every profile's list of personalities.
    assert!(
        !r.stdout.contains("personality: ok"),
        "{test}: {}",
        r.stdout
    );
}

fn sys_admin(test: &str, path: &str) {
    if !can_run(test) {
        return;
    }
    let (Some(profile), Some(host)) = (load(test, path), this_host(test)) else {
        return;
    };
    let script = format!(
        "{}\nunshare -m true && echo 'mountns: ok'\nhostname probe && echo \"hostname: $(hostname)\"",
        probe_script()
    );
    let b = bundle("profadmin", &profile, &host, &["CAP_SYS_ADMIN"], &script);
    let seccomp = b.config["linux"]["seccomp"].clone();
    // The conversion saw the capability: the entries conditional on it are in.
    assert_eq!(
        expectation(&seccomp, "unshare", 0x0002_0000),
        "ok",
        "{test}: unshare not allowed with CAP_SYS_ADMIN"
    );
    assert_eq!(
        expectation(&seccomp, "sethostname", 0),
        "ok",
        "{test}: sethostname not allowed with CAP_SYS_ADMIN"
    );
    let r = b.run();
    assert!(r.ok(), "status {:?}: {}{}", r.status, r.stdout, r.stderr);
    check_probes(&r.stdout, &seccomp, test);
    assert!(
        r.stdout.contains("mountns: ok\n"),
        "{}{}",
        r.stdout,
        r.stderr
    );
    assert!(
        r.stdout.contains("hostname: probe\n"),
        "{}{}",
        r.stdout,
        r.stderr
    );
}

fn exec(test: &str, path: &str) {
    if !can_run(test) {
        return;
    }
    let (Some(profile), Some(host)) = (load(test, path), this_host(test)) else {
        return;
    };
    let b = bundle("profexec", &profile, &host, &[], "exec sleep 100");
    let seccomp = b.config["linux"]["seccomp"].clone();
    let r = b.run_detached();
    assert!(r.ok(), "{}", r.stderr);
    let r = b.rt(&["exec", &b.id, "sh", "-c", WORKLOAD]);
    assert!(r.ok(), "status {:?}: {}{}", r.status, r.stdout, r.stderr);
    assert_eq!(
        r.stdout.lines().collect::<Vec<_>>(),
        ["Seccomp:\t2", "hello", "xyz", "done"],
        "{}",
        r.stderr
    );
    let r = b.rt(&["exec", &b.id, "sh", "-c", &probe_script()]);
    assert!(r.ok(), "status {:?}: {}{}", r.status, r.stdout, r.stderr);
    check_probes(&r.stdout, &seccomp, test);
    assert_eq!(b.status().as_deref(), Some("running"));
}

#[test]
fn docker_profile_runs_a_normal_workload() {
    workload("docker_profile_runs_a_normal_workload", DOCKER);
}

#[test]
fn podman_profile_runs_a_normal_workload() {
    workload("podman_profile_runs_a_normal_workload", PODMAN);
}

#[test]
fn docker_profile_blocks_with_its_errno() {
    blocks("docker_profile_blocks_with_its_errno", DOCKER);
}

#[test]
fn podman_profile_blocks_with_its_errno() {
    blocks("podman_profile_blocks_with_its_errno", PODMAN);
}

#[test]
fn docker_profile_with_cap_sys_admin() {
    sys_admin("docker_profile_with_cap_sys_admin", DOCKER);
}

#[test]
fn podman_profile_with_cap_sys_admin() {
    sys_admin("podman_profile_with_cap_sys_admin", PODMAN);
}

#[test]
fn docker_profile_applies_to_exec() {
    exec("docker_profile_applies_to_exec", DOCKER);
}

#[test]
fn podman_profile_applies_to_exec() {
    exec("podman_profile_applies_to_exec", PODMAN);
}

/// The probes succeed without a filter, so that their failures above are the profiles' doing.
#[test]
fn probes_pass_without_seccomp() {
    if !can_run("probes_pass_without_seccomp") {
        return;
    }
    let mut b = Bundle::new("profnone", &["sh", "-c", &probe_script()]);
    b.config["linux"].as_object_mut().unwrap().remove("seccomp");
    b.save();
    let r = b.run();
    assert!(r.ok(), "status {:?}: {}{}", r.status, r.stdout, r.stderr);
    for (name, ..) in PROBES {
        assert!(
            r.stdout.contains(&format!("{name}: ok\n")),
            "{name}: {}",
            r.stdout
        );
    }
}

// The conversion itself, on the real profiles and on small made-up ones.

fn amd64(kernel: (u64, u64, u64)) -> Host {
    Host {
        arch: "amd64",
        native: "SCMP_ARCH_X86_64",
        kernel,
    }
}

fn names(seccomp: &Value) -> Vec<String> {
    seccomp["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["names"].as_array().unwrap().iter())
        .map(|n| n.as_str().unwrap().to_string())
        .collect()
}

/// The converted entries that name `syscall`.
fn entries<'a>(seccomp: &'a Value, syscall: &str) -> Vec<&'a Value> {
    seccomp["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["names"].as_array().unwrap().iter().any(|x| x == syscall))
        .collect()
}

fn caps(list: &[&str]) -> Vec<String> {
    list.iter().map(|c| c.to_string()).collect()
}

#[test]
fn conversion_of_conditions() {
    let profile = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 38,
        "flags": ["SECCOMP_FILTER_FLAG_LOG"],
        "archMap": [
            {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
            {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}
        ],
        "syscalls": [
            {"names": ["plain"], "action": "SCMP_ACT_ALLOW", "args": [], "comment": "x", "includes": {}, "excludes": {}},
            {"name": "old", "action": "SCMP_ACT_ALLOW"},
            {"names": ["twocaps"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_A", "CAP_B"]}},
            {"names": ["notcapb"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "excludes": {"caps": ["CAP_B", "CAP_C"]}},
            {"names": ["onamd64"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64", "x32"]}},
            {"names": ["onarm"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm", "arm64"]}},
            {"names": ["notamd64"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": ["amd64"]}},
            {"names": ["new"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "5.10"}},
            {"names": ["old_only"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "5.10"}},
            {"names": ["args"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]}
        ]
    });
    let got = convert(&profile, &caps(&["CAP_A"]), &amd64((5, 10, 0)));
    assert_eq!(got["defaultAction"], "SCMP_ACT_ERRNO");
    assert_eq!(got["defaultErrnoRet"], 38);
    assert_eq!(got["flags"], json!(["SECCOMP_FILTER_FLAG_LOG"]));
    assert_eq!(
        got["architectures"],
        json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
    );
    assert_eq!(
        names(&got),
        ["plain", "old", "notcapb", "onamd64", "new", "args"]
    );
    // Conditions and comments are gone; empty args are left out; errnoRet and args stay.
    assert_eq!(
        got["syscalls"][0],
        json!({"names": ["plain"], "action": "SCMP_ACT_ALLOW"})
    );
    assert_eq!(got["syscalls"][2]["errnoRet"], 1);
    assert_eq!(got["syscalls"][5]["args"][0]["value"], 8);

    // Both capabilities: the entry that needs both is in; either excluded one drops the other.
    let got = convert(&profile, &caps(&["CAP_A", "CAP_B"]), &amd64((4, 19, 0)));
    assert_eq!(
        names(&got),
        ["plain", "old", "twocaps", "onamd64", "old_only", "args"]
    );
    let got = convert(&profile, &caps(&["CAP_C"]), &amd64((6, 1, 0)));
    assert!(!names(&got).contains(&"notcapb".to_string()));

    // Another architecture: its own sub-architectures and arch-conditional entries.
    let arm64 = Host {
        arch: "arm64",
        native: "SCMP_ARCH_AARCH64",
        kernel: (6, 1, 0),
    };
    let got = convert(&profile, &[], &arm64);
    assert_eq!(
        got["architectures"],
        json!(["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"])
    );
    assert_eq!(
        names(&got),
        ["plain", "old", "notcapb", "onarm", "notamd64", "new", "args"]
    );
}

#[test]
fn kernel_versions() {
    assert_eq!(parse_version("6.1.0-18-amd64"), Some((6, 1, 0)));
    assert_eq!(parse_version("6.18.44-fc-v857"), Some((6, 18, 44)));
    assert_eq!(parse_version("4.8"), Some((4, 8, 0)));
    assert_eq!(parse_version("5"), Some((5, 0, 0)));
    assert_eq!(parse_version("x"), None);
    assert!(parse_version("4.10").unwrap() > parse_version("4.8").unwrap());
}

#[test]
fn docker_profile_conversion() {
    let Some(profile) = load("docker_profile_conversion", DOCKER) else {
        return;
    };
    let plain = caps(&["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    let host = amd64((6, 1, 0));
    let got = convert(&profile, &plain, &host);
    assert_eq!(
        got["architectures"],
        json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
    );
    assert!(got.get("defaultErrnoRet").is_none());
    let n = names(&got);
    for absent in [
        "unshare",
        "mount",
        "setns",
        "sethostname",
        "reboot",
        "s390_runtime_instr",
    ] {
        assert!(!n.iter().any(|x| x == absent), "{absent} kept");
    }
    for present in ["read", "arch_prctl", "modify_ldt", "ptrace"] {
        assert!(n.iter().any(|x| x == present), "{present} dropped");
    }
    assert_eq!(expectation(&got, "unshare", 0), "Operation not permitted");
    // clone without namespace flags is allowed through its argument rule; clone3 answers
    // ENOSYS so that libc falls back to clone.
    let clone = entries(&got, "clone");
    assert_eq!(clone.len(), 1, "{clone:?}");
    assert_eq!(clone[0]["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
    assert_eq!(expectation(&got, "clone3", 0), "Function not implemented");
    // ptrace needs kernel 4.8.
    let old = convert(&profile, &plain, &amd64((4, 4, 0)));
    assert!(!names(&old).iter().any(|x| x == "ptrace"));

    let mut admin = plain.clone();
    admin.push("CAP_SYS_ADMIN".into());
    let got = convert(&profile, &admin, &host);
    assert_eq!(expectation(&got, "unshare", 0), "ok");
    assert_eq!(expectation(&got, "clone3", 0), "ok");
    assert_eq!(expectation(&got, "mount", 0), "ok");
}

#[test]
fn podman_profile_conversion() {
    let Some(profile) = load("podman_profile_conversion", PODMAN) else {
        return;
    };
    let plain = caps(&["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    let host = amd64((6, 1, 0));
    let got = convert(&profile, &plain, &host);
    assert_eq!(got["defaultAction"], "SCMP_ACT_ERRNO");
    assert_eq!(got["defaultErrnoRet"], 38);
    assert_eq!(
        expectation(&got, "io_uring_setup", 0),
        "Function not implemented"
    );
    assert_eq!(
        expectation(&got, "sethostname", 0),
        "Operation not permitted"
    );
    assert_eq!(expectation(&got, "chroot", 0), "Operation not permitted");
    // setns is also in the profile's unconditional list; the conditional EPERM entry is kept
    // only for a container without CAP_SYS_ADMIN.
    let setns_errno = |got: &Value| {
        entries(got, "setns")
            .iter()
            .any(|s| s["action"] == "SCMP_ACT_ERRNO" && s["errnoRet"] == 1)
    };
    assert!(setns_errno(&got));
    assert_eq!(expectation(&got, "unshare", 0), "ok");
    // With CAP_AUDIT_WRITE the audit netlink socket rules are not in; only the plain allow.
    let sockets = entries(&got, "socket");
    assert_eq!(
        sockets,
        [&json!({"names": ["socket"], "action": "SCMP_ACT_ALLOW"})]
    );
    // Without it, socket(AF_NETLINK, .., NETLINK_AUDIT) gets EINVAL from an argument rule.
    let got = convert(&profile, &caps(&["CAP_KILL"]), &host);
    assert!(got["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["names"] == json!(["socket"]) && s["errnoRet"] == 22));

    let mut admin = plain.clone();
    admin.push("CAP_SYS_ADMIN".into());
    let got = convert(&profile, &admin, &host);
    assert!(!setns_errno(&got));
    assert_eq!(expectation(&got, "sethostname", 0), "ok");
}
