//! OCI hooks: order, stdin, env, argv, timeouts and failure reports, with real processes.
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use casulo::__private::hooks::{run_hooks, run_hooks_with_env, HookError, STDERR_TAIL};
use oci_spec::runtime::{Hook, HookBuilder};

/// A private scratch directory removed on drop, even when the test fails.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "casulo-test-hooks-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir(&dir).expect("create scratch dir");
        Scratch(dir)
    }
    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// `/bin/sh -c SCRIPT` with `OUT` set to `out` in its environment.
fn sh_hook(script: &str, out: &Path) -> Hook {
    HookBuilder::default()
        .path("/bin/sh")
        .args(vec!["sh".to_string(), "-c".to_string(), script.to_string()])
        .env(vec![format!("OUT={}", out.display())])
        .build()
        .unwrap()
}

fn with_timeout(mut hook: Hook, secs: i64) -> Hook {
    hook.set_timeout(Some(secs));
    hook
}

#[test]
fn hooks_run_in_order_and_all_run() {
    let dir = Scratch::new("order");
    let out = dir.path("log");
    let hooks: Vec<Hook> = (1..=3)
        .map(|i| sh_hook(&format!("echo {i} >> \"$OUT\""), &out))
        .collect();
    run_hooks("prestart", &hooks, b"{}").unwrap();
    assert_eq!(fs::read_to_string(&out).unwrap(), "1\n2\n3\n");
}

#[test]
fn hooks_receive_state_on_stdin_then_eof() {
    let dir = Scratch::new("stdin");
    let out = dir.path("state");
    let state = br#"{"ociVersion":"1.0.2","id":"c1","status":"creating","pid":42,"bundle":"/b"}"#;
    // `cat` only returns once stdin is closed, so this also proves the pipe gets closed.
    let hook = with_timeout(sh_hook("cat > \"$OUT\"", &out), 10);
    run_hooks("createRuntime", &[hook], state).unwrap();
    assert_eq!(fs::read(&out).unwrap(), state.to_vec());
}

#[test]
fn hooks_large_state_is_delivered_whole() {
    let dir = Scratch::new("large");
    let out = dir.path("state");
    // Larger than a pipe buffer: needs the non-blocking feed loop.
    let state: Vec<u8> = (0..1_000_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let hook = with_timeout(sh_hook("cat > \"$OUT\"", &out), 20);
    run_hooks("poststart", &[hook], &state).unwrap();
    assert_eq!(fs::read(&out).unwrap(), state);
}

#[test]
fn hooks_that_ignore_stdin_do_not_break_the_runtime() {
    let dir = Scratch::new("nostdin");
    let out = dir.path("ran");
    let state = vec![b'x'; 1 << 20];
    let hook = with_timeout(sh_hook("exec 0<&-; echo ran > \"$OUT\"", &out), 10);
    run_hooks("poststop", &[hook], &state).unwrap();
    assert_eq!(fs::read_to_string(&out).unwrap(), "ran\n");
}

#[test]
fn hooks_env_is_exactly_the_hook_env() {
    let dir = Scratch::new("env");
    let out = dir.path("environ");
    let mut hook = sh_hook("cat /proc/$$/environ > \"$OUT\"", &out);
    hook.set_env(Some(vec![
        format!("OUT={}", out.display()),
        "A=1".to_string(),
        "B=x=y".to_string(),
    ]));
    // Something the runtime has that must not leak.
    assert!(std::env::var_os("PATH").is_some(), "test needs PATH set");
    run_hooks("prestart", &[hook], b"{}").unwrap();
    let environ = fs::read(&out).unwrap();
    let mut entries: Vec<String> = environ
        .split(|b| *b == 0)
        .filter(|e| !e.is_empty())
        .map(|e| String::from_utf8(e.to_vec()).unwrap())
        .collect();
    entries.sort();
    let mut want = vec![
        "A=1".to_string(),
        "B=x=y".to_string(),
        format!("OUT={}", out.display()),
    ];
    want.sort();
    assert_eq!(entries, want);
}

/// The NUL-separated entries of an environ file, sorted.
fn environ_entries(path: &Path) -> Vec<String> {
    let mut entries: Vec<String> = fs::read(path)
        .unwrap()
        .split(|b| *b == 0)
        .filter(|e| !e.is_empty())
        .map(|e| String::from_utf8(e.to_vec()).unwrap())
        .collect();
    entries.sort();
    entries
}

#[test]
fn hooks_without_env_get_the_default_env_when_given() {
    // A startContainer hook without env gets the process's environment (as with runc); one
    // with env gets exactly that.
    let dir = Scratch::new("defaultenv");
    let out = dir.path("environ");
    let script = format!("cat /proc/$$/environ > {}", out.display());
    let bare = HookBuilder::default()
        .path("/bin/sh")
        .args(vec!["sh".to_string(), "-c".to_string(), script.clone()])
        .build()
        .unwrap();
    let default = [c"ONE=two".to_owned(), c"HOME=/root".to_owned()];
    run_hooks_with_env("startContainer", &[bare], b"{}", Some(&default)).unwrap();
    assert_eq!(environ_entries(&out), ["HOME=/root", "ONE=two"]);
    let own = sh_hook(&script, &out);
    run_hooks_with_env("startContainer", &[own], b"{}", Some(&default)).unwrap();
    assert_eq!(environ_entries(&out), [format!("OUT={}", out.display())]);
}

#[test]
fn hooks_failure_names_the_hooks_place_in_its_list() {
    let dir = Scratch::new("index");
    let ok = sh_hook("true", &dir.path("unused"));
    let failing = sh_hook("exit 1", &dir.path("unused"));
    let err = run_hooks("createRuntime", &[ok, failing], b"{}").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("error running createRuntime hook #1: /bin/sh: exited with status 1"),
        "{err}"
    );
}

