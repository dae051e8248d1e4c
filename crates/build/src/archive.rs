//! Compressed archives: the context a client sends and the local archives `ADD` unpacks
//! (tar, gzip, bzip2, xz, zstd — sniffed from magic bytes, as docker does).

use std::io::{self, Cursor, Read};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

pub fn detect(h: &[u8]) -> Compression {
    if h.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if h.starts_with(b"BZh") {
        Compression::Bzip2
    } else if h.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Compression::Xz
    } else if h.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Sniffs the compression of `r` and returns a reader of the decompressed bytes.
pub fn decompress<'a>(mut r: impl Read + 'a) -> io::Result<(Compression, Box<dyn Read + 'a>)> {
    let mut head = [0u8; 6];
    let mut n = 0;
    while n < head.len() {
        match r.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let c = detect(&head[..n]);
    let full = Cursor::new(head[..n].to_vec()).chain(r);
    let out: Box<dyn Read + 'a> = match c {
        Compression::None => Box::new(full),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(full)),
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(full)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(full)?),
        Compression::Xz => {
            let mut input = io::BufReader::new(full);
            let mut out = Vec::new();
            lzma_rs::xz_decompress(&mut input, &mut out)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("xz: {e}")))?;
            Box::new(Cursor::new(out))
        }
    };
    Ok((c, out))
}

/// Whether `block` (the first 512 bytes of a decompressed stream) is a tar header: docker's
/// `ADD` only unpacks what really is an archive.
pub fn looks_like_tar(block: &[u8]) -> bool {
    if block.len() < 512 {
        return false;
    }
    if &block[257..262] == b"ustar" {
        return true;
    }
    // Old (v7) tars: check the header checksum.
    let field = &block[148..156];
    let s: String = field
        .iter()
        .take_while(|b| **b != 0 && **b != b' ')
        .map(|b| *b as char)
        .collect();
    let Ok(want) = u32::from_str_radix(s.trim(), 8) else {
        return false;
    };
    let sum: u32 = block[..512]
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                *b as u32
            }
        })
        .sum();
    sum == want && block[0] != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn tarball() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        b.append_data(&mut h, "x", &b"hi"[..]).unwrap();
        b.into_inner().unwrap()
    }

    fn roundtrip(data: Vec<u8>, want: Compression) {
        let (c, mut r) = decompress(&data[..]).unwrap();
        assert_eq!(c, want);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, tarball());
        assert!(looks_like_tar(&out));
    }

    #[test]
    fn all_compressions() {
        roundtrip(tarball(), Compression::None);
        let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        g.write_all(&tarball()).unwrap();
        roundtrip(g.finish().unwrap(), Compression::Gzip);
        let mut b = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        b.write_all(&tarball()).unwrap();
        roundtrip(b.finish().unwrap(), Compression::Bzip2);
        let mut x = Vec::new();
        lzma_rs::xz_compress(&mut &tarball()[..], &mut x).unwrap();
        roundtrip(x, Compression::Xz);
        roundtrip(
            zstd::encode_all(&tarball()[..], 1).unwrap(),
            Compression::Zstd,
        );
        assert!(!looks_like_tar(b"plain text file, not a tar at all"));
        assert!(!looks_like_tar(&[0u8; 512]));
    }
}
