//! The events of docker's pull/push progress stream, and how docker renders a progress bar.
//!
//! moby's `progress.Message` is a [`Progress::status`]; `progress.Update` (a per-layer action
//! with an empty `progressDetail`) is [`Progress::update`]; byte counts are
//! [`Progress::progress`]; `progress.Aux` is [`Progress::aux`].

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub trait Progress: Sync {
    /// `{"status": text, "id": id}`.
    fn status(&self, id: Option<&str>, text: &str);
    /// `{"status": action, "progressDetail": {}, "id": id}`.
    fn update(&self, id: &str, action: &str);
    /// `{"status": action, "progressDetail": {"current", "total"}, "progress": bar, "id": id}`.
    fn progress(&self, id: &str, action: &str, current: u64, total: u64);
    /// `{"progressDetail": {}, "aux": value}`.
    fn aux(&self, value: serde_json::Value);
}

/// Discards everything (tests, inspect).
pub struct Silent;

impl Progress for Silent {
    fn status(&self, _: Option<&str>, _: &str) {}
    fn update(&self, _: &str, _: &str) {}
    fn progress(&self, _: &str, _: &str, _: u64, _: u64) {}
    fn aux(&self, _: serde_json::Value) {}
}

/// go-units' `HumanSize`: decimal units, four significant digits (`1.049MB`, `512B`).
pub fn human_size(size: f64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut s = size;
    let mut i = 0;
    while s >= 1000.0 && i < UNITS.len() - 1 {
        s /= 1000.0;
        i += 1;
    }
    format!("{}{}", format_g4(s), UNITS[i])
}

/// Go's `%.4g` for the non-negative values sizes take.
fn format_g4(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let exp = v.abs().log10().floor() as i32;
    if !(-4..4).contains(&exp) {
        let s = format!("{:.3e}", v);
        return s;
    }
    let decimals = (3 - exp).max(0) as usize;
    let s = format!("{:.*}", decimals, v);
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    // Rounding may carry into a fifth digit (9999.5 → "10000"); Go then switches to e-notation.
    if s.replace('.', "").trim_start_matches('0').len() > 4 && !s.contains('.') && v >= 1000.0 {
        return format!("{:.3e}", v).replace("e", "e+");
    }
    s
}

/// The `progress` string the daemon sends (jsonmessage's `JSONProgress.String()` at the
/// daemon's width of 200 columns and no start time): `[====>     ]  1.2MB/3.4MB`.
pub fn bar(current: u64, total: u64) -> String {
    if total == 0 {
        if current == 0 {
            return String::new();
        }
        return format!("{:>8}", human_size(current as f64));
    }
    let pct = ((current as f64 / total as f64 * 100.0) as i64 / 2).clamp(0, 50) as usize;
    let bar = format!("[{}>{}] ", "=".repeat(pct), " ".repeat(50 - pct));
    let numbers = if current > total {
        format!("{:>8}", human_size(current as f64))
    } else {
        format!(
            "{:>8}/{}",
            human_size(current as f64),
            human_size(total as f64)
        )
    };
    bar + &numbers
}

/// Counts bytes read through it and reports them every 512 KiB (and at most every 50 ms), as
/// moby's progress reader does, plus once at the end.
pub struct ProgressReader<'a, R> {
    inner: R,
    sink: &'a dyn Progress,
    id: &'a str,
    action: &'a str,
    total: u64,
    current: u64,
    last_bytes: u64,
    last_time: Instant,
}

impl<'a, R> ProgressReader<'a, R> {
    pub fn new(
        inner: R,
        sink: &'a dyn Progress,
        id: &'a str,
        action: &'a str,
        start: u64,
        total: u64,
    ) -> Self {
        ProgressReader {
            inner,
            sink,
            id,
            action,
            total,
            current: start,
            last_bytes: start,
            last_time: Instant::now() - Duration::from_secs(1),
        }
    }

    pub fn current(&self) -> u64 {
        self.current
    }

    pub fn into_inner(self) -> R {
        self.inner
    }

    fn tick(&mut self, force: bool) {
        let due = self.current - self.last_bytes >= 512 * 1024
            && self.last_time.elapsed() >= Duration::from_millis(50);
        if force || due {
            self.sink
                .progress(self.id, self.action, self.current, self.total);
            self.last_bytes = self.current;
            self.last_time = Instant::now();
        }
    }
}

impl<R: std::io::Read> std::io::Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.current += n as u64;
        let end = n == 0 || (self.total > 0 && self.current == self.total);
        if n > 0 || end {
            self.tick(end && self.current != self.last_bytes);
        }
        Ok(n)
    }
}

/// A [`Progress`] that records events (for tests).
#[derive(Default)]
pub struct Recorder(pub Mutex<Vec<String>>);

impl Progress for Recorder {
    fn status(&self, id: Option<&str>, text: &str) {
        let line = match id {
            Some(i) => format!("{i}: {text}"),
            None => text.to_string(),
        };
        self.0.lock().unwrap().push(line);
    }
    fn update(&self, id: &str, action: &str) {
        self.0.lock().unwrap().push(format!("{id}: {action}"));
    }
    fn progress(&self, id: &str, action: &str, _: u64, _: u64) {
        self.0.lock().unwrap().push(format!("{id}: {action} …"));
    }
    fn aux(&self, value: serde_json::Value) {
        self.0.lock().unwrap().push(format!("aux {value}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_go_units() {
        assert_eq!(human_size(0.0), "0B");
        assert_eq!(human_size(512.0), "512B");
        assert_eq!(human_size(1000.0), "1kB");
        assert_eq!(human_size(1_048_576.0), "1.049MB");
        assert_eq!(human_size(41_943_040.0), "41.94MB");
        assert_eq!(human_size(212_000_000.0), "212MB");
        assert_eq!(human_size(2_500_000_000.0), "2.5GB");
    }

    #[test]
    fn bars_like_jsonmessage() {
        assert_eq!(bar(0, 0), "");
        let b = bar(1_048_576, 4_194_304);
        assert!(b.starts_with("[============>"), "{b}");
        assert!(b.ends_with("]  1.049MB/4.194MB"), "{b}");
        assert_eq!(b.find(']'), Some(52));
        assert!(bar(4_194_304, 4_194_304).starts_with(&format!("[{}>]", "=".repeat(50))));
        assert_eq!(bar(10, 0), "     10B");
    }
}
