//! Human-readable sizes and durations exactly as github.com/docker/go-units prints and parses
//! them (`4.26MB`, `1.5GiB`, `About a minute`, `64m`).

use std::time::{Duration, SystemTime};

use super::gofmt::format_float;

const DECIMAL_UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
const BINARY_UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];

/// Divides by `base` until below it (or out of units), like go-units' getSizeAndUnit.
fn size_and_unit(mut size: f64, base: f64, units: &[&'static str]) -> (f64, &'static str) {
    let mut i = 0;
    while size >= base && i < units.len() - 1 {
        size /= base;
        i += 1;
    }
    (size, units[i])
}

/// `units.HumanSizeWithPrecision(size, precision)`: decimal units, `%.*g` digits.
pub fn human_size_with_precision(size: f64, precision: usize) -> String {
    let (size, unit) = size_and_unit(size, 1000.0, &DECIMAL_UNITS);
    format!("{}{unit}", format_float(size, 'g', Some(precision)))
}

/// What `docker images` and `docker ps` show in SIZE columns:
/// `HumanSizeWithPrecision(size, 3)`, e.g. `4.26MB`, `1.2kB`, `0B`, `212MB`.
pub fn human_size(size: f64) -> String {
    human_size_with_precision(size, 3)
}

/// go-units' own `HumanSize` (4 significant digits), used by docker where it calls
/// `units.HumanSize` (e.g. `system df`, shared/unique sizes).
pub fn human_size_4(size: f64) -> String {
    human_size_with_precision(size, 4)
}

/// `units.BytesSize`: binary units with 4 significant digits, e.g. `1.5GiB`, `64MiB`.
pub fn bytes_size(size: f64) -> String {
    let (size, unit) = size_and_unit(size, 1024.0, &BINARY_UNITS);
    format!("{}{unit}", format_float(size, 'g', Some(4)))
}

/// `units.HumanDuration`: "Less than a second", "1 second", "About a minute", "2 hours",
/// "3 weeks", "2 years"…
pub fn human_duration(d: Duration) -> String {
    let seconds = d.as_secs_f64();
    let whole_seconds = seconds as u64;
    if whole_seconds < 1 {
        return "Less than a second".into();
    }
    if whole_seconds == 1 {
        return "1 second".into();
    }
    if whole_seconds < 60 {
        return format!("{whole_seconds} seconds");
    }
    let minutes = (seconds / 60.0) as u64;
    if minutes == 1 {
        return "About a minute".into();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    // Hours round to nearest from here on, as go-units does.
    let hours = (seconds / 3600.0 + 0.5) as u64;
    if hours == 1 {
        return "About an hour".into();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", (seconds / 3600.0) as u64 / 24 / 365)
}

/// docker's "CreatedSince" text: `HumanDuration(now - then) + " ago"`; a time in the future
/// counts as "Less than a second".
pub fn human_duration_since(then: SystemTime, now: SystemTime) -> String {
    let d = now.duration_since(then).unwrap_or_default();
    format!("{} ago", human_duration(d))
}

/// Why a size string did not parse; messages are go-units'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SizeError {
    /// `invalid size: '…'`
    Invalid(String),
    /// The number part matched the pattern but is not a float (`1.2.3`).
    Syntax(String),
}

impl std::fmt::Display for SizeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SizeError::Invalid(s) => write!(f, "invalid size: '{s}'"),
            SizeError::Syntax(n) => {
                write!(f, "strconv.ParseFloat: parsing \"{n}\": invalid syntax")
            }
        }
    }
}

impl std::error::Error for SizeError {}

/// `units.RAMInBytes`: `64m`, `1.5g`, `1k`, `512` (binary multiples, case-insensitive,
/// optional `i` and `b`).
pub fn ram_in_bytes(s: &str) -> Result<i64, SizeError> {
    parse_size(s, 1024)
}

/// `units.FromHumanSize`: like [`ram_in_bytes`] with decimal multiples (`1k` = 1000).
pub fn from_human_size(s: &str) -> Result<i64, SizeError> {
    parse_size(s, 1000)
}

