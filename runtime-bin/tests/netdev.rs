//! linux.netDevices: host interfaces (dummy ones made by each test) moved into the container's
//! network namespace, renamed, with their permanent global addresses, up; what happens to them
//! at delete (nothing: the namespace's owner and the kernel decide, as the runtime-spec says);
//! the moves undone when create fails; and the refusals before anything is created.
mod common;
use common::*;
use serde_json::json;
use std::process::Command;

/// Whether the test can run here; runc 1.1 ignores linux.netDevices (runc has it from 1.3).
fn can_run_netdev(test: &str) -> bool {
    if !can_run(test) {
        return false;
    }
    if !is_casulo() {
        eprintln!("SKIPPED {test}: runc 1.1 lacks linux.netDevices (runc 1.3 has it)");
        return false;
    }
    if Command::new("ip").arg("-V").output().is_err() {
        eprintln!("SKIPPED {test}: needs iproute2's ip");
        return false;
    }
    true
}

fn ip(args: &[&str]) -> std::process::Output {
    Command::new("ip").args(args).output().expect("run ip")
}

fn ip_ok(args: &[&str]) {
    let out = ip(args);
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A virtual interface on the host, named after this test process and `tag`, of a kind that
/// lives in one namespace and dies with it: `dummy`, or `ifb` where the kernel has no dummy
/// driver. Deleted at the end wherever the host has it.
struct Dummy {
    name: String,
}

impl Dummy {
    fn new(test: &str, tag: &str) -> Option<Dummy> {
        let name = format!("cs{}{tag}", std::process::id());
        assert!(name.len() <= 15, "{name} is too long for an interface name");
        let _ = ip(&["link", "del", "dev", &name]);
        for kind in ["dummy", "ifb"] {
            if ip(&["link", "add", &name, "type", kind]).status.success() {
                return Some(Dummy { name });
            }
        }
        eprintln!("SKIPPED {test}: this kernel has neither dummy nor ifb interfaces");
        None
    }
}

impl Drop for Dummy {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", "dev", &self.name]);
    }
}

/// A network namespace made the way an orchestrator makes one (`ip netns add`), deleted at
/// the end with whatever is in it.
struct NetNs {
    name: String,
}

impl NetNs {
    fn new(tag: &str) -> NetNs {
        let name = format!("cs{}{tag}", std::process::id());
        let _ = ip(&["netns", "del", &name]);
        ip_ok(&["netns", "add", &name]);
        NetNs { name }
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// `ip -o addr show dev NAME` on the host, or None when the host has no such device.
fn host_device(name: &str) -> Option<String> {
    let link = ip(&["-o", "link", "show", "dev", name]);
    if !link.status.success() {
        return None;
    }
    let addr = ip(&["-o", "addr", "show", "dev", name]);
    Some(format!(
        "{}{}",
        String::from_utf8_lossy(&link.stdout),
        String::from_utf8_lossy(&addr.stdout)
    ))
}

/// The interfaces of the network namespace of `pid`, as its /proc/PID/net/dev lists them.
fn devices_of(pid: i64) -> Vec<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap();
    text.lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|n| n.trim().to_string())
        .collect()
}

fn init_pid(b: &Bundle) -> i64 {
    b.state().expect("state")["pid"].as_i64().unwrap()
}

fn set_net_devices(b: &mut Bundle, devices: serde_json::Value) {
    b.config["linux"]["netDevices"] = devices;
    b.save();
}

