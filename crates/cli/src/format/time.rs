//! Wall-clock times as docker prints and reads them, in the local time zone: Go's
//! `time.Time.String()`, the events' fixed RFC 3339 form, and the `--since`/`--until` values
//! docker's `GetTimestamp` accepts.

/// Days since 1970-01-01 for a civil date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// The civil date of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The local zone at `secs`: its offset east of UTC in seconds and its abbreviation.
pub fn local_zone(secs: i64) -> (i64, String) {
    let t = secs as libc::time_t;
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: localtime_r writes only into `tm`; both pointers are valid for the call.
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if !ok {
        return (0, "UTC".into());
    }
    let zone = if tm.tm_zone.is_null() {
        "UTC".to_string()
    } else {
        // SAFETY: tm_zone points at a NUL-terminated static string owned by libc.
        unsafe { std::ffi::CStr::from_ptr(tm.tm_zone) }
            .to_string_lossy()
            .into_owned()
    };
    (tm.tm_gmtoff as i64, zone)
}

struct Civil {
    date: (i64, u32, u32),
    h: i64,
    m: i64,
    s: i64,
}

fn civil(secs: i64) -> Civil {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    Civil {
        date: civil_from_days(days),
        h: rem / 3600,
        m: rem % 3600 / 60,
        s: rem % 60,
    }
}

fn offset_text(offset: i64, colon: bool) -> String {
    let sign = if offset < 0 { '-' } else { '+' };
    let a = offset.abs();
    if colon {
        format!("{sign}{:02}:{:02}", a / 3600, a % 3600 / 60)
    } else {
        format!("{sign}{:02}{:02}", a / 3600, a % 3600 / 60)
    }
}

/// Go's `time.Unix(secs, 0).String()` in the local zone: `2024-05-01 10:00:00 +0000 UTC`.
pub fn go_time_string(secs: i64) -> String {
    let (offset, zone) = local_zone(secs);
    let c = civil(secs + offset);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} {} {zone}",
        c.date.0,
        c.date.1,
        c.date.2,
        c.h,
        c.m,
        c.s,
        offset_text(offset, false)
    )
}

/// docker's events time: `2006-01-02T15:04:05.000000000Z07:00` in the local zone.
pub fn rfc3339_nano_fixed(nanos: i64) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    let frac = nanos.rem_euclid(1_000_000_000);
    let (offset, _) = local_zone(secs);
    let c = civil(secs + offset);
    let zone = if offset == 0 {
        "Z".to_string()
    } else {
        offset_text(offset, true)
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{frac:09}{zone}",
        c.date.0, c.date.1, c.date.2, c.h, c.m, c.s
    )
}

/// Go's RFC 3339 with seconds, UTC: `2024-05-01T10:00:00Z`.
pub fn rfc3339_utc(secs: i64) -> String {
    let c = civil(secs);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        c.date.0, c.date.1, c.date.2, c.h, c.m, c.s
    )
}

fn num(s: &str, len: usize) -> Option<i64> {
    (s.len() == len && s.chars().all(|c| c.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// Parses `±hh:mm` or `Z`.
fn parse_zone(z: &str) -> Option<i64> {
    if z == "Z" || z == "z" {
        return Some(0);
    }
    let sign = match z.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (h, m) = z[1..].split_once(':')?;
    Some(sign * (num(h, 2)? * 3600 + num(m, 2)? * 60))
}

/// A timestamp as docker's `GetTimestamp` reads it: an RFC 3339 date or date-time (with or
/// without a zone; none means local), returned as seconds and nanoseconds.
pub fn parse_date_time(value: &str) -> Option<(i64, i64)> {
    let date = value.get(..10)?;
    let (y, rest) = date.split_once('-')?;
    let (mo, d) = rest.split_once('-')?;
    let (y, mo, d) = (num(y, 4)?, num(mo, 2)?, num(d, 2)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let mut rest = &value[10..];
    let (mut h, mut mi, mut s, mut nanos) = (0, 0, 0, 0i64);
    if let Some(t) = rest.strip_prefix('T') {
        let end = t.find(['Z', 'z', '+', '-']).unwrap_or(t.len());
        let clock = &t[..end];
        rest = &t[end..];
        let (clock, frac) = clock.split_once('.').unwrap_or((clock, ""));
        let parts: Vec<&str> = clock.split(':').collect();
        h = num(parts.first()?, 2)?;
        if let Some(p) = parts.get(1) {
            mi = num(p, 2)?;
        }
        if let Some(p) = parts.get(2) {
            s = num(p, 2)?;
        }
        if parts.len() > 3 || h > 23 || mi > 59 || s > 60 {
            return None;
        }
        if !frac.is_empty() {
            if frac.len() > 9 || !frac.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            nanos = format!("{frac:0<9}").parse().ok()?;
        }
    }
    let local = civil_secs(y, mo as u32, d as u32, h, mi, s);
    let offset = if rest.is_empty() {
        local_zone(local).0
    } else {
        parse_zone(rest)?
    };
    Some((local - offset, nanos))
}

fn civil_secs(y: i64, mo: u32, d: u32, h: i64, mi: i64, s: i64) -> i64 {
    days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2024, 2, 29), 19782);
        assert_eq!(civil_from_days(19782), (2024, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn utc_forms() {
        assert_eq!(rfc3339_utc(1714557600), "2024-05-01T10:00:00Z");
        assert_eq!(
            parse_date_time("2024-05-01T10:00:00Z"),
            Some((1714557600, 0))
        );
        assert_eq!(
            parse_date_time("2024-05-01T10:00:00.5+01:00"),
            Some((1714557600 - 3600, 500_000_000))
        );
        assert_eq!(parse_date_time("2024-05-01T10Z"), Some((1714557600, 0)));
        assert_eq!(parse_date_time("2024-13-01"), None);
        assert_eq!(parse_date_time("junk"), None);
    }

    #[test]
    fn local_forms_use_the_local_zone() {
        let (off, zone) = local_zone(1714557600);
        assert!(!zone.is_empty());
        assert_eq!(
            parse_date_time("2024-05-01T10:00:00"),
            Some((1714557600 - off, 0))
        );
        let s = go_time_string(1714557600);
        assert!(s.ends_with(&zone), "{s}");
        if off == 0 {
            assert_eq!(s, format!("2024-05-01 10:00:00 +0000 {zone}"));
            assert_eq!(
                rfc3339_nano_fixed(1_714_557_600_000_000_123),
                "2024-05-01T10:00:00.000000123Z"
            );
        }
    }
}
