//! Layer blob compression, sniffed from magic bytes rather than trusted from media types.

use std::io::{self, Read};

/// The compressions berth reads. bzip2 and xz (legal in Docker v1 layers, unused in practice) are
/// recognised by [`decompressed`] and refused with a clear error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

const GZIP: &[u8] = &[0x1f, 0x8b];
const ZSTD: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
const BZIP2: &[u8] = b"BZh";
const XZ: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0x00];

/// Longest magic we look at.
const SNIFF: usize = 6;

/// Classifies the first bytes of a blob. Anything unrecognised is taken as uncompressed (a tar).
pub fn detect(header: &[u8]) -> Compression {
    if header.starts_with(GZIP) {
        Compression::Gzip
    } else if header.starts_with(ZSTD) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Names a compression berth recognises but does not decompress.
fn unsupported(header: &[u8]) -> Option<&'static str> {
    if header.starts_with(XZ) {
        Some("xz")
    } else if header.starts_with(BZIP2) && header.len() > 3 && (b'1'..=b'9').contains(&header[3]) {
        Some("bzip2")
    } else {
        None
    }
}

/// Wraps a reader, sniffing its compression; returns the compression and the decompressing reader.
/// gzip streams may have several members (as Go's reader accepts). bzip2/xz give an
/// `ErrorKind::Unsupported` error.
pub fn decompressed<'a>(r: impl Read + 'a) -> io::Result<(Compression, Box<dyn Read + 'a>)> {
    let mut r = r;
    let mut head = [0u8; SNIFF];
    let mut n = 0;
    while n < SNIFF {
        match r.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let head = &head[..n];
    if let Some(name) = unsupported(head) {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("{name}-compressed layers are not supported (use gzip, zstd or none)"),
        ));
    }
    let c = detect(head);
    let full = io::Cursor::new(head.to_vec()).chain(r);
    let out: Box<dyn Read + 'a> = match c {
        Compression::None => Box::new(full),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(full)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(full)?),
    };
    Ok((c, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn roundtrip(c: Compression, data: &[u8]) {
        let blob = match c {
            Compression::None => data.to_vec(),
            Compression::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Compression::Zstd => zstd::encode_all(data, 1).unwrap(),
        };
        assert_eq!(detect(&blob), c);
        // A reader that hands out one byte at a time must still be sniffed correctly.
        struct Dribble<'a>(&'a [u8]);
        impl Read for Dribble<'_> {
            fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
                if self.0.is_empty() || b.is_empty() {
                    return Ok(0);
                }
                b[0] = self.0[0];
                self.0 = &self.0[1..];
                Ok(1)
            }
        }
        let (got, mut r) = decompressed(Dribble(&blob)).unwrap();
        assert_eq!(got, c);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn sniffs_and_decompresses() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            roundtrip(c, &data);
            roundtrip(c, b"");
        }
    }

    #[test]
    fn multi_member_gzip() {
        let mut blob = Vec::new();
        for part in [&b"hello "[..], b"world"] {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(part).unwrap();
            blob.extend(e.finish().unwrap());
        }
        let (_, mut r) = decompressed(&blob[..]).unwrap();
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello world");
    }

    #[test]
    fn bzip2_and_xz_are_refused_clearly() {
        for (blob, name) in [
            (&b"BZh91AY&SY"[..], "bzip2"),
            (&[0xfd, b'7', b'z', b'X', b'Z', 0, 0][..], "xz"),
        ] {
            let err = decompressed(blob).err().unwrap();
            assert_eq!(err.kind(), io::ErrorKind::Unsupported);
            assert!(err.to_string().contains(name), "{err}");
        }
        // A tar whose first file is named "BZh..." is not bzip2.
        assert_eq!(detect(b"BZhello"), Compression::None);
        assert!(decompressed(&b"BZhello"[..]).is_ok());
    }
}
