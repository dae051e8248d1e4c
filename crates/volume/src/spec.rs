//! docker's mount specifications: `-v SRC:DST[:MODE]` (HostConfig.Binds), `--mount …`
//! (HostConfig.Mounts) and `--tmpfs DST[:OPTS]` (HostConfig.Tmpfs), parsed and validated with
//! docker's rules and wording.

use std::collections::BTreeMap;

use berth_api::engine::{Mount, MountBindOptionsPropagationEnum, MountType};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Bind,
    Volume,
    Tmpfs,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Bind => "bind",
            Kind::Volume => "volume",
            Kind::Tmpfs => "tmpfs",
        }
    }
}

/// One mount of a container, as parsed (volume names not yet created).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MountSpec {
    pub kind: Kind,
    /// Host path (bind), volume name (volume; empty = anonymous), empty (tmpfs).
    pub source: String,
    pub target: String,
    pub read_only: bool,
    /// `rprivate`, `rslave`…; empty = docker's default.
    pub propagation: String,
    /// Don't fill a new volume with the image's content.
    pub nocopy: bool,
    /// docker's `Mode` string as given (`ro,Z`), for inspect.
    pub mode: String,
    /// `-v` creates a missing bind source; `--mount type=bind` refuses it.
    pub create_source: bool,
    /// Labels and driver options for a volume created by this mount.
    pub volume_labels: BTreeMap<String, String>,
    pub volume_options: BTreeMap<String, String>,
    /// tmpfs mount options (`size=…`, `mode=…`).
    pub tmpfs_options: Vec<String>,
}

impl MountSpec {
    fn new(kind: Kind, source: &str, target: &str) -> MountSpec {
        MountSpec {
            kind,
            source: source.to_string(),
            target: target.to_string(),
            read_only: false,
            propagation: String::new(),
            nocopy: false,
            mode: String::new(),
            create_source: false,
            volume_labels: BTreeMap::new(),
            volume_options: BTreeMap::new(),
            tmpfs_options: Vec::new(),
        }
    }
}

const PROPAGATIONS: &[&str] = &[
    "shared", "slave", "private", "rshared", "rslave", "rprivate",
];

/// docker's isValidMountMode: a comma list with at most one of each kind.
fn valid_mode(mode: &str) -> bool {
    if mode.is_empty() {
        return true;
    }
    let (mut rw, mut label, mut prop, mut copy) = (0, 0, 0, 0);
    for o in mode.split(',') {
        match o {
            "rw" | "ro" => rw += 1,
            "z" | "Z" => label += 1,
            "nocopy" => copy += 1,
            p if PROPAGATIONS.contains(&p) => prop += 1,
            _ => return false,
        }
    }
    rw <= 1 && label <= 1 && prop <= 1 && copy <= 1
}

fn invalid_spec(raw: &str) -> Error {
    Error::Invalid(format!("invalid volume specification: '{raw}'"))
}

fn check_target(kind: Kind, target: &str) -> Result<()> {
    if !target.starts_with('/') {
        return Err(Error::Invalid(format!(
            "invalid mount config for type \"{}\": invalid mount path: '{target}' mount path must be absolute",
            kind.as_str()
        )));
    }
    if target.trim_end_matches('/').is_empty() {
        return Err(Error::Invalid(
            "invalid specification: destination can't be '/'".into(),
        ));
    }
    Ok(())
}

