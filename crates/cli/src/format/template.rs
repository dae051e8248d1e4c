//! docker's `--format` handling: choosing between the default table, `table <template>`,
//! `json` and a raw template, and rendering Go templates (via gtmpl) over rows given as JSON
//! objects, with docker's template functions and table headers.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, Write};

use gtmpl::error::{ExecError, ParseError};
use gtmpl::{Context, Func, FuncError, Template};
use gtmpl_value::Value;

use super::gofmt;
use super::rewrite::{self, ENTRIES_FN, ONCE_FN, PRINT_FN, RANGE_FN};
use super::table::TabWriter;

/// What docker's `--format` for list commands renders as JSON: one object per row.
pub const JSON_TEMPLATE: &str = "{{json .}}";

/// The kind of output a `--format` value asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatKind {
    /// `""` or `"table"`: the command's default table.
    Default,
    /// `table <template>`: a table with a header row (template text after `table`).
    Table(String),
    /// `json`: one JSON object per row.
    Json,
    /// Anything else: the template per row, no header.
    Raw(String),
}

impl FormatKind {
    /// Classifies a `--format` value the way docker's formatter does: anything starting with
    /// `table` is a table; the template text has surrounding spaces trimmed and the two-char
    /// sequences `\t` and `\n` turned into tab and newline.
    pub fn parse(format: &str) -> FormatKind {
        match format {
            "" | "table" => FormatKind::Default,
            "json" => FormatKind::Json,
            _ => match format.strip_prefix("table") {
                Some(rest) => FormatKind::Table(normalize_format(rest)),
                None => FormatKind::Raw(normalize_format(format)),
            },
        }
    }

    /// True for the kinds docker prints through its tab writer with a header.
    pub fn is_table(&self) -> bool {
        matches!(self, FormatKind::Default | FormatKind::Table(_))
    }
}

/// docker's `preFormat` cleanup: trim spaces, then replace the escapes `\t` and `\n`.
pub fn normalize_format(format: &str) -> String {
    let trimmed = format.trim_matches(' ');
    let mut out = String::with_capacity(trimmed.len());
    let mut chars = trimmed.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('\\', Some('t')) => {
                chars.next();
                out.push('\t');
            }
            ('\\', Some('n')) => {
                chars.next();
                out.push('\n');
            }
            _ => out.push(c),
        }
    }
    out
}

/// A `--format` failure, worded as the docker CLI words it.
#[derive(Debug)]
pub enum FormatError {
    /// Both parse and execution errors: docker prefixes both with "template parsing error".
    Template(String),
    Io(io::Error),
}

impl std::fmt::Display for FormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FormatError::Template(msg) => write!(f, "template parsing error: {msg}"),
            FormatError::Io(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for FormatError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FormatError::Io(e) => Some(e),
            FormatError::Template(_) => None,
        }
    }
}

impl From<io::Error> for FormatError {
    fn from(e: io::Error) -> Self {
        FormatError::Io(e)
    }
}

/// A parsed Go template with docker's functions, ready to render rows, headers or a single
/// inspect object.
pub struct GoTemplate {
    body: Template,
    header: Template,
}

thread_local! {
    /// The row being rendered: `json` of the whole row escapes HTML characters, because docker
    /// marshals its row contexts with `json.Marshal`.
    static CURRENT_ROW: RefCell<Option<Value>> = const { RefCell::new(None) };
}

/// How missing keys read: rows are Go structs (an error), inspect objects fall back to maps
/// with `missingkey=error` in docker.
#[derive(Clone, Copy)]
enum Mode {
    Row,
    Inspect,
}

impl GoTemplate {
    /// Parses `text` (the template itself, without a `table` prefix).
    pub fn parse(text: &str) -> Result<GoTemplate, FormatError> {
        let rewritten = rewrite::rewrite(text)
            .map_err(|e| FormatError::Template(format!("template: :{}: {}", e.line, e.message)))?;
        let parse = |funcs: &[(&str, Func)]| {
            let mut t = Template::default();
            t.add_funcs(BASIC_FUNCTIONS);
            t.add_funcs(funcs);
            t.parse(rewritten.as_str())
                .map(|()| t)
                .map_err(|e| parse_error(text, e))
        };
        Ok(GoTemplate {
            body: parse(&[])?,
            header: parse(HEADER_FUNCTIONS)?,
        })
    }

    /// Renders one list row (a JSON object whose fields are the row's columns).
    pub fn render_row(&self, row: &serde_json::Value) -> Result<String, FormatError> {
        let value = to_value(row, true);
        CURRENT_ROW.with(|r| *r.borrow_mut() = Some(value.clone()));
        let result = execute(&self.body, value, Mode::Row);
        CURRENT_ROW.with(|r| *r.borrow_mut() = None);
        result
    }

