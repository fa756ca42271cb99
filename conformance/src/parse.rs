//! Parsers for the procfs text files the checker reports on.

use serde_json::{json, Value};
use std::fmt;

/// A line that could not be parsed, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub what: &'static str,
    pub line: String,
    pub reason: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "parsing {} line {:?}: {}",
            self.what, self.line, self.reason
        )
    }
}

impl std::error::Error for ParseError {}

fn err(what: &'static str, line: &str, reason: impl Into<String>) -> ParseError {
    ParseError {
        what,
        line: line.to_string(),
        reason: reason.into(),
    }
}

/// Undo the octal escapes (`\040` for a space, `\011`, `\012`, `\134`) the kernel uses
/// for whitespace and backslashes in mountinfo paths. A backslash not followed by three
/// octal digits is kept as it is.
pub fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 4 <= bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') as u32 * 64
                + (bytes[i + 2] - b'0') as u32 * 8
                + (bytes[i + 3] - b'0') as u32;
            if let Ok(b) = u8::try_from(v) {
                out.push(b);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One line of `/proc/<pid>/mountinfo` (see proc(5)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    pub mount_id: u32,
    pub parent_id: u32,
    pub major: u32,
    pub minor: u32,
    pub root: String,
    pub mount_point: String,
    /// Per-mount options, e.g. `rw`, `nosuid`, `relatime`.
    pub mount_options: Vec<String>,
    /// Optional fields such as `shared:3`, `master:1`, `propagate_from:2`, `unbindable`.
    pub optional_fields: Vec<String>,
    pub fstype: String,
    pub source: String,
    /// Per-superblock options, e.g. `rw`, `size=65536k`, `mode=755`.
    pub super_options: Vec<String>,
}

fn split_opts(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|o| !o.is_empty())
        .map(unescape_octal)
        .collect()
}

impl MountInfo {
    /// Parse one mountinfo line. The optional fields are ended by a lone `-`.
    pub fn parse(line: &str) -> Result<MountInfo, ParseError> {
        const W: &str = "mountinfo";
        let fields: Vec<&str> = line.split_whitespace().collect();
        let sep = fields
            .iter()
            .position(|f| *f == "-")
            .ok_or_else(|| err(W, line, "no ' - ' separator"))?;
        if sep < 6 {
            return Err(err(
                W,
                line,
                format!("only {sep} fields before the separator, 6 needed"),
            ));
        }
        if fields.len() < sep + 3 {
            return Err(err(W, line, "fewer than 3 fields after the separator"));
        }
        let num = |i: usize, name: &str| -> Result<u32, ParseError> {
            fields[i]
                .parse::<u32>()
                .map_err(|e| err(W, line, format!("{name} {:?}: {e}", fields[i])))
        };
        let (maj, min) = fields[2]
            .split_once(':')
            .ok_or_else(|| err(W, line, format!("major:minor {:?} has no ':'", fields[2])))?;
        let major = maj
            .parse()
            .map_err(|e| err(W, line, format!("major {maj:?}: {e}")))?;
        let minor = min
            .parse()
            .map_err(|e| err(W, line, format!("minor {min:?}: {e}")))?;
        Ok(MountInfo {
            mount_id: num(0, "mount id")?,
            parent_id: num(1, "parent id")?,
            major,
            minor,
            root: unescape_octal(fields[3]),
            mount_point: unescape_octal(fields[4]),
            mount_options: split_opts(fields[5]),
            optional_fields: fields[6..sep].iter().map(|s| s.to_string()).collect(),
            fstype: unescape_octal(fields[sep + 1]),
            source: unescape_octal(fields[sep + 2]),
            super_options: fields
                .get(sep + 3)
                .map(|s| split_opts(s))
                .unwrap_or_default(),
        })
    }

    pub fn to_json(&self) -> Value {
        json!({
            "mount_id": self.mount_id,
            "parent_id": self.parent_id,
            "major": self.major,
            "minor": self.minor,
            "root": self.root,
            "mount_point": self.mount_point,
            "mount_options": self.mount_options,
            "optional_fields": self.optional_fields,
            "fstype": self.fstype,
            "source": self.source,
            "super_options": self.super_options,
        })
    }
}

