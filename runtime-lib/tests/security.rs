//! The security plans applied for real, each in a forked child so the test process keeps
//! its privileges. The child runs plain checks (glibc's fork keeps malloc usable in it) and
//! exits with 0 or the number of the first failed check; the parent names the failed check.
//!
//! Needs root (CAP_SETPCAP, CAP_SETUID, CAP_SETGID); without it the tests say so and skip.

use casulo::__private::security::{
    set_no_new_privs, switch_user, CapsPlan, RlimitsPlan, SeccompPlan, SecurityError,
};
use nix::sys::resource::{getrlimit, Resource};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, getgroups, getresgid, getresuid, ForkResult, Gid, Uid};
use oci_spec::runtime::{LinuxCapabilities, LinuxSeccomp, PosixRlimit};

/// How a child ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    Exit(i32),
    Signal(Signal),
}

/// Run `f` in a forked child and return how it ended. `f` returns 0 for success or the
/// 1-based number of the first failed check.
// fork and _exit have no safe form: an exception to the workspace's `unsafe_code = "deny"`.
#[allow(unsafe_code)]
fn in_child(f: impl FnOnce() -> i32) -> End {
    // SAFETY: the child runs only `f`, which is written to make raw syscalls on prepared
    // data and plain stack buffers, then leaves with _exit without running destructors or
    // returning into the test harness.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(120);
            // SAFETY: _exit ends the child at once; nothing of the parent's is shared.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => match waitpid(child, None).expect("waitpid") {
            WaitStatus::Exited(_, code) => End::Exit(code),
            WaitStatus::Signaled(_, sig, _) => End::Signal(sig),
            other => panic!("unexpected wait status {other:?}"),
        },
    }
}

/// Assert the child passed every check, naming the failed one otherwise.
fn assert_passed(end: End, checks: &[&str]) {
    match end {
        End::Exit(0) => {}
        End::Exit(n) if n >= 1 && (n as usize) <= checks.len() => {
            panic!("child check {n} failed: {}", checks[n as usize - 1])
        }
        other => panic!("child ended with {other:?}"),
    }
}

fn is_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        true
    } else {
        eprintln!("SKIP: this test needs root");
        false
    }
}