    /// Renders an inspect object (`docker inspect --format`).
    pub fn render(&self, data: &serde_json::Value) -> Result<String, FormatError> {
        execute(&self.body, to_value(data, true), Mode::Inspect)
    }

    /// Renders the header row against a map of field name → header text. Like docker, a
    /// failure keeps whatever was written before it, and a field missing from the map
    /// prints `<no value>`.
    pub fn render_header(&self, header: &serde_json::Value) -> String {
        let value = match to_value(header, false) {
            Value::Object(m) => Value::Map(m),
            other => other,
        };
        let mut out = Vec::new();
        let _ = self.header.execute(&mut out, &Context::from(value));
        String::from_utf8_lossy(&out).into_owned()
    }
}

fn execute(t: &Template, value: Value, mode: Mode) -> Result<String, FormatError> {
    let mut out = Vec::new();
    t.execute(&mut out, &Context::from(value))
        .map_err(|e| FormatError::Template(exec_error(e, mode)))?;
    String::from_utf8(out).map_err(|e| FormatError::Template(e.to_string()))
}

/// Renders a table as docker does: every row (each followed by a newline), then the header
/// rendered from the same template, all aligned by the tab writer. `template` is the text
/// after `table`. Nothing is written if a row fails.
pub fn render_table(
    template: &str,
    header: &serde_json::Value,
    rows: &[serde_json::Value],
    out: &mut dyn Write,
) -> Result<(), FormatError> {
    let t = GoTemplate::parse(template)?;
    let body = render_each(&t, rows)?;
    let mut tw = TabWriter::new(out);
    tw.write_all(t.render_header(header).as_bytes())?;
    tw.write_all(b"\n")?;
    tw.write_all(body.as_bytes())?;
    tw.flush()?;
    Ok(())
}

/// Renders `template` once per row, each followed by a newline, without a header or
/// alignment. Nothing is written if a row fails.
pub fn render_rows(
    template: &str,
    rows: &[serde_json::Value],
    out: &mut dyn Write,
) -> Result<(), FormatError> {
    let t = GoTemplate::parse(template)?;
    out.write_all(render_each(&t, rows)?.as_bytes())?;
    Ok(())
}

fn render_each(t: &GoTemplate, rows: &[serde_json::Value]) -> Result<String, FormatError> {
    let mut body = String::new();
    for row in rows {
        body.push_str(&t.render_row(row)?);
        body.push('\n');
    }
    Ok(body)
}

/// Renders `template` over a single object, as `docker inspect --format` does (the caller
/// adds the newline after each object).
pub fn render_one(template: &str, data: &serde_json::Value) -> Result<String, FormatError> {
    GoTemplate::parse(template)?.render(data)
}

/// A list command's whole `--format` handling: `format` as the user gave it, and the
/// command's default format (e.g. `"table {{.Repository}}\t{{.Tag}}…"`), used for an empty
/// `format` or `table`.
pub fn render_list(
    format: &str,
    default_format: &str,
    header: &serde_json::Value,
    rows: &[serde_json::Value],
    out: &mut dyn Write,
) -> Result<(), FormatError> {
    let kind = match FormatKind::parse(format) {
        FormatKind::Default => FormatKind::parse(default_format),
        kind => kind,
    };
    match kind {
        FormatKind::Table(t) => render_table(&t, header, rows, out),
        FormatKind::Json => render_rows(JSON_TEMPLATE, rows, out),
        FormatKind::Raw(t) => render_rows(&t, rows, out),
        // A default format that is itself "table" or empty: nothing sensible to print.
        FormatKind::Default => render_table("", header, rows, out),
    }
}

// ---- values --------------------------------------------------------------------------------

/// JSON → template value. Objects that look like Go structs (every key capitalized) become
/// `Object`s, where a missing field is an error as in Go; other objects (labels, options,
/// port maps) become `Map`s, where a missing key reads as `<no value>`.
fn to_value(v: &serde_json::Value, top: bool) -> Value {
    match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Value::from(u)
            } else if let Some(i) = n.as_i64() {
                Value::from(i)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if (f < 0.0 && f.fract() != 0.0) || f.abs() >= 9.0e18 {
                    // gtmpl_value truncates negative fractions and saturates huge whole
                    // numbers; keep the printed form instead.
                    Value::String(gofmt::format_float(f, 'g', None))
                } else {
                    Value::from(f)
                }
            }
        }
        serde_json::Value::String(s) => Value::String(s.clone()),
        serde_json::Value::Array(a) => Value::Array(a.iter().map(|x| to_value(x, false)).collect()),
        serde_json::Value::Object(m) => {
            let map: HashMap<String, Value> = m
                .iter()
                .map(|(k, x)| (k.clone(), to_value(x, false)))
                .collect();
            let struct_like = !m.is_empty()
                && m.keys()
                    .all(|k| k.starts_with(|c: char| c.is_ascii_uppercase()));
            if top || struct_like {
                Value::Object(map)
            } else {
                Value::Map(map)
            }
        }
    }
}

