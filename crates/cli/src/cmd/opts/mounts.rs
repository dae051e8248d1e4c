//! Storage flags: `--mount` (docker's CSV `MountOpt`), `-v/--volume` specs (docker's
//! `volumespec`) and `--tmpfs`.

use std::collections::HashMap;

use berth_api::engine::{
    Mount, MountBindOptions, MountBindOptionsPropagationEnum, MountImageOptions, MountTmpfsOptions,
    MountType, MountVolumeOptions, MountVolumeOptionsDriverConfig,
};
use berth_cli::format::units::ram_in_bytes;

use super::values::parse_bool;

/// One line of Go's `encoding/csv` (default settings): comma-separated, `"quoted, fields"`
/// with `""` for a quote.
pub fn split_csv(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    let mut col = 0usize;
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            col += 1;
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        col += 2;
                        field.push('"');
                    }
                    Some('"') => {
                        col += 1;
                        break;
                    }
                    Some(c) => {
                        col += 1;
                        field.push(c);
                    }
                    None => {
                        return Err(format!(
                            "parse error on line 1, column {}: extraneous or missing \" in quoted-field",
                            col + 1
                        ));
                    }
                }
            }
            match chars.peek() {
                None | Some(',') => {}
                Some(_) => {
                    return Err(format!(
                        "parse error on line 1, column {}: extraneous or missing \" in quoted-field",
                        col + 1
                    ));
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                if c == '"' {
                    return Err(format!(
                        "parse error on line 1, column {}: bare \" in non-quoted-field",
                        col + 1
                    ));
                }
                field.push(c);
                chars.next();
                col += 1;
            }
        }
        fields.push(field);
        match chars.next() {
            Some(',') => col += 1,
            _ => break,
        }
    }
    Ok(fields)
}

/// Makes a relative `./x` source absolute, as docker's client does for binds.
fn absolute_if_dot(src: &str) -> String {
    if !src.starts_with('/')
        && src.starts_with('.')
        && let Ok(cwd) = std::env::current_dir()
    {
        return super::clean_path(&format!("{}/{src}", cwd.display()));
    }
    src.to_string()
}

fn mount_type(s: &str) -> Result<MountType, String> {
    Ok(match s {
        "bind" => MountType::BIND,
        "volume" => MountType::VOLUME,
        "tmpfs" => MountType::TMPFS,
        "npipe" => MountType::NPIPE,
        "cluster" => MountType::CLUSTER,
        "image" => MountType::IMAGE,
        other => {
            return Err(format!(
                "invalid mount config for type {other:?}: mount type unknown"
            ));
        }
    })
}

fn propagation(s: &str) -> Result<MountBindOptionsPropagationEnum, String> {
    use MountBindOptionsPropagationEnum as P;
    Ok(match s {
        "private" => P::PRIVATE,
        "rprivate" => P::RPRIVATE,
        "shared" => P::SHARED,
        "rshared" => P::RSHARED,
        "slave" => P::SLAVE,
        "rslave" => P::RSLAVE,
        "" => P::EMPTY,
        other => return Err(format!("invalid propagation mode: {other}")),
    })
}

fn set_kv(target: &mut HashMap<String, String>, value: &str) {
    let (k, v) = value.split_once('=').unwrap_or((value, ""));
    if !k.is_empty() {
        target.insert(k.to_string(), v.to_string());
    }
}

