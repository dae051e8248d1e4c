//! docker's json-file log: one `{"log":…,"stream":…,"time":…}` object per line, split like
//! docker's copier (a message per `\n`; a partial one when 16 KiB pass without a newline, and
//! at the end), rotated like docker's `logfile` (`max-size`, `max-file`).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::SystemTime;

/// docker's copier buffer: a line longer than this is logged in pieces.
pub const MAX_LINE: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout = 0,
    Stderr = 1,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

pub struct JsonLog {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    max_size: u64,
    max_files: u32,
    partial: [Vec<u8>; 2],
    out: Vec<u8>,
}

impl JsonLog {
    /// An empty `path` logs nothing (docker's `--log-driver none`).
    pub fn open(path: PathBuf, max_size: u64, max_files: u32) -> io::Result<JsonLog> {
        let file = if path.as_os_str().is_empty() {
            None
        } else {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            Some(open_log(&path)?)
        };
        let size = match &file {
            Some(f) => f.metadata()?.len(),
            None => 0,
        };
        Ok(JsonLog {
            path,
            file,
            size,
            max_size,
            max_files: max_files.max(1),
            partial: [Vec::new(), Vec::new()],
            out: Vec::new(),
        })
    }

    /// Logs container output: complete lines now, the rest when it completes or overflows.
    pub fn write(&mut self, stream: Stream, data: &[u8]) {
        if self.file.is_none() && !self.path.as_os_str().is_empty() {
            // Rotation failed to reopen the file: try again rather than lose the rest.
            self.file = open_log(&self.path).ok();
        }
        if self.file.is_none() {
            return;
        }
        let now = rfc3339_nano(SystemTime::now());
        let s = stream as usize;
        let mut data = data;
        // Fast path: nothing pending, emit whole lines straight from `data`.
        while self.partial[s].is_empty() {
            match data.iter().position(|&b| b == b'\n') {
                Some(i) if i < MAX_LINE => {
                    self.message(stream, &data[..=i], &now);
                    data = &data[i + 1..];
                }
                _ => break,
            }
        }
        if !data.is_empty() {
            let mut p = std::mem::take(&mut self.partial[s]);
            p.extend_from_slice(data);
            let mut start = 0;
            loop {
                let rest = &p[start..];
                match rest.iter().position(|&b| b == b'\n') {
                    Some(i) if i < MAX_LINE => {
                        self.message(stream, &rest[..=i], &now);
                        start += i + 1;
                    }
                    _ if rest.len() >= MAX_LINE => {
                        self.message(stream, &rest[..MAX_LINE], &now);
                        start += MAX_LINE;
                    }
                    _ => break,
                }
            }
            p.drain(..start);
            if p.is_empty() {
                p = Vec::new();
            }
            self.partial[s] = p;
        }
        self.flush_out();
    }

    /// Emits what is left of unfinished lines (at exit).
    pub fn finish(&mut self) {
        let now = rfc3339_nano(SystemTime::now());
        for stream in [Stream::Stdout, Stream::Stderr] {
            let p = std::mem::take(&mut self.partial[stream as usize]);
            if !p.is_empty() {
                self.message(stream, &p, &now);
            }
        }
        self.flush_out();
        if let Some(f) = &self.file {
            let _ = f.sync_data();
        }
    }

    fn message(&mut self, stream: Stream, line: &[u8], time: &str) {
        let start = self.out.len();
        self.out.extend_from_slice(b"{\"log\":\"");
        json_escape(line, &mut self.out);
        self.out.extend_from_slice(b"\",\"stream\":\"");
        self.out.extend_from_slice(stream.name().as_bytes());
        self.out.extend_from_slice(b"\",\"time\":\"");
        self.out.extend_from_slice(time.as_bytes());
        self.out.extend_from_slice(b"\"}\n");
        let len = (self.out.len() - start) as u64;
        // docker rotates before a write once the file has reached max-size.
        if self.max_size > 0 && self.size >= self.max_size {
            let msg = self.out.split_off(start);
            self.flush_out();
            self.rotate();
            self.out = msg;
        }
        self.size += len;
    }

    fn flush_out(&mut self) {
        if self.out.is_empty() {
            return;
        }
        if let Some(f) = &mut self.file {
            // A full disk must not stall the container; the data is lost, as with docker.
            let _ = f.write_all(&self.out);
        }
        self.out.clear();
        if self.out.capacity() > 64 * 1024 {
            self.out = Vec::new();
        }
    }