// ---- errors --------------------------------------------------------------------------------

fn parse_error(text: &str, e: ParseError) -> FormatError {
    let lines = text.lines().count().max(1);
    let (line, msg) = match e {
        // gtmpl's line counting is unreliable; clamp it into the template.
        ParseError::WithContext(ctx, msg) => (ctx.line.clamp(1, lines), msg),
        other => (1, other.to_string()),
    };
    let msg = match msg
        .strip_prefix("function ")
        .and_then(|m| m.strip_suffix(" not defined"))
    {
        Some(name) => format!("function {name:?} not defined"),
        None => msg,
    };
    FormatError::Template(format!("template: :{line}: {msg}"))
}

fn exec_error(e: ExecError, mode: Mode) -> String {
    let detail = match e {
        ExecError::NoFiledFor(field, _) => match mode {
            Mode::Row => format!(" at <.{field}>: can't evaluate field {field}"),
            Mode::Inspect => format!(" at <.{field}>: map has no entry for key {field:?}"),
        },
        ExecError::FuncError(f) => format!(": {f}"),
        other => format!(": {other}"),
    };
    format!("template: :1: executing \"\"{detail}")
}

// ---- functions -----------------------------------------------------------------------------

/// docker's `basicFunctions`, Go builtins that gtmpl lacks or gets wrong, and the helpers the
/// rewriter inserts.
const BASIC_FUNCTIONS: &[(&str, Func)] = &[
    ("json", f_json),
    ("split", f_split),
    ("join", f_join),
    ("title", f_title),
    ("lower", f_lower),
    ("upper", f_upper),
    ("pad", f_pad),
    ("truncate", f_truncate),
    ("len", f_len),
    ("index", f_index),
    ("print", f_print),
    ("println", f_println),
    ("printf", f_printf),
    ("eq", f_eq),
    ("ne", f_ne),
    ("lt", f_lt),
    ("le", f_le),
    ("gt", f_gt),
    ("ge", f_ge),
    (PRINT_FN, f_berth_print),
    (RANGE_FN, f_berth_range),
    (ENTRIES_FN, f_berth_entries),
    (ONCE_FN, f_berth_once),
];

/// docker's `HeaderFunctions`: the header row shows column names, not transformed ones.
const HEADER_FUNCTIONS: &[(&str, Func)] = &[
    ("json", f_first),
    ("split", f_first),
    ("join", f_first),
    ("title", f_first),
    ("lower", f_first),
    ("upper", f_first),
    ("truncate", f_first),
];

/// An error worded as Go's `text/template` reports a failing function.
fn fail(name: &str, detail: impl std::fmt::Display) -> FuncError {
    FuncError::Generic(format!("error calling {name}: {detail}"))
}

fn arity(name: &str, args: &[Value], n: usize) -> Result<(), FuncError> {
    if args.len() == n {
        Ok(())
    } else {
        Err(FuncError::Generic(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        )))
    }
}

/// A string argument; other values are taken in their printed form.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => gofmt::format_v(other),
    }
}