/// docker's `MountOpt.Set`: `type=bind,source=/a,target=/b,readonly,…`.
pub fn parse_mount(value: &str) -> Result<Mount, String> {
    let fields = split_csv(value)?;
    let mut typ = "volume".to_string();
    let mut m = Mount::default();
    let mut bind: Option<MountBindOptions> = None;
    let mut volume: Option<MountVolumeOptions> = None;
    let mut tmpfs: Option<MountTmpfsOptions> = None;
    let mut image: Option<MountImageOptions> = None;
    fn vol(v: &mut Option<MountVolumeOptions>) -> &mut MountVolumeOptions {
        v.get_or_insert_with(|| MountVolumeOptions {
            labels: Some(HashMap::new()),
            driver_config: Some(MountVolumeOptionsDriverConfig::default()),
            ..Default::default()
        })
    }
    let invalid = |key: &str, val: &str| format!("invalid value for {key}: {val}");
    for field in &fields {
        let Some((key, val)) = field.split_once('=') else {
            match field.to_lowercase().as_str() {
                "readonly" | "ro" => m.read_only = Some(true),
                "volume-nocopy" => vol(&mut volume).no_copy = Some(true),
                "bind-nonrecursive" => {
                    bind.get_or_insert_with(Default::default).non_recursive = Some(true)
                }
                _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
            }
            continue;
        };
        let key = key.to_lowercase();
        match key.as_str() {
            "type" => typ = val.to_lowercase(),
            "source" | "src" => m.source = Some(absolute_if_dot(val)),
            "target" | "dst" | "destination" => m.target = Some(val.to_string()),
            "readonly" | "ro" => {
                m.read_only = Some(parse_bool(val).map_err(|_| invalid(&key, val))?)
            }
            "consistency" => m.consistency = Some(val.to_lowercase()),
            "bind-propagation" => {
                bind.get_or_insert_with(Default::default).propagation =
                    Some(propagation(&val.to_lowercase())?)
            }
            "bind-nonrecursive" => {
                bind.get_or_insert_with(Default::default).non_recursive =
                    Some(parse_bool(val).map_err(|_| invalid(&key, val))?);
                eprintln!(
                    "WARNING: bind-nonrecursive is deprecated, use bind-recursive=disabled instead"
                );
            }
            "bind-recursive" => {
                let b = bind.get_or_insert_with(Default::default);
                match val {
                    "enabled" => {}
                    "disabled" => b.non_recursive = Some(true),
                    "writable" => b.read_only_non_recursive = Some(true),
                    "readonly" => b.read_only_force_recursive = Some(true),
                    _ => {
                        return Err(format!(
                            "invalid value for {key}: {val} (must be \"enabled\", \"disabled\", \"writable\", or \"readonly\")"
                        ));
                    }
                }
            }
            "volume-subpath" => vol(&mut volume).subpath = Some(val.to_string()),
            "volume-nocopy" => {
                vol(&mut volume).no_copy = Some(
                    parse_bool(val)
                        .map_err(|_| format!("invalid value for volume-nocopy: {val}"))?,
                )
            }
            "volume-label" => set_kv(
                vol(&mut volume).labels.get_or_insert_with(HashMap::new),
                val,
            ),
            "volume-driver" => {
                vol(&mut volume)
                    .driver_config
                    .get_or_insert_with(Default::default)
                    .name = Some(val.to_string())
            }
            "volume-opt" => {
                let dc = vol(&mut volume)
                    .driver_config
                    .get_or_insert_with(Default::default);
                set_kv(dc.options.get_or_insert_with(HashMap::new), val)
            }
            "image-subpath" => {
                image.get_or_insert_with(Default::default).subpath = Some(val.to_string())
            }
            "tmpfs-size" => {
                tmpfs.get_or_insert_with(Default::default).size_bytes =
                    Some(ram_in_bytes(val).map_err(|_| invalid(&key, val))?)
            }
            "tmpfs-mode" => {
                let mode = u32::from_str_radix(val, 8).map_err(|_| invalid(&key, val))?;
                tmpfs.get_or_insert_with(Default::default).mode = Some(mode as i64)
            }
            _ => return Err(format!("unexpected key '{key}' in '{field}'")),
        }
    }
    if typ.is_empty() {
        return Err("type is required".into());
    }
    if m.target.as_deref().unwrap_or("").is_empty() {
        return Err("target is required".into());
    }
    let mix = |opt: &str| format!("cannot mix '{opt}-*' options with mount type '{typ}'");
    if volume.is_some() && typ != "volume" {
        return Err(mix("volume"));
    }
    if image.is_some() && typ != "image" {
        return Err(mix("image"));
    }
    if bind.is_some() && typ != "bind" {
        return Err(mix("bind"));
    }
    if tmpfs.is_some() && typ != "tmpfs" {
        return Err(mix("tmpfs"));
    }
    if let Some(b) = &bind {
        let ro = m.read_only == Some(true);
        if b.read_only_non_recursive == Some(true) && !ro {
            return Err(
                "option 'bind-recursive=writable' requires 'readonly' to be specified in conjunction"
                    .into(),
            );
        }
        if b.read_only_force_recursive == Some(true) {
            if !ro {
                return Err("option 'bind-recursive=readonly' requires 'readonly' to be specified in conjunction".into());
            }
            if b.propagation != Some(MountBindOptionsPropagationEnum::RPRIVATE) {
                return Err("option 'bind-recursive=readonly' requires 'bind-propagation=rprivate' to be specified in conjunction".into());
            }
        }
    }
    m.typ = Some(mount_type(&typ)?);
    m.bind_options = bind;
    m.volume_options = volume;
    m.tmpfs_options = tmpfs;
    m.image_options = image;
    Ok(m)
}

