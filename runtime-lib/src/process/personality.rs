//! `linux.personality`: the execution domain of the container's processes (LINUX32 makes
//! `uname` report a 32-bit machine such as i686). The runtime-spec defines no flags yet, so a
//! non-empty `flags` list is refused rather than ignored.

use oci_spec::runtime::{LinuxPersonality, LinuxPersonalityDomain};
use serde_json::Value;

use super::ProcessError;

/// The domains by their runtime-spec names, with their values of `linux/personality.h`
/// (`PER_LINUX`, `PER_LINUX32`).
pub const DOMAINS: [(&str, LinuxPersonalityDomain, u32); 2] = [
    ("LINUX", LinuxPersonalityDomain::PerLinux, 0x0000),
    ("LINUX32", LinuxPersonalityDomain::PerLinux32, 0x0008),
];

/// The persona to set, with the domain's name for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersonalityPlan {
    pub domain: &'static str,
    pub persona: u32,
}

impl PersonalityPlan {
    /// Check `linux.personality`. No side effects.
    pub fn from_spec(p: &LinuxPersonality) -> Result<PersonalityPlan, ProcessError> {
        if let Some(flags) = p.flags().as_ref().filter(|f| !f.is_empty()) {
            return Err(ProcessError::Invalid(format!(
                "linux.personality.flags: {flags:?}: the runtime-spec defines no personality flags"
            )));
        }
        let (domain, _, persona) = DOMAINS
            .iter()
            .find(|(_, d, _)| *d == p.domain())
            .copied()
            .expect("every domain is in the table");
        Ok(PersonalityPlan { domain, persona })
    }

    /// Set it for the calling process; it lasts across execve. Called before any seccomp
    /// filter, which may not allow personality(2).
    pub fn apply(&self) -> Result<(), ProcessError> {
        crate::sys::sched::set_personality(self.persona).map_err(|source| ProcessError::Sys {
            what: format!("linux.personality: personality({})", self.domain),
            source,
        })
    }
}

/// For a config whose typed parse failed: name the field of an unknown domain.
pub(crate) fn check_json(linux: &Value) -> Result<(), String> {
    let domain = linux
        .get("personality")
        .and_then(|p| p.get("domain"))
        .and_then(Value::as_str);
    match domain {
        Some(d) if !DOMAINS.iter().any(|(n, _, _)| *n == d) => Err(format!(
            "linux.personality.domain: unknown domain {d:?} (LINUX or LINUX32)"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Result<LinuxPersonality, serde_json::Error> {
        serde_json::from_value(v)
    }

    #[test]
    fn domains() {
        let p =
            PersonalityPlan::from_spec(&parse(serde_json::json!({"domain": "LINUX32"})).unwrap())
                .unwrap();
        assert_eq!((p.domain, p.persona), ("LINUX32", 8));
        let p = PersonalityPlan::from_spec(
            &parse(serde_json::json!({"domain": "LINUX", "flags": []})).unwrap(),
        )
        .unwrap();
        assert_eq!((p.domain, p.persona), ("LINUX", 0));
    }

    #[test]
    fn flags_are_refused() {
        let e = PersonalityPlan::from_spec(
            &parse(serde_json::json!({"domain": "LINUX", "flags": ["ADDR_NO_RANDOMIZE"]})).unwrap(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("linux.personality.flags"), "{e}");
    }

    #[test]
    fn unknown_domain_names_the_field() {
        let e = check_json(&serde_json::json!({"personality": {"domain": "LINUX64"}})).unwrap_err();
        assert!(
            e.contains("linux.personality.domain") && e.contains("LINUX64"),
            "{e}"
        );
        assert!(check_json(&serde_json::json!({"personality": {"domain": "LINUX32"}})).is_ok());
    }
}
