//! Device access: `devices.allow`/`devices.deny` on v1, an eBPF program on v2.
use super::{res_err, unsupported, write_file, FsCgroup};
use crate::cgroups::{default_allowed_devices, CgroupError, Mode};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

impl FsCgroup {
    /// Apply the device rules in order, then runc's default allowed devices: written to
    /// `devices.allow`/`devices.deny` on v1, compiled to an eBPF program that replaces the
    /// cgroup's previous one on v2 (there the rules are the whole truth: deny unless allowed).
    pub(super) fn set_devices(&self, rules: &[LinuxDeviceCgroup]) -> Result<(), CgroupError> {
        let defaults = default_allowed_devices();
        if self.mode == Mode::Unified {
            let h = self
                .v2_hier()
                .ok_or_else(|| unsupported("devices", "no cgroup2 hierarchy"))?;
            let all: Vec<LinuxDeviceCgroup> =
                rules.iter().chain(defaults.iter()).cloned().collect();
            return crate::cgroups::bpf::apply_device_program(&h.dir, &all);
        }
        let Some(h) = self
            .hiers
            .iter()
            .find(|h| !h.v2 && h.controllers.iter().any(|c| c == "devices"))
        else {
            return Err(unsupported("devices", "no devices controller is mounted"));
        };
        for rule in rules.iter().chain(defaults.iter()) {
            let line = device_rule_line(rule).map_err(|msg| res_err("devices", &h.dir, msg))?;
            let file = if rule.allow() {
                "devices.allow"
            } else {
                "devices.deny"
            };
            write_file(&h.dir.join(file), &line).map_err(|e| {
                res_err(
                    "devices",
                    &h.dir,
                    format!("writing {line:?} to {file}: {e}"),
                )
            })?;
        }
        Ok(())
    }
}

/// `type major:minor access` for devices.allow / devices.deny.
fn device_rule_line(r: &LinuxDeviceCgroup) -> Result<String, String> {
    let typ = match r.typ().unwrap_or(LinuxDeviceType::A) {
        LinuxDeviceType::A => 'a',
        LinuxDeviceType::B => 'b',
        LinuxDeviceType::C | LinuxDeviceType::U => 'c',
        LinuxDeviceType::P => {
            return Err("device rules cannot name FIFOs (type \"p\")".to_string());
        }
    };
    let access = r
        .access()
        .as_deref()
        .filter(|a| !a.is_empty())
        .unwrap_or("rwm");
    if !access.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
        return Err(format!("access {access:?} may only contain r, w and m"));
    }
    let num = |v: Option<i64>| match v {
        Some(n) if n >= 0 => n.to_string(),
        _ => "*".to_string(),
    };
    Ok(format!(
        "{typ} {}:{} {access}",
        num(r.major()),
        num(r.minor())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroups_device_rule_lines() {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(false);
        r.set_access(Some("rwm".into()));
        assert_eq!(device_rule_line(&r).unwrap(), "a *:* rwm");
        r.set_typ(Some(LinuxDeviceType::C));
        r.set_major(Some(1));
        r.set_minor(Some(3));
        r.set_access(None);
        assert_eq!(device_rule_line(&r).unwrap(), "c 1:3 rwm");
        r.set_typ(Some(LinuxDeviceType::B));
        r.set_minor(None);
        r.set_access(Some("m".into()));
        assert_eq!(device_rule_line(&r).unwrap(), "b 1:* m");
        r.set_access(Some("rx".into()));
        assert!(device_rule_line(&r).unwrap_err().contains("access"));
        r.set_access(None);
        r.set_typ(Some(LinuxDeviceType::P));
        assert!(device_rule_line(&r).unwrap_err().contains("FIFO"));
    }
}