#[test]
fn moved_renamed_with_its_addresses_and_up() {
    const TEST: &str = "moved_renamed_with_its_addresses_and_up";
    if !can_run_netdev(TEST) {
        return;
    }
    let Some(dev) = Dummy::new(TEST, "a") else {
        return;
    };
    // A permanent global address goes along; one of link scope does not (the spec's rule).
    ip_ok(&["addr", "add", "198.51.100.77/32", "dev", &dev.name]);
    ip_ok(&[
        "addr",
        "add",
        "198.51.100.78/32",
        "scope",
        "link",
        "dev",
        &dev.name,
    ]);
    let mut b = Bundle::new(
        "netdevmove",
        &[
            "sh",
            "-c",
            "ip -o link show dev eth9 > /out/link; ip -o addr show dev eth9 > /out/addr",
        ],
    );
    let out = b.with_out_dir();
    set_net_devices(&mut b, json!({ &dev.name: {"name": "eth9"} }));

    let r = b.create();
    assert!(r.ok(), "{}", r.stderr);
    // The created container has it; the host does not.
    let inside = devices_of(init_pid(&b));
    assert!(inside.contains(&"eth9".to_string()), "{inside:?}");
    assert_eq!(host_device(&dev.name), None, "still on the host");

    assert!(b.rt(&["start", &b.id]).ok());
    assert!(b.wait_status("stopped"));
    let link = std::fs::read_to_string(out.join("link")).unwrap();
    let addr = std::fs::read_to_string(out.join("addr")).unwrap();
    assert!(link.contains("eth9") && link.contains(",UP"), "{link}");
    assert!(addr.contains("198.51.100.77/32"), "{addr}");
    assert!(
        !addr.contains("198.51.100.78"),
        "a link-scope address was carried: {addr}"
    );

    // The spec: the runtime never moves a device out of the namespace. This one was new and
    // died with the init; a virtual device dies with it (a physical one would come back to
    // the host under its container name).
    let r = b.rt(&["delete", &b.id]);
    assert!(r.ok(), "{}", r.stderr);
    assert_eq!(host_device(&dev.name), None);
    assert_eq!(host_device("eth9"), None);
}

#[test]
fn joined_namespace_keeps_the_device_after_delete() {
    const TEST: &str = "joined_namespace_keeps_the_device_after_delete";
    if !can_run_netdev(TEST) {
        return;
    }
    let ns = NetNs::new("n");
    let Some(dev) = Dummy::new(TEST, "b") else {
        return;
    };
    let mut b = Bundle::new(
        "netdevjoin",
        &["ip", "-o", "link", "show", "dev", &dev.name],
    );
    for n in b.config["linux"]["namespaces"].as_array_mut().unwrap() {
        if n["type"] == "network" {
            n["path"] = ns.path().into();
        }
    }
    // No name: it keeps its host name.
    set_net_devices(&mut b, json!({ &dev.name: {} }));
    let r = b.run();
    assert!(r.ok(), "{}", r.stderr);
    assert!(r.stdout.contains(&dev.name), "{}", r.stdout);
    assert!(b.status().is_none(), "run deletes the container");
    // The namespace's owner has the device, up, after the container is gone.
    let there = ip(&["-n", &ns.name, "-o", "link", "show", "dev", &dev.name]);
    assert!(
        there.status.success(),
        "{}",
        String::from_utf8_lossy(&there.stderr)
    );
    assert!(String::from_utf8_lossy(&there.stdout).contains(",UP"));
    assert_eq!(host_device(&dev.name), None);
}

#[test]
fn template_name_numbered_by_the_kernel() {
    const TEST: &str = "template_name_numbered_by_the_kernel";
    if !can_run_netdev(TEST) {
        return;
    }
    let Some(dev) = Dummy::new(TEST, "t") else {
        return;
    };
    let mut b = Bundle::new("netdevtmpl", &["sleep", "100"]);
    set_net_devices(&mut b, json!({ &dev.name: {"name": "cn%d"} }));
    let r = b.create();
    assert!(r.ok(), "{}", r.stderr);
    let inside = devices_of(init_pid(&b));
    assert!(inside.contains(&"cn0".to_string()), "{inside:?}");
}

