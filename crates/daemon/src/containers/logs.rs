//! Reading docker's json-file logs (written by the shim): `docker logs` with since, until,
//! tail, timestamps and follow, across rotated files.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

#[derive(Deserialize)]
struct Line {
    log: String,
    stream: String,
    time: String,
}

/// One log record.
pub struct Entry {
    pub stdout: bool,
    pub data: Vec<u8>,
    pub time: String,
    pub time_ns: i64,
}

fn parse(line: &str) -> Option<Entry> {
    let l: Line = serde_json::from_str(line).ok()?;
    Some(Entry {
        stdout: l.stream != "stderr",
        time_ns: berth_image::store::unix_nanos(Some(&l.time)),
        data: l.log.into_bytes(),
        time: l.time,
    })
}

#[derive(Clone, Debug, Default)]
pub struct Options {
    pub stdout: bool,
    pub stderr: bool,
    pub since_ns: Option<i64>,
    pub until_ns: Option<i64>,
    /// Only the last N records (None = all).
    pub tail: Option<usize>,
    pub timestamps: bool,
    pub follow: bool,
    /// Raw output (a TTY container) instead of docker's multiplexed frames.
    pub raw: bool,
}

/// The rotated files oldest first, then the live one.
fn files(log: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for n in (1..100).rev() {
        let p = PathBuf::from(format!("{}.{n}", log.display()));
        if p.exists() {
            out.push(p);
        }
    }
    out.push(log.to_path_buf());
    out
}

fn emit(out: &mut impl Write, e: &Entry, o: &Options) -> std::io::Result<()> {
    if (e.stdout && !o.stdout) || (!e.stdout && !o.stderr) {
        return Ok(());
    }
    let mut payload = Vec::with_capacity(e.data.len() + 40);
    if o.timestamps {
        payload.extend_from_slice(e.time.as_bytes());
        payload.push(b' ');
    }
    payload.extend_from_slice(&e.data);
    if !o.raw {
        let mut head = [0u8; 8];
        head[0] = if e.stdout { 1 } else { 2 };
        head[4..].copy_from_slice(&(payload.len() as u32).to_be_bytes());
        out.write_all(&head)?;
    }
    out.write_all(&payload)
}

fn wanted(e: &Entry, o: &Options) -> bool {
    o.since_ns.is_none_or(|s| e.time_ns >= s) && o.until_ns.is_none_or(|u| e.time_ns <= u)
}

/// Writes the log to `out`; with `follow`, keeps reading the live file until `running()`
/// turns false and everything written is sent. Blocking.
pub fn copy(
    log: &Path,
    o: &Options,
    out: &mut impl Write,
    running: impl Fn() -> bool,
) -> std::io::Result<()> {
    // What is there now.
    let mut entries: Vec<Entry> = Vec::new();
    let mut live_pos = 0u64;
    let mut live_ino = 0u64;
    for f in files(log) {
        let Ok(file) = File::open(&f) else { continue };
        let is_live = f == log;
        if is_live {
            live_ino = file.metadata().map(|m| m.ino()).unwrap_or(0);
        }
        let mut r = BufReader::with_capacity(64 * 1024, file);
        let mut line = String::new();
        loop {
            line.clear();
            let n = r.read_line(&mut line)?;
            if n == 0 || !line.ends_with('\n') {
                break;
            }
            if is_live {
                live_pos += n as u64;
            }
            if let Some(e) = parse(&line)
                && wanted(&e, o)
            {
                entries.push(e);
            }
        }
    }
    let skip = match o.tail {
        Some(n) => entries.len().saturating_sub(n),
        None => 0,
    };
    for e in &entries[skip..] {
        emit(out, e, o)?;
    }
    out.flush()?;
    if !o.follow {
        return Ok(());
    }
    follow(log, o, out, running, live_pos, live_ino)
}

fn follow(
    log: &Path,
    o: &Options,
    out: &mut impl Write,
    running: impl Fn() -> bool,
    mut pos: u64,
    mut ino: u64,
) -> std::io::Result<()> {
    let mut pending = String::new();
    loop {
        let alive = running();
        // A rotation replaced the file: finish nothing more from the old one, start the new.
        let meta = std::fs::metadata(log).ok();
        if let Some(m) = &meta
            && (m.ino() != ino || m.len() < pos)
        {
            ino = m.ino();
            pos = 0;
            pending.clear();
        }
        if let Ok(mut f) = File::open(log) {
            f.seek(SeekFrom::Start(pos))?;
            let mut buf = String::new();
            let n = f.read_to_string(&mut buf)?;
            pos += n as u64;
            pending.push_str(&buf);
            while let Some(i) = pending.find('\n') {
                let line: String = pending.drain(..=i).collect();
                if let Some(e) = parse(&line) {
                    if o.until_ns.is_some_and(|u| e.time_ns > u) {
                        return Ok(());
                    }
                    if wanted(&e, o) {
                        emit(out, &e, o)?;
                    }
                }
            }
            if n > 0 {
                out.flush()?;
            }
        }
        if !alive {
            return Ok(());
        }
        if let Some(u) = o.until_ns {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as i64)
                .unwrap_or(0);
            if now > u {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rotated_files_in_order_with_tail_and_frames() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("c-json.log");
        let line = |s: &str, t: &str| {
            format!("{{\"log\":\"{s}\\n\",\"stream\":\"stdout\",\"time\":\"{t}\"}}\n")
        };
        std::fs::write(
            format!("{}.1", log.display()),
            line("one", "2024-01-01T00:00:01Z"),
        )
        .unwrap();
        std::fs::write(
            &log,
            line("two", "2024-01-01T00:00:02Z") + &line("three", "2024-01-01T00:00:03Z"),
        )
        .unwrap();
        let o = Options {
            stdout: true,
            stderr: true,
            raw: true,
            ..Default::default()
        };
        let mut out = Vec::new();
        copy(&log, &o, &mut out, || false).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "one\ntwo\nthree\n");
        let mut out = Vec::new();
        copy(
            &log,
            &Options {
                tail: Some(1),
                ..o.clone()
            },
            &mut out,
            || false,
        )
        .unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "three\n");
        let mut out = Vec::new();
        copy(
            &log,
            &Options {
                raw: false,
                tail: Some(1),
                ..o.clone()
            },
            &mut out,
            || false,
        )
        .unwrap();
        assert_eq!(&out[..8], &[1, 0, 0, 0, 0, 0, 0, 6]);
        let since = berth_image::store::unix_nanos(Some("2024-01-01T00:00:02Z"));
        let mut out = Vec::new();
        copy(
            &log,
            &Options {
                since_ns: Some(since),
                timestamps: true,
                ..o
            },
            &mut out,
            || false,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2024-01-01T00:00:02Z two\n2024-01-01T00:00:03Z three\n"
        );
    }
}
