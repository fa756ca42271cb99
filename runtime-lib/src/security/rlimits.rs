//! Resource limits (`process.rlimits`).

use crate::sys::security::prlimit_self;
use oci_spec::runtime::{PosixRlimit, PosixRlimitType};

use super::SecurityError;

/// Every resource limit Linux knows: name and `RLIMIT_*` number.
const RESOURCES: [(&str, libc::c_int); 16] = [
    ("RLIMIT_AS", libc::RLIMIT_AS as libc::c_int),
    ("RLIMIT_CORE", libc::RLIMIT_CORE as libc::c_int),
    ("RLIMIT_CPU", libc::RLIMIT_CPU as libc::c_int),
    ("RLIMIT_DATA", libc::RLIMIT_DATA as libc::c_int),
    ("RLIMIT_FSIZE", libc::RLIMIT_FSIZE as libc::c_int),
    ("RLIMIT_LOCKS", libc::RLIMIT_LOCKS as libc::c_int),
    ("RLIMIT_MEMLOCK", libc::RLIMIT_MEMLOCK as libc::c_int),
    ("RLIMIT_MSGQUEUE", libc::RLIMIT_MSGQUEUE as libc::c_int),
    ("RLIMIT_NICE", libc::RLIMIT_NICE as libc::c_int),
    ("RLIMIT_NOFILE", libc::RLIMIT_NOFILE as libc::c_int),
    ("RLIMIT_NPROC", libc::RLIMIT_NPROC as libc::c_int),
    ("RLIMIT_RSS", libc::RLIMIT_RSS as libc::c_int),
    ("RLIMIT_RTPRIO", libc::RLIMIT_RTPRIO as libc::c_int),
    ("RLIMIT_RTTIME", libc::RLIMIT_RTTIME as libc::c_int),
    ("RLIMIT_SIGPENDING", libc::RLIMIT_SIGPENDING as libc::c_int),
    ("RLIMIT_STACK", libc::RLIMIT_STACK as libc::c_int),
];

/// The `RLIMIT_*` number of a resource named as in the runtime-spec ("RLIMIT_NOFILE").
pub fn rlimit_resource(name: &str) -> Result<libc::c_int, SecurityError> {
    RESOURCES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, r)| *r)
        .ok_or_else(|| SecurityError::Invalid {
            what: "process.rlimits".into(),
            msg: format!(
                "unknown resource {name:?}; Linux knows {}",
                RESOURCES.map(|(n, _)| n).join(", ")
            ),
        })
}

fn name_of(typ: PosixRlimitType) -> &'static str {
    match typ {
        PosixRlimitType::RlimitAs => "RLIMIT_AS",
        PosixRlimitType::RlimitCore => "RLIMIT_CORE",
        PosixRlimitType::RlimitCpu => "RLIMIT_CPU",
        PosixRlimitType::RlimitData => "RLIMIT_DATA",
        PosixRlimitType::RlimitFsize => "RLIMIT_FSIZE",
        PosixRlimitType::RlimitLocks => "RLIMIT_LOCKS",
        PosixRlimitType::RlimitMemlock => "RLIMIT_MEMLOCK",
        PosixRlimitType::RlimitMsgqueue => "RLIMIT_MSGQUEUE",
        PosixRlimitType::RlimitNice => "RLIMIT_NICE",
        PosixRlimitType::RlimitNofile => "RLIMIT_NOFILE",
        PosixRlimitType::RlimitNproc => "RLIMIT_NPROC",
        PosixRlimitType::RlimitRss => "RLIMIT_RSS",
        PosixRlimitType::RlimitRtprio => "RLIMIT_RTPRIO",
        PosixRlimitType::RlimitRttime => "RLIMIT_RTTIME",
        PosixRlimitType::RlimitSigpending => "RLIMIT_SIGPENDING",
        PosixRlimitType::RlimitStack => "RLIMIT_STACK",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Limit {
    name: &'static str,
    resource: libc::c_int,
    soft: u64,
    hard: u64,
}

/// Parsed rlimits, in config order, ready for setrlimit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RlimitsPlan {
    limits: Vec<Limit>,
}

impl RlimitsPlan {
    /// Check and translate `process.rlimits`. Rejected: a soft limit above its hard limit
    /// (setrlimit would fail with EINVAL) and the same resource twice (the runtime-spec
    /// requires an error for duplicated types). Unknown names are already refused when
    /// config.json is parsed; [`rlimit_resource`] gives the same check for a bare name.
    pub fn from_spec(rlimits: &[PosixRlimit]) -> Result<Self, SecurityError> {
        let mut limits: Vec<Limit> = Vec::with_capacity(rlimits.len());
        for rlimit in rlimits {
            let name = name_of(rlimit.typ());
            let resource = rlimit_resource(name)?;
            let (soft, hard) = (rlimit.soft(), rlimit.hard());
            if soft > hard {
                return Err(SecurityError::Invalid {
                    what: format!("process.rlimits {name}"),
                    msg: format!("soft limit {soft} is above hard limit {hard}"),
                });
            }
            if limits.iter().any(|l| l.resource == resource) {
                return Err(SecurityError::Invalid {
                    what: format!("process.rlimits {name}"),
                    msg: "listed more than once".into(),
                });
            }
            limits.push(Limit {
                name,
                resource,
                soft,
                hard,
            });
        }
        Ok(RlimitsPlan { limits })
    }

