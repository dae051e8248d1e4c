//! Image archives made from scratch for tests and benchmarks: docker-archive layout
//! (`manifest.json`, `<hex>.json` configs, `<hex>/layer.tar`) with chosen layers, so tests can
//! also make broken ones.

use std::io::Write;
use std::path::Path;

use sha2::{Digest as _, Sha256};

pub fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// Deterministic incompressible bytes (xorshift), fast enough for hundreds of MB.
pub fn random_bytes(size: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(size);
    out
}

/// A layer tar holding the given regular files (parent directories are implied).
pub fn layer_tar(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, data.as_slice())
            .expect("in-memory tar");
    }
    b.into_inner().expect("in-memory tar")
}

/// An image config naming the layers' diff IDs.
pub fn image_config(layers: &[Vec<u8>], cmd: &[&str]) -> Vec<u8> {
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| format!("sha256:{}", sha256_hex(l)))
        .collect();
    let history: Vec<serde_json::Value> = layers
        .iter()
        .enumerate()
        .map(|(i, _)| serde_json::json!({"created": "2024-01-01T00:00:00Z", "created_by": format!("layer {i}")}))
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": cmd, "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }))
    .expect("config")
}

/// One image of an archive.
pub struct ArchiveImage {
    pub tags: Vec<String>,
    pub config: Vec<u8>,
    pub layers: Vec<Vec<u8>>,
}

impl ArchiveImage {
    pub fn new(tags: &[&str], layers: Vec<Vec<u8>>) -> ArchiveImage {
        let config = image_config(&layers, &["sh"]);
        ArchiveImage {
            tags: tags.iter().map(|s| s.to_string()).collect(),
            config,
            layers,
        }
    }
}

/// Writes a docker-archive (legacy layout, as `docker save` before 25 and podman write it).
pub fn write_docker_archive(out: impl Write, images: &[ArchiveImage]) -> std::io::Result<()> {
    let mut b = tar::Builder::new(out);
    let mut manifest = Vec::new();
    let add = |b: &mut tar::Builder<_>, path: &str, data: &[u8]| -> std::io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, data)
    };
    for img in images {
        let cfg_name = format!("{}.json", sha256_hex(&img.config));
        add(&mut b, &cfg_name, &img.config)?;
        let mut layer_paths = Vec::new();
        for l in &img.layers {
            let p = format!("{}/layer.tar", sha256_hex(l));
            add(&mut b, &p, l)?;
            layer_paths.push(p);
        }
        manifest.push(
            serde_json::json!({"Config": cfg_name, "RepoTags": img.tags, "Layers": layer_paths}),
        );
    }
    add(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&manifest).expect("manifest"),
    )?;
    b.into_inner()?.flush()
}

/// The benchmark/crash-test archive: `layers` layers of `mb` MiB of random data each.
pub fn write_big_archive(path: &Path, tag: &str, layers: usize, mb: usize) -> std::io::Result<()> {
    let ls: Vec<Vec<u8>> = (0..layers)
        .map(|i| {
            layer_tar(&[(
                &format!("f{i}"),
                random_bytes(mb << 20, 0x9e37_79b9 + i as u64),
            )])
        })
        .collect();
    let tmp = path.with_extension("tmp");
    let f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp)?);
    write_docker_archive(f, &[ArchiveImage::new(&[tag], ls)])?;
    std::fs::rename(tmp, path)
}
