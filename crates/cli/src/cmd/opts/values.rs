//! Scalar flag values parsed the way Go's `strconv`, `time.ParseDuration` and docker's `opts`
//! package parse them, with their error wording (which docker prints after
//! `invalid argument "…" for "…" flag:`).

use berth_cli::format::units::ram_in_bytes;

/// `strconv.ParseInt(s, 0, 64)`, as pflag's int flags use it: an optional sign, then decimal,
/// `0x`/`0o`/`0b` or a leading-zero octal literal, with `_` separators allowed after a prefix.
pub fn parse_int(s: &str) -> Result<i64, String> {
    let syntax = || format!("strconv.ParseInt: parsing {s:?}: invalid syntax");
    let range = || format!("strconv.ParseInt: parsing {s:?}: value out of range");
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let magnitude = parse_magnitude(body)
        .ok_or_else(syntax)?
        .ok_or_else(range)?;
    if neg {
        if magnitude > i64::MAX as u64 + 1 {
            return Err(range());
        }
        Ok((magnitude as i64).wrapping_neg())
    } else {
        i64::try_from(magnitude).map_err(|_| range())
    }
}

/// `strconv.ParseUint(s, 0, bits)`.
pub fn parse_uint(s: &str, bits: u32) -> Result<u64, String> {
    let syntax = || format!("strconv.ParseUint: parsing {s:?}: invalid syntax");
    let range = || format!("strconv.ParseUint: parsing {s:?}: value out of range");
    let v = parse_magnitude(s).ok_or_else(syntax)?.ok_or_else(range)?;
    if bits < 64 && v >= 1u64 << bits {
        return Err(range());
    }
    Ok(v)
}

/// Digits with Go's base prefixes: `None` for bad syntax, `Some(None)` for overflow.
fn parse_magnitude(s: &str) -> Option<Option<u64>> {
    let lower = s.to_ascii_lowercase();
    let (radix, digits, prefixed) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d, true)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d, true)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d, true)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..], true)
    } else {
        (10, lower.as_str(), false)
    };
    if digits.is_empty() || (!prefixed && digits.contains('_')) {
        return None;
    }
    if digits.ends_with('_') || digits.contains("__") {
        return None;
    }
    let mut v: u64 = 0;
    let mut overflow = false;
    for c in digits.chars() {
        if c == '_' {
            continue;
        }
        let d = c.to_digit(radix)? as u64;
        match v.checked_mul(radix as u64).and_then(|x| x.checked_add(d)) {
            Some(n) => v = n,
            None => overflow = true,
        }
    }
    Some(if overflow { None } else { Some(v) })
}

/// `strconv.ParseBool`.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("strconv.ParseBool: parsing {s:?}: invalid syntax")),
    }
}

/// `time.ParseDuration`, in nanoseconds: `300ms`, `1.5h`, `2h45m`, `-1s`, `0`.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {:?}", s);
    let mut rest = s;
    let neg = match rest.as_bytes().first() {
        Some(b'-') => {
            rest = &rest[1..];
            true
        }
        Some(b'+') => {
            rest = &rest[1..];
            false
        }
        _ => false,
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_end];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(invalid());
        }
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = &rest[unit_end..];
        let scale: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("time: missing unit in duration {s:?}")),
            other => return Err(format!("time: unknown unit {other:?} in duration {s:?}")),
        };
        let value: f64 = num.parse().map_err(|_| invalid())?;
        total += value * scale;
    }
    if total > i64::MAX as f64 {
        return Err(invalid());
    }
    let nanos = total.round() as i64;
    Ok(if neg { -nanos } else { nanos })
}

/// docker's `opts.ParseCPUs`: a decimal number of CPUs as nano-CPUs (`1.5` → 1500000000).
pub fn parse_cpus(s: &str) -> Result<i64, String> {
    let bad = || format!("failed to parse {s} as a rational number");
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    // big.Rat also accepts "a/b"; handle it exactly.
    if let Some((n, d)) = body.split_once('/') {
        let n: i128 = n.parse().map_err(|_| bad())?;
        let d: i128 = d.parse().map_err(|_| bad())?;
        if d == 0 {
            return Err(bad());
        }
        let scaled = n * 1_000_000_000;
        if scaled % d != 0 {
            return Err("value is too precise".into());
        }
        let v = (scaled / d) as i64;
        return Ok(if neg { -v } else { v });
    }
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
    {
        return Err(bad());
    }
    let frac_trimmed = frac.trim_end_matches('0');
    if frac_trimmed.len() > 9 {
        return Err("value is too precise".into());
    }
    let int_v: i128 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| bad())?
    };
    let frac_v: i128 = if frac_trimmed.is_empty() {
        0
    } else {
        frac_trimmed.parse::<i128>().map_err(|_| bad())? * 10i128.pow(9 - frac_trimmed.len() as u32)
    };
    let v = (int_v * 1_000_000_000 + frac_v) as i64;
    Ok(if neg { -v } else { v })
}