/// Parse a whole mountinfo file; blank lines are skipped.
pub fn parse_mountinfo(text: &str) -> Result<Vec<MountInfo>, ParseError> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(MountInfo::parse)
        .collect()
}

/// The fields of `/proc/<pid>/status` the checker reports.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    pub umask: Option<u32>,
    pub cap_inh: Option<u64>,
    pub cap_prm: Option<u64>,
    pub cap_eff: Option<u64>,
    pub cap_bnd: Option<u64>,
    pub cap_amb: Option<u64>,
    pub no_new_privs: Option<bool>,
    pub seccomp: Option<u32>,
}

/// Parse the `Key:\tvalue` lines of a status file. Keys the checker does not use are
/// ignored; a used key whose value does not parse is an error.
pub fn parse_status(text: &str) -> Result<Status, ParseError> {
    const W: &str = "status";
    let mut st = Status::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        let hex = |v: &str| {
            u64::from_str_radix(v, 16).map_err(|e| err(W, line, format!("hex value: {e}")))
        };
        match key {
            "Umask" => {
                st.umask = Some(
                    u32::from_str_radix(value, 8)
                        .map_err(|e| err(W, line, format!("octal value: {e}")))?,
                )
            }
            "CapInh" => st.cap_inh = Some(hex(value)?),
            "CapPrm" => st.cap_prm = Some(hex(value)?),
            "CapEff" => st.cap_eff = Some(hex(value)?),
            "CapBnd" => st.cap_bnd = Some(hex(value)?),
            "CapAmb" => st.cap_amb = Some(hex(value)?),
            "NoNewPrivs" => {
                st.no_new_privs = Some(match value {
                    "0" => false,
                    "1" => true,
                    _ => return Err(err(W, line, "NoNewPrivs is neither 0 nor 1")),
                })
            }
            "Seccomp" => {
                st.seccomp = Some(
                    value
                        .parse()
                        .map_err(|e| err(W, line, format!("decimal value: {e}")))?,
                )
            }
            _ => {}
        }
    }
    Ok(st)
}

/// One line of `/proc/<pid>/cgroup`: `hierarchy-id:controllers:path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupEntry {
    pub hierarchy_id: u32,
    /// Empty for the cgroup v2 hierarchy; `name=systemd` style names are kept as they are.
    pub controllers: Vec<String>,
    pub path: String,
}

/// Parse `/proc/<pid>/cgroup`. The path may itself contain ':' so only the first two are split.
pub fn parse_cgroup(text: &str) -> Result<Vec<CgroupEntry>, ParseError> {
    const W: &str = "cgroup";
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(err(W, line, "fewer than 3 ':'-separated fields"));
        };
        out.push(CgroupEntry {
            hierarchy_id: id
                .parse()
                .map_err(|e| err(W, line, format!("hierarchy id {id:?}: {e}")))?,
            controllers: ctrls
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect(),
            path: path.to_string(),
        });
    }
    Ok(out)
}

