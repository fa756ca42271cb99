//! A user's own systemd manager, over the user's session bus: the systemd driver of a rootless
//! container (runc's rootless systemd driver).
//!
//! An unprivileged user cannot have the system's manager make units for it, but its own
//! manager (`user@UID.service`, which systemd delegates a cgroup v2 subtree to) can, in that
//! subtree: a transient scope in the manager's `user.slice` by default. cgroups-rs' systemd
//! client talks to the system bus only, so this is a small client of the manager's D-Bus
//! interface (`org.freedesktop.systemd1.Manager`) on the session bus: the unit properties are
//! the ones cgroups-rs gives a unit of the system's manager.
//!
//! The bus is `$DBUS_SESSION_BUS_ADDRESS`, else `unix:path=$XDG_RUNTIME_DIR/bus`, as runc finds
//! it. In a user namespace (rootless podman runs the runtime as root of one) the bus daemon
//! sees the caller as its uid on the host: that uid, not the namespace's 0, is the one the
//! `EXTERNAL` authentication claims.

use cgroups_rs::systemd::props::PropertiesBuilder;
use cgroups_rs::systemd::{Property, NO_SUCH_UNIT, UNIT_MODE_REPLACE};
use oci_spec::runtime::LinuxResources;
use zbus::blocking::Connection;
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};

const DEST: &str = "org.freedesktop.systemd1";
const PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";

/// The parent slice of a unit whose `cgroupsPath` names none (runc's default for rootless).
pub(super) const DEFAULT_SLICE: &str = "user.slice";

/// The session bus address: `$DBUS_SESSION_BUS_ADDRESS`, else the user's runtime directory's
/// `bus` socket.
fn bus_address() -> Result<String, String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let Some(addr) = var("DBUS_SESSION_BUS_ADDRESS") {
        return Ok(addr);
    }
    match var("XDG_RUNTIME_DIR") {
        Some(dir) => Ok(format!("unix:path={dir}/bus")),
        None => Err(
            "neither DBUS_SESSION_BUS_ADDRESS nor XDG_RUNTIME_DIR is set: no session \
                     bus to reach the user's systemd manager on"
                .into(),
        ),
    }
}

/// The id that `uid_map` (a `/proc/PID/uid_map` text) maps `uid` to in the parent namespace.
fn parent_uid(map: &str, uid: u32) -> Option<u32> {
    crate::rootless::id_map_ranges(map).find_map(|r| r.parent_id(uid))
}

/// A connection to a user's systemd manager.
pub(super) struct UserBus {
    conn: Connection,
    /// Where it was reached, for the errors.
    pub(super) address: String,
}

impl UserBus {
    /// Connect to the manager on the session bus; the error names the bus.
    pub(super) fn connect() -> Result<UserBus, String> {
        let address = bus_address()?;
        let euid = nix::unistd::geteuid().as_raw();
        let uid = std::fs::read_to_string("/proc/self/uid_map")
            .ok()
            .and_then(|m| parent_uid(&m, euid))
            .unwrap_or(euid);
        let conn = zbus::blocking::connection::Builder::address(address.as_str())
            .map(|b| b.user_id(uid))
            .and_then(|b| b.build())
            .map_err(|e| {
                format!("cannot reach the user's systemd manager on the session bus {address}: {e}")
            })?;
        Ok(UserBus { conn, address })
    }

