use super::*;

fn devices(v: serde_json::Value) -> HashMap<String, LinuxNetDevice> {
    serde_json::from_value(v).unwrap()
}

#[test]
fn names() {
    for ok in ["eth0", "a", "x.y-z_1", "abcdefghijklmno"] {
        check_name(ok, false).unwrap();
    }
    let cases = [
        ("", "empty"),
        ("abcdefghijklmnop", "longer than 15 bytes"),
        (".", "not an interface name"),
        ("..", "not an interface name"),
        ("a/b", "'/'"),
        ("a:b", "':'"),
        ("a b", "' '"),
        ("a\tb", "'\\t'"),
        ("eth%d", "contains '%'"),
    ];
    for (bad, why) in cases {
        let e = check_name(bad, false).unwrap_err();
        assert!(e.contains(why), "{bad:?}: {e}");
    }
    check_name("eth%d", true).unwrap();
    check_name("%dx", true).unwrap();
    assert!(check_name("eth%s", true).is_err());
    assert!(check_name("e%d%d", true).is_err());
}

#[test]
fn templates() {
    assert!(fits_template("eth0", "eth%d"));
    assert!(fits_template("eth12", "eth%d"));
    assert!(fits_template("n3x", "n%dx"));
    assert!(!fits_template("eth", "eth%d"));
    assert!(!fits_template("ethx", "eth%d"));
    assert!(!fits_template("veth0", "eth%d"));
    assert!(fits_template("eth9", "eth9"));
}

#[test]
fn plan_from_names() {
    let p = NetDevPlan::from_map(&devices(serde_json::json!({
        "ens5": {"name": "eth1"},
        "dummy0": {},
        "ens6": {"name": ""},
    })))
    .unwrap();
    let got: Vec<(&str, &str)> = p
        .devices
        .iter()
        .map(|d| (d.host.as_str(), d.name.as_str()))
        .collect();
    assert_eq!(
        got,
        [("dummy0", "dummy0"), ("ens5", "eth1"), ("ens6", "ens6")]
    );
    // Templates may repeat: the kernel numbers them.
    NetDevPlan::from_map(&devices(serde_json::json!({
        "a": {"name": "net%d"}, "b": {"name": "net%d"}
    })))
    .unwrap();
}

#[test]
fn plan_refusals_name_the_field() {
    let cases = [
        (
            serde_json::json!({"a": {"name": "x"}, "b": {"name": "x"}}),
            "two devices would be named \"x\"",
        ),
        (
            serde_json::json!({"a": {"name": "b"}, "b": {}}),
            "two devices would be named \"b\"",
        ),
        (
            serde_json::json!({"eth0": {"name": "a/b"}}),
            "eth0: name: \"a/b\" contains '/'",
        ),
        (
            serde_json::json!({"eth0": {"name": "sixteen-bytes-xx"}}),
            "longer than 15 bytes",
        ),
        (
            serde_json::json!({"bad name": {}}),
            "host device: \"bad name\" contains ' '",
        ),
    ];
    for (v, want) in cases {
        let e = NetDevPlan::from_map(&devices(v.clone()))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("linux.netDevices: ") && e.contains(want),
            "{v}: {e}"
        );
    }
}

#[test]
fn needs_a_network_namespace_of_its_own() {
    let linux: Linux = serde_json::from_value(serde_json::json!({
        "namespaces": [{"type": "pid"}, {"type": "mount"}],
        "netDevices": {"lo": {}}
    }))
    .unwrap();
    let ns = NamespacePlan::from_spec(Some(&linux)).unwrap();
    let e = NetDevPlan::from_spec(Some(&linux), &ns)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("linux.netDevices: the container has no network namespace"),
        "{e}"
    );
    // The runtime's own namespace, joined by path, is refused too.
    let linux: Linux = serde_json::from_value(serde_json::json!({
        "namespaces": [{"type": "network", "path": "/proc/self/ns/net"}],
        "netDevices": {"lo": {}}
    }))
    .unwrap();
    let ns = NamespacePlan::from_spec(Some(&linux)).unwrap();
    let e = NetDevPlan::from_spec(Some(&linux), &ns)
        .unwrap_err()
        .to_string();
    assert!(e.contains("is the runtime's own"), "{e}");
    // Nothing to move: nothing checked.
    let linux: Linux = serde_json::from_value(serde_json::json!({"netDevices": {}})).unwrap();
    let ns = NamespacePlan::from_spec(Some(&linux)).unwrap();
    assert_eq!(NetDevPlan::from_spec(Some(&linux), &ns).unwrap(), None);
}

#[test]
fn only_permanent_global_addresses_are_carried() {
    let mut a = AddressMessage::default();
    a.attributes
        .push(AddressAttribute::Flags(AddressFlags::Permanent));
    assert!(carried(&a));
    a.header.scope = AddressScope::Link;
    assert!(!carried(&a));
    a.header.scope = AddressScope::Universe;
    a.attributes = vec![AddressAttribute::Flags(AddressFlags::empty())];
    assert!(!carried(&a));
    // Without IFA_FLAGS, the header's flags count.
    a.attributes.clear();
    a.header.flags = AddressHeaderFlags::Permanent;
    assert!(carried(&a));
}
