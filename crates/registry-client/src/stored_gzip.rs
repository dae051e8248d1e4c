//! gzip made of stored (uncompressed) deflate blocks, for layers that do not compress. Every
//! registry and client reads it as a plain `tar+gzip` layer. The framing is ours: fixed
//! 65535-byte blocks, a zero mtime, so the same layer always gives the same blob (and digest),
//! and the size is known before the first byte, so the upload can carry a Content-Length. The
//! bytes are read straight into the caller's buffer: no copy beyond the one `read` makes.

use std::io::{self, Read};

const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
const BLOCK: u64 = 65535;

/// The size of the stored gzip of `len` input bytes.
pub fn size(len: u64) -> u64 {
    HEADER.len() as u64 + 5 * len.div_ceil(BLOCK).max(1) + len + 8
}

/// Reads `inner` (exactly `len` bytes) as stored-block gzip.
pub struct StoredGzip<R> {
    inner: R,
    len: u64,
    remaining: u64,
    block_left: u64,
    crc: flate2::Crc,
    /// Framing bytes (header, block head or trailer) still to hand out.
    pending: [u8; 10],
    pending_at: usize,
    pending_len: usize,
    started_blocks: bool,
    done: bool,
}

impl<R: Read> StoredGzip<R> {
    pub fn new(inner: R, len: u64) -> StoredGzip<R> {
        let mut s = StoredGzip {
            inner,
            len,
            remaining: len,
            block_left: 0,
            crc: flate2::Crc::new(),
            pending: [0; 10],
            pending_at: 0,
            pending_len: 0,
            started_blocks: false,
            done: false,
        };
        s.set_pending(&HEADER);
        s
    }

    fn set_pending(&mut self, b: &[u8]) {
        self.pending[..b.len()].copy_from_slice(b);
        self.pending_at = 0;
        self.pending_len = b.len();
    }

    /// Queues what comes next when the current block is used up: a block head or the trailer.
    fn next_framing(&mut self) {
        if self.remaining == 0 && self.started_blocks {
            let mut t = [0u8; 8];
            t[..4].copy_from_slice(&self.crc.sum().to_le_bytes());
            t[4..].copy_from_slice(&(self.len as u32).to_le_bytes());
            self.set_pending(&t);
            self.done = true;
            return;
        }
        let n = self.remaining.min(BLOCK) as u16;
        let last = u64::from(n) == self.remaining;
        let [lo, hi] = n.to_le_bytes();
        self.set_pending(&[u8::from(last), lo, hi, !lo, !hi]);
        self.block_left = u64::from(n);
        self.started_blocks = true;
    }
}

impl<R: Read> Read for StoredGzip<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            if self.pending_at < self.pending_len {
                let n = (self.pending_len - self.pending_at).min(buf.len() - filled);
                buf[filled..filled + n]
                    .copy_from_slice(&self.pending[self.pending_at..self.pending_at + n]);
                self.pending_at += n;
                filled += n;
                continue;
            }
            if self.block_left == 0 {
                if self.done {
                    break;
                }
                self.next_framing();
                continue;
            }
            let want = (buf.len() - filled).min(self.block_left as usize);
            let n = self.inner.read(&mut buf[filled..filled + want])?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("layer ended {} bytes early", self.remaining),
                ));
            }
            self.crc.update(&buf[filled..filled + n]);
            filled += n;
            self.block_left -= n as u64;
            self.remaining -= n as u64;
            // Return what a real read gave rather than looping on a slow source.
            if filled > 0 && self.block_left > 0 {
                break;
            }
        }
        Ok(filled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gz(data: &[u8], chunk: usize) -> Vec<u8> {
        let mut r = StoredGzip::new(data, data.len() as u64);
        let mut out = Vec::new();
        let mut buf = vec![0; chunk];
        loop {
            let n = r.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        out
    }

    #[test]
    fn decodes_to_the_input_with_the_announced_size() {
        for len in [0usize, 1, 5, 65534, 65535, 65536, 200_003] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 300) as u8).collect();
            for chunk in [3, 4096, 128 << 10] {
                let out = gz(&data, chunk);
                assert_eq!(
                    out.len() as u64,
                    size(len as u64),
                    "len {len} chunk {chunk}"
                );
                let mut back = Vec::new();
                flate2::read::GzDecoder::new(&out[..])
                    .read_to_end(&mut back)
                    .unwrap();
                assert_eq!(back, data, "len {len} chunk {chunk}");
            }
        }
    }

    #[test]
    fn the_same_input_gives_the_same_bytes() {
        let data = vec![42u8; 100_000];
        assert_eq!(gz(&data, 1000), gz(&data, 128 << 10));
    }

    #[test]
    fn a_short_source_is_an_error() {
        let mut r = StoredGzip::new(&b"abc"[..], 10);
        let mut out = Vec::new();
        let e = r.read_to_end(&mut out).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }
}
