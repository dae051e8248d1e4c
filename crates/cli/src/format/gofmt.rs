//! Go's output conventions for template values: `fmt`'s `%v` and `Sprintf`, `strconv`'s float
//! and quote formatting, and `encoding/json`'s encoding. Templates must print exactly what the
//! docker CLI (a Go program) prints, so these follow Go rather than Rust.

use std::collections::HashMap;
use std::fmt::Write as _;

use gtmpl_value::Value;

// ---- floats ------------------------------------------------------------------------------

/// Decimal digits of `x.abs()` (no trailing zeros) and the decimal point position, rounded
/// to `sig` significant digits or, when `None`, the shortest digits that round-trip.
fn decimal_digits(x: f64, sig: Option<usize>) -> (Vec<u8>, i32) {
    if x == 0.0 {
        return (Vec::new(), 0);
    }
    let s = match sig {
        Some(p) => format!("{:.*e}", p.max(1) - 1, x.abs()),
        None => format!("{:e}", x.abs()),
    };
    let (mantissa, exp) = s.split_once('e').expect("exponent form");
    let exp: i32 = exp.parse().expect("exponent");
    let mut digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    while digits.len() > 1 && digits.last() == Some(&b'0') {
        digits.pop();
    }
    (digits, exp + 1)
}

fn push_e(out: &mut String, digits: &[u8], dp: i32, decimals: usize, upper: bool) {
    out.push(digits.first().map_or('0', |&d| d as char));
    if decimals > 0 {
        out.push('.');
        for i in 1..=decimals {
            out.push(digits.get(i).map_or('0', |&d| d as char));
        }
    }
    out.push(if upper { 'E' } else { 'e' });
    let exp = if digits.is_empty() { 0 } else { dp - 1 };
    out.push(if exp < 0 { '-' } else { '+' });
    let _ = write!(out, "{:02}", exp.unsigned_abs());
}

fn push_f(out: &mut String, digits: &[u8], dp: i32, decimals: usize) {
    let digit = |i: i32| -> char {
        if i >= 0 && (i as usize) < digits.len() {
            digits[i as usize] as char
        } else {
            '0'
        }
    };
    if dp > 0 {
        (0..dp).for_each(|i| out.push(digit(i)));
    } else {
        out.push('0');
    }
    if decimals > 0 {
        out.push('.');
        (0..decimals as i32).for_each(|i| out.push(digit(dp + i)));
    }
}

/// `strconv.FormatFloat(x, fmt, prec, 64)` for `fmt` in `e E f g G`; `prec` `None` is Go's -1
/// (shortest representation).
pub fn format_float(x: f64, fmt: char, prec: Option<usize>) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let mut out = String::new();
    if x.is_sign_negative() {
        out.push('-');
    }
    match fmt {
        'f' | 'F' => match prec {
            Some(p) => {
                let s = format!("{:.*}", p, x.abs());
                out.push_str(&s);
            }
            None => {
                let (digits, dp) = decimal_digits(x, None);
                let decimals = (digits.len() as i32 - dp).max(0) as usize;
                push_f(&mut out, &digits, dp, decimals);
            }
        },
        'e' | 'E' => {
            let (digits, dp) = decimal_digits(x, prec.map(|p| p + 1));
            let decimals = prec.unwrap_or(digits.len().saturating_sub(1));
            push_e(&mut out, &digits, dp, decimals, fmt == 'E');
        }
        _ => {
            // %g: %e for large or small exponents, %f otherwise, without trailing zeros.
            let p = prec.map(|p| p.max(1));
            let (digits, dp) = decimal_digits(x, p);
            let nd = digits.len() as i32;
            let mut eprec = match p {
                Some(p) => p as i32,
                None => 6,
            };
            if p.is_some() && eprec > nd && nd >= dp {
                eprec = nd;
            }
            let exp = dp - 1;
            if !digits.is_empty() && (exp < -4 || exp >= eprec) {
                let shown = p.map_or(nd, |p| (p as i32).min(nd));
                push_e(
                    &mut out,
                    &digits,
                    dp,
                    (shown - 1).max(0) as usize,
                    fmt == 'G',
                );
            } else {
                let shown = match p {
                    Some(p) if (p as i32) <= dp => p as i32,
                    _ => nd,
                };
                push_f(&mut out, &digits, dp, (shown - dp).max(0) as usize);
            }
        }
    }
    out
}