/// A field of /proc/self/status read into a stack buffer, parsed as hex (`hex`) or decimal.
/// Allocation-free, for use in the child.
fn status_field(name: &[u8], hex: bool) -> Option<u64> {
    use nix::fcntl::{open, OFlag};
    let mut buf = [0u8; 8192];
    let fd = open(
        c"/proc/self/status",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ok()?;
    let mut len = 0;
    while let Ok(n @ 1..) = nix::unistd::read(&fd, &mut buf[len..]) {
        len += n;
    }
    for line in buf[..len].split(|b| *b == b'\n') {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let Some(rest) = rest.strip_prefix(b":") else {
            continue;
        };
        let digits = rest.trim_ascii();
        let mut value = 0u64;
        for d in digits {
            let v = match (*d as char).to_digit(if hex { 16 } else { 10 }) {
                Some(v) => v as u64,
                None => return None,
            };
            value = value * if hex { 16 } else { 10 } + v;
        }
        return Some(value);
    }
    None
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn caps(json: &str) -> LinuxCapabilities {
    serde_json::from_str(json).expect("test capabilities parse")
}

const CAP_CHOWN: u64 = 1 << 0;
const CAP_KILL: u64 = 1 << 5;
const CAP_SETUID: u64 = 1 << 7;
const CAP_SETPCAP: u64 = 1 << 8;
const CAP_NET_BIND_SERVICE: u64 = 1 << 10;

#[test]
fn caps_apply_sets_all_five_sets() {
    if !is_root() {
        return;
    }
    let spec = caps(
        r#"{"bounding":["CAP_CHOWN","CAP_KILL","CAP_NET_BIND_SERVICE","CAP_SETPCAP"],
            "effective":["CAP_CHOWN","CAP_KILL"],
            "permitted":["CAP_CHOWN","CAP_KILL","CAP_NET_BIND_SERVICE"],
            "inheritable":["CAP_KILL","CAP_NET_BIND_SERVICE"],
            "ambient":["CAP_NET_BIND_SERVICE","CAP_CHOWN"]}"#,
    );
    let plan = CapsPlan::from_spec(Some(&spec)).unwrap();
    // CAP_CHOWN is not inheritable, so it cannot be ambient: skipped, as runc does.
    assert_eq!(plan.ignored_ambient(), vec!["CAP_CHOWN"]);
    let end = in_child(|| {
        if plan.drop_bounding().is_err() {
            return 1;
        }
        if plan.apply().is_err() {
            return 2;
        }
        let expect = [
            (
                &b"CapBnd"[..],
                CAP_CHOWN | CAP_KILL | CAP_NET_BIND_SERVICE | CAP_SETPCAP,
            ),
            (b"CapEff", CAP_CHOWN | CAP_KILL),
            (b"CapPrm", CAP_CHOWN | CAP_KILL | CAP_NET_BIND_SERVICE),
            (b"CapInh", CAP_KILL | CAP_NET_BIND_SERVICE),
            (b"CapAmb", CAP_NET_BIND_SERVICE),
        ];
        for (i, (field, mask)) in expect.into_iter().enumerate() {
            if status_field(field, true) != Some(mask) {
                return 3 + i as i32;
            }
        }
        0
    });
    assert_passed(
        end,
        &[
            "drop_bounding",
            "apply",
            "CapBnd",
            "CapEff",
            "CapPrm",
            "CapInh",
            "CapAmb",
        ],
    );
}

#[test]
fn caps_none_drops_everything() {
    if !is_root() {
        return;
    }
    let plan = CapsPlan::from_spec(None).unwrap();
    let end = in_child(|| {
        if plan.drop_bounding().is_err() {
            return 1;
        }
        if plan.apply().is_err() {
            return 2;
        }
        for (i, field) in [&b"CapBnd"[..], b"CapEff", b"CapPrm", b"CapInh", b"CapAmb"]
            .into_iter()
            .enumerate()
        {
            if status_field(field, true) != Some(0) {
                return 3 + i as i32;
            }
        }
        0
    });
    assert_passed(
        end,
        &[
            "drop_bounding",
            "apply",
            "CapBnd",
            "CapEff",
            "CapPrm",
            "CapInh",
            "CapAmb",
        ],
    );
}

#[test]
fn switch_user_sets_ids_and_groups() {
    if !is_root() {
        return;
    }
    let end = in_child(|| {
        if switch_user(1000, 1000, &[10, 20], true).is_err() {
            return 1;
        }
        let uid = Uid::from_raw(1000);
        match getresuid() {
            Ok(ids) if (ids.real, ids.effective, ids.saved) == (uid, uid, uid) => {}
            _ => return 2,
        }
        let gid = Gid::from_raw(1000);
        match getresgid() {
            Ok(ids) if (ids.real, ids.effective, ids.saved) == (gid, gid, gid) => {}
            _ => return 3,
        }
        if getgroups().ok() != Some(vec![Gid::from_raw(10), Gid::from_raw(20)]) {
            return 4;
        }
        // PR_SET_KEEPCAPS is back to 0, and the permitted set survived the switch while
        // the effective set was cleared by it.
        if nix::sys::prctl::get_keepcaps() != Ok(false) {
            return 5;
        }
        if status_field(b"CapEff", true) != Some(0) {
            return 6;
        }
        if status_field(b"CapPrm", true).unwrap_or(0) & (CAP_SETUID | CAP_KILL) == 0 {
            return 7;
        }
        0
    });
    assert_passed(
        end,
        &[
            "switch_user",
            "getresuid == 1000",
            "getresgid == 1000",
            "getgroups == [10, 20]",
            "PR_GET_KEEPCAPS == 0",
            "CapEff empty after the uid change",
            "CapPrm kept across the uid change",
        ],
    );
}

#[test]
fn switch_user_without_setgroups_keeps_groups() {
    if !is_root() {
        return;
    }
    let before = getgroups().expect("getgroups");
    let end = in_child(|| {
        if switch_user(1000, 1000, &[10, 20], false).is_err() {
            return 1;
        }
        if getgroups().ok().as_ref() != Some(&before) {
            return 2;
        }
        0
    });
    assert_passed(end, &["switch_user", "groups unchanged"]);
}

#[test]
fn switch_user_then_caps_grants_configured_caps() {
    if !is_root() {
        return;
    }
    let spec = caps(
        r#"{"bounding":["CAP_KILL","CAP_NET_BIND_SERVICE"],
            "effective":["CAP_KILL","CAP_NET_BIND_SERVICE"],
            "permitted":["CAP_KILL","CAP_NET_BIND_SERVICE"],
            "inheritable":["CAP_NET_BIND_SERVICE"],
            "ambient":["CAP_NET_BIND_SERVICE"]}"#,
    );
    let plan = CapsPlan::from_spec(Some(&spec)).unwrap();
    let end = in_child(|| {
        if plan.drop_bounding().is_err() {
            return 1;
        }
        if switch_user(1000, 1000, &[], true).is_err() {
            return 2;
        }
        if plan.apply().is_err() {
            return 3;
        }
        if status_field(b"CapEff", true) != Some(CAP_KILL | CAP_NET_BIND_SERVICE) {
            return 4;
        }
        if status_field(b"CapAmb", true) != Some(CAP_NET_BIND_SERVICE) {
            return 5;
        }
        if nix::unistd::geteuid() != Uid::from_raw(1000) {
            return 6;
        }
        // No group list left: an empty additional_gids clears root's groups.
        if getgroups().ok() != Some(Vec::new()) {
            return 7;
        }
        0
    });
    assert_passed(
        end,
        &[
            "drop_bounding",
            "switch_user",
            "apply",
            "CapEff",
            "CapAmb",
            "euid 1000",
            "no groups",
        ],
    );
}