    fn call<B>(&self, method: &str, body: &B) -> zbus::Result<zbus::message::Message>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        self.conn
            .call_method(Some(DEST), PATH, Some(MANAGER), method, body)
    }

    /// The manager's own cgroup (`/user.slice/user-UID.slice/user@UID.service`), the root of
    /// the subtree it was delegated.
    pub(super) fn control_group(&self) -> Result<String, String> {
        let reply = self
            .conn
            .call_method(
                Some(DEST),
                PATH,
                Some("org.freedesktop.DBus.Properties"),
                "Get",
                &(MANAGER, "ControlGroup"),
            )
            .map_err(|e| format!("read the manager's ControlGroup: {e}"))?;
        let value: OwnedValue = reply
            .body()
            .deserialize()
            .map_err(|e| format!("read the manager's ControlGroup: {e}"))?;
        let cg = String::try_from(value)
            .map_err(|e| format!("the manager's ControlGroup is not a string: {e}"))?;
        if cg.is_empty() {
            return Err(format!(
                "the manager on {} has no cgroup of its own (ControlGroup is empty): it was \
                 delegated none",
                self.address
            ));
        }
        Ok(cg)
    }

    /// Whether the manager has the unit loaded.
    pub(super) fn exists(&self, unit: &str) -> bool {
        self.call("GetUnit", &(unit,))
            .and_then(|m| m.body().deserialize::<OwnedObjectPath>())
            .is_ok()
    }

    /// Start the transient unit `unit` in `slice` with `pid` as its first process, with the
    /// properties cgroups-rs gives a unit of the system's manager.
    pub(super) fn start(&self, slice: &str, unit: &str, pid: u32) -> zbus::Result<()> {
        let props = PropertiesBuilder::default_cgroup(slice, unit)
            .pids(vec![pid])
            .build();
        let aux: Vec<(&str, Vec<(&str, Value<'_>)>)> = Vec::new();
        self.call("StartTransientUnit", &(unit, UNIT_MODE_REPLACE, props, aux))
            .map(drop)
    }

    /// Put `pid` in the running unit (`subcgroup` `/`: its own cgroup).
    pub(super) fn attach(&self, unit: &str, pid: u32) -> zbus::Result<()> {
        self.call("AttachProcessesToUnit", &(unit, "/", vec![pid]))
            .map(drop)
    }

    pub(super) fn set_properties(&self, unit: &str, props: Vec<Property<'_>>) -> zbus::Result<()> {
        self.call("SetUnitProperties", &(unit, true, props))
            .map(drop)
    }

    /// Stop the unit (gone already is no error), and reset it when it stays loaded, failed.
    pub(super) fn stop(&self, unit: &str) -> zbus::Result<()> {
        let no_such_unit = |e: &zbus::Error| matches!(e, zbus::Error::MethodError(n, ..) if n.as_str() == NO_SUCH_UNIT);
        match self.call("StopUnit", &(unit, UNIT_MODE_REPLACE)) {
            Err(e) if !no_such_unit(&e) => return Err(e),
            _ => {}
        }
        if self.exists(unit) {
            match self.call("ResetFailedUnit", &(unit,)) {
                Err(e) if !no_such_unit(&e) => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }
}

/// The unit properties of `resources` (cgroup v2; what cgroups-rs sets on a unit of the
/// system's manager): cpu, memory and pids. The cgroup files get the same values afterwards;
/// the properties keep systemd from undoing them.
pub(super) fn resource_properties(r: &LinuxResources) -> Result<Vec<Property<'static>>, String> {
    let mut props: Vec<Property<'static>> = Vec::new();
    if let Some(cpu) = r.cpu() {
        if let Some(cpus) = cpu.cpus().as_deref() {
            let (k, v) = cgroups_rs::systemd::cpuset::cpus(cpus).map_err(|e| e.to_string())?;
            props.push((k, v.into()));
        }
        if let Some(mems) = cpu.mems().as_deref() {
            let (k, v) = cgroups_rs::systemd::cpuset::mems(mems).map_err(|e| e.to_string())?;
            props.push((k, v.into()));
        }
        if let Some(shares) = cpu.shares().filter(|s| *s != 0) {
            props.push(("CPUWeight", cpu_weight(shares).into()));
        }
        let period = cpu.period().unwrap_or(0);
        let quota = cpu.quota().unwrap_or(0);
        if period != 0 {
            props.push(("CPUQuotaPeriodUSec", period.into()));
        }
        if period != 0 || quota != 0 {
            props.push(("CPUQuotaPerSecUSec", quota_per_sec(quota, period).into()));
        }
    }
    if let Some(m) = r.memory() {
        let limit = m.limit().unwrap_or(0);
        if limit != 0 {
            props.push(("MemoryMax", (limit as u64).into()));
        }
        if let Some(low) = m.reservation().filter(|v| *v != 0) {
            props.push(("MemoryLow", (low as u64).into()));
        }
        if let Some(swap) = m.swap().filter(|v| *v != 0) {
            props.push(("MemorySwapMax", (swap_v2(swap, limit)? as u64).into()));
        }
    }
    if let Some(p) = r.pids() {
        if p.limit() == -1 || p.limit() > 0 {
            props.push(("TasksMax", (p.limit() as u64).into()));
        }
    }
    Ok(props)
}

/// cgroup v1 `cpu.shares` as v2's `cpu.weight` (runc's conversion).
fn cpu_weight(shares: u64) -> u64 {
    match shares {
        0..=2 => 1,
        262144.. => 10000,
        s => 1 + ((s - 2) * 9999) / 262142,
    }
}

/// systemd's `CPUQuotaPerSecUSec` for a CFS quota and period (µs): rounded up to 10 ms, as
/// systemd keeps whole percents; no quota is infinity.
fn quota_per_sec(quota: i64, period: u64) -> u64 {
    if quota <= 0 {
        return u64::MAX;
    }
    let period = if period == 0 { 100_000 } else { period };
    let per_sec = quota as u64 * 1_000_000 / period;
    per_sec.div_ceil(10_000) * 10_000
}

/// The OCI memory+swap limit as v2's `memory.swap.max` (the swap alone).
fn swap_v2(swap: i64, limit: i64) -> Result<i64, String> {
    match (swap, limit) {
        (0 | -1, _) | (_, -1) => Ok(swap),
        (_, l) if l <= 0 => Err(format!(
            "linux.resources.memory.swap {swap} needs a positive memory limit"
        )),
        (s, l) if s < l => Err(format!(
            "linux.resources.memory.swap {s} is below the memory limit {l} (it counts both)"
        )),
        (s, l) => Ok(s - l),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_user_parent_uid_follows_the_map() {
        assert_eq!(parent_uid("0 1000 1\n", 0), Some(1000));
        assert_eq!(parent_uid("0 1000 1\n1 100000 65536\n", 5), Some(100004));
        assert_eq!(parent_uid("0 1000 1\n", 3), None);
        assert_eq!(parent_uid("0 0 4294967295\n", 1000), Some(1000));
    }

    #[test]
    fn systemd_user_resource_properties() {
        let r: LinuxResources = serde_json::from_str(
            r#"{"memory":{"limit":67108864,"swap":134217728},"pids":{"limit":50},
                "cpu":{"quota":50000,"period":100000,"shares":1024}}"#,
        )
        .unwrap();
        let props = resource_properties(&r).unwrap();
        let get = |k: &str| {
            props
                .iter()
                .find(|p| p.0 == k)
                .map(|p| u64::try_from(&p.1).unwrap())
        };
        assert_eq!(get("MemoryMax"), Some(67108864));
        assert_eq!(get("MemorySwapMax"), Some(67108864));
        assert_eq!(get("TasksMax"), Some(50));
        assert_eq!(get("CPUQuotaPerSecUSec"), Some(500_000));
        assert_eq!(get("CPUQuotaPeriodUSec"), Some(100_000));
        assert_eq!(get("CPUWeight"), Some(39));
        assert_eq!(quota_per_sec(33_333, 100_000), 340_000);
        let bad: LinuxResources =
            serde_json::from_str(r#"{"memory":{"limit":100,"swap":50}}"#).unwrap();
        assert!(resource_properties(&bad).unwrap_err().contains("swap"));
    }
}