// ---- %v ----------------------------------------------------------------------------------

/// Go's `%v` of a value decoded from JSON (`map[k:v]` with sorted keys, `[a b]`, `<nil>`).
pub fn format_v(value: &Value) -> String {
    let mut out = String::new();
    push_v(&mut out, value);
    out
}

fn push_v(out: &mut String, value: &Value) {
    match value {
        Value::NoValue => out.push_str("<no value>"),
        Value::Nil => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::String(s) => out.push_str(s),
        Value::Number(n) => out.push_str(&format_number(n)),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                push_v(out, item);
            }
            out.push(']');
        }
        Value::Object(map) | Value::Map(map) => {
            out.push_str("map[");
            for (i, (k, v)) in sorted(map).into_iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                push_v(out, v);
            }
            out.push(']');
        }
        Value::Function(_) => out.push_str("<func>"),
    }
}

fn format_number(n: &gtmpl_value::Number) -> String {
    if let Some(u) = n.as_u64() {
        u.to_string()
    } else if let Some(i) = n.as_i64() {
        i.to_string()
    } else {
        format_float(n.as_f64().unwrap_or(f64::NAN), 'g', None)
    }
}

/// Map entries in Go's iteration order for printing and encoding: sorted by key.
pub fn sorted(map: &HashMap<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}

/// The value as Go's `text/template` prints an action's result.
pub fn print_value(value: &Value) -> String {
    format_v(value)
}

// ---- JSON --------------------------------------------------------------------------------

/// `encoding/json` output: compact, map keys sorted, `<`, `>`, `&` escaped only when
/// `escape_html` (json.Marshal does, docker's `json` template function does not).
pub fn to_json(value: &Value, escape_html: bool) -> Result<String, String> {
    let mut out = String::new();
    push_json(&mut out, value, escape_html)?;
    Ok(out)
}

fn push_json(out: &mut String, value: &Value, escape_html: bool) -> Result<(), String> {
    match value {
        Value::NoValue | Value::Nil => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::String(s) => push_json_string(out, s, escape_html),
        Value::Number(n) => {
            if n.as_u64().is_some() || n.as_i64().is_some() {
                out.push_str(&format_number(n));
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if !f.is_finite() {
                    return Err(format!(
                        "json: unsupported value: {}",
                        format_float(f, 'g', None)
                    ));
                }
                out.push_str(&json_float(f));
            }
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json(out, item, escape_html)?;
            }
            out.push(']');
        }
        Value::Object(map) | Value::Map(map) => {
            out.push('{');
            for (i, (k, v)) in sorted(map).into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json_string(out, k, escape_html);
                out.push(':');
                push_json(out, v, escape_html)?;
            }
            out.push('}');
        }
        Value::Function(_) => return Err("json: unsupported type: func".into()),
    }
    Ok(())
}

/// encoding/json's float format: shortest digits, exponent form outside [1e-6, 1e21).
fn json_float(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = format_float(f, 'e', None);
        // Go writes e-07 as e-7.
        match s.find("e-0") {
            Some(i) if s.len() == i + 4 => format!("{}e-{}", &s[..i], &s[i + 3..]),
            _ => s,
        }
    } else {
        format_float(f, 'f', None)
    }
}

