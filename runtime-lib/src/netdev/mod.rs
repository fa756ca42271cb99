//! `linux.netDevices`: host network interfaces moved into the container's network namespace,
//! renamed where the config says so, as the runtime-spec describes them.
//!
//! - Checked before anything is created ([`NetDevPlan::from_spec`]): the container has a network
//!   namespace of its own (new, or joined by path but not the runtime's), the names are valid
//!   interface names, no two devices get the same name, and each host device exists.
//! - Moved by the runtime once the init's network namespace exists and before anything of the
//!   container runs, hooks included (`NetDevPlan::move_in`): one `RTM_NEWLINK` carrying
//!   `IFLA_NET_NS_FD` and `IFLA_IFNAME` moves and renames the device; the kernel drops its
//!   addresses on the way, so the permanent addresses of global scope are added again inside
//!   (the spec's rule), and the device is set up.
//! - Never moved back once the container exists: the spec forbids the runtime to move a device
//!   out of the namespace before its deletion. The namespace's owner decides; when a namespace
//!   dies, the kernel returns physical devices to the host's initial namespace (under their
//!   container names) and destroys virtual ones.
//! - Moved back by a create that fails after the move (`move_back`): the container never
//!   existed, and nothing of a failed create may be left behind, so each device returns under
//!   its host name, with the addresses that were carried and up if it was up.
//!
//! Devices are found and moved over rtnetlink. A socket inside the container's namespace is
//! made by a short-lived thread that joins it, so that the caller's threads never change
//! namespace.

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::address::{AddressHeaderFlags, AddressScope};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use oci_spec::runtime::{Linux, LinuxNamespaceType, LinuxNetDevice};

use crate::namespaces::NamespacePlan;

mod rtnl;
use rtnl::Rtnl;

#[derive(Debug, thiserror::Error)]
pub enum NetDevError {
    #[error("linux.netDevices: {0}")]
    Invalid(String),
    #[error("linux.netDevices: {what}: {source}")]
    Io { what: String, source: io::Error },
}