/// A parsed `-v` spec (docker's `volumespec.Parse`): `[source:]target[:options]`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct VolumeSpec {
    pub source: String,
    pub target: String,
    pub read_only: bool,
    /// `bind` when the source is a path, else `volume`.
    pub kind: &'static str,
}

pub fn parse_volume_spec(spec: &str) -> Result<VolumeSpec, String> {
    let mut v = VolumeSpec::default();
    match spec.chars().count() {
        0 => return Err("invalid empty volume spec".into()),
        1 | 2 => {
            v.target = spec.to_string();
            v.kind = "volume";
            return Ok(v);
        }
        _ => {}
    }
    let mut buffer = String::new();
    let chars: Vec<char> = spec.chars().chain(std::iter::once('\0')).collect();
    for c in chars {
        let is_windows_drive =
            c == ':' && buffer.chars().count() == 1 && buffer.chars().all(char::is_alphabetic);
        if is_windows_drive {
            buffer.push(c);
        } else if c == ':' || c == '\0' {
            let end = c == '\0';
            if buffer.is_empty() {
                v.kind = kind_of(&v.source);
                return Err(format!(
                    "invalid spec: {spec}: empty section between colons"
                ));
            }
            if v.source.is_empty() && end {
                v.target = std::mem::take(&mut buffer);
            } else if v.source.is_empty() {
                v.source = std::mem::take(&mut buffer);
            } else if v.target.is_empty() {
                v.target = std::mem::take(&mut buffer);
            } else if !end {
                return Err(format!("invalid spec: {spec}: too many colons"));
            } else {
                for option in buffer.split(',') {
                    match option {
                        "ro" => v.read_only = true,
                        "rw" => v.read_only = false,
                        _ => {}
                    }
                }
                buffer.clear();
            }
        } else {
            buffer.push(c);
        }
    }
    v.kind = kind_of(&v.source);
    Ok(v)
}

fn kind_of(source: &str) -> &'static str {
    if source.is_empty() {
        return "volume";
    }
    let first = source.chars().next().unwrap_or(' ');
    let is_path = matches!(first, '.' | '/' | '~')
        || (source.chars().count() > 1
            && (source.starts_with("\\\\")
                || (first.is_alphabetic() && source[first.len_utf8()..].starts_with(':'))));
    if is_path { "bind" } else { "volume" }
}

/// docker's split of `-v` values: specs with a source become `Binds` (with `./rel` sources
/// made absolute), the rest anonymous `Volumes` (by their spec text).
pub fn split_volumes(specs: &[String]) -> Result<(Vec<String>, Vec<String>), String> {
    let mut binds = Vec::new();
    let mut volumes: Vec<String> = Vec::new();
    for spec in specs {
        let parsed = parse_volume_spec(spec)?;
        if parsed.source.is_empty() {
            if !volumes.contains(spec) {
                volumes.push(spec.clone());
            }
            continue;
        }
        let mut bind = spec.clone();
        if parsed.kind == "bind"
            && let Some((host, target)) = spec.split_once(':')
        {
            bind = format!("{}:{target}", absolute_if_dot(host));
        }
        if !binds.contains(&bind) {
            binds.push(bind);
        }
    }
    Ok((binds, volumes))
}