#[test]
fn caps_apply_cannot_regain_dropped_permitted_caps() {
    if !is_root() {
        return;
    }
    // After switching away from root with an empty permitted set there is nothing left to
    // grant: capset must refuse, and say so.
    let empty = CapsPlan::from_spec(None).unwrap();
    let wanted = CapsPlan::from_masks(CAP_KILL, CAP_KILL, CAP_KILL, 0, 0).unwrap();
    let end = in_child(|| {
        if empty.apply().is_err() {
            return 1;
        }
        match wanted.apply() {
            Err(SecurityError::Apply {
                errno: nix::Error::EPERM,
                ..
            }) => 0,
            _ => 2,
        }
    });
    assert_passed(end, &["apply empty", "capset refused with EPERM"]);
}

#[test]
fn rlimits_apply() {
    if !is_root() {
        return;
    }
    let spec: Vec<PosixRlimit> = serde_json::from_str(
        r#"[{"type":"RLIMIT_NOFILE","soft":100,"hard":200},
            {"type":"RLIMIT_CORE","soft":0,"hard":0},
            {"type":"RLIMIT_MSGQUEUE","soft":4096,"hard":8192}]"#,
    )
    .unwrap();
    let plan = RlimitsPlan::from_spec(&spec).unwrap();
    let end = in_child(|| {
        if plan.apply().is_err() {
            return 1;
        }
        let expect = [
            (Resource::RLIMIT_NOFILE, 100, 200),
            (Resource::RLIMIT_CORE, 0, 0),
            (Resource::RLIMIT_MSGQUEUE, 4096, 8192),
        ];
        for (i, (resource, soft, hard)) in expect.into_iter().enumerate() {
            if getrlimit(resource) != Ok((soft, hard)) {
                return 2 + i as i32;
            }
        }
        0
    });
    assert_passed(
        end,
        &["apply", "RLIMIT_NOFILE", "RLIMIT_CORE", "RLIMIT_MSGQUEUE"],
    );
}