#[test]
fn hooks_without_env_get_an_empty_environment() {
    // No env at all: the hook reads a script from stdin that records its own environ size.
    let dir = Scratch::new("noenv");
    let out = dir.path("count");
    let hook = HookBuilder::default().path("/bin/sh").build().unwrap();
    let script = format!("wc -c < /proc/$$/environ > {}\n", out.display());
    run_hooks("prestart", &[hook], script.as_bytes()).unwrap();
    assert_eq!(fs::read_to_string(&out).unwrap().trim(), "0");
}

#[test]
fn hooks_args_are_the_full_argv() {
    let dir = Scratch::new("args");
    let out = dir.path("cmdline");
    let script = "cat /proc/$$/cmdline > \"$OUT\"";
    let mut hook = sh_hook(script, &out);
    hook.set_args(Some(vec![
        "custom-argv0".to_string(),
        "-c".to_string(),
        script.to_string(),
        "first arg".to_string(),
        "second".to_string(),
    ]));
    run_hooks("prestart", &[hook], b"{}").unwrap();
    let cmdline = fs::read(&out).unwrap();
    let argv: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    assert_eq!(
        argv,
        vec![
            b"custom-argv0".as_slice(),
            b"-c",
            script.as_bytes(),
            b"first arg",
            b"second",
            b""
        ]
    );
}

#[test]
fn hooks_without_args_get_the_path_as_argv0() {
    let dir = Scratch::new("noargs");
    let out = dir.path("cmdline");
    let hook = HookBuilder::default().path("/bin/sh").build().unwrap();
    let script = format!("cat /proc/$$/cmdline > {}\n", out.display());
    run_hooks("prestart", &[hook], script.as_bytes()).unwrap();
    assert_eq!(fs::read(&out).unwrap(), b"/bin/sh\0");
}

