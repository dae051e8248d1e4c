//! Platforms as containerd's `platforms.Parse` reads them (`linux/amd64`, `linux/arm64/v8`,
//! `arm64`), normalized, and matched against index entries.

use berth_image::config::{Platform, host_platform};

use crate::{Error, Result};

fn normalize_arch(arch: &str, variant: Option<&str>) -> (String, Option<String>) {
    let arch = arch.to_ascii_lowercase();
    let variant = variant.map(|v| v.to_ascii_lowercase());
    match arch.as_str() {
        "i386" | "x86" => ("386".into(), None),
        "x86_64" | "x86-64" | "amd64" => {
            let v = variant.filter(|v| v != "v1");
            ("amd64".into(), v)
        }
        "aarch64" | "arm64" => {
            let v = variant.filter(|v| v != "8" && v != "v8");
            ("arm64".into(), v)
        }
        "armhf" => ("arm".into(), Some("v7".into())),
        "armel" => ("arm".into(), Some("v6".into())),
        "arm" => {
            let v = match variant.as_deref() {
                None | Some("") | Some("7") | Some("v7") => "v7".to_string(),
                Some("5") | Some("6") | Some("8") => format!("v{}", variant.unwrap()),
                Some(v) => v.to_string(),
            };
            ("arm".into(), Some(v))
        }
        _ => (arch, variant),
    }
}

/// Parses `os[/arch[/variant]]` or a lone architecture.
pub fn parse(spec: &str) -> Result<Platform> {
    let bad = || {
        Error::Invalid(format!(
            "\"{spec}\": unknown operating system or architecture: invalid argument"
        ))
    };
    let parts: Vec<&str> = spec.trim().split('/').collect();
    if parts.iter().any(|p| p.is_empty()) || parts.len() > 3 {
        return Err(bad());
    }
    let host = host_platform();
    let known_os = ["linux", "windows", "darwin", "freebsd"];
    let (os, arch, variant) = match parts.as_slice() {
        [one] => {
            if known_os.contains(&one.to_ascii_lowercase().as_str()) {
                (one.to_string(), host.architecture.clone(), None)
            } else {
                ("linux".to_string(), one.to_string(), None)
            }
        }
        [os, arch] => (os.to_string(), arch.to_string(), None),
        [os, arch, v] => (os.to_string(), arch.to_string(), Some(*v)),
        _ => return Err(bad()),
    };
    let (architecture, variant) = normalize_arch(&arch, variant);
    Ok(Platform {
        architecture,
        os: os.to_ascii_lowercase(),
        os_version: None,
        variant,
    })
}

/// containerd's `platforms.Format` (`linux/arm64/v8` → as given, variant last).
pub fn format(p: &Platform) -> String {
    match &p.variant {
        Some(v) if !v.is_empty() => format!("{}/{}/{}", p.os, p.architecture, v),
        _ => format!("{}/{}", p.os, p.architecture),
    }
}

/// Does an index entry's platform satisfy `want`?
pub fn matches(want: &Platform, have: &Platform) -> bool {
    let (ha, hv) = normalize_arch(&have.architecture, have.variant.as_deref());
    if have.os.to_ascii_lowercase() != want.os || ha != want.architecture {
        return false;
    }
    match &want.variant {
        None => true,
        Some(v) => hv.as_deref() == Some(v.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_match() {
        let p = parse("linux/amd64").unwrap();
        assert_eq!((p.os.as_str(), p.architecture.as_str()), ("linux", "amd64"));
        assert_eq!(format(&parse("linux/arm64/v8").unwrap()), "linux/arm64");
        assert_eq!(format(&parse("linux/arm").unwrap()), "linux/arm/v7");
        assert_eq!(format(&parse("arm64").unwrap()), "linux/arm64");
        assert!(parse("linux//x").is_err());
        let arm = Platform {
            architecture: "arm".into(),
            os: "linux".into(),
            os_version: None,
            variant: Some("v7".into()),
        };
        assert!(matches(&parse("linux/arm/v7").unwrap(), &arm));
        assert!(!matches(&parse("linux/arm/v6").unwrap(), &arm));
        assert!(!matches(&parse("linux/amd64").unwrap(), &arm));
    }
}
