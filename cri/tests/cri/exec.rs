//! Commands in a running container: `ExecSync` (what the kubelet's probes use), and `Exec`
//! and `Attach` through the CRI streaming server (what `kubectl exec` and `attach` reach).

use std::time::{Duration, Instant};

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

/// Send a terminal size on the resize channel, as `kubectl` does when its terminal changes.
fn resize(st: &mut Stream, width: u16, height: u16) -> Result<(), String> {
    let size = serde_json::json!({"Width": width, "Height": height}).to_string();
    st.send(RESIZE, size.as_bytes())
}

/// Resize, then a line on stdin, after which the process prints `stty size`: the size it
/// reports is the new one.
fn resized(st: &mut Stream, width: u16, height: u16) -> Result<(), String> {
    resize(st, width, height)?;
    let want = format!("{height} {width}");
    // The size reaches the pty through the shim's resize call, the newline through the
    // process's stdin: the newline may come first (under load it does), and the process then
    // prints the old size, or an error where none was set yet. Each newline asks again.
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        st.send(STDIN, b"\n")?;
        let shown = |st: &Stream| st.text(STDOUT).contains(&want);
        if st.read_until_for(shown, Duration::from_secs(2))? {
            if shown(st) {
                return Ok(());
            }
            return Err(format!(
                "after a resize to {width}x{height}: the stream ended; stdout {:?}",
                st.text(STDOUT)
            ));
        }
    }
    Err(format!(
        "after a resize to {width}x{height}: {want:?} not printed within 60 s; stdout {:?}",
        st.text(STDOUT)
    ))
}

/// Terminal resizes: `Exec` and `Attach` with a terminal, and sizes sent on the resize
/// channel (4) of `v4.channel.k8s.io`, which containerd passes on to the process's pty.
pub fn terminal_resize(s: &Suite, id: &str) -> Result<(), String> {
    let pod = run_pod(s, id, "resize", &PodOpts::default())?;
    let c = sleeper(s, &pod, "c")?;
    let url = exec_url(
        s,
        &c,
        &[
            "sh",
            "-c",
            "echo ready; while read x; do [ \"$x\" = q ] && exit 0; stty size; done",
        ],
        true,
        true,
    )?;
    let mut st = Stream::connect(&url)?;
    st.read_until(|st| st.text(STDOUT).contains("ready"))?;
    resized(&mut st, 100, 30)?;
    resized(&mut st, 132, 43)?;
    st.send(STDIN, b"q\n")?;
    st.read_to_end()?;
    check(stream_exit_code(&st)? == 0, || {
        format!("exec -it with resizes: {:?}", st.text(ERROR))
    })?;
    // A container with a terminal, attached to (`kubectl attach -it`).
    let mut cfg = pod.container("t", &["sh", "-c", "while read x; do stty size; done"]);
    cfg.tty = true;
    cfg.stdin = true;
    let t = pod.run(s, cfg)?;
    let req = cri::AttachRequest {
        container_id: t.clone(),
        stdin: true,
        tty: true,
        stdout: true,
        stderr: false,
    };
    let url = s
        .cri(|mut cl| async move { cl.attach(req).await })
        .map_err(|e| format!("Attach: {e}"))?
        .url;
    let mut st = Stream::connect(&url)?;
    resized(&mut st, 90, 25)?;
    resized(&mut st, 70, 20)?;
    check(state(s, &t)? == ContainerState::ContainerRunning, || {
        "the attached container is not running".into()
    })
}

/// `PortForward` to a pod with a network of its own (`kubectl port-forward`): through the
/// streaming server's WebSocket, each port on a data channel and an error channel, each
/// starting with the port's number; what is sent reaches a listener in the pod's network
/// namespace (busybox `nc`, echoing), and its answer comes back.
pub fn port_forward(s: &Suite, id: &str) -> Result<(), String> {
    let opts = PodOpts {
        own_network: true,
        ..Default::default()
    };
    let pod = run_pod(s, id, "fwd", &opts)?;
    let c = pod.run(
        s,
        pod.container("c", &["sh", "-c", "while :; do nc -l -p 8080 -e cat; done"]),
    )?;
    // 8080 is 1F90: listening (0A) on any address (v4 or v6), in the pod's network namespace.
    let listening = |tables: &str| {
        tables
            .lines()
            .any(|l| l.contains(":1F90 0") && l.contains(":0000 0A"))
    };
    wait_until("the listener in the pod", || {
        sh(s, &c, "cat /proc/net/tcp /proc/net/tcp6").is_ok_and(|t| listening(&t))
    })?;
    let host = ["/proc/net/tcp", "/proc/net/tcp6"]
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .concat();
    check(!listening(&host), || {
        "port 8080 listens on the host too: the check proves nothing".into()
    })?;
    let req = cri::PortForwardRequest {
        pod_sandbox_id: pod.id.clone(),
        port: vec![8080],
    };
    let url = s
        .cri(|mut cl| async move { cl.port_forward(req).await })
        .map_err(|e| format!("PortForward: {e}"))?
        .url;
    let mut st = Stream::connect(&url)?;
    let port = 8080u16.to_le_bytes();
    st.read_until(|st| st.channels[0].len() >= 2 && st.channels[1].len() >= 2)?;
    check(
        st.channels[0][..2] == port && st.channels[1][..2] == port,
        || format!("the channels' first bytes: {:?}", st.channels),
    )?;
    st.send(0, b"through-the-forward\n")?;
    st.read_until(|st| String::from_utf8_lossy(&st.channels[0]).contains("through-the-forward"))
        .map_err(|e| {
            format!(
                "{e}; error channel {:?}",
                String::from_utf8_lossy(&st.channels[1][2..])
            )
        })?;
    check(st.channels[1].len() == 2, || {
        format!(
            "the error channel: {:?}",
            String::from_utf8_lossy(&st.channels[1][2..])
        )
    })
}
