//! `docker import`: a root filesystem tarball (any compression) becomes a one-layer image,
//! with `--change` instructions applied to its config and `-m` as its history comment.

use std::collections::BTreeMap;
use std::io::Read;

use crate::config::{History, ImageConfig, RootFs, RunConfig, host_platform};
use crate::content::stage;
use crate::digest::Digest;
use crate::layers;
use crate::reference::Reference;
use crate::store::{ImageStore, NewImage};
use crate::{Error, Result};

pub struct ImportOptions {
    /// What the tarball came from, for the history comment: `-` or a URL.
    pub source: String,
    pub message: Option<String>,
    pub changes: Vec<String>,
    pub tag: Option<Reference>,
}

/// Imports the tarball read from `input`; returns the new image ID.
pub fn import(store: &ImageStore, input: impl Read, opts: &ImportOptions) -> Result<Digest> {
    let mut run = RunConfig::default();
    for c in &opts.changes {
        apply_change(&mut run, c)?;
    }
    let tmp = store.content.temp_dir("import")?;
    let staged = stage(
        input,
        &tmp.path().join("layer"),
        None,
        None,
        "import source",
    )?;
    let (diff_id, _, _) = layers::diff_id_of(&staged.path).map_err(|e| {
        Error::Invalid(format!("the import source is not a valid tar archive: {e}"))
    })?;
    let mut lease = store.lease();
    lease.add(&diff_id);
    lease.add(&staged.digest);
    let layer = layers::unpack(
        store,
        &staged.path,
        &staged.digest,
        &diff_id,
        &diff_id,
        None,
    )?;
    store.content.commit_file(&staged.path, &staged.digest)?;
    let now = humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string();
    let platform = host_platform();
    let comment = opts
        .message
        .clone()
        .unwrap_or_else(|| format!("Imported from {}", opts.source));
    let config = ImageConfig {
        created: Some(now.clone()),
        author: None,
        architecture: platform.architecture,
        os: platform.os,
        variant: None,
        os_version: None,
        config: Some(run),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: vec![diff_id],
        },
        history: vec![History {
            created: Some(now),
            comment: Some(comment.clone()),
            ..Default::default()
        }],
        extra: BTreeMap::from([("comment".to_string(), serde_json::Value::String(comment))]),
    };
    let bytes = serde_json::to_vec(&config).expect("config serializes");
    let tags: Vec<Reference> = opts.tag.iter().cloned().collect();
    let (id, _) = store.commit_image(
        NewImage {
            config: bytes,
            layers: vec![layer],
            parent: None,
        },
        &tags,
    )?;
    Ok(id)
}

fn bad_change(msg: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("dockerfile parse error: {msg}"))
}

/// Splits `a=b c="d e"` (or the legacy `key value`) into pairs.
fn key_values(instr: &str, rest: &str) -> Result<Vec<(String, String)>> {
    let words = split_words(rest)?;
    if words.is_empty() {
        return Err(bad_change(format!(
            "{instr} requires at least one argument"
        )));
    }
    if !words[0].contains('=') {
        let (k, v) = rest.trim().split_once(char::is_whitespace).ok_or_else(|| {
            bad_change(format!("{instr} names can not be blank and need a value"))
        })?;
        return Ok(vec![(k.to_string(), unquote(v.trim()))]);
    }
    words
        .iter()
        .map(|w| {
            let (k, v) = w.split_once('=').ok_or_else(|| {
                bad_change(format!("{instr}: {w:?} is not of the form key=value"))
            })?;
            if k.is_empty() {
                return Err(bad_change(format!("{instr} names can not be blank")));
            }
            Ok((k.to_string(), v.to_string()))
        })
        .collect()
}

fn unquote(s: &str) -> String {
    split_words(s)
        .map(|w| w.join(" "))
        .unwrap_or_else(|_| s.to_string())
}