/// docker's `opts.MemBytes`: `units.RAMInBytes`.
pub fn parse_mem(s: &str) -> Result<i64, String> {
    ram_in_bytes(s).map_err(|e| e.to_string())
}

/// docker's `opts.MemSwapBytes`: like [`parse_mem`], and `-1` for unlimited.
pub fn parse_mem_swap(s: &str) -> Result<i64, String> {
    if s == "-1" {
        return Ok(-1);
    }
    parse_mem(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_like_strconv() {
        assert_eq!(parse_int("42"), Ok(42));
        assert_eq!(parse_int("-1"), Ok(-1));
        assert_eq!(parse_int("+7"), Ok(7));
        assert_eq!(parse_int("0x10"), Ok(16));
        assert_eq!(parse_int("010"), Ok(8));
        assert_eq!(parse_int("0b101"), Ok(5));
        assert_eq!(parse_int("0"), Ok(0));
        assert_eq!(parse_int("-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(
            parse_int("abc").unwrap_err(),
            "strconv.ParseInt: parsing \"abc\": invalid syntax"
        );
        assert_eq!(
            parse_int("9223372036854775808").unwrap_err(),
            "strconv.ParseInt: parsing \"9223372036854775808\": value out of range"
        );
        assert!(parse_int("").is_err());
        assert!(parse_int("1_000").is_err());
        assert_eq!(parse_uint("1000", 16), Ok(1000));
        assert_eq!(
            parse_uint("70000", 16).unwrap_err(),
            "strconv.ParseUint: parsing \"70000\": value out of range"
        );
        assert!(parse_uint("-1", 16).is_err());
    }

    #[test]
    fn bools_like_strconv() {
        assert_eq!(parse_bool("true"), Ok(true));
        assert_eq!(parse_bool("0"), Ok(false));
        assert_eq!(parse_bool("F"), Ok(false));
        assert_eq!(
            parse_bool("yes").unwrap_err(),
            "strconv.ParseBool: parsing \"yes\": invalid syntax"
        );
    }

    #[test]
    fn durations_like_go() {
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration("30s"), Ok(30_000_000_000));
        assert_eq!(parse_duration("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_duration("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(parse_duration("300ms"), Ok(300_000_000));
        assert_eq!(parse_duration("-2s"), Ok(-2_000_000_000));
        assert_eq!(parse_duration("10us"), Ok(10_000));
        assert_eq!(
            parse_duration("10").unwrap_err(),
            "time: missing unit in duration \"10\""
        );
        assert_eq!(
            parse_duration("3x").unwrap_err(),
            "time: unknown unit \"x\" in duration \"3x\""
        );
        assert_eq!(
            parse_duration("abc").unwrap_err(),
            "time: invalid duration \"abc\""
        );
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn cpus_as_nano_cpus() {
        assert_eq!(parse_cpus("1.5"), Ok(1_500_000_000));
        assert_eq!(parse_cpus("2"), Ok(2_000_000_000));
        assert_eq!(parse_cpus(".5"), Ok(500_000_000));
        assert_eq!(parse_cpus("0.000000001"), Ok(1));
        assert_eq!(parse_cpus("1/4"), Ok(250_000_000));
        assert_eq!(
            parse_cpus("0.0000000001").unwrap_err(),
            "value is too precise"
        );
        assert_eq!(
            parse_cpus("abc").unwrap_err(),
            "failed to parse abc as a rational number"
        );
    }

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_mem("64m"), Ok(64 * 1024 * 1024));
        assert_eq!(parse_mem("1g"), Ok(1 << 30));
        assert_eq!(parse_mem("abc").unwrap_err(), "invalid size: 'abc'");
        assert_eq!(parse_mem_swap("-1"), Ok(-1));
        assert_eq!(parse_mem_swap("2g"), Ok(2 << 30));
    }
}