/// Parse the inode out of a namespace link target such as `net:[4026531833]`.
pub fn ns_inode(link: &str) -> Option<u64> {
    let start = link.find('[')?;
    let end = link.rfind(']')?;
    link.get(start + 1..end)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_with_optional_fields() {
        let l = "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue";
        let m = MountInfo::parse(l).unwrap();
        assert_eq!(m.mount_id, 36);
        assert_eq!(m.parent_id, 35);
        assert_eq!((m.major, m.minor), (98, 0));
        assert_eq!(m.root, "/mnt1");
        assert_eq!(m.mount_point, "/mnt2");
        assert_eq!(m.mount_options, vec!["rw", "noatime"]);
        assert_eq!(m.optional_fields, vec!["master:1", "shared:7"]);
        assert_eq!(m.fstype, "ext3");
        assert_eq!(m.source, "/dev/root");
        assert_eq!(m.super_options, vec!["rw", "errors=continue"]);
    }

    #[test]
    fn mountinfo_without_optional_fields_and_escapes() {
        let l = "412 400 0:52 / /tmp/a\\040dir rw,nosuid,nodev,noexec,relatime - tmpfs my\\011src rw,size=1024k,mode=700";
        let m = MountInfo::parse(l).unwrap();
        assert!(m.optional_fields.is_empty());
        assert_eq!(m.mount_point, "/tmp/a dir");
        assert_eq!(m.source, "my\tsrc");
        assert_eq!(
            m.mount_options,
            vec!["rw", "nosuid", "nodev", "noexec", "relatime"]
        );
        assert_eq!(m.super_options, vec!["rw", "size=1024k", "mode=700"]);
    }

    #[test]
    fn mountinfo_rejects_bad_lines() {
        assert!(MountInfo::parse("1 2 3:4 / / rw shared:1 ext4 /dev/x rw").is_err());
        assert!(MountInfo::parse("x 2 3:4 / / rw - ext4 /dev/x rw").is_err());
        assert!(MountInfo::parse("1 2 34 / / rw - ext4 /dev/x rw").is_err());
        assert!(MountInfo::parse("1 2 3:4 / / - ext4 /dev/x rw").is_err());
        assert!(MountInfo::parse("1 2 3:4 / / rw - ext4").is_err());
    }

    #[test]
    fn mountinfo_whole_file() {
        let t = "22 27 0:21 / /proc rw,relatime - proc proc rw\n\n27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n";
        let ms = parse_mountinfo(t).unwrap();
        assert_eq!(ms.len(), 2);
        assert_eq!(ms[1].optional_fields, vec!["shared:1"]);
        assert_eq!(ms[1].to_json()["mount_point"], "/");
    }

    #[test]
    fn unescape_keeps_stray_backslashes() {
        assert_eq!(unescape_octal("a\\134b"), "a\\b");
        assert_eq!(unescape_octal("a\\9b"), "a\\9b");
        assert_eq!(unescape_octal("end\\04"), "end\\04");
        assert_eq!(unescape_octal("x\\012"), "x\n");
    }

    #[test]
    fn status_lines() {
        let t = "Name:\tcat\nUmask:\t0027\nUid:\t0\t0\t0\t0\nCapInh:\t0000000000000000\n\
                 CapPrm:\t000001fffeffffff\nCapEff:\t00000000a80425fb\nCapBnd:\t000001fffeffffff\n\
                 CapAmb:\t0000000000000400\nNoNewPrivs:\t1\nSeccomp:\t2\nSeccomp_filters:\t1\n";
        let s = parse_status(t).unwrap();
        assert_eq!(s.umask, Some(0o027));
        assert_eq!(s.cap_inh, Some(0));
        assert_eq!(s.cap_prm, Some(0x1fffeffffff));
        assert_eq!(s.cap_eff, Some(0xa80425fb));
        assert_eq!(s.cap_bnd, Some(0x1fffeffffff));
        assert_eq!(s.cap_amb, Some(0x400));
        assert_eq!(s.no_new_privs, Some(true));
        assert_eq!(s.seccomp, Some(2));
    }

    #[test]
    fn status_bad_values_are_errors() {
        assert!(parse_status("CapEff:\tzz\n").is_err());
        assert!(parse_status("Umask:\t0089\n").is_err());
        assert!(parse_status("NoNewPrivs:\t2\n").is_err());
        let s = parse_status("Name:\tx\n").unwrap();
        assert_eq!(s, Status::default());
    }

    #[test]
    fn cgroup_lines() {
        let t = "12:cpu,cpuacct:/a/b\n1:name=systemd:/x:y\n0::/\n";
        let c = parse_cgroup(t).unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].controllers, vec!["cpu", "cpuacct"]);
        assert_eq!(c[0].path, "/a/b");
        assert_eq!(c[1].path, "/x:y");
        assert_eq!(c[2].hierarchy_id, 0);
        assert!(c[2].controllers.is_empty());
        assert!(parse_cgroup("nonsense\n").is_err());
    }

    #[test]
    fn namespace_inodes() {
        assert_eq!(ns_inode("net:[4026531833]"), Some(4026531833));
        assert_eq!(ns_inode("net:4026531833"), None);
    }
}