fn int(name: &str, v: &Value) -> Result<i64, FuncError> {
    match v {
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
    .ok_or_else(|| {
        fail(
            name,
            format!("expected integer; found {}", gofmt::format_v(v)),
        )
    })
}

/// docker's header stand-ins take a string and return it unchanged.
fn f_first(args: &[Value]) -> Result<Value, FuncError> {
    match args.first() {
        Some(v @ Value::String(_)) => Ok(v.clone()),
        Some(other) => Err(fail(
            "header function",
            format!(
                "wrong type for value; expected string; got {}",
                gofmt::sprintf("%T", std::slice::from_ref(other))
            ),
        )),
        None => Err(FuncError::AtLeastXArgs("header function".into(), 1)),
    }
}

fn f_json(args: &[Value]) -> Result<Value, FuncError> {
    arity("json", args, 1)?;
    let escape = CURRENT_ROW.with(|r| r.borrow().as_ref() == Some(&args[0]));
    gofmt::to_json(&args[0], escape)
        .map(Value::String)
        .map_err(|e| fail("json", e))
}

fn f_split(args: &[Value]) -> Result<Value, FuncError> {
    arity("split", args, 2)?;
    let (s, sep) = (text(&args[0]), text(&args[1]));
    let parts: Vec<Value> = if sep.is_empty() {
        s.chars().map(|c| Value::String(c.to_string())).collect()
    } else {
        s.split(sep.as_str())
            .map(|p| Value::String(p.to_owned()))
            .collect()
    };
    Ok(Value::Array(parts))
}

fn f_join(args: &[Value]) -> Result<Value, FuncError> {
    arity("join", args, 2)?;
    let sep = text(&args[1]);
    match &args[0] {
        Value::Array(items) => Ok(Value::String(
            items.iter().map(text).collect::<Vec<_>>().join(&sep),
        )),
        Value::Nil => Ok(Value::String(String::new())),
        other => Err(fail(
            "join",
            format!(
                "wrong type for value; expected []string; got {}",
                gofmt::sprintf("%T", std::slice::from_ref(other))
            ),
        )),
    }
}

fn f_title(args: &[Value]) -> Result<Value, FuncError> {
    arity("title", args, 1)?;
    // strings.Title: upper-case the first letter of each word.
    let mut prev = ' ';
    let out: String = text(&args[0])
        .chars()
        .flat_map(|c| {
            let separator = if prev.is_ascii() {
                !(prev.is_ascii_alphanumeric() || prev == '_')
            } else {
                prev.is_whitespace()
            };
            prev = c;
            let up: Vec<char> = if separator {
                c.to_uppercase().collect()
            } else {
                vec![c]
            };
            up
        })
        .collect();
    Ok(Value::String(out))
}

fn f_lower(args: &[Value]) -> Result<Value, FuncError> {
    arity("lower", args, 1)?;
    Ok(Value::String(text(&args[0]).to_lowercase()))
}

fn f_upper(args: &[Value]) -> Result<Value, FuncError> {
    arity("upper", args, 1)?;
    Ok(Value::String(text(&args[0]).to_uppercase()))
}

fn f_pad(args: &[Value]) -> Result<Value, FuncError> {
    arity("pad", args, 3)?;
    let s = text(&args[0]);
    if s.is_empty() {
        return Ok(Value::String(s));
    }
    let (prefix, suffix) = (int("pad", &args[1])?, int("pad", &args[2])?);
    let spaces = |n: i64| " ".repeat(n.max(0) as usize);
    Ok(Value::String(format!(
        "{}{s}{}",
        spaces(prefix),
        spaces(suffix)
    )))
}

fn f_truncate(args: &[Value]) -> Result<Value, FuncError> {
    arity("truncate", args, 2)?;
    let s = text(&args[0]);
    let n = usize::try_from(int("truncate", &args[1])?)
        .map_err(|_| fail("truncate", "slice bounds out of range"))?;
    if s.len() < n {
        return Ok(Value::String(s));
    }
    // Byte length as in Go, backed off to a character boundary.
    let mut end = n;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Ok(Value::String(s[..end].to_owned()))
}

fn f_len(args: &[Value]) -> Result<Value, FuncError> {
    arity("len", args, 1)?;
    let n = match &args[0] {
        Value::String(s) => s.len(),
        Value::Array(a) => a.len(),
        Value::Map(m) | Value::Object(m) => m.len(),
        Value::Nil => 0,
        other => {
            let t = gofmt::sprintf("%T", std::slice::from_ref(other));
            return Err(fail("len", format!("len of type {t}")));
        }
    };
    Ok(Value::from(n))
}

/// Go's `index`; a missing map key gives the empty string, as docker's typed maps
/// (`map[string]string` labels and options) do.
fn f_index(args: &[Value]) -> Result<Value, FuncError> {
    let Some((first, keys)) = args.split_first() else {
        return Err(FuncError::AtLeastXArgs("index".into(), 1));
    };
    let mut item = first.clone();
    for key in keys {
        item = match (&item, key) {
            (Value::Map(m) | Value::Object(m), k) => m
                .get(&text(k))
                .cloned()
                .unwrap_or(Value::String(String::new())),
            (Value::Array(a), Value::Number(n)) => {
                let i = n.as_i64().unwrap_or(-1);
                usize::try_from(i)
                    .ok()
                    .and_then(|i| a.get(i).cloned())
                    .ok_or_else(|| fail("index", format!("index out of range: {i}")))?
            }
            (Value::Nil, _) => Value::String(String::new()),
            (other, _) => {
                let t = gofmt::sprintf("%T", std::slice::from_ref(other));
                return Err(fail("index", format!("can't index item of type {t}")));
            }
        };
    }
    Ok(item)
}

fn f_print(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(gofmt::sprint(args)))
}

fn f_println(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(gofmt::sprintln(args)))
}