fn invalid(msg: impl Into<String>) -> NetDevError {
    NetDevError::Invalid(msg.into())
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> NetDevError {
    let what = what.into();
    move |source| NetDevError::Io { what, source }
}

/// The longest interface name: `IFNAMSIZ` (16) less the terminating NUL.
pub const MAX_NAME: usize = 15;

/// Check an interface name as the kernel's `dev_valid_name` does: 1 to 15 bytes, not `.` or
/// `..`, no `/`, `:` or white space. A name the kernel completes (`eth%d`: one `%d`) is only
/// valid where `template` allows it.
pub fn check_name(name: &str, template: bool) -> Result<(), String> {
    if name.is_empty() {
        return Err("an interface name cannot be empty".into());
    }
    if name.len() > MAX_NAME {
        return Err(format!(
            "{name:?} is longer than {MAX_NAME} bytes, the kernel's limit"
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("{name:?} is not an interface name"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| *c == '/' || *c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(format!("{name:?} contains {c:?}"));
    }
    if let Some(at) = name.find('%') {
        if !template {
            return Err(format!("{name:?} contains '%'"));
        }
        if !name[at..].starts_with("%d") || name[at + 2..].contains('%') {
            return Err(format!(
                "{name:?}: the only '%' a name may have is one \"%d\", for the kernel to number"
            ));
        }
    }
    Ok(())
}

/// Whether `name` is what the kernel makes of `template` (`eth%d` → `eth0`, `eth1`, ...).
fn fits_template(name: &str, template: &str) -> bool {
    let Some((head, tail)) = template.split_once("%d") else {
        return name == template;
    };
    name.len() > head.len() + tail.len()
        && name.starts_with(head)
        && name.ends_with(tail)
        && name[head.len()..name.len() - tail.len()]
            .bytes()
            .all(|b| b.is_ascii_digit())
}

/// One device to move: its name on the host and its name in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceMove {
    pub host: String,
    pub name: String,
}

/// The devices of `linux.netDevices`, checked, in the order of their host names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetDevPlan {
    pub devices: Vec<DeviceMove>,
}

/// A device this runtime moved into a container, as needed to move it back.
#[derive(Debug, Clone)]
pub(crate) struct Moved {
    host: String,
    /// Its name in the container (a template until the kernel's choice is known).
    name: String,
    /// Its index on the host; the kernel keeps it in the new namespace unless it is taken.
    index: u32,
    /// Its hardware (link-layer) address, which the move keeps: what tells it from another
    /// device of the container whose name fits the same template.
    hw: Option<Vec<u8>>,
    /// The addresses carried into the container, added again on the host on the way back.
    addresses: Vec<AddressMessage>,
    was_up: bool,
}

impl NetDevPlan {
    /// The checks on the names alone: valid names, no name given twice in the container.
    pub fn from_map(map: &HashMap<String, LinuxNetDevice>) -> Result<NetDevPlan, NetDevError> {
        let mut devices: Vec<DeviceMove> = map
            .iter()
            .map(|(host, d)| DeviceMove {
                host: host.clone(),
                name: d
                    .name()
                    .clone()
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| host.clone()),
            })
            .collect();
        devices.sort_by(|a, b| a.host.cmp(&b.host));
        let mut names = HashSet::new();
        for d in &devices {
            check_name(&d.host, false).map_err(|e| invalid(format!("host device: {e}")))?;
            check_name(&d.name, true).map_err(|e| invalid(format!("{}: name: {e}", d.host)))?;
            if !d.name.contains('%') && !names.insert(d.name.as_str()) {
                return Err(invalid(format!(
                    "two devices would be named {:?} in the container",
                    d.name
                )));
            }
        }
        Ok(NetDevPlan { devices })
    }

    /// Check `linux.netDevices` against the namespaces of the container and the host's
    /// devices. No side effects. None when there is nothing to move.
    pub fn from_spec(
        linux: Option<&Linux>,
        ns: &NamespacePlan,
    ) -> Result<Option<NetDevPlan>, NetDevError> {
        let Some(map) = linux
            .and_then(|l| l.net_devices().as_ref())
            .filter(|m| !m.is_empty())
        else {
            return Ok(None);
        };
        if !ns.has(LinuxNamespaceType::Network) {
            return Err(invalid(
                "the container has no network namespace of its own to move devices into: add \
                 one to linux.namespaces",
            ));
        }
        if let Some(join) = ns
            .joins
            .iter()
            .find(|j| j.typ == LinuxNamespaceType::Network)
        {
            if same_netns(join.fd.as_fd(), own_netns()?.as_fd())? {
                return Err(invalid(
                    "the network namespace the container joins is the runtime's own: devices \
                     can only move into another one",
                ));
            }
        }
        let plan = NetDevPlan::from_map(map)?;
        if !caps::has_cap(
            None,
            caps::CapSet::Effective,
            caps::Capability::CAP_NET_ADMIN,
        )
        .unwrap_or(false)
        {
            return Err(invalid(
                "moving host devices needs CAP_NET_ADMIN in the runtime's network namespace",
            ));
        }
        let mut host = Rtnl::here().map_err(io_err("netlink socket"))?;
        for d in &plan.devices {
            if host
                .link_by_name(&d.host)
                .map_err(io_err(format!("look up host device {:?}", d.host)))?
                .is_none()
            {
                return Err(invalid(format!(
                    "host device {:?} does not exist in the runtime's network namespace",
                    d.host
                )));
            }
        }
        Ok(Some(plan))
    }

    /// Move every device into the network namespace `netns`, carry its permanent global
    /// addresses and set it up. Each device moved is pushed to `moved` at once, so that a
    /// failure half-way leaves the caller knowing what to move back.
    pub(crate) fn move_in(
        &self,
        netns: BorrowedFd<'_>,
        moved: &mut Vec<Moved>,
    ) -> Result<(), NetDevError> {
        let mut host = Rtnl::here().map_err(io_err("netlink socket"))?;
        let mut inside =
            Rtnl::inside(netns).map_err(io_err("netlink socket in the container's namespace"))?;
        for d in &self.devices {
            let host_name = &d.host;
            let link = host
                .link_by_name(host_name)
                .map_err(io_err(format!("look up host device {host_name:?}")))?
                .ok_or_else(|| invalid(format!("host device {host_name:?} does not exist")))?;
            let index = link.header.index;
            let addresses: Vec<AddressMessage> = host
                .addresses(index)
                .map_err(io_err(format!("addresses of {host_name:?}")))?
                .into_iter()
                .filter(carried)
                .collect();
            let was_up = link.header.flags.contains(LinkFlags::Up);
            let what = format!(
                "move {host_name:?} into the container's network namespace as {:?}",
                d.name
            );
            let hw = hardware_address(&link);
            if let Err(e) = host.move_to(index, netns, &d.name) {
                // The kernel renames after the move: a name taken inside fails the rename with
                // the device already moved, under its host name. Only a device gone from the
                // host, found inside with its hardware address, is taken for it.
                let still_here = matches!(host.link_by_index(index),
                    Ok(Some(l)) if link_name(&l).as_deref() == Some(host_name.as_str()));
                if !still_here {
                    if let Ok(Some(l)) = inside.find(host_name, index, hw.as_deref()) {
                        moved.push(Moved {
                            host: host_name.clone(),
                            name: host_name.clone(),
                            index: l.header.index,
                            hw,
                            addresses,
                            was_up,
                        });
                    }
                }
                return Err(io_err(what)(e));
            }
            moved.push(Moved {
                host: host_name.clone(),
                name: d.name.clone(),
                index,
                hw,
                addresses,
                was_up,
            });
            let entry = moved.last_mut().expect("just pushed");
            let link = inside
                .find(&entry.name, entry.index, entry.hw.as_deref())
                .map_err(io_err(format!("find {:?} in the container", d.name)))?
                .ok_or_else(|| {
                    invalid(format!(
                        "{host_name:?} was moved but is not found in the container as {:?}",
                        d.name
                    ))
                })?;
            entry.index = link.header.index;
            entry.name = link_name(&link).unwrap_or_else(|| entry.name.clone());
            for a in &entry.addresses {
                inside.add_address(entry.index, a).map_err(io_err(format!(
                    "add address {} to {:?} in the container",
                    show_address(a),
                    entry.name
                )))?;
            }
            inside
                .set_up(entry.index)
                .map_err(io_err(format!("set {:?} up in the container", entry.name)))?;
            tracing::debug!(
                "linux.netDevices: {host_name:?} moved into the container as {:?}",
                entry.name
            );
        }
        Ok(())
    }
}

/// Move devices that a failed create had moved into the network namespace `netns` back into
/// the runtime's, under their host names, with the addresses they carried, up if they were.
/// Goes on past a failure; returns every failure. The caller has killed the container's
/// processes first (holding `netns` keeps the namespace), so that nothing in it changes the
/// devices meanwhile.
pub(crate) fn move_back(moved: &[Moved], netns: BorrowedFd<'_>) -> Vec<NetDevError> {
    let mut errors = Vec::new();
    let sockets = own_netns().and_then(|own| {
        let host = Rtnl::here().map_err(io_err("netlink socket"))?;
        let inside =
            Rtnl::inside(netns).map_err(io_err("netlink socket in the container's namespace"))?;
        Ok((own, host, inside))
    });
    let (own, mut host, mut inside) = match sockets {
        Ok(s) => s,
        Err(e) => return vec![e],
    };
    for m in moved.iter().rev() {
        let mut back = || -> Result<(), NetDevError> {
            let what = format!("move {:?} back to the host as {:?}", m.name, m.host);
            // The device is the one at the index it got, still with its name and hardware
            // address: never another device of the container's namespace.
            let link = inside
                .link_by_index(m.index)
                .map_err(io_err(what.clone()))?
                .filter(|l| {
                    link_name(l).is_some_and(|n| fits_template(&n, &m.name))
                        && (m.hw.is_none() || hardware_address(l) == m.hw)
                })
                .ok_or_else(|| {
                    invalid(format!(
                        "{what}: it is no longer in the container's namespace as it was moved"
                    ))
                })?;
            inside
                .move_to(link.header.index, own.as_fd(), &m.host)
                .map_err(io_err(what.clone()))?;
            let link = host
                .link_by_name(&m.host)
                .map_err(io_err(what.clone()))?
                .ok_or_else(|| invalid(format!("{what}: not found on the host afterwards")))?;
            for a in &m.addresses {
                host.add_address(link.header.index, a)
                    .map_err(io_err(format!("{what}: add address {}", show_address(a))))?;
            }
            if m.was_up {
                host.set_up(link.header.index)
                    .map_err(io_err(format!("{what}: set it up")))?;
            }
            Ok(())
        };
        if let Err(e) = back() {
            errors.push(e);
        }
    }
    errors
}

/// Open the network namespace of the container's init `pid` (started at `start`, in clock
/// ticks since boot, as recorded), refusing the runtime's own.
pub(crate) fn open_netns(pid: i32, start: u64) -> Result<OwnedFd, NetDevError> {
    // Open its namespace, then check the pid is still the init: the namespace is then the
    // container's, not that of a process that reused the pid.
    let path = format!("/proc/{pid}/ns/net");
    let fd = nix::fcntl::open(
        path.as_str(),
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| io_err(format!("open {path}"))(io::Error::from(e)))?;
    if crate::sys::proc_start_time(pid).map(|(s, _)| s) != Some(start) {
        return Err(invalid(format!("the container's init (pid {pid}) exited")));
    }
    // Already excluded by the plan; checked again because a mistake here would rename and
    // move devices within the host's own namespace.
    if same_netns(fd.as_fd(), own_netns()?.as_fd())? {
        return Err(invalid(
            "the container's init is in the runtime's network namespace",
        ));
    }
    Ok(fd)
}

/// The calling thread's network namespace.
fn own_netns() -> Result<OwnedFd, NetDevError> {
    nix::fcntl::open(
        "/proc/thread-self/ns/net",
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| io_err("open /proc/thread-self/ns/net")(io::Error::from(e)))
}

fn same_netns(a: BorrowedFd<'_>, b: BorrowedFd<'_>) -> Result<bool, NetDevError> {
    let stat = |fd: BorrowedFd<'_>| {
        nix::sys::stat::fstat(fd).map_err(|e| io_err("fstat network namespace")(io::Error::from(e)))
    };
    let (a, b) = (stat(a)?, stat(b)?);
    Ok(a.st_dev == b.st_dev && a.st_ino == b.st_ino)
}