#[test]
fn hooks_timeout_kills_the_hook() {
    let dir = Scratch::new("timeout");
    let out = dir.path("pid");
    let hook = with_timeout(
        sh_hook("echo $$ > \"$OUT\"; echo waiting >&2; exec sleep 30", &out),
        1,
    );
    let start = Instant::now();
    let err = run_hooks("prestart", &[hook], b"{}").unwrap_err();
    let elapsed = start.elapsed();
    assert!(matches!(err, HookError::Timeout { secs: 1, .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.starts_with("error running prestart hook #0: /bin/sh: timed out after 1s"),
        "{msg}"
    );
    assert!(msg.contains("waiting"), "stderr tail missing: {msg}");
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    // The hook is gone (killed and reaped, not a zombie).
    let pid = fs::read_to_string(&out).unwrap().trim().to_string();
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "hook {pid} still exists"
    );
}

#[test]
fn hooks_huge_timeout_is_accepted() {
    let dir = Scratch::new("hugetimeout");
    let out = dir.path("ran");
    let hook = with_timeout(sh_hook("echo ran > \"$OUT\"", &out), i64::MAX);
    run_hooks("prestart", &[hook], b"{}").unwrap();
    assert_eq!(fs::read_to_string(&out).unwrap(), "ran\n");
}

#[test]
fn hooks_timeout_must_be_positive() {
    let dir = Scratch::new("badtimeout");
    let out = dir.path("ran");
    for bad in [0, -5] {
        let hook = with_timeout(sh_hook("echo ran > \"$OUT\"", &out), bad);
        let err = run_hooks("poststart", &[hook], b"{}").unwrap_err();
        assert!(
            matches!(err, HookError::InvalidTimeout { timeout, .. } if timeout == bad),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("must be greater than zero"),
            "{err}"
        );
    }
    assert!(!out.exists(), "a hook with an invalid timeout ran");
}

#[test]
fn hooks_failure_names_kind_path_status_and_stderr() {
    let dir = Scratch::new("fail");
    let out = dir.path("second");
    let failing = sh_hook("echo first line >&2; echo boom >&2; exit 3", &out);
    let second = sh_hook("echo ran > \"$OUT\"", &out);
    let err = run_hooks("createContainer", &[failing, second], b"{}").unwrap_err();
    let msg = err.to_string();
    assert_eq!(
        msg,
        "error running createContainer hook #0: /bin/sh: exited with status 3: stderr: first line\nboom"
    );
    assert!(!out.exists(), "hooks after a failing one must not run");
}

#[test]
fn hooks_killed_by_signal_is_reported() {
    let dir = Scratch::new("signal");
    let hook = sh_hook("kill -TERM $$", &dir.path("unused"));
    let err = run_hooks("poststop", &[hook], b"{}").unwrap_err();
    assert_eq!(
        err.to_string(),
        "error running poststop hook #0: /bin/sh: killed by signal SIGTERM"
    );
}

#[test]
fn hooks_stderr_in_error_is_bounded() {
    let dir = Scratch::new("bigstderr");
    // 100 KiB of 'e' then a marker, then failure.
    let hook = sh_hook(
        "i=0; while [ $i -lt 100 ]; do head -c 1024 /dev/zero | tr '\\0' e >&2; i=$((i+1)); done; echo END >&2; exit 1",
        &dir.path("unused"),
    );
    let mut hook = hook;
    hook.set_env(Some(vec![
        "PATH=/usr/bin:/bin".to_string(),
        format!("OUT={}", dir.path("unused").display()),
    ]));
    let err = run_hooks("prestart", &[hook], b"{}").unwrap_err();
    let HookError::Exit { stderr, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(stderr.len() <= STDERR_TAIL, "{}", stderr.len());
    assert!(stderr.ends_with("END"), "tail lost the end");
}

#[test]
fn hooks_missing_binary_reports_enoent() {
    let hook = HookBuilder::default()
        .path("/nonexistent/casulo-no-such-hook")
        .build()
        .unwrap();
    let err = run_hooks("prestart", &[hook], b"{}").unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with(
            "error running prestart hook #0: /nonexistent/casulo-no-such-hook: spawn: ENOENT"
        ),
        "{msg}"
    );
}

#[test]
fn hooks_non_executable_reports_eacces() {
    let dir = Scratch::new("noexec");
    let file = dir.path("not-executable");
    fs::write(&file, "#!/bin/sh\nexit 0\n").unwrap();
    let hook = HookBuilder::default().path(&file).build().unwrap();
    let err = run_hooks("poststart", &[hook], b"{}").unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "error running poststart hook #0: {}: spawn: EACCES",
            file.display()
        )),
        "{msg}"
    );
}

#[test]
fn hooks_empty_list_is_ok() {
    run_hooks("prestart", &[], b"{}").unwrap();
}

/// In a freshly forked child whose SIGPIPE has the default action (as in a program that does not
/// ignore it), a hook that closes its stdin early must yield EPIPE, not kill the runtime.
#[test]
// fork, resetting a signal's action and _exit have no safe form: an exception to the
// workspace's `unsafe_code = "deny"`.
#[allow(unsafe_code)]
fn hooks_epipe_in_forked_child_with_default_sigpipe() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::{fork, ForkResult};

    let dir = Scratch::new("sigpipe");
    let out = dir.path("ran");
    let hook = with_timeout(sh_hook("exec 0<&-; echo ran > \"$OUT\"; sleep 1", &out), 10);
    // Far more than a pipe holds, so the write must meet the closed read end.
    let state = vec![b's'; 4 << 20];
    // SAFETY: the child only runs the hook (fork, exec, poll, read, write; glibc's fork keeps
    // malloc usable) and leaves with _exit, never returning into the test harness.
    match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            // SAFETY: restoring the default action installs no handler code.
            let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
            let code = match run_hooks("prestart", &[hook], &state) {
                Ok(()) => 0,
                Err(_) => 1,
            };
            // SAFETY: _exit ends the child without running the harness's atexit handlers.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            let status = waitpid(child, None).unwrap();
            assert_eq!(status, WaitStatus::Exited(child, 0), "child: {status:?}");
            assert_eq!(fs::read_to_string(&out).unwrap(), "ran\n");
        }
    }
}