/// Parses one `-v` value: `/ctr`, `name:/ctr[:mode]`, `/host:/ctr[:mode]`.
pub fn parse_bind(raw: &str) -> Result<MountSpec> {
    let parts: Vec<&str> = raw.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [t] => ("", *t, ""),
        [s, t] => {
            if valid_mode(t) && !t.is_empty() && !t.starts_with('/') {
                // `/foo:rw`: a destination with a mode but no source is not a volume.
                return Err(invalid_spec(raw));
            }
            (*s, *t, "")
        }
        [s, t, m] => (*s, *t, *m),
        _ => return Err(invalid_spec(raw)),
    };
    if target.is_empty() {
        return Err(invalid_spec(raw));
    }
    if !valid_mode(mode) {
        return Err(Error::Invalid(format!("invalid mode: {mode}")));
    }
    let kind = if source.starts_with('/') {
        Kind::Bind
    } else {
        Kind::Volume
    };
    if kind == Kind::Volume && !source.is_empty() {
        check_volume_name(source)?;
    }
    check_target(kind, target)?;
    let mut m = MountSpec::new(kind, source, target);
    for o in mode.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => m.read_only = true,
            "nocopy" => {
                if kind == Kind::Bind {
                    return Err(Error::Invalid(format!("invalid mode: {mode}")));
                }
                m.nocopy = true;
            }
            p if PROPAGATIONS.contains(&p) => {
                if kind == Kind::Volume {
                    return Err(Error::Invalid(format!("invalid mode: {mode}")));
                }
                m.propagation = p.to_string();
            }
            _ => {}
        }
    }
    m.mode = mode.to_string();
    m.create_source = kind == Kind::Bind;
    Ok(m)
}

/// The local driver's volume-name rule, with docker's message.
pub fn check_volume_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
    )))
}

/// Parses one `--mount` (HostConfig.Mounts entry).
pub fn parse_mount(m: &Mount) -> Result<MountSpec> {
    let kind = match m.typ {
        Some(MountType::BIND) => Kind::Bind,
        Some(MountType::VOLUME) | None => Kind::Volume,
        Some(MountType::TMPFS) => Kind::Tmpfs,
        Some(other) => {
            return Err(Error::Invalid(format!(
                "mount type unknown: {}",
                serde_json::to_string(&other).unwrap_or_default()
            )));
        }
    };
    let target = m.target.clone().unwrap_or_default();
    let source = m.source.clone().unwrap_or_default();
    let bad = |msg: String| {
        Error::Invalid(format!(
            "invalid mount config for type \"{}\": {msg}",
            kind.as_str()
        ))
    };
    if target.is_empty() {
        return Err(bad("field Target must not be empty".into()));
    }
    check_target(kind, &target)?;
    let mut spec = MountSpec::new(kind, &source, &target);
    spec.read_only = m.read_only.unwrap_or(false);
    match kind {
        Kind::Bind => {
            if source.is_empty() {
                return Err(bad("field Source must not be empty".into()));
            }
            if !source.starts_with('/') {
                return Err(bad(format!(
                    "invalid mount path: '{source}' mount path must be absolute"
                )));
            }
            if m.volume_options.is_some() {
                return Err(bad("field VolumeOptions must not be specified".into()));
            }
            if m.tmpfs_options.is_some() {
                return Err(bad("field TmpfsOptions must not be specified".into()));
            }
            if let Some(b) = &m.bind_options {
                if let Some(p) = b.propagation
                    && p != MountBindOptionsPropagationEnum::EMPTY
                {
                    spec.propagation = serde_json::to_value(p)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default();
                }
                spec.create_source = b.create_mountpoint.unwrap_or(false);
            }
        }
        Kind::Volume => {
            if !source.is_empty() {
                check_volume_name(&source)?;
            }
            if m.bind_options.is_some() {
                return Err(bad("field BindOptions must not be specified".into()));
            }
            if m.tmpfs_options.is_some() {
                return Err(bad("field TmpfsOptions must not be specified".into()));
            }
            if let Some(v) = &m.volume_options {
                spec.nocopy = v.no_copy.unwrap_or(false);
                spec.volume_labels = v.labels.clone().unwrap_or_default().into_iter().collect();
                if let Some(dc) = &v.driver_config {
                    if let Some(n) = dc
                        .name
                        .as_deref()
                        .filter(|n| !n.is_empty() && *n != "local")
                    {
                        return Err(Error::Invalid(format!(
                            "error looking up volume plugin {n}: plugin \"{n}\" not found"
                        )));
                    }
                    spec.volume_options =
                        dc.options.clone().unwrap_or_default().into_iter().collect();
                }
            }
        }
        Kind::Tmpfs => {
            if !source.is_empty() {
                return Err(bad("field Source must not be specified".into()));
            }
            if m.bind_options.is_some() || m.volume_options.is_some() {
                return Err(bad("only TmpfsOptions may be specified".into()));
            }
            if let Some(t) = &m.tmpfs_options {
                if let Some(size) = t.size_bytes {
                    if size < 0 {
                        return Err(bad(format!("invalid tmpfs size: {size}")));
                    }
                    spec.tmpfs_options.push(format!("size={size}"));
                }
                if let Some(mode) = t.mode {
                    spec.tmpfs_options.push(format!("mode={mode:o}"));
                }
            }
        }
    }
    spec.mode = if spec.read_only {
        "ro".into()
    } else {
        String::new()
    };
    Ok(spec)
}

