//! docker's `GetTimestamp`: the `--since`/`--until` values of `logs` and `events`, as the API
//! query value (`<seconds>[.<nanoseconds>]`).

use berth_cli::format::time::parse_date_time;

use super::values::parse_duration;

/// `value` relative to `now_secs` (a Go duration like `10m` means that long ago), an RFC 3339
/// date or date-time, or a Unix timestamp passed through.
pub fn get_timestamp(value: &str, now_secs: i64) -> Result<String, String> {
    if value != "0"
        && let Ok(d) = parse_duration(value)
    {
        // time.Add then Unix(): floor of the instant in whole seconds.
        let nanos = now_secs as i128 * 1_000_000_000 - d as i128;
        return Ok(nanos.div_euclid(1_000_000_000).to_string());
    }
    if let Some((secs, nanos)) = parse_date_time(value) {
        return Ok(format!("{secs}.{nanos:09}"));
    }
    if value.contains('-') {
        return Err(format!("parsing time {value:?}: cannot parse as RFC 3339"));
    }
    let (s, n) = value.split_once('.').unwrap_or((value, "0"));
    if s.parse::<i64>().is_err() || n.parse::<i64>().is_err() {
        return Err(format!(
            "failed to parse value as time or duration: {value:?}"
        ));
    }
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_absolute_and_unix() {
        let now = 1_700_000_000;
        assert_eq!(get_timestamp("10m", now).unwrap(), "1699999400");
        assert_eq!(get_timestamp("1h30m", now).unwrap(), "1699994600");
        assert_eq!(get_timestamp("1.5s", now).unwrap(), "1699999998");
        assert_eq!(get_timestamp("0", now).unwrap(), "0");
        assert_eq!(get_timestamp("1700000000", now).unwrap(), "1700000000");
        assert_eq!(
            get_timestamp("1700000000.123", now).unwrap(),
            "1700000000.123"
        );
        assert_eq!(
            get_timestamp("2024-05-01T10:00:00Z", now).unwrap(),
            "1714557600.000000000"
        );
        assert_eq!(
            get_timestamp("2024-05-01T10:00:00.25Z", now).unwrap(),
            "1714557600.250000000"
        );
        assert_eq!(
            get_timestamp("yesterday", now).unwrap_err(),
            "failed to parse value as time or duration: \"yesterday\""
        );
        assert!(get_timestamp("2024-99-01", now).is_err());
    }
}