    /// The planned limits as (name, soft, hard), in config order.
    pub fn limits(&self) -> impl Iterator<Item = (&'static str, u64, u64)> + '_ {
        self.limits.iter().map(|l| (l.name, l.soft, l.hard))
    }

    /// Set every limit on the calling process, in config order. Raising a hard limit needs
    /// CAP_SYS_RESOURCE, so call this before capabilities are dropped.
    pub fn apply(&self) -> Result<(), SecurityError> {
        for limit in &self.limits {
            prlimit_self(limit.resource, limit.soft, limit.hard).map_err(|errno| {
                SecurityError::ApplyRlimit {
                    resource: limit.name,
                    errno,
                }
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Vec<PosixRlimit> {
        serde_json::from_str(json).expect("test rlimits parse")
    }

    #[test]
    fn maps_every_resource() {
        let all = [
            (PosixRlimitType::RlimitAs, libc::RLIMIT_AS),
            (PosixRlimitType::RlimitCore, libc::RLIMIT_CORE),
            (PosixRlimitType::RlimitCpu, libc::RLIMIT_CPU),
            (PosixRlimitType::RlimitData, libc::RLIMIT_DATA),
            (PosixRlimitType::RlimitFsize, libc::RLIMIT_FSIZE),
            (PosixRlimitType::RlimitLocks, libc::RLIMIT_LOCKS),
            (PosixRlimitType::RlimitMemlock, libc::RLIMIT_MEMLOCK),
            (PosixRlimitType::RlimitMsgqueue, libc::RLIMIT_MSGQUEUE),
            (PosixRlimitType::RlimitNice, libc::RLIMIT_NICE),
            (PosixRlimitType::RlimitNofile, libc::RLIMIT_NOFILE),
            (PosixRlimitType::RlimitNproc, libc::RLIMIT_NPROC),
            (PosixRlimitType::RlimitRss, libc::RLIMIT_RSS),
            (PosixRlimitType::RlimitRtprio, libc::RLIMIT_RTPRIO),
            (PosixRlimitType::RlimitRttime, libc::RLIMIT_RTTIME),
            (PosixRlimitType::RlimitSigpending, libc::RLIMIT_SIGPENDING),
            (PosixRlimitType::RlimitStack, libc::RLIMIT_STACK),
        ];
        for (typ, number) in all {
            let json = serde_json::to_string(&typ).unwrap();
            assert_eq!(json.trim_matches('"'), name_of(typ));
            assert_eq!(
                rlimit_resource(name_of(typ)).unwrap(),
                number as libc::c_int
            );
        }
    }

    #[test]
    fn parses_in_order() {
        let plan = RlimitsPlan::from_spec(&parse(
            r#"[{"type":"RLIMIT_NOFILE","soft":1024,"hard":4096},
                {"type":"RLIMIT_CORE","soft":0,"hard":0}]"#,
        ))
        .unwrap();
        let got: Vec<_> = plan.limits().collect();
        assert_eq!(
            got,
            vec![("RLIMIT_NOFILE", 1024, 4096), ("RLIMIT_CORE", 0, 0)]
        );
    }

    #[test]
    fn rejects_soft_above_hard() {
        let err = RlimitsPlan::from_spec(&parse(
            r#"[{"type":"RLIMIT_NOFILE","soft":4096,"hard":1024}]"#,
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("RLIMIT_NOFILE"), "{err}");
        assert!(
            err.contains("soft limit 4096 is above hard limit 1024"),
            "{err}"
        );
    }

    #[test]
    fn rejects_duplicates() {
        let err = RlimitsPlan::from_spec(&parse(
            r#"[{"type":"RLIMIT_CPU","soft":1,"hard":2},{"type":"RLIMIT_CPU","soft":1,"hard":2}]"#,
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("RLIMIT_CPU") && err.contains("more than once"),
            "{err}"
        );
    }

    #[test]
    fn rejects_unknown_names() {
        let err = rlimit_resource("RLIMIT_BOGUS").unwrap_err().to_string();
        assert!(
            err.contains("RLIMIT_BOGUS") && err.contains("RLIMIT_NOFILE"),
            "{err}"
        );
        assert!(serde_json::from_str::<Vec<PosixRlimit>>(
            r#"[{"type":"RLIMIT_BOGUS","soft":1,"hard":1}]"#
        )
        .is_err());
    }
}
