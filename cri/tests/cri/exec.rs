//! Commands in a running container: `ExecSync` (what the kubelet's probes use), and `Exec`
//! and `Attach` through the CRI streaming server (what `kubectl exec` and `attach` reach).

use std::time::Instant;

use k8s_cri::v1 as cri;
use k8s_cri::v1::ContainerState;

use crate::common::engine::*;
use crate::pods::*;
use crate::scenarios::sleeper;
use crate::stream::*;
use crate::suite::*;

pub fn exec_sync_scenario(s: &Suite, id: &str) -> Result<(), String> {
    let pod = run_pod(s, id, "exec", &PodOpts::default())?;
    let c = sleeper(s, &pod, "c")?;
    let r = exec_sync(
        s,
        &c,
        &["sh", "-c", "echo out-$CRI_TEST; echo err >&2; exit 3"],
        10,
    )?;
    check(
        r.exit_code == 3 && r.stdout == "out-c\n" && r.stderr == "err\n",
        || {
            format!(
                "exit {}, stdout {:?}, stderr {:?}",
                r.exit_code, r.stdout, r.stderr
            )
        },
    )?;
    let missing = exec_sync(s, &c, &["/no/such/program"], 10);
    check(
        missing
            .as_ref()
            .is_err_and(|e| e.contains("/no/such/program")),
        || {
            format!(
                "exec of a missing program: {:?}",
                missing
                    .as_ref()
                    .map(|r| (r.exit_code, &r.stdout, &r.stderr))
            )
        },
    )?;
    // The kubelet's probes have a timeout: past it the call fails and the process is killed.
    let t = Instant::now();
    let r = exec_sync(s, &c, &["sleep", "30"], 1);
    let secs = t.elapsed().as_secs_f64();
    check(r.is_err() && secs < 15.0, || {
        format!(
            "ExecSync past its 1 s timeout: after {secs:.1} s: {:?}",
            r.as_ref().map(|r| r.exit_code)
        )
    })?;
    let e = r.err().unwrap_or_default();
    check(e.contains("timeout") || e.contains("deadline"), || {
        format!("the timeout's error: {e}")
    })?;
    let mut ps = String::new();
    wait_until("the timed-out exec is killed", || {
        ps = sh(s, &c, "ps -o args").unwrap_or_default();
        !ps.contains("sleep 30")
    })
    .map_err(|e| format!("{e}: {ps}"))?;
    check(state(s, &c)? == ContainerState::ContainerRunning, || {
        "the container stopped after the execs".into()
    })
}

/// The URL of an `Exec` of `cmd` in container `c`.
fn exec_url(s: &Suite, c: &str, cmd: &[&str], stdin: bool, tty: bool) -> Result<String, String> {
    let req = cri::ExecRequest {
        container_id: c.to_string(),
        cmd: cmd.iter().map(|a| a.to_string()).collect(),
        tty,
        stdin,
        stdout: true,
        // A terminal merges stderr into stdout.
        stderr: !tty,
    };
    s.cri(|mut cl| async move { cl.exec(req).await })
        .map(|r| r.url)
        .map_err(|e| format!("Exec: {e}"))
}

/// The final status of a stream (channel 3): `Success`, or the exit code of a
/// `NonZeroExitCode` failure.
fn stream_exit_code(st: &Stream) -> Result<i32, String> {
    let text = st.text(ERROR);
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("status {text:?}: {e}"))?;
    if v["status"] == "Success" {
        return Ok(0);
    }
    v["details"]["causes"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["reason"] == "ExitCode"))
        .and_then(|c| c["message"].as_str()?.parse().ok())
        .filter(|_| v["reason"] == "NonZeroExitCode")
        .ok_or_else(|| format!("status without an exit code: {text}"))
}

pub fn streams(s: &Suite, id: &str) -> Result<(), String> {
    let pod = run_pod(s, id, "stream", &PodOpts::default())?;
    let c = sleeper(s, &pod, "c")?;
    // Exec: stdout and stderr on their channels, the exit code in the final status.
    let url = exec_url(
        s,
        &c,
        &["sh", "-c", "echo out; echo err >&2; exit 3"],
        false,
        false,
    )?;
    let mut st = Stream::connect(&url)?;
    st.read_to_end()?;
    let code = stream_exit_code(&st)?;
    check(
        st.text(STDOUT) == "out\n" && st.text(STDERR) == "err\n" && code == 3,
        || {
            format!(
                "exec: stdout {:?}, stderr {:?}, exit {code}",
                st.text(STDOUT),
                st.text(STDERR)
            )
        },
    )?;
    // stdin reaches the process.
    let url = exec_url(s, &c, &["head", "-n", "1"], true, false)?;
    let mut st = Stream::connect(&url)?;
    st.send(STDIN, b"through-stdin\n")?;
    st.read_to_end()?;
    check(
        st.text(STDOUT) == "through-stdin\n" && stream_exit_code(&st)? == 0,
        || {
            format!(
                "exec -i: stdout {:?}, status {:?}",
                st.text(STDOUT),
                st.text(ERROR)
            )
        },
    )?;
    // A terminal, with stdin (`kubectl exec -it`). The output is read while the process
    // lives, then a line on stdin ends it: containerd 1.6's runc shim closes a process's pty
    // master as soon as it has reaped the process, and output not yet passed on by then is
    // lost (a `tty` that exits at once came back empty in most runs, with casulo and with
    // runc alike).
    let url = exec_url(
        s,
        &c,
        &[
            "sh",
            "-c",
            "tty; [ -t 1 ] && echo has-a-tty; read x; exit 4",
        ],
        true,
        true,
    )?;
    let mut st = Stream::connect(&url)?;
    st.read_until(|st| st.text(STDOUT).contains("has-a-tty"))?;
    let out = st.text(STDOUT);
    check(out.contains("/dev/pts/"), || format!("exec -it: {out:?}"))?;
    st.send(STDIN, b"\n")?;
    st.read_to_end()?;
    let code = stream_exit_code(&st)?;
    check(code == 4, || format!("exec -it: exit {code}"))?;
    // Attach: to a container that reads its stdin.
    let mut cfg = pod.container(
        "a",
        &["sh", "-c", "read line; echo got-$line; exec sleep 1000"],
    );
    cfg.stdin = true;
    let a = pod.run(s, cfg)?;
    let req = cri::AttachRequest {
        container_id: a.clone(),
        stdin: true,
        tty: false,
        stdout: true,
        stderr: true,
    };
    let url = s
        .cri(|mut cl| async move { cl.attach(req).await })
        .map_err(|e| format!("Attach: {e}"))?
        .url;
    let mut st = Stream::connect(&url)?;
    st.send(STDIN, b"hello\n")?;
    st.read_until(|st| st.text(STDOUT).contains("got-hello"))?;
    check(state(s, &a)? == ContainerState::ContainerRunning, || {
        "the attached container is not running".into()
    })
}