#[test]
fn rlimits_raising_hard_limit_needs_cap_sys_resource() {
    if !is_root() {
        return;
    }
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit RLIMIT_NOFILE");
    if hard == libc::RLIM_INFINITY {
        eprintln!("SKIP: RLIMIT_NOFILE hard limit is unlimited, nothing to raise");
        return;
    }
    let spec: Vec<PosixRlimit> = serde_json::from_str(&format!(
        r#"[{{"type":"RLIMIT_NOFILE","soft":1,"hard":{}}}]"#,
        hard + 1
    ))
    .unwrap();
    let plan = RlimitsPlan::from_spec(&spec).unwrap();
    // Without CAP_SYS_RESOURCE in the effective set the kernel refuses to raise a hard limit.
    let no_resource = CapsPlan::from_masks(0, 0, 0, 0, 0).unwrap();
    let end = in_child(|| {
        if no_resource.apply().is_err() {
            return 1;
        }
        match plan.apply() {
            Err(SecurityError::ApplyRlimit { resource, errno })
                if resource == "RLIMIT_NOFILE" && errno == nix::Error::EPERM =>
            {
                0
            }
            _ => 2,
        }
    });
    assert_passed(
        end,
        &[
            "drop caps",
            "setrlimit refused with EPERM naming RLIMIT_NOFILE",
        ],
    );
    let err = SecurityError::ApplyRlimit {
        resource: "RLIMIT_NOFILE",
        errno: nix::Error::EPERM,
    };
    assert_eq!(
        err.to_string(),
        "setrlimit RLIMIT_NOFILE: EPERM: Operation not permitted"
    );
}

#[test]
fn no_new_privs_is_set() {
    let end = in_child(|| {
        if status_field(b"NoNewPrivs", false) != Some(0) {
            return 1;
        }
        if set_no_new_privs().is_err() {
            return 2;
        }
        if status_field(b"NoNewPrivs", false) != Some(1) {
            return 3;
        }
        0
    });
    assert_passed(
        end,
        &[
            "NoNewPrivs 0 before",
            "set_no_new_privs",
            "NoNewPrivs 1 after",
        ],
    );
}

fn seccomp(json: &str) -> SeccompPlan {
    let spec: LinuxSeccomp = serde_json::from_str(json).expect("test profile parses");
    SeccompPlan::from_spec(&spec).expect("profile compiles")
}

/// A raw syscall with up to two arguments: its result, or -errno.
// The seccomp cases need a syscall by number, which only the unsafe libc::syscall offers: an
// exception to the workspace's `unsafe_code = "deny"`.
#[allow(unsafe_code)]
fn raw_syscall(nr: libc::c_long, a: libc::c_ulong, b: libc::c_ulong) -> i64 {
    // SAFETY: used only with syscalls whose arguments are integers or a live buffer passed
    // by the caller (getcwd below passes a stack buffer and its size).
    let rc = unsafe { libc::syscall(nr, a, b) };
    if rc < 0 {
        -(errno() as i64)
    } else {
        rc as i64
    }
}

#[test]
fn seccomp_errno_rule_makes_getcwd_fail() {
    let plan = seccomp(
        r#"{"defaultAction":"SCMP_ACT_ALLOW",
            "architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"],
            "flags":["SECCOMP_FILTER_FLAG_LOG"],
            "syscalls":[{"names":["getcwd","not_a_real_syscall"],"action":"SCMP_ACT_ERRNO","errnoRet":95}]}"#,
    );
    let end = in_child(|| {
        let mut buf = [0u8; 4096];
        let cwd = |buf: &mut [u8; 4096]| {
            raw_syscall(libc::SYS_getcwd, buf.as_mut_ptr() as libc::c_ulong, 4096)
        };
        if cwd(&mut buf) <= 0 {
            return 1;
        }
        if set_no_new_privs().is_err() {
            return 2;
        }
        if plan.load().is_err() {
            return 3;
        }
        if cwd(&mut buf) != -(libc::EOPNOTSUPP as i64) {
            return 4;
        }
        if raw_syscall(libc::SYS_getpid, 0, 0) <= 0 {
            return 5;
        }
        // Seccomp: 2 is filter mode.
        if status_field(b"Seccomp", false) != Some(2) {
            return 6;
        }
        0
    });
    assert_passed(
        end,
        &[
            "getcwd works before",
            "set_no_new_privs",
            "load",
            "getcwd fails with errno 95",
            "getpid still allowed",
            "Seccomp: 2",
        ],
    );
}