fn f_printf(args: &[Value]) -> Result<Value, FuncError> {
    match args.split_first() {
        Some((Value::String(f), rest)) => Ok(Value::String(gofmt::sprintf(f, rest))),
        _ => Err(fail("printf", "format must be a string")),
    }
}

/// Go's comparison kinds. JSON cannot tell ints from floats, so all numbers are one kind.
enum Basic<'a> {
    Int(i128),
    Float(f64),
    Str(&'a str),
    Bool(bool),
    Missing,
    Other(&'a Value),
}

fn basic(v: &Value) -> Basic<'_> {
    match v {
        Value::Number(n) => match n
            .as_u64()
            .map(i128::from)
            .or_else(|| n.as_i64().map(i128::from))
        {
            Some(i) => Basic::Int(i),
            None => Basic::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Basic::Str(s),
        Value::Bool(b) => Basic::Bool(*b),
        Value::Nil | Value::NoValue => Basic::Missing,
        other => Basic::Other(other),
    }
}

const BAD_COMPARISON: &str = "incompatible types for comparison";

/// `a == b` under Go's rules; `Err` for values of different kinds.
fn equal(name: &str, a: &Value, b: &Value) -> Result<bool, FuncError> {
    use Basic::*;
    Ok(match (basic(a), basic(b)) {
        (Int(x), Int(y)) => x == y,
        (Int(x), Float(y)) | (Float(y), Int(x)) => x as f64 == y,
        (Float(x), Float(y)) => x == y,
        (Str(x), Str(y)) => x == y,
        (Bool(x), Bool(y)) => x == y,
        (Missing, Missing) => true,
        // A missing value compares unequal to anything else without error.
        (Missing, _) | (_, Missing) => false,
        (Other(x), Other(y)) => x == y,
        _ => return Err(fail(name, BAD_COMPARISON)),
    })
}

/// `a < b` under Go's rules: numbers and strings only.
fn less(name: &str, a: &Value, b: &Value) -> Result<bool, FuncError> {
    use Basic::*;
    Ok(match (basic(a), basic(b)) {
        (Int(x), Int(y)) => x < y,
        (Int(x), Float(y)) => (x as f64) < y,
        (Float(x), Int(y)) => x < y as f64,
        (Float(x), Float(y)) => x < y,
        (Str(x), Str(y)) => x < y,
        (Int(_) | Float(_), Str(_)) | (Str(_), Int(_) | Float(_)) => {
            return Err(fail(name, BAD_COMPARISON));
        }
        _ => return Err(fail(name, "invalid type for comparison")),
    })
}

fn two<'a>(name: &str, args: &'a [Value]) -> Result<(&'a Value, &'a Value), FuncError> {
    arity(name, args, 2)?;
    Ok((&args[0], &args[1]))
}

/// `eq a b c…` is true when `a` equals any of the others.
fn f_eq(args: &[Value]) -> Result<Value, FuncError> {
    let Some((first, rest)) = args.split_first().filter(|(_, rest)| !rest.is_empty()) else {
        return Err(fail("eq", "missing argument for comparison"));
    };
    for other in rest {
        if equal("eq", first, other)? {
            return Ok(Value::Bool(true));
        }
    }
    Ok(Value::Bool(false))
}

fn f_ne(args: &[Value]) -> Result<Value, FuncError> {
    let (a, b) = two("ne", args)?;
    Ok(Value::Bool(!equal("ne", a, b)?))
}

fn f_lt(args: &[Value]) -> Result<Value, FuncError> {
    let (a, b) = two("lt", args)?;
    Ok(Value::Bool(less("lt", a, b)?))
}

fn f_le(args: &[Value]) -> Result<Value, FuncError> {
    let (a, b) = two("le", args)?;
    Ok(Value::Bool(less("le", a, b)? || equal("le", a, b)?))
}

fn f_gt(args: &[Value]) -> Result<Value, FuncError> {
    let (a, b) = two("gt", args)?;
    Ok(Value::Bool(!(less("gt", a, b)? || equal("gt", a, b)?)))
}

fn f_ge(args: &[Value]) -> Result<Value, FuncError> {
    let (a, b) = two("ge", args)?;
    Ok(Value::Bool(!less("ge", a, b)?))
}

fn f_berth_print(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(
        args.last().map(gofmt::print_value).unwrap_or_default(),
    ))
}

fn f_berth_range(args: &[Value]) -> Result<Value, FuncError> {
    match args.last() {
        Some(Value::Map(m) | Value::Object(m)) => Ok(Value::Array(
            gofmt::sorted(m)
                .into_iter()
                .map(|(_, v)| v.clone())
                .collect(),
        )),
        // Ranging over nil runs zero times in Go.
        Some(Value::Nil | Value::NoValue) | None => Ok(Value::Array(Vec::new())),
        Some(other) => Ok(other.clone()),
    }
}