/// A network namespace owned by the container's user namespace takes the device too (the
/// runtime, root on the host, moves it).
#[test]
fn into_a_user_namespace() {
    const TEST: &str = "into_a_user_namespace";
    if !can_run_netdev(TEST) {
        return;
    }
    let Some(dev) = Dummy::new(TEST, "u") else {
        return;
    };
    let mut b = Bundle::new(
        "netdevuserns",
        &["sh", "-c", "ip -o link show dev eth5; id -u"],
    );
    b.use_userns();
    set_net_devices(&mut b, json!({ &dev.name: {"name": "eth5"} }));
    let r = b.run();
    assert!(r.ok(), "{}", r.stderr);
    assert!(
        r.stdout.contains("eth5") && r.stdout.contains(",UP"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.trim_end().ends_with('0'), "{}", r.stdout);
    assert_eq!(host_device(&dev.name), None);
}

/// A create that fails after the move (here in a createRuntime hook) returns each device to
/// the host under its name, with its address, up as it was.
#[test]
fn failed_create_moves_the_device_back() {
    const TEST: &str = "failed_create_moves_the_device_back";
    if !can_run_netdev(TEST) {
        return;
    }
    let Some(dev) = Dummy::new(TEST, "c") else {
        return;
    };
    ip_ok(&["addr", "add", "198.51.100.79/32", "dev", &dev.name]);
    ip_ok(&["link", "set", "dev", &dev.name, "up"]);
    let mut b = Bundle::new("netdevundo", &["true"]);
    b.config["hooks"] =
        json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}]});
    set_net_devices(&mut b, json!({ &dev.name: {"name": "eth7"} }));
    let r = b.create();
    fails_cleanly(&b, &r, "createRuntime");
    let host = host_device(&dev.name).expect("the device is back on the host");
    assert!(host.contains("198.51.100.79/32"), "{host}");
    assert!(host.contains(",UP"), "{host}");
}

/// A name taken in the container fails the move (the spec's rule); the device stays on (or
/// comes back to) the host under its name.
#[test]
fn name_taken_in_the_container() {
    const TEST: &str = "name_taken_in_the_container";
    if !can_run_netdev(TEST) {
        return;
    }
    let Some(dev) = Dummy::new(TEST, "l") else {
        return;
    };
    let mut b = Bundle::new("netdevtaken", &["true"]);
    set_net_devices(&mut b, json!({ &dev.name: {"name": "lo"} }));
    let r = b.create();
    fails_cleanly(&b, &r, "File exists");
    assert!(r.stderr.contains("linux.netDevices"), "{}", r.stderr);
    assert!(host_device(&dev.name).is_some(), "the device is lost");
}

#[test]
fn missing_host_device_refused() {
    const TEST: &str = "missing_host_device_refused";
    if !can_run_netdev(TEST) {
        return;
    }
    let missing = format!("cs{}none", std::process::id());
    let mut b = Bundle::new("netdevmissing", &["true"]);
    set_net_devices(&mut b, json!({ &missing: {"name": "eth0"} }));
    let r = b.run();
    fails_cleanly(&b, &r, &missing);
    assert!(r.stderr.contains("linux.netDevices"), "{}", r.stderr);
}

#[test]
fn no_network_namespace_refused() {
    const TEST: &str = "no_network_namespace_refused";
    if !can_run_netdev(TEST) {
        return;
    }
    let Some(dev) = Dummy::new(TEST, "h") else {
        return;
    };
    let mut b = Bundle::new("netdevhostns", &["true"]);
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "network");
    set_net_devices(&mut b, json!({ &dev.name: {} }));
    let r = b.run();
    fails_cleanly(
        &b,
        &r,
        "linux.netDevices: the container has no network namespace",
    );
    assert!(host_device(&dev.name).is_some());
}

#[test]
fn invalid_name_refused() {
    const TEST: &str = "invalid_name_refused";
    if !can_run_netdev(TEST) {
        return;
    }
    let Some(dev) = Dummy::new(TEST, "i") else {
        return;
    };
    let mut b = Bundle::new("netdevbadname", &["true"]);
    set_net_devices(&mut b, json!({ &dev.name: {"name": "a/b"} }));
    let r = b.run();
    fails_cleanly(&b, &r, "contains '/'");
    assert!(r.stderr.contains("linux.netDevices"), "{}", r.stderr);
    assert!(host_device(&dev.name).is_some());
}