/// Parses one `--tmpfs DST[:OPTS]` (HostConfig.Tmpfs entry).
pub fn parse_tmpfs(target: &str, options: &str) -> Result<MountSpec> {
    check_target(Kind::Tmpfs, target)?;
    let mut spec = MountSpec::new(Kind::Tmpfs, "", target);
    for o in options.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => spec.read_only = true,
            "rw" => {}
            other => spec.tmpfs_options.push(other.to_string()),
        }
    }
    Ok(spec)
}

/// `--volumes-from c[:ro|rw]`: the container and the mode override.
pub fn parse_volumes_from(s: &str) -> Result<(String, Option<bool>)> {
    match s.split_once(':') {
        None => Ok((s.to_string(), None)),
        Some((c, "ro")) => Ok((c.to_string(), Some(true))),
        Some((c, "rw")) => Ok((c.to_string(), Some(false))),
        Some((_, m)) => Err(Error::Invalid(format!("invalid mode: {m}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_follow_docker() {
        let m = parse_bind("/ctr").unwrap();
        assert_eq!(
            (m.kind, m.source.as_str(), m.target.as_str()),
            (Kind::Volume, "", "/ctr")
        );
        let m = parse_bind("data:/srv:ro").unwrap();
        assert_eq!(
            (m.kind, m.source.as_str(), m.read_only),
            (Kind::Volume, "data", true)
        );
        let m = parse_bind("/host:/ctr:ro,rslave").unwrap();
        assert_eq!(
            (m.kind, m.read_only, m.propagation.as_str()),
            (Kind::Bind, true, "rslave")
        );
        assert!(m.create_source);
        let m = parse_bind("vol:/x:nocopy").unwrap();
        assert!(m.nocopy);
        assert_eq!(
            parse_bind("/foo:rw").unwrap_err().to_string(),
            "invalid volume specification: '/foo:rw'"
        );
        assert_eq!(
            parse_bind("/a:/b:bogus").unwrap_err().to_string(),
            "invalid mode: bogus"
        );
        assert!(parse_bind("/a:/b:/c:/d").is_err());
        assert_eq!(
            parse_bind("/a:relative").unwrap_err().to_string(),
            "invalid mount config for type \"bind\": invalid mount path: 'relative' mount path must be absolute"
        );
        assert!(parse_bind("/a:/").is_err());
        let e = parse_bind("a/b:/x").unwrap_err().to_string();
        assert!(
            e.contains("includes invalid characters for a local volume name"),
            "{e}"
        );
    }

    #[test]
    fn mounts_follow_docker() {
        let m: Mount =
            serde_json::from_str(r#"{"Type":"bind","Source":"rel","Target":"/x"}"#).unwrap();
        assert_eq!(
            parse_mount(&m).unwrap_err().to_string(),
            "invalid mount config for type \"bind\": invalid mount path: 'rel' mount path must be absolute"
        );
        let m: Mount = serde_json::from_str(
            r#"{"Type":"tmpfs","Target":"/t","TmpfsOptions":{"SizeBytes":1048576,"Mode":1023}}"#,
        )
        .unwrap();
        let s = parse_mount(&m).unwrap();
        assert_eq!(s.tmpfs_options, vec!["size=1048576", "mode=1777"]);
        let m: Mount = serde_json::from_str(
            r#"{"Type":"volume","Source":"v1","Target":"/d","VolumeOptions":{"NoCopy":true}}"#,
        )
        .unwrap();
        assert!(parse_mount(&m).unwrap().nocopy);
        assert_eq!(
            parse_volumes_from("c:ro").unwrap(),
            ("c".into(), Some(true))
        );
        assert!(parse_volumes_from("c:xx").is_err());
    }
}