fn f_berth_entries(args: &[Value]) -> Result<Value, FuncError> {
    let entry = |k: Value, v: &Value| {
        let mut e = HashMap::new();
        e.insert("Key".to_owned(), k);
        e.insert("Value".to_owned(), v.clone());
        Value::Map(e)
    };
    match args.last() {
        Some(Value::Map(m) | Value::Object(m)) => Ok(Value::Array(
            gofmt::sorted(m)
                .into_iter()
                .map(|(k, v)| entry(Value::String(k.clone()), v))
                .collect(),
        )),
        Some(Value::Array(a)) => Ok(Value::Array(
            a.iter()
                .enumerate()
                .map(|(i, v)| entry(Value::from(i), v))
                .collect(),
        )),
        Some(Value::Nil | Value::NoValue) | None => Ok(Value::Array(Vec::new())),
        Some(other) => Ok(other.clone()),
    }
}

fn f_berth_once(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::Array(args.last().cloned().into_iter().collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(t: &str, data: serde_json::Value) -> String {
        render_one(t, &data).unwrap_or_else(|e| panic!("{t}: {e}"))
    }

    fn image_header() -> serde_json::Value {
        json!({
            "ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
            "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
            "Containers": "CONTAINERS", "VirtualSize": "SIZE", "SharedSize": "SHARED SIZE",
            "UniqueSize": "UNIQUE SIZE"
        })
    }

    fn image_rows() -> Vec<serde_json::Value> {
        vec![
            json!({"ID": "6fd955f66c23", "Repository": "busybox", "Tag": "latest", "Digest": "<none>",
                   "CreatedSince": "2 weeks ago", "CreatedAt": "2024-01-01 00:00:00 +0000 UTC",
                   "Size": "4.26MB", "Containers": "N/A", "VirtualSize": "4.261MB",
                   "SharedSize": "N/A", "UniqueSize": "N/A"}),
            json!({"ID": "b2c3d4e5f6a7", "Repository": "<none>", "Tag": "<none>", "Digest": "<none>",
                   "CreatedSince": "", "CreatedAt": "", "Size": "212MB", "Containers": "N/A",
                   "VirtualSize": "212MB", "SharedSize": "N/A", "UniqueSize": "N/A"}),
        ]
    }

    const DEFAULT_IMAGES: &str = "table {{.Repository}}\\t{{.Tag}}\\t{{.ID}}\\t{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\\t{{.Size}}";

    fn list(format: &str) -> String {
        let mut out = Vec::new();
        render_list(
            format,
            DEFAULT_IMAGES,
            &image_header(),
            &image_rows(),
            &mut out,
        )
        .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn format_kinds() {
        assert_eq!(FormatKind::parse(""), FormatKind::Default);
        assert_eq!(FormatKind::parse("table"), FormatKind::Default);
        assert_eq!(FormatKind::parse("json"), FormatKind::Json);
        assert_eq!(
            FormatKind::parse("table {{.ID}}\\t{{.Tag}}"),
            FormatKind::Table("{{.ID}}\t{{.Tag}}".into())
        );
        assert_eq!(
            FormatKind::parse("  {{.ID}}\\n "),
            FormatKind::Raw("{{.ID}}\n".into())
        );
        assert_eq!(
            FormatKind::parse("{{json .}}"),
            FormatKind::Raw("{{json .}}".into())
        );
        assert!(FormatKind::parse("table").is_table());
        assert!(!FormatKind::parse("json").is_table());
        assert_eq!(normalize_format("a\\\\tb"), "a\\\tb");
    }

    #[test]
    fn default_images_table() {
        assert_eq!(
            list(""),
            "REPOSITORY   TAG       IMAGE ID       CREATED       SIZE\n\
             busybox      latest    6fd955f66c23   2 weeks ago   4.26MB\n\
             <none>       <none>    b2c3d4e5f6a7   N/A           212MB\n"
        );
        assert_eq!(list("table"), list(""));
    }

    #[test]
    fn custom_table_raw_and_json() {
        assert_eq!(
            list("table {{.ID}}\\t{{.Repository}}:{{.Tag}}"),
            "IMAGE ID       REPOSITORY:TAG\n6fd955f66c23   busybox:latest\nb2c3d4e5f6a7   <none>:<none>\n"
        );
        assert_eq!(list("{{.ID}}"), "6fd955f66c23\nb2c3d4e5f6a7\n");
        let json_out = list("json");
        let first = json_out.lines().next().unwrap();
        assert!(
            first
                .starts_with(r#"{"Containers":"N/A","CreatedAt":"2024-01-01 00:00:00 +0000 UTC","#),
            "{first}"
        );
        // The row itself is marshalled with json.Marshal: HTML characters escaped.
        assert!(first.contains(r#""Digest":"\u003cnone\u003e""#), "{first}");
        // A field marshalled by the template function is not escaped.
        assert_eq!(
            list("{{json .Repository}}").lines().nth(1),
            Some("\"<none>\"")
        );
    }

    #[test]
    fn header_quirks() {
        let table = |t: &str, header: serde_json::Value, rows: &[serde_json::Value]| {
            let mut out = Vec::new();
            render_table(t, &header, rows, &mut out).unwrap();
            String::from_utf8(out).unwrap()
        };
        // Header functions leave names alone (pad is not replaced); unknown fields show
        // <no value>.
        assert_eq!(
            table(
                "{{lower .Name}}\t{{.Extra}}\t{{pad .Name 1 1}}|",
                json!({"Name": "NAME"}),
                &[json!({"Name": "a", "Extra": "x"})]
            ),
            "NAME      <no value>    NAME |\na         x             a |\n"
        );
        // A header that fails part-way keeps what it wrote, as docker ignores the error.
        assert_eq!(
            table(
                "{{.Name}}\t{{index .Labels \"k\"}}",
                json!({"Name": "NAME", "Labels": "LABELS"}),
                &[json!({"Name": "a", "Labels": {"k": "v"}})]
            ),
            "NAME      \na         v\n"
        );
    }

    #[test]
    fn empty_list_prints_header_only() {
        let mut out = Vec::new();
        render_list("", DEFAULT_IMAGES, &image_header(), &[], &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "REPOSITORY   TAG       IMAGE ID   CREATED   SIZE\n"
        );
        let mut out = Vec::new();
        render_list("{{.ID}}", DEFAULT_IMAGES, &image_header(), &[], &mut out).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn errors_are_worded_like_docker() {
        let err = |t: &str| render_one(t, &json!({"ID": "x"})).unwrap_err().to_string();
        assert_eq!(
            err("{{foo .ID}}"),
            "template parsing error: template: :1: function \"foo\" not defined"
        );
        assert_eq!(
            err("{{.ID"),
            "template parsing error: template: :1: unclosed action"
        );
        assert!(err("{{.Missing}}").contains("map has no entry for key \"Missing\""));
        let mut out = Vec::new();
        let e = render_list(
            "{{.Nope}}",
            DEFAULT_IMAGES,
            &image_header(),
            &image_rows(),
            &mut out,
        )
        .unwrap_err();
        assert!(e.to_string().contains("can't evaluate field Nope"), "{e}");
        assert!(out.is_empty(), "nothing is printed when a row fails");
    }

    #[test]
    fn docker_functions() {
        let d = json!({"Name": "Hello World", "Ports": "0.0.0.0:2->8/udp", "Empty": "", "Cmd": ["sh", "-c", "x"]});
        assert_eq!(one("{{json .Ports}}", d.clone()), "\"0.0.0.0:2->8/udp\"");
        assert_eq!(
            one("{{join (split .Ports \":\") \"/\"}}", d.clone()),
            "0.0.0.0/2->8/udp"
        );
        assert_eq!(
            one(
                "{{lower .Name}}|{{upper .Name}}|{{title \"hello wORLD-x_y\"}}",
                d.clone()
            ),
            "hello world|HELLO WORLD|Hello WORLD-X_y"
        );
        assert_eq!(
            one("[{{pad .Name 2 1}}][{{pad .Empty 2 1}}]", d.clone()),
            "[  Hello World ][]"
        );
        assert_eq!(
            one("{{truncate .Name 5}}|{{truncate .Name 50}}", d.clone()),
            "Hello|Hello World"
        );
        assert_eq!(
            one(
                "{{join .Cmd \" \"}}|{{len .Cmd}}|{{index .Cmd 1}}",
                d.clone()
            ),
            "sh -c x|3|-c"
        );
        assert_eq!(one("{{split \"a,b\" \",\"}}", d), "[a b]");
    }

    #[test]
    fn inspect_style_templates() {
        let c = json!({
            "Id": "abc123",
            "State": {"Status": "running", "Running": true, "Pid": 42},
            "Config": {
                "Cmd": ["sh", "-c", "sleep 1"],
                "Env": ["A=1", "B=<2>"],
                "Labels": {"b": "2", "a": "1", "com.example.x": "y"}
            },
            "NetworkSettings": {"Networks": {"bridge": {"IPAddress": "172.17.0.2"}}},
            "HostConfig": {"Memory": 0, "CpuShares": 512},
            "Mounts": []
        });
        assert_eq!(
            one("{{json .}}", c.clone()).len(),
            serde_json::to_string(&c).unwrap().len()
        );
        assert_eq!(
            one(
                "{{.State.Status}} {{.State.Running}} {{.State.Pid}}",
                c.clone()
            ),
            "running true 42"
        );
        assert_eq!(one("{{.Config.Cmd}}", c.clone()), "[sh -c sleep 1]");
        assert_eq!(
            one("{{.Config.Labels}}", c.clone()),
            "map[a:1 b:2 com.example.x:y]"
        );
        assert_eq!(one("{{json .Config.Env}}", c.clone()), r#"["A=1","B=<2>"]"#);
        assert_eq!(
            one("{{index .Config.Labels \"com.example.x\"}}", c.clone()),
            "y"
        );
        assert_eq!(one("[{{index .Config.Labels \"nope\"}}]", c.clone()), "[]");
        assert_eq!(one("{{.Config.Labels.nope}}", c.clone()), "<no value>");
        assert_eq!(
            one(
                "{{if eq .State.Status \"running\"}}up{{else}}down{{end}}",
                c.clone()
            ),
            "up"
        );
        assert_eq!(
            one("{{printf \"%s:%d\" .Id .State.Pid}}", c.clone()),
            "abc123:42"
        );
        assert_eq!(one("{{printf \"%-8s|\" .Id}}", c.clone()), "abc123  |");
        assert_eq!(
            one(
                "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}",
                c.clone()
            ),
            "a=1;b=2;com.example.x=y;"
        );
        assert_eq!(
            one("{{range .Config.Labels}}{{.}},{{end}}", c.clone()),
            "1,2,y,"
        );
        assert_eq!(
            one(
                "{{range $i, $e := .Config.Env}}{{$i}}:{{$e}} {{end}}",
                c.clone()
            ),
            "0:A=1 1:B=<2> "
        );
        assert_eq!(
            one(
                "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                c.clone()
            ),
            "172.17.0.2"
        );
        assert_eq!(
            one("{{range .Mounts}}m{{else}}none{{end}}", c.clone()),
            "none"
        );
        assert_eq!(
            one("{{range .Config.Cmd}}{{.}}.{{else}}none{{end}}", c.clone()),
            "sh.-c.sleep 1."
        );
        assert_eq!(
            one("{{with .State}}{{.Status}}{{end}}", c.clone()),
            "running"
        );
        assert_eq!(one("{{$id := .Id}}{{$id}}", c.clone()), "abc123");
        assert_eq!(one("{{len .Config.Labels}}", c.clone()), "3");
        assert_eq!(
            one(
                "{{.HostConfig.Memory}}/{{.HostConfig.CpuShares}}",
                c.clone()
            ),
            "0/512"
        );
        assert_eq!(one("{{println .Id .State.Pid}}", c.clone()), "abc123 42\n");
        assert_eq!(one("{{- .Id -}}\n", c.clone()), "abc123");
        assert_eq!(one("{{/* comment */}}{{.Id}}", c), "abc123");
    }

    #[test]
    fn comparisons_follow_go() {
        let d = json!({"Pid": 42, "F": 0.25, "S": "b", "Nil": null, "Code": 0});
        assert_eq!(
            one(
                "{{eq .Pid 42}} {{eq .Pid 1 2 42}} {{ne .S \"a\"}} {{eq .Nil .Nil}}",
                d.clone()
            ),
            "true true true true"
        );
        assert_eq!(
            one(
                "{{lt .F 1.0}} {{gt .Pid 41}} {{le .Pid 42}} {{ge .S \"c\"}} {{lt .S \"c\"}}",
                d.clone()
            ),
            "true true true false true"
        );
        assert_eq!(
            one("{{if eq .Code 0}}ok{{end}} {{eq .Nil \"x\"}}", d.clone()),
            "ok false"
        );
        let e = render_one("{{eq .S 1}}", &d).unwrap_err().to_string();
        assert!(
            e.ends_with("error calling eq: incompatible types for comparison"),
            "{e}"
        );
        assert!(render_one("{{lt .Nil 1}}", &d).is_err());
    }

    #[test]
    fn nil_and_odd_numbers() {
        let d = json!({"Nil": null, "Big": 1e21, "Neg": -1.5, "Whole": 2.0});
        assert_eq!(
            one(
                "{{range .Nil}}x{{else}}empty{{end}}|{{range $k, $v := .Nil}}x{{end}}",
                d.clone()
            ),
            "empty|"
        );
        assert_eq!(
            one("{{.Nil}} {{json .Nil}} {{.Big}} {{.Neg}} {{.Whole}}", d),
            "<nil> null 1e+21 -1.5 2"
        );
    }
}