#[test]
fn seccomp_argument_comparisons() {
    let plan = seccomp(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["personality"],"action":"SCMP_ACT_ERRNO","errnoRet":22,
             "args":[{"index":0,"op":"SCMP_CMP_EQ","value":4294967295}]},
            {"names":["umask"],"action":"SCMP_ACT_ERRNO","errnoRet":13,
             "args":[{"index":0,"op":"SCMP_CMP_MASKED_EQ","value":448,"valueTwo":448}]},
            {"names":["setpgid"],"action":"SCMP_ACT_ERRNO",
             "args":[{"index":0,"op":"SCMP_CMP_GT","value":1000000000},
                     {"index":1,"op":"SCMP_CMP_NE","value":0}]}]}"#,
    );
    let end = in_child(|| {
        if set_no_new_privs().is_err() || plan.load().is_err() {
            return 1;
        }
        // personality(0xffffffff) queries the persona; the rule refuses it.
        if raw_syscall(libc::SYS_personality, 0xffff_ffff, 0) != -(libc::EINVAL as i64) {
            return 2;
        }
        // Any other argument is allowed: PER_LINUX (0) is what the process has anyway.
        if raw_syscall(libc::SYS_personality, 0, 0) < 0 {
            return 3;
        }
        // (mask & 0o700) == 0o700 is refused, other masks are not.
        if raw_syscall(libc::SYS_umask, 0o777, 0) != -(libc::EACCES as i64) {
            return 4;
        }
        if raw_syscall(libc::SYS_umask, 0o022, 0) < 0 {
            return 5;
        }
        // Both conditions must hold (distinct indexes): pid > 1e9 and pgid != 0.
        if raw_syscall(libc::SYS_setpgid, 2_000_000_000, 5) != -(libc::EPERM as i64) {
            return 6;
        }
        // Only the first holds: the call reaches the kernel, which finds no such process.
        if raw_syscall(libc::SYS_setpgid, 2_000_000_000, 0) != -(libc::ESRCH as i64) {
            return 7;
        }
        0
    });
    assert_passed(
        end,
        &[
            "load",
            "personality(0xffffffff) -> EINVAL",
            "personality(0) allowed",
            "umask(0777) -> EACCES",
            "umask(022) allowed",
            "setpgid(big, 5) -> EPERM",
            "setpgid(big, 0) reaches the kernel",
        ],
    );
}

#[test]
fn seccomp_kill_and_trap_actions_end_the_child() {
    let no_core = RlimitsPlan::from_spec(
        &serde_json::from_str::<Vec<PosixRlimit>>(r#"[{"type":"RLIMIT_CORE","soft":0,"hard":0}]"#)
            .unwrap(),
    )
    .unwrap();
    for action in ["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL", "SCMP_ACT_TRAP"] {
        let plan = seccomp(&format!(
            r#"{{"defaultAction":"SCMP_ACT_ALLOW",
                "syscalls":[{{"names":["getppid"],"action":"{action}"}}]}}"#
        ));
        let end = in_child(|| {
            // SIGSYS dumps core by default; no core files from this test.
            if no_core.apply().is_err() {
                return 3;
            }
            if set_no_new_privs().is_err() || plan.load().is_err() {
                return 1;
            }
            raw_syscall(libc::SYS_getppid, 0, 0);
            2
        });
        assert_eq!(end, End::Signal(Signal::SIGSYS), "{action}");
    }
}

#[test]
fn seccomp_default_action_errno_with_allow_list() {
    // An allow-list profile: everything not listed fails with defaultErrnoRet.
    let plan = seccomp(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38,"syscalls":[
            {"names":["exit","exit_group","getpid"],"action":"SCMP_ACT_ALLOW"},
            {"names":["getppid"],"action":"SCMP_ACT_LOG"}]}"#,
    );
    let end = in_child(|| {
        if set_no_new_privs().is_err() || plan.load().is_err() {
            return 1;
        }
        if raw_syscall(libc::SYS_getpid, 0, 0) <= 0 {
            return 2;
        }
        if raw_syscall(libc::SYS_getppid, 0, 0) <= 0 {
            return 3;
        }
        if raw_syscall(libc::SYS_getuid, 0, 0) != -(libc::ENOSYS as i64) {
            return 4;
        }
        0
    });
    assert_passed(
        end,
        &[
            "load",
            "getpid allowed",
            "getppid logged and allowed",
            "getuid -> ENOSYS",
        ],
    );
}