/// Shell-like word splitting with quotes and backslashes, as Dockerfile key=value lists use.
fn split_words(s: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (q, '\\') if q != Some('\'') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_word = true;
            }
            (_, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err(bad_change(format!("unmatched quote in {s:?}")));
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// Exec form (`["a","b"]`) as is; shell form wrapped in `/bin/sh -c`.
fn command(rest: &str) -> Vec<String> {
    let t = rest.trim();
    if t.starts_with('[')
        && let Ok(v) = serde_json::from_str::<Vec<String>>(t)
    {
        return v;
    }
    vec!["/bin/sh".into(), "-c".into(), t.to_string()]
}

/// Applies one `--change` instruction (the Dockerfile subset Docker allows on import/commit).
pub fn apply_change(run: &mut RunConfig, change: &str) -> Result<()> {
    let change = change.trim();
    let (instr, rest) = change
        .split_once(char::is_whitespace)
        .unwrap_or((change, ""));
    let upper = instr.to_ascii_uppercase();
    let rest = rest.trim();
    match upper.as_str() {
        "CMD" => run.cmd = Some(command(rest)),
        "ENTRYPOINT" => run.entrypoint = Some(command(rest)),
        "USER" => run.user = Some(rest.to_string()),
        "WORKDIR" => run.working_dir = Some(rest.to_string()),
        "STOPSIGNAL" => run.stop_signal = Some(rest.to_string()),
        "ONBUILD" => run
            .on_build
            .get_or_insert_with(Vec::new)
            .push(rest.to_string()),
        "ENV" => {
            let env = run.env.get_or_insert_with(Vec::new);
            for (k, v) in key_values("ENV", rest)? {
                env.retain(|e| e.split_once('=').map(|(ek, _)| ek) != Some(k.as_str()));
                env.push(format!("{k}={v}"));
            }
        }
        "LABEL" => {
            let labels = run.labels.get_or_insert_with(BTreeMap::new);
            for (k, v) in key_values("LABEL", rest)? {
                labels.insert(k, v);
            }
        }
        "EXPOSE" => {
            let ports = run.exposed_ports.get_or_insert_with(BTreeMap::new);
            for p in split_words(rest)? {
                let p = if p.contains('/') {
                    p
                } else {
                    format!("{p}/tcp")
                };
                ports.insert(p, serde_json::json!({}));
            }
        }
        "VOLUME" => {
            let vols = run.volumes.get_or_insert_with(BTreeMap::new);
            let list = if rest.starts_with('[') {
                serde_json::from_str::<Vec<String>>(rest)
                    .map_err(|e| bad_change(format!("VOLUME: {e}")))?
            } else {
                split_words(rest)?
            };
            for v in list {
                vols.insert(v, serde_json::json!({}));
            }
        }
        _ => return Err(bad_change(format!("{instr} is not a valid change command"))),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_apply_like_dockerfile_instructions() {
        let mut r = RunConfig::default();
        apply_change(&mut r, r#"CMD ["/bin/sh","-c","echo hi"]"#).unwrap();
        apply_change(&mut r, "ENTRYPOINT top -b").unwrap();
        apply_change(&mut r, r#"ENV A=1 B="two words""#).unwrap();
        apply_change(&mut r, "ENV A 3").unwrap();
        apply_change(&mut r, "LABEL x=y").unwrap();
        apply_change(&mut r, "EXPOSE 80 53/udp").unwrap();
        apply_change(&mut r, "WORKDIR /srv").unwrap();
        assert_eq!(r.cmd.unwrap(), vec!["/bin/sh", "-c", "echo hi"]);
        assert_eq!(r.entrypoint.unwrap(), vec!["/bin/sh", "-c", "top -b"]);
        assert_eq!(r.env.unwrap(), vec!["B=two words", "A=3"]);
        assert_eq!(r.labels.unwrap().get("x").unwrap(), "y");
        assert!(r.exposed_ports.as_ref().unwrap().contains_key("80/tcp"));
        assert!(r.exposed_ports.unwrap().contains_key("53/udp"));
        assert_eq!(r.working_dir.unwrap(), "/srv");
        let err = apply_change(&mut RunConfig::default(), "FROM x").unwrap_err();
        assert!(
            err.to_string()
                .contains("FROM is not a valid change command"),
            "{err}"
        );
    }
}