/// `--tmpfs /run:rw,size=64m` → (`/run`, `rw,size=64m`).
pub fn parse_tmpfs(values: &[String]) -> HashMap<String, String> {
    values
        .iter()
        .map(|t| {
            let (k, v) = t.split_once(':').unwrap_or((t, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields() {
        assert_eq!(split_csv("a,b,c").unwrap(), vec!["a", "b", "c"]);
        assert_eq!(
            split_csv("type=bind,\"source=/a,b\",target=/c").unwrap(),
            vec!["type=bind", "source=/a,b", "target=/c"]
        );
        assert_eq!(split_csv("\"a\"\"b\"").unwrap(), vec!["a\"b"]);
        assert_eq!(split_csv("").unwrap(), vec![""]);
        assert!(
            split_csv("a\"b")
                .unwrap_err()
                .contains("bare \" in non-quoted-field")
        );
    }

    #[test]
    fn mount_flags() {
        let m = parse_mount("type=bind,source=/src,target=/dst,readonly,bind-propagation=rshared")
            .unwrap();
        assert_eq!(m.typ, Some(MountType::BIND));
        assert_eq!(m.source.as_deref(), Some("/src"));
        assert_eq!(m.target.as_deref(), Some("/dst"));
        assert_eq!(m.read_only, Some(true));
        assert_eq!(
            m.bind_options.unwrap().propagation,
            Some(MountBindOptionsPropagationEnum::RSHARED)
        );
        let m = parse_mount("target=/data,volume-label=a=b,volume-opt=o=1,volume-nocopy").unwrap();
        assert_eq!(m.typ, Some(MountType::VOLUME));
        let vo = m.volume_options.unwrap();
        assert_eq!(vo.no_copy, Some(true));
        assert_eq!(vo.labels.unwrap()["a"], "b");
        assert_eq!(vo.driver_config.unwrap().options.unwrap()["o"], "1");
        let m = parse_mount("type=tmpfs,dst=/t,tmpfs-size=64m,tmpfs-mode=1770").unwrap();
        let t = m.tmpfs_options.unwrap();
        assert_eq!(t.size_bytes, Some(64 << 20));
        assert_eq!(t.mode, Some(0o1770));
        let m = parse_mount("type=bind,src=./x,dst=/x").unwrap();
        assert!(m.source.unwrap().starts_with('/'));
    }

    #[test]
    fn mount_errors() {
        assert_eq!(
            parse_mount("type=bind,src=/a").unwrap_err(),
            "target is required"
        );
        assert_eq!(
            parse_mount("type=bind,target=/a,foo=bar").unwrap_err(),
            "unexpected key 'foo' in 'foo=bar'"
        );
        assert_eq!(
            parse_mount("target=/a,bogus").unwrap_err(),
            "invalid field 'bogus' must be a key=value pair"
        );
        assert_eq!(
            parse_mount("type=bind,target=/a,volume-nocopy").unwrap_err(),
            "cannot mix 'volume-*' options with mount type 'bind'"
        );
        assert_eq!(
            parse_mount("type=bind,target=/a,readonly=maybe").unwrap_err(),
            "invalid value for readonly: maybe"
        );
        assert_eq!(
            parse_mount("type=bind,target=/a,bind-recursive=readonly,readonly").unwrap_err(),
            "option 'bind-recursive=readonly' requires 'bind-propagation=rprivate' to be specified in conjunction"
        );
        assert_eq!(
            parse_mount("type=foo,target=/a").unwrap_err(),
            "invalid mount config for type \"foo\": mount type unknown"
        );
        assert_eq!(
            parse_mount("type=bind,target=/a,bind-recursive=x").unwrap_err(),
            "invalid value for bind-recursive: x (must be \"enabled\", \"disabled\", \"writable\", or \"readonly\")"
        );
    }

    #[test]
    fn volume_specs() {
        let v = parse_volume_spec("/data").unwrap();
        assert_eq!(
            (v.source.as_str(), v.target.as_str(), v.kind),
            ("", "/data", "volume")
        );
        let v = parse_volume_spec("/host:/ctr:ro").unwrap();
        assert_eq!(
            (v.source.as_str(), v.target.as_str(), v.read_only, v.kind),
            ("/host", "/ctr", true, "bind")
        );
        let v = parse_volume_spec("named:/ctr").unwrap();
        assert_eq!(v.kind, "volume");
        assert_eq!(
            parse_volume_spec("/a::/b").unwrap_err(),
            "invalid spec: /a::/b: empty section between colons"
        );
        assert_eq!(
            parse_volume_spec("/a:/b:ro:x").unwrap_err(),
            "invalid spec: /a:/b:ro:x: too many colons"
        );
        assert_eq!(
            parse_volume_spec("").unwrap_err(),
            "invalid empty volume spec"
        );
        let (binds, vols) = split_volumes(&[
            "/data".into(),
            "/h:/c".into(),
            "./rel:/r:ro".into(),
            "vol:/v".into(),
            "/data".into(),
        ])
        .unwrap();
        assert_eq!(vols, vec!["/data"]);
        assert_eq!(binds[0], "/h:/c");
        assert!(binds[1].starts_with('/') && binds[1].ends_with("/rel:/r:ro"));
        assert_eq!(binds[2], "vol:/v");
        let t = parse_tmpfs(&["/run:rw,size=1m".into(), "/tmp".into()]);
        assert_eq!(t["/run"], "rw,size=1m");
        assert_eq!(t["/tmp"], "");
    }
}