fn push_json_string(out: &mut String, s: &str, escape_html: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' if escape_html => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

// ---- strconv.Quote -----------------------------------------------------------------------

/// Approximates Go's `unicode.IsPrint`.
fn is_print(c: char) -> bool {
    c == ' '
        || !(c.is_control()
            || c.is_whitespace()
            || matches!(c, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{2060}'..='\u{206f}' | '\u{feff}'))
}

/// `strconv.Quote`.
pub fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if is_print(c) => out.push(c),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

fn quote_char(c: char) -> String {
    match c {
        '\'' => "'\\''".into(),
        '"' => "'\"'".into(),
        c => {
            let q = quote(c.encode_utf8(&mut [0; 4]));
            format!("'{}'", &q[1..q.len() - 1])
        }
    }
}

// ---- Sprintf -----------------------------------------------------------------------------

#[derive(Default, Clone, Copy)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    zero: bool,
    space: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

impl Spec {
    /// Pads to the width; `numeric` zero padding goes after a leading sign.
    fn pad(&self, s: String, numeric: bool) -> String {
        let len = s.chars().count();
        let Some(width) = self.width.filter(|&w| w > len) else {
            return s;
        };
        let fill = width - len;
        if self.minus {
            return s + &" ".repeat(fill);
        }
        if self.zero {
            if numeric && (s.starts_with('-') || s.starts_with('+') || s.starts_with(' ')) {
                let (sign, rest) = s.split_at(1);
                return format!("{sign}{}{rest}", "0".repeat(fill));
            }
            return "0".repeat(fill) + &s;
        }
        " ".repeat(fill) + &s
    }
}

/// Go's name for the dynamic type of a JSON-decoded value, as `%!d(int=5)` shows it.
fn go_type(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "string",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.as_f64().is_some() => "float64",
        Value::Number(_) => "int",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) | Value::Map(_) => "map[string]interface {}",
        Value::Function(_) => "func",
        Value::Nil | Value::NoValue => "<nil>",
    }
}

fn bad_verb(verb: char, value: &Value) -> String {
    match value {
        Value::Nil | Value::NoValue => format!("%!{verb}(<nil>)"),
        v => format!("%!{verb}({}={})", go_type(v), format_v(v)),
    }
}

fn as_int(value: &Value) -> Option<i128> {
    match value {
        Value::Number(n) => n
            .as_u64()
            .map(i128::from)
            .or_else(|| n.as_i64().map(i128::from)),
        _ => None,
    }
}

fn as_float(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64().or_else(|| as_int(value).map(|i| i as f64)),
        _ => None,
    }
}

fn fmt_integer(i: i128, verb: char, spec: &Spec) -> String {
    let digits = match verb {
        'x' => format!("{:x}", i.unsigned_abs()),
        'X' => format!("{:X}", i.unsigned_abs()),
        'o' | 'O' => format!("{:o}", i.unsigned_abs()),
        'b' => format!("{:b}", i.unsigned_abs()),
        _ => i.unsigned_abs().to_string(),
    };
    let digits = match spec.prec {
        Some(p) if digits.len() < p => "0".repeat(p - digits.len()) + &digits,
        Some(0) if i == 0 => String::new(),
        _ => digits,
    };
    let prefix = match (verb, spec.sharp) {
        ('x', true) => "0x",
        ('X', true) => "0X",
        ('o', true) if !digits.starts_with('0') => "0",
        ('O', _) => "0o",
        _ => "",
    };
    let sign = if i < 0 {
        "-"
    } else if spec.plus {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    };
    let body = format!("{prefix}{digits}");
    let mut spec = *spec;
    // Go ignores the zero flag when a precision is given for integers.
    spec.zero &= spec.prec.is_none();
    spec.pad(format!("{sign}{body}"), true)
}

fn fmt_float(f: f64, verb: char, spec: &Spec) -> String {
    let prec = match verb {
        'v' | 'g' | 'G' => spec.prec,
        _ => Some(spec.prec.unwrap_or(6)),
    };
    let fmt = if verb == 'v' { 'g' } else { verb };
    let mut s = format_float(f, fmt, prec);
    if !s.starts_with('-') {
        if spec.plus {
            s.insert(0, '+');
        } else if spec.space {
            s.insert(0, ' ');
        }
    }
    let mut spec = *spec;
    spec.zero &= f.is_finite();
    spec.pad(s, true)
}