/// The addresses the spec has carried into the container: permanent (not learned or
/// autoconfigured) and of global scope.
fn carried(a: &AddressMessage) -> bool {
    let flags = a
        .attributes
        .iter()
        .find_map(|attr| match attr {
            AddressAttribute::Flags(f) => Some(*f),
            _ => None,
        })
        .unwrap_or_else(|| AddressFlags::from_bits_retain(u32::from(a.header.flags.bits())));
    flags.contains(AddressFlags::Permanent) && a.header.scope == AddressScope::Universe
}

fn show_address(a: &AddressMessage) -> String {
    let ip = a.attributes.iter().find_map(|attr| match attr {
        AddressAttribute::Local(ip) => Some(*ip),
        _ => None,
    });
    let ip = ip.or_else(|| {
        a.attributes.iter().find_map(|attr| match attr {
            AddressAttribute::Address(ip) => Some(*ip),
            _ => None,
        })
    });
    match ip {
        Some(ip) => format!("{ip}/{}", a.header.prefix_len),
        None => format!("(no address)/{}", a.header.prefix_len),
    }
}

/// The device's link-layer address; None for a device without one (or an all-zero one, which
/// tells nothing apart).
fn hardware_address(link: &LinkMessage) -> Option<Vec<u8>> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Address(hw) if hw.iter().any(|b| *b != 0) => Some(hw.clone()),
        _ => None,
    })
}

fn link_name(link: &LinkMessage) -> Option<String> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.clone()),
        _ => None,
    })
}

#[cfg(test)]
mod tests;