#[test]
fn seccomp_syscalls_newer_than_the_profile_get_enosys() {
    // An allow-list denying with EPERM: a syscall the profile does not name but whose number
    // is below the highest it names is denied with EPERM; a number above all of them (1000:
    // newer than any kernel's syscalls) is taken for a syscall the profile predates, ENOSYS.
    let plan = seccomp(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
            {"names":["exit","exit_group","getpid","getppid"],"action":"SCMP_ACT_ALLOW"}]}"#,
    );
    let end = in_child(|| {
        if set_no_new_privs().is_err() || plan.load().is_err() {
            return 1;
        }
        if raw_syscall(libc::SYS_getpid, 0, 0) <= 0 {
            return 2;
        }
        if raw_syscall(libc::SYS_getuid, 0, 0) != -(libc::EPERM as i64) {
            return 3;
        }
        if raw_syscall(1000, 0, 0) != -(libc::ENOSYS as i64) {
            return 4;
        }
        0
    });
    assert_passed(
        end,
        &[
            "load",
            "getpid allowed",
            "getuid (older than exit_group) -> EPERM",
            "syscall 1000 -> ENOSYS",
        ],
    );
}

#[test]
fn seccomp_load_needs_nnp_or_cap_sys_admin() {
    if !is_root() {
        return;
    }
    let plan = seccomp(
        r#"{"defaultAction":"SCMP_ACT_ALLOW",
            "syscalls":[{"names":["getcwd"],"action":"SCMP_ACT_ERRNO"}]}"#,
    );
    let no_caps = CapsPlan::from_spec(None).unwrap();
    let end = in_child(|| {
        if no_caps.apply().is_err() {
            return 1;
        }
        match plan.load() {
            Err(SecurityError::Apply {
                errno: nix::Error::EACCES,
                ..
            }) => 0,
            _ => 2,
        }
    });
    assert_passed(end, &["drop caps", "load refused with EACCES"]);
}

#[test]
fn seccomp_notify_listener_reaches_the_agent() {
    // The agent, in a thread of the test process: it gets the state and the listener over a
    // socket, then answers getppid with a made-up value.
    let plan = seccomp(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/unused",
            "syscalls":[{"names":["getppid"],"action":"SCMP_ACT_NOTIFY"}]}"#,
    );
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let agent = std::thread::spawn(move || {
        use std::os::fd::{AsFd, AsRawFd};
        let (listener, state) = casulo::__private::tty::recv_fd(ours.as_fd()).expect("listener");
        let req = libseccomp::ScmpNotifReq::receive(listener.as_raw_fd()).expect("notification");
        assert_eq!(
            req.data.syscall,
            libseccomp::ScmpSyscall::from_name("getppid").unwrap()
        );
        libseccomp::ScmpNotifResp::new_val(req.id, 4242, libseccomp::ScmpNotifRespFlags::empty())
            .respond(listener.as_raw_fd())
            .expect("respond");
        state
    });
    let mut theirs = Some(std::os::fd::OwnedFd::from(theirs));
    let end = in_child(|| {
        if set_no_new_privs().is_err() {
            return 1;
        }
        let Ok(Some(listener)) = plan.load() else {
            return 2;
        };
        let socket = theirs.take().expect("socket");
        if casulo::__private::security::hand_over(socket, b"{\"pid\":1}", listener).is_err() {
            return 3;
        }
        if raw_syscall(libc::SYS_getppid, 0, 0) != 4242 {
            return 4;
        }
        0
    });
    drop(theirs);
    assert_passed(
        end,
        &[
            "set_no_new_privs",
            "load returns the listener",
            "hand over",
            "getppid answered by the agent",
        ],
    );
    assert_eq!(agent.join().unwrap(), b"{\"pid\":1}");
}