    fn rotate(&mut self) {
        if self.max_files <= 1 {
            if let Some(f) = &self.file {
                let _ = f.set_len(0);
            }
            self.size = 0;
            return;
        }
        let name = |i: u32| {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{i}"));
            PathBuf::from(p)
        };
        for i in (1..self.max_files - 1).rev() {
            let _ = std::fs::rename(name(i), name(i + 1));
        }
        let _ = std::fs::rename(&self.path, name(1));
        self.file = open_log(&self.path).ok();
        self.size = 0;
    }
}

fn open_log(path: &PathBuf) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

/// Go's encoding/json string escaping (docker's jsonlog): HTML-safe `<>&`, U+2028/2029, and
/// each invalid UTF-8 byte as U+FFFD.
pub fn json_escape(data: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for chunk in data.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                '<' | '>' | '&' | '\u{0}'..='\u{1f}' => {
                    let b = c as u8;
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[(b >> 4) as usize]);
                    out.push(HEX[(b & 15) as usize]);
                }
                '\u{2028}' => out.extend_from_slice(b"\\u2028"),
                '\u{2029}' => out.extend_from_slice(b"\\u2029"),
                c => {
                    let mut b = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
                }
            }
        }
        for _ in chunk.invalid() {
            out.extend_from_slice(b"\\ufffd");
        }
    }
}

/// Go's `time.RFC3339Nano` in UTC: trailing zeros of the fraction dropped.
pub fn rfc3339_nano(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let nanos = d.subsec_nanos();
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut s = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    );
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn time_format() {
        let t = SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 123_450_000);
        assert_eq!(rfc3339_nano(t), "2023-11-14T22:13:20.12345Z");
        assert_eq!(rfc3339_nano(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = SystemTime::UNIX_EPOCH + Duration::new(951_782_400, 1);
        assert_eq!(rfc3339_nano(t), "2000-02-29T00:00:00.000000001Z");
    }

    #[test]
    fn escaping_like_go() {
        let mut o = Vec::new();
        json_escape(b"a\"b\\c\n\t<x>&\x01\xff\xe2\x80\xa8\xc3\xa9", &mut o);
        assert_eq!(
            String::from_utf8(o).unwrap(),
            "a\\\"b\\\\c\\n\\t\\u003cx\\u003e\\u0026\\u0001\\ufffd\\u2028\u{e9}"
        );
    }

    fn lines(p: &std::path::Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn splits_lines_and_partials() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c-json.log");
        let mut l = JsonLog::open(p.clone(), 0, 1).unwrap();
        l.write(Stream::Stdout, b"one\ntw");
        l.write(Stream::Stderr, b"err\n");
        l.write(Stream::Stdout, b"o\n");
        l.write(Stream::Stdout, &vec![b'x'; MAX_LINE + 10]);
        l.write(Stream::Stdout, b"tail");
        l.finish();
        let v = lines(&p);
        let logs: Vec<&str> = v.iter().map(|x| x["log"].as_str().unwrap()).collect();
        assert_eq!(logs[0], "one\n");
        assert_eq!(logs[1], "err\n");
        assert_eq!(v[1]["stream"], "stderr");
        assert_eq!(logs[2], "two\n");
        assert_eq!(logs[3].len(), MAX_LINE);
        assert_eq!(logs[4], format!("{}tail", "x".repeat(10)));
        assert!(v[0]["time"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn empty_path_logs_nothing() {
        let mut l = JsonLog::open(PathBuf::new(), 0, 1).unwrap();
        l.write(Stream::Stdout, b"dropped\n");
        l.finish();
    }

    #[test]
    fn rotates_like_docker() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c-json.log");
        let mut l = JsonLog::open(p.clone(), 300, 3).unwrap();
        for i in 0..50 {
            l.write(Stream::Stdout, format!("line {i}\n").as_bytes());
        }
        l.finish();
        assert!(p.exists());
        assert!(d.path().join("c-json.log.1").exists());
        assert!(d.path().join("c-json.log.2").exists());
        assert!(!d.path().join("c-json.log.3").exists());
        for f in ["c-json.log", "c-json.log.1", "c-json.log.2"] {
            let len = std::fs::metadata(d.path().join(f)).unwrap().len();
            assert!(len < 300 + 100, "{f} is {len} bytes");
            assert!(!lines(&d.path().join(f)).is_empty());
        }
        let last = lines(&p);
        assert_eq!(last.last().unwrap()["log"], "line 49\n");
    }
}