fn fmt_string(s: &str, verb: char, spec: &Spec) -> String {
    let s: String = match spec.prec {
        Some(p) => s.chars().take(p).collect(),
        None => s.to_owned(),
    };
    let out = match verb {
        'q' if spec.sharp && !s.contains('`') && s.chars().all(|c| c == '\t' || is_print(c)) => {
            format!("`{s}`")
        }
        'q' => quote(&s),
        'x' | 'X' => {
            let hex: Vec<String> = s
                .bytes()
                .map(|b| match verb {
                    'x' => format!("{b:02x}"),
                    _ => format!("{b:02X}"),
                })
                .collect();
            // Go puts the 0x prefix once, or before every byte when bytes are spaced.
            let prefix = if spec.sharp {
                format!("0{verb}")
            } else {
                String::new()
            };
            if spec.space {
                hex.iter()
                    .map(|h| format!("{prefix}{h}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            } else if hex.is_empty() {
                String::new()
            } else {
                prefix + &hex.concat()
            }
        }
        _ => s,
    };
    spec.pad(out, false)
}

/// One value under one verb; collections apply the verb to each element, as Go does.
fn fmt_value(value: &Value, verb: char, spec: &Spec) -> String {
    match value {
        Value::Array(items) if verb != 'T' => {
            let parts: Vec<String> = items.iter().map(|v| fmt_value(v, verb, spec)).collect();
            format!("[{}]", parts.join(" "))
        }
        Value::Object(map) | Value::Map(map) if verb != 'T' => {
            let parts: Vec<String> = sorted(map)
                .into_iter()
                .map(|(k, v)| {
                    let key = fmt_value(&Value::String(k.clone()), verb, spec);
                    format!("{key}:{}", fmt_value(v, verb, spec))
                })
                .collect();
            format!("map[{}]", parts.join(" "))
        }
        _ if verb == 'T' => spec.pad(go_type(value).into(), false),
        Value::Nil | Value::NoValue => match verb {
            'v' => spec.pad("<nil>".into(), false),
            _ => bad_verb(verb, value),
        },
        Value::String(s) => match verb {
            'v' | 's' | 'q' | 'x' | 'X' => fmt_string(s, verb, spec),
            _ => bad_verb(verb, value),
        },
        Value::Bool(b) => match verb {
            'v' | 't' => spec.pad(b.to_string(), false),
            _ => bad_verb(verb, value),
        },
        Value::Number(_) => {
            if let Some(i) = as_int(value) {
                match verb {
                    'v' | 'd' | 'x' | 'X' | 'o' | 'O' | 'b' => fmt_integer(i, verb, spec),
                    'c' => spec.pad(char_of(i).to_string(), false),
                    'q' => spec.pad(quote_char(char_of(i)), false),
                    'U' => {
                        let hex = format!("U+{:04X}", i);
                        let with_char = if spec.sharp {
                            format!("{hex} '{}'", char_of(i))
                        } else {
                            hex
                        };
                        spec.pad(with_char, false)
                    }
                    // Lenient: JSON cannot tell an int from a whole float64.
                    'e' | 'E' | 'f' | 'F' | 'g' | 'G' => fmt_float(i as f64, verb, spec),
                    _ => bad_verb(verb, value),
                }
            } else {
                let f = as_float(value).unwrap_or(f64::NAN);
                match verb {
                    'v' | 'e' | 'E' | 'f' | 'F' | 'g' | 'G' => fmt_float(f, verb, spec),
                    _ => bad_verb(verb, value),
                }
            }
        }
        Value::Array(_) | Value::Object(_) | Value::Map(_) | Value::Function(_) => {
            bad_verb(verb, value)
        }
    }
}

fn char_of(i: i128) -> char {
    u32::try_from(i)
        .ok()
        .and_then(char::from_u32)
        .unwrap_or('\u{fffd}')
}

/// `fmt.Sprintf` over template values: flags `+-# 0`, width, precision (also `*`), verbs
/// `v s q d x X o O b c U e E f F g G t T %`, and Go's `%!verb(...)`, `%!(MISSING)` and
/// `%!(EXTRA ...)` markers. Explicit argument indexes (`%[1]d`) are not supported.
pub fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut next = 0usize;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&f) = chars.peek() {
            match f {
                '-' => {
                    spec.minus = true;
                    spec.zero = false;
                }
                '+' => spec.plus = true,
                '#' => spec.sharp = true,
                '0' => spec.zero = !spec.minus,
                ' ' => spec.space = true,
                _ => break,
            }
            chars.next();
        }
        spec.width = read_number(&mut chars, args, &mut next);
        if chars.peek() == Some(&'.') {
            chars.next();
            spec.prec = Some(read_number(&mut chars, args, &mut next).unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        match args.get(next) {
            None => {
                let _ = write!(out, "%!{verb}(MISSING)");
            }
            Some(arg) => {
                next += 1;
                out.push_str(&fmt_value(arg, verb, &spec));
            }
        }
    }
    if next < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args[next..]
            .iter()
            .map(|v| format!("{}={}", go_type(v), format_v(v)))
            .collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}

fn read_number(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    args: &[Value],
    next: &mut usize,
) -> Option<usize> {
    if chars.peek() == Some(&'*') {
        chars.next();
        let n = args.get(*next).and_then(as_int);
        *next += 1;
        return n.and_then(|n| usize::try_from(n).ok());
    }
    let mut n: Option<usize> = None;
    while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
        n = Some(n.unwrap_or(0).saturating_mul(10).saturating_add(d as usize));
        chars.next();
    }
    n
}