/// Matches go-units' `(?i)^(\d+(\.\d+)*) ?([kmgtp])?i?b?$` by hand.
fn parse_size(s: &str, base: i64) -> Result<i64, SizeError> {
    let invalid = || SizeError::Invalid(s.to_owned());
    let b = s.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > start
    };
    if !digits(&mut i) {
        return Err(invalid());
    }
    while i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit() {
        i += 1;
        digits(&mut i);
    }
    let number = &s[..i];
    if b.get(i) == Some(&b' ') {
        i += 1;
    }
    let exponent = match b.get(i).map(u8::to_ascii_lowercase) {
        Some(c @ (b'k' | b'm' | b'g' | b't' | b'p')) => {
            i += 1;
            b"kmgtp".iter().position(|&u| u == c).unwrap_or(0) as u32 + 1
        }
        _ => 0,
    };
    if b.get(i).map(u8::to_ascii_lowercase) == Some(b'i') {
        i += 1;
    }
    if b.get(i).map(u8::to_ascii_lowercase) == Some(b'b') {
        i += 1;
    }
    if i != b.len() {
        return Err(invalid());
    }
    let value: f64 = number
        .parse()
        .map_err(|_| SizeError::Syntax(number.to_owned()))?;
    Ok((value * base.pow(exponent) as f64) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KB: f64 = 1000.0;
    const MB: f64 = KB * 1000.0;
    const GB: f64 = MB * 1000.0;
    const TB: f64 = GB * 1000.0;
    const PB: f64 = TB * 1000.0;
    const KIB: f64 = 1024.0;
    const MIB: f64 = KIB * 1024.0;
    const GIB: f64 = MIB * 1024.0;
    const TIB: f64 = GIB * 1024.0;
    const PIB: f64 = TIB * 1024.0;

    #[test]
    fn human_size_like_go_units() {
        assert_eq!(human_size_4(1000.0), "1kB");
        assert_eq!(human_size_4(1024.0), "1.024kB");
        assert_eq!(human_size_4(1000000.0), "1MB");
        assert_eq!(human_size_4(1048576.0), "1.049MB");
        assert_eq!(human_size_4(2.0 * MB), "2MB");
        assert_eq!(human_size_4(3.42 * GB), "3.42GB");
        assert_eq!(human_size_4(5.372 * TB), "5.372TB");
        assert_eq!(human_size_4(2.22 * PB), "2.22PB");
        assert_eq!(human_size_4(10000000000000.0 * PB), "1e+04YB");
    }

    #[test]
    fn docker_images_sizes() {
        assert_eq!(human_size(0.0), "0B");
        assert_eq!(human_size(1200.0), "1.2kB");
        assert_eq!(human_size(4_264_000.0), "4.26MB");
        assert_eq!(human_size(4_261_327.0), "4.26MB");
        assert_eq!(human_size(212_000_000.0), "212MB");
        assert_eq!(human_size(211_734_567.0), "212MB");
        assert_eq!(human_size(999.0), "999B");
        assert_eq!(human_size(999_999.0), "1e+03kB");
        assert_eq!(human_size(7_797_000.0), "7.8MB");
        assert_eq!(human_size(1.5 * GB), "1.5GB");
    }

    #[test]
    fn bytes_size_like_go_units() {
        assert_eq!(bytes_size(1024.0), "1KiB");
        assert_eq!(bytes_size(1024.0 * 1024.0), "1MiB");
        assert_eq!(bytes_size(2.0 * MIB), "2MiB");
        assert_eq!(bytes_size(3.42 * GIB), "3.42GiB");
        assert_eq!(bytes_size(5.372 * TIB), "5.372TiB");
        assert_eq!(bytes_size(2.22 * PIB), "2.22PiB");
        assert_eq!(bytes_size(1.5 * GIB), "1.5GiB");
        assert_eq!(
            bytes_size(KIB * KIB * KIB * KIB * KIB * PIB),
            "1.049e+06YiB"
        );
        assert_eq!(bytes_size(0.0), "0B");
    }

    #[test]
    fn human_duration_like_go_units() {
        let s = Duration::from_secs;
        let m = |n: u64| s(n * 60);
        let h = |n: u64| m(n * 60);
        let day = |n: u64| h(n * 24);
        let week = |n: u64| day(n * 7);
        let month = |n: u64| day(n * 30);
        let year = |n: u64| day(n * 365);
        let cases = [
            (Duration::from_millis(450), "Less than a second"),
            (s(1), "1 second"),
            (s(45), "45 seconds"),
            (s(46), "46 seconds"),
            (s(59), "59 seconds"),
            (s(60), "About a minute"),
            (m(1), "About a minute"),
            (m(3), "3 minutes"),
            (m(35), "35 minutes"),
            (m(35) + s(40), "35 minutes"),
            (m(45), "45 minutes"),
            (m(45) + s(40), "45 minutes"),
            (m(46), "46 minutes"),
            (m(59), "59 minutes"),
            (h(1), "About an hour"),
            (h(1) + m(29), "About an hour"),
            (h(1) + m(31), "2 hours"),
            (h(1) + m(59), "2 hours"),
            (h(3), "3 hours"),
            (h(3) + m(29), "3 hours"),
            (h(3) + m(31), "4 hours"),
            (h(3) + m(59), "4 hours"),
            (h(3) + m(60), "4 hours"),
            (h(24), "24 hours"),
            (day(1) + h(12), "36 hours"),
            (day(2), "2 days"),
            (day(7), "7 days"),
            (day(13) + h(5), "13 days"),
            (week(2), "2 weeks"),
            (week(2) + day(4), "2 weeks"),
            (week(3), "3 weeks"),
            (week(4), "4 weeks"),
            (week(4) + day(3), "4 weeks"),
            (month(1), "4 weeks"),
            (month(1) + week(2), "6 weeks"),
            (month(2), "2 months"),
            (month(2) + week(2), "2 months"),
            (month(3), "3 months"),
            (month(3) + week(1), "3 months"),
            (month(5) + week(2), "5 months"),
            (month(13), "13 months"),
            (month(23), "23 months"),
            (month(24), "24 months"),
            (month(24) + week(2), "2 years"),
            (year(3) + month(2), "3 years"),
        ];
        for (d, want) in cases {
            assert_eq!(human_duration(d), want, "{d:?}");
        }
        let now = SystemTime::UNIX_EPOCH + year(50);
        assert_eq!(human_duration_since(now - h(2), now), "2 hours ago");
        assert_eq!(
            human_duration_since(now + s(5), now),
            "Less than a second ago"
        );
    }

    #[test]
    fn parse_sizes_like_go_units() {
        let ok = [
            ("32", 32.0, 32.0),
            ("32b", 32.0, 32.0),
            ("32B", 32.0, 32.0),
            ("32k", 32.0 * KB, 32.0 * KIB),
            ("32K", 32.0 * KB, 32.0 * KIB),
            ("32kb", 32.0 * KB, 32.0 * KIB),
            ("32Kb", 32.0 * KB, 32.0 * KIB),
            ("32Kib", 32.0 * KB, 32.0 * KIB),
            ("32KIB", 32.0 * KB, 32.0 * KIB),
            ("32Mb", 32.0 * MB, 32.0 * MIB),
            ("32Gb", 32.0 * GB, 32.0 * GIB),
            ("32Tb", 32.0 * TB, 32.0 * TIB),
            ("32Pb", 32.0 * PB, 32.0 * PIB),
            ("32PB", 32.0 * PB, 32.0 * PIB),
            ("32P", 32.0 * PB, 32.0 * PIB),
            ("32.5kB", 32.5 * KB, 32.5 * KIB),
            ("32.5 kB", 32.5 * KB, 32.5 * KIB),
            ("32.5 B", 32.0, 32.0),
            ("0.3 K", 300.0, 0.3 * KIB),
            ("32.3", 32.0, 32.0),
            ("32.3 mb", 32.3 * MB, 32.3 * MIB),
            ("0.3MB", 0.3 * MB, 0.3 * MIB),
            ("64m", 64.0 * MB, 64.0 * MIB),
            ("1.5g", 1.5 * GB, 1.5 * GIB),
            ("1k", KB, KIB),
        ];
        for (input, decimal, binary) in ok {
            assert_eq!(
                from_human_size(input),
                Ok(decimal as i64),
                "FromHumanSize({input})"
            );
            assert_eq!(
                ram_in_bytes(input),
                Ok(binary as i64),
                "RAMInBytes({input})"
            );
        }
        for bad in [
            "", "hello", "-32", ".3kB", " 32 ", "32m b", "32bm", "32.", "1e3",
        ] {
            assert_eq!(
                ram_in_bytes(bad),
                Err(SizeError::Invalid(bad.into())),
                "{bad:?}"
            );
            assert!(from_human_size(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            ram_in_bytes("12x").unwrap_err().to_string(),
            "invalid size: '12x'"
        );
        assert_eq!(
            ram_in_bytes("1.2.3m").unwrap_err().to_string(),
            "strconv.ParseFloat: parsing \"1.2.3\": invalid syntax"
        );
    }
}