/// `fmt.Sprint`: spaces between operands when neither side is a string.
pub fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, arg) in args.iter().enumerate() {
        let is_string = matches!(arg, Value::String(_));
        if i > 0 && !is_string && !matches!(args[i - 1], Value::String(_)) {
            out.push(' ');
        }
        push_v(&mut out, arg);
    }
    out
}

/// `fmt.Sprintln`: spaces between all operands, then a newline.
pub fn sprintln(args: &[Value]) -> String {
    let parts: Vec<String> = args.iter().map(format_v).collect();
    parts.join(" ") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::String(v.into())
    }

    #[test]
    fn float_g_matches_strconv() {
        let cases: &[(f64, Option<usize>, &str)] = &[
            (4.26, Some(3), "4.26"),
            (1.2, Some(3), "1.2"),
            (212.0, Some(3), "212"),
            (0.0, Some(3), "0"),
            (1.024, Some(4), "1.024"),
            (1.048576, Some(4), "1.049"),
            (999.9999, Some(3), "1e+03"),
            (10000.0, Some(4), "1e+04"),
            (1048576.0, Some(4), "1.049e+06"),
            (1e6, None, "1e+06"),
            (123456.0, None, "123456"),
            (1234567.0, None, "1.234567e+06"),
            (0.1 + 0.2, None, "0.30000000000000004"),
            (0.0001, None, "0.0001"),
            (0.00001, None, "1e-05"),
            (-2.5, None, "-2.5"),
            (100.0, Some(1), "1e+02"),
            (0.5, Some(3), "0.5"),
        ];
        for &(x, p, want) in cases {
            assert_eq!(format_float(x, 'g', p), want, "{x} %.{p:?}g");
        }
        assert_eq!(format_float(1.5, 'e', Some(2)), "1.50e+00");
        assert_eq!(format_float(123456.0, 'e', None), "1.23456e+05");
        assert_eq!(format_float(1.5, 'f', Some(3)), "1.500");
        assert_eq!(format_float(1e21, 'f', None), "1000000000000000000000");
        assert_eq!(format_float(f64::INFINITY, 'g', None), "+Inf");
    }

    #[test]
    fn v_formatting() {
        let mut m = HashMap::new();
        m.insert("b".to_string(), s("2"));
        m.insert(
            "a".to_string(),
            Value::Array(vec![s("x"), Value::from(1u8)]),
        );
        assert_eq!(format_v(&Value::Map(m)), "map[a:[x 1] b:2]");
        assert_eq!(format_v(&Value::Nil), "<nil>");
        assert_eq!(format_v(&Value::from(1.5f64)), "1.5");
        assert_eq!(format_v(&Value::from(-3i64)), "-3");
        assert_eq!(format_v(&Value::Array(vec![])), "[]");
    }

    #[test]
    fn json_encoding() {
        let mut m = HashMap::new();
        m.insert("z".to_string(), s("a<b>&c\"\n\u{1}"));
        m.insert(
            "a".to_string(),
            Value::Array(vec![Value::from(1u8), Value::Nil, Value::Bool(true)]),
        );
        m.insert("f".to_string(), Value::from(0.5f64));
        let v = Value::Map(m);
        assert_eq!(
            to_json(&v, false).unwrap(),
            r#"{"a":[1,null,true],"f":0.5,"z":"a<b>&c\"\n\u0001"}"#
        );
        assert_eq!(
            to_json(&v, true).unwrap(),
            r#"{"a":[1,null,true],"f":0.5,"z":"a\u003cb\u003e\u0026c\"\n\u0001"}"#
        );
        assert_eq!(json_float(1e21), "1e+21");
        assert_eq!(json_float(1e-7), "1e-7");
        assert_eq!(json_float(123.25), "123.25");
    }

    #[test]
    fn sprintf_like_go() {
        let n = |i: i64| Value::from(i);
        assert_eq!(sprintf("%s-%d", &[s("abc"), n(3)]), "abc-3");
        assert_eq!(sprintf("%-6s|%6s|", &[s("ab"), s("cd")]), "ab    |    cd|");
        assert_eq!(
            sprintf("%05d|%+d|%x|%#x|%X", &[n(3), n(3), n(255), n(255), n(255)]),
            "00003|+3|ff|0xff|FF"
        );
        assert_eq!(sprintf("%q", &[s("a\"b\n")]), r#""a\"b\n""#);
        assert_eq!(
            sprintf(
                "%.3s|%.2f|%8.3f|%e",
                &[
                    s("abcdef"),
                    Value::from(1.23456f64),
                    Value::from(1.5f64),
                    n(1500)
                ]
            ),
            "abc|1.23|   1.500|1.500000e+03"
        );
        assert_eq!(
            sprintf("%-05d|%x|%#x|% x", &[n(7), s("ab"), s("ab"), s("ab")]),
            "7    |6162|0x6162|61 62"
        );
        assert_eq!(
            sprintf("%v %v", &[Value::Array(vec![s("a"), s("b")]), Value::Nil]),
            "[a b] <nil>"
        );
        assert_eq!(sprintf("%d", &[s("x")]), "%!d(string=x)");
        assert_eq!(sprintf("%d %d", &[n(1)]), "1 %!d(MISSING)");
        assert_eq!(sprintf("%d", &[n(1), s("x")]), "1%!(EXTRA string=x)");
        assert_eq!(sprintf("100%%", &[]), "100%");
        assert_eq!(sprintf("%*d|%-*d|", &[n(4), n(7), n(3), n(1)]), "   7|1  |");
        assert_eq!(
            sprintf("%t %c %U %T", &[Value::Bool(true), n(65), n(65), s("x")]),
            "true A U+0041 string"
        );
        assert_eq!(sprintf("%5.1f%%", &[Value::from(12.34f64)]), " 12.3%");
        assert_eq!(
            sprintf("%s", &[Value::Array(vec![s("a"), s("b")])]),
            "[a b]"
        );
    }

    #[test]
    fn sprint_spacing() {
        assert_eq!(
            sprint(&[s("a"), Value::from(1u8), Value::from(2u8), s("b")]),
            "a1 2b"
        );
        assert_eq!(sprintln(&[s("a"), Value::from(1u8)]), "a 1\n");
        assert_eq!(quote("tab\there é \u{1}"), "\"tab\\there é \\x01\"");
    }
}
