//! Typed instructions from parsed nodes (BuildKit's `frontend/dockerfile/instructions`), and the
//! Dockerfile split into meta ARGs and stages.

use std::time::Duration;

use crate::parser::{self, Heredoc, Node, ParseError};

/// A file given inline with a heredoc (`COPY <<EOF /x`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineSource {
    pub name: String,
    pub data: String,
    pub expand: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopySpec {
    pub sources: Vec<String>,
    pub inline: Vec<InlineSource>,
    pub dest: String,
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub excludes: Vec<String>,
    /// ADD only: `--checksum`, `--unpack`.
    pub checksum: Option<String>,
    pub unpack: Option<bool>,
}

/// RUN/CMD/ENTRYPOINT's command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdLine {
    pub args: Vec<String>,
    /// The shell form: run through `SHELL`.
    pub prepend_shell: bool,
    pub files: Vec<Heredoc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub test: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub start_period: Duration,
    pub start_interval: Duration,
    pub retries: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    Env(Vec<(String, String)>),
    Maintainer(String),
    Label(Vec<(String, String)>),
    Add(CopySpec),
    Copy(CopySpec),
    Onbuild(String),
    Workdir(String),
    Run {
        cmd: CmdLine,
        /// RUN flags (`--mount`, `--network`…), which berth does not support.
        flags: Vec<String>,
    },
    Cmd(CmdLine),
    Entrypoint(CmdLine),
    Healthcheck(Health),
    Expose(Vec<String>),
    User(String),
    Volume(Vec<String>),
    StopSignal(String),
    Arg(Vec<(String, Option<String>)>),
    Shell(Vec<String>),
}

/// An instruction with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub inst: Instruction,
    /// The instruction as written (for `Step N/M : …`).
    pub code: String,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub base: String,
    /// Lower-cased `AS` name.
    pub name: Option<String>,
    pub platform: Option<String>,
    pub code: String,
    pub line: usize,
    pub commands: Vec<Command>,
}

#[derive(Debug, Clone)]
pub struct Dockerfile {
    pub meta_args: Vec<Command>,
    pub stages: Vec<Stage>,
    pub escape: char,
    pub warnings: Vec<String>,
}

impl Dockerfile {
    /// The index of the stage named (or numbered) `target`.
    pub fn stage_index(&self, target: &str) -> Option<usize> {
        let t = target.to_ascii_lowercase();
        self.stages
            .iter()
            .position(|s| s.name.as_deref() == Some(t.as_str()))
    }
}

/// Parses a Dockerfile all the way to stages.
pub fn parse_dockerfile(src: &[u8]) -> Result<Dockerfile, ParseError> {
    let parsed = parser::parse(src)?;
    let mut meta_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for n in &parsed.nodes {
        let line = n.start_line;
        let wrap = |m: String| ParseError { line, message: m };
        if n.lower() == "from" {
            stages.push(parse_from(n).map_err(wrap)?);
            continue;
        }
        let inst = parse_instruction(n).map_err(wrap)?;
        let cmd = Command {
            inst,
            code: n.original.trim().to_string(),
            line,
        };
        match stages.last_mut() {
            Some(s) => s.commands.push(cmd),
            None => {
                if matches!(cmd.inst, Instruction::Arg(_)) {
                    meta_args.push(cmd);
                } else {
                    return Err(ParseError {
                        line,
                        message: format!(
                            "no build stage in current context: {} before the first FROM",
                            n.cmd.to_ascii_uppercase()
                        ),
                    });
                }
            }
        }
    }
    if stages.is_empty() {
        return Err(ParseError {
            line: parsed.nodes.last().map(|n| n.start_line).unwrap_or(1),
            message: "no build stage in current context: the Dockerfile has no FROM".into(),
        });
    }
    let mut names: Vec<&str> = Vec::new();
    for s in &stages {
        if let Some(n) = s.name.as_deref() {
            if names.contains(&n) {
                return Err(ParseError {
                    line: s.line,
                    message: format!("{n} stage name already used"),
                });
            }
            names.push(n);
        }
    }
    Ok(Dockerfile {
        meta_args,
        stages,
        escape: parsed.escape,
        warnings: parsed.warnings,
    })
}

/// Builder flags of one instruction (BuildKit's `BFlags`).
struct Flags {
    raw: Vec<String>,
    known: Vec<(&'static str, FlagKind)>,
}

#[derive(Clone, Copy, PartialEq)]
enum FlagKind {
    Bool,
    Str,
    Strs,
}

#[derive(Default)]
struct FlagValues(Vec<(String, String)>);

impl FlagValues {
    fn get(&self, k: &str) -> Option<String> {
        self.0
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    }
    fn all(&self, k: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .collect()
    }
    fn bool(&self, k: &str) -> Option<bool> {
        self.get(k).map(|v| v == "true")
    }
}

impl Flags {
    fn new(n: &Node) -> Flags {
        Flags {
            raw: n.flags.clone(),
            known: Vec::new(),
        }
    }
    fn add(mut self, name: &'static str, k: FlagKind) -> Self {
        self.known.push((name, k));
        self
    }
    fn parse(self) -> Result<FlagValues, String> {
        let mut out = FlagValues::default();
        for a in &self.raw {
            if a == "--" {
                break;
            }
            let Some(body) = a.strip_prefix("--") else {
                return Err(format!("arg should start with -- : {a}"));
            };
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let Some((_, kind)) = self.known.iter().find(|(k, _)| *k == name) else {
                return Err(format!("unknown flag: --{name}"));
            };
            if *kind != FlagKind::Strs && out.0.iter().any(|(n, _)| n == name) {
                return Err(format!("duplicate flag specified: --{name}"));
            }
            let v = match kind {
                FlagKind::Bool => match value {
                    Some("") => return Err(format!("missing a value on flag: --{name}")),
                    None => "true".to_string(),
                    Some(v) => match v.to_ascii_lowercase().as_str() {
                        "true" => "true".into(),
                        "false" => "false".into(),
                        _ => {
                            return Err(format!(
                                "expecting boolean value for flag --{name}, not: {v}"
                            ));
                        }
                    },
                },
                FlagKind::Str | FlagKind::Strs => match value {
                    Some(v) => v.to_string(),
                    None => return Err(format!("missing a value on flag: --{name}")),
                },
            };
            out.0.push((name.to_string(), v));
        }
        Ok(out)
    }
}

fn no_flags(n: &Node) -> Result<(), String> {
    Flags::new(n).parse().map(|_| ())
}

fn at_least_one(c: &str) -> String {
    format!("{c} requires at least one argument")
}

fn exactly_one(c: &str) -> String {
    format!("{c} requires exactly one argument")
}

fn valid_stage_name(s: &str) -> bool {
    let mut it = s.chars();
    matches!(it.next(), Some(c) if c.is_ascii_lowercase())
        && it.all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_' || c == '.'
        })
}

fn parse_from(n: &Node) -> Result<Stage, String> {
    let args = &n.args;
    let name = match args.len() {
        3 if args[1].eq_ignore_ascii_case("as") => {
            let name = args[2].to_ascii_lowercase();
            if !valid_stage_name(&name) {
                return Err(format!(
                    "invalid name for build stage: {:?}, name can't start with a number or contain symbols",
                    args[2]
                ));
            }
            Some(name)
        }
        1 => None,
        _ => return Err("FROM requires either one or three arguments".into()),
    };
    let f = Flags::new(n).add("platform", FlagKind::Str).parse()?;
    Ok(Stage {
        base: args[0].clone(),
        name,
        platform: f.get("platform").filter(|p| !p.is_empty()),
        code: n.original.trim().to_string(),
        line: n.start_line,
        commands: Vec::new(),
    })
}

fn kvps(args: &[String], cmd: &str) -> Result<Vec<(String, String)>, String> {
    if args.is_empty() {
        return Err(at_least_one(cmd));
    }
    if !args.len().is_multiple_of(3) {
        return Err(format!("Bad input to {cmd}, too many arguments"));
    }
    let mut out = Vec::new();
    for c in args.chunks(3) {
        if c[0].is_empty() {
            return Err(format!("{cmd} names can not be blank"));
        }
        out.push((c[0].clone(), c[1].clone()));
    }
    Ok(out)
}

fn cmdline(n: &Node) -> CmdLine {
    let args = if n.args.is_empty() {
        Vec::new()
    } else if n.json {
        n.args.clone()
    } else {
        vec![n.args.join(" ")]
    };
    CmdLine {
        args,
        prepend_shell: !n.json,
        files: n.heredocs.clone(),
    }
}

fn copy_spec(n: &Node, cmd: &str, add: bool) -> Result<CopySpec, String> {
    if n.args.len() < 2 {
        return Err(format!(
            "{cmd} requires at least two arguments, but only one was provided. Destination could not be determined"
        ));
    }
    let mut flags = Flags::new(n)
        .add("chown", FlagKind::Str)
        .add("chmod", FlagKind::Str)
        .add("link", FlagKind::Bool)
        .add("exclude", FlagKind::Strs);
    flags = if add {
        flags
            .add("keep-git-dir", FlagKind::Bool)
            .add("checksum", FlagKind::Str)
            .add("unpack", FlagKind::Bool)
    } else {
        flags
            .add("from", FlagKind::Str)
            .add("parents", FlagKind::Bool)
    };
    let f = flags.parse()?;
    let dest = n.args.last().expect("two args").clone();
    if parser::parse_heredoc(&dest)?.is_some() {
        return Err(format!("{cmd} cannot accept a heredoc as a destination"));
    }
    let mut sources = Vec::new();
    let mut inline = Vec::new();
    for src in &n.args[..n.args.len() - 1] {
        match parser::parse_heredoc(src)? {
            Some(h) => {
                let doc = n.heredocs.iter().find(|d| d.name == h.name);
                let mut data = doc.map(|d| d.content.clone()).unwrap_or_default();
                if h.chomp {
                    data = parser::chomp_heredoc(&data);
                }
                inline.push(InlineSource {
                    name: h.name,
                    data,
                    expand: h.expand,
                });
            }
            None => sources.push(src.clone()),
        }
    }
    Ok(CopySpec {
        sources,
        inline,
        dest,
        from: f.get("from").filter(|s| !s.is_empty()),
        chown: f.get("chown").filter(|s| !s.is_empty()),
        chmod: f.get("chmod").filter(|s| !s.is_empty()),
        link: f.bool("link").unwrap_or(false),
        excludes: f.all("exclude"),
        checksum: f.get("checksum").filter(|s| !s.is_empty()),
        unpack: f.bool("unpack"),
    })
}

/// Go's `time.ParseDuration` for the forms HEALTHCHECK takes (`30s`, `1m30s`, `500ms`, `1.5h`).
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("time: invalid duration {s:?}");
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(format!("time: missing unit in duration {s:?}")),
            u => return Err(format!("time: unknown unit {u:?} in duration {s:?}")),
        };
        total += n * mult;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_secs_f64(total))
}

fn interval(f: &FlagValues, name: &str) -> Result<Duration, String> {
    let Some(v) = f.get(name).filter(|v| !v.is_empty()) else {
        return Ok(Duration::ZERO);
    };
    let d = parse_go_duration(&v)?;
    if !d.is_zero() && d < Duration::from_millis(1) {
        return Err(format!("Interval {name:?} cannot be less than 1ms"));
    }
    Ok(d)
}

/// Parses one non-FROM instruction.
pub fn parse_instruction(n: &Node) -> Result<Instruction, String> {
    let args = &n.args;
    Ok(match n.lower().as_str() {
        "env" => {
            no_flags(n)?;
            Instruction::Env(kvps(args, "ENV")?)
        }
        "maintainer" => {
            if args.len() != 1 {
                return Err(exactly_one("MAINTAINER"));
            }
            no_flags(n)?;
            Instruction::Maintainer(args[0].clone())
        }
        "label" => {
            no_flags(n)?;
            Instruction::Label(kvps(args, "LABEL")?)
        }
        "add" => Instruction::Add(copy_spec(n, "ADD", true)?),
        "copy" => Instruction::Copy(copy_spec(n, "COPY", false)?),
        "onbuild" => {
            if args.is_empty() {
                return Err(at_least_one("ONBUILD"));
            }
            no_flags(n)?;
            let trigger = args[0].trim().to_ascii_uppercase();
            match trigger.as_str() {
                "ONBUILD" => {
                    return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into());
                }
                "MAINTAINER" | "FROM" => {
                    return Err(format!("{trigger} isn't allowed as an ONBUILD trigger"));
                }
                _ => {}
            }
            let orig = n.original.trim_start();
            let mut expr = orig[n.cmd.len()..].trim_start().to_string();
            for h in &n.heredocs {
                expr.push('\n');
                expr.push_str(&h.content);
                expr.push_str(&h.name);
            }
            Instruction::Onbuild(expr)
        }
        "workdir" => {
            if args.len() != 1 {
                return Err(exactly_one("WORKDIR"));
            }
            no_flags(n)?;
            Instruction::Workdir(args[0].clone())
        }
        "run" => {
            let flags: Vec<String> = n.flags.clone();
            Instruction::Run {
                cmd: cmdline(n),
                flags,
            }
        }
        "cmd" => {
            no_flags(n)?;
            Instruction::Cmd(cmdline(n))
        }
        "entrypoint" => {
            no_flags(n)?;
            Instruction::Entrypoint(cmdline(n))
        }
        "healthcheck" => {
            if args.is_empty() {
                return Err(at_least_one("HEALTHCHECK"));
            }
            let typ = args[0].to_ascii_uppercase();
            let rest = &args[1..];
            if typ == "NONE" {
                if !rest.is_empty() {
                    return Err("HEALTHCHECK NONE takes no arguments".into());
                }
                Instruction::Healthcheck(Health {
                    test: vec!["NONE".into()],
                    interval: Duration::ZERO,
                    timeout: Duration::ZERO,
                    start_period: Duration::ZERO,
                    start_interval: Duration::ZERO,
                    retries: 0,
                })
            } else {
                let f = Flags::new(n)
                    .add("interval", FlagKind::Str)
                    .add("timeout", FlagKind::Str)
                    .add("start-period", FlagKind::Str)
                    .add("start-interval", FlagKind::Str)
                    .add("retries", FlagKind::Str)
                    .parse()?;
                if typ != "CMD" {
                    return Err(format!(
                        "Unknown type {:?} in HEALTHCHECK (try CMD)",
                        args[0].to_ascii_uppercase()
                    ));
                }
                let cmd: Vec<String> = if rest.is_empty() {
                    Vec::new()
                } else if n.json {
                    rest.to_vec()
                } else {
                    vec![rest.join(" ")]
                };
                if cmd.is_empty() {
                    return Err("Missing command after HEALTHCHECK CMD".into());
                }
                let mut test = vec![if n.json { "CMD" } else { "CMD-SHELL" }.to_string()];
                test.extend(cmd);
                let retries = match f.get("retries").filter(|v| !v.is_empty()) {
                    Some(v) => {
                        let r: i64 = v.parse().map_err(|_| {
                            format!("strconv.ParseInt: parsing {v:?}: invalid syntax")
                        })?;
                        if r < 0 {
                            return Err(format!("--retries cannot be negative ({r})"));
                        }
                        r
                    }
                    None => 0,
                };
                Instruction::Healthcheck(Health {
                    test,
                    interval: interval(&f, "interval")?,
                    timeout: interval(&f, "timeout")?,
                    start_period: interval(&f, "start-period")?,
                    start_interval: interval(&f, "start-interval")?,
                    retries,
                })
            }
        }
        "expose" => {
            if args.is_empty() {
                return Err(at_least_one("EXPOSE"));
            }
            no_flags(n)?;
            let mut p = args.clone();
            p.sort();
            Instruction::Expose(p)
        }
        "user" => {
            if args.len() != 1 {
                return Err(exactly_one("USER"));
            }
            no_flags(n)?;
            Instruction::User(args[0].clone())
        }
        "volume" => {
            if args.is_empty() {
                return Err(at_least_one("VOLUME"));
            }
            no_flags(n)?;
            let mut v = Vec::new();
            for a in args {
                let a = a.trim();
                if a.is_empty() {
                    return Err("VOLUME specified can not be an empty string".into());
                }
                v.push(a.to_string());
            }
            Instruction::Volume(v)
        }
        "stopsignal" => {
            if args.len() != 1 {
                return Err(exactly_one("STOPSIGNAL"));
            }
            Instruction::StopSignal(args[0].clone())
        }
        "arg" => {
            if args.is_empty() {
                return Err(at_least_one("ARG"));
            }
            let mut out = Vec::new();
            for a in args {
                match a.split_once('=') {
                    Some((k, v)) => {
                        if k.is_empty() {
                            return Err("ARG names can not be blank".into());
                        }
                        out.push((k.to_string(), Some(v.to_string())));
                    }
                    None => out.push((a.clone(), None)),
                }
            }
            Instruction::Arg(out)
        }
        "shell" => {
            no_flags(n)?;
            if args.is_empty() {
                return Err(at_least_one("SHELL"));
            }
            if !n.json {
                return Err("SHELL requires the arguments to be in JSON form".into());
            }
            Instruction::Shell(args.clone())
        }
        "from" => return Err("FROM is not a command".into()),
        _ => return Err(format!("unknown instruction: {}", n.cmd)),
    })
}

impl Instruction {
    /// Whether the instruction is allowed in ONBUILD triggers and `commit --change`.
    pub fn name(&self) -> &'static str {
        match self {
            Instruction::Env(_) => "ENV",
            Instruction::Maintainer(_) => "MAINTAINER",
            Instruction::Label(_) => "LABEL",
            Instruction::Add(_) => "ADD",
            Instruction::Copy(_) => "COPY",
            Instruction::Onbuild(_) => "ONBUILD",
            Instruction::Workdir(_) => "WORKDIR",
            Instruction::Run { .. } => "RUN",
            Instruction::Cmd(_) => "CMD",
            Instruction::Entrypoint(_) => "ENTRYPOINT",
            Instruction::Healthcheck(_) => "HEALTHCHECK",
            Instruction::Expose(_) => "EXPOSE",
            Instruction::User(_) => "USER",
            Instruction::Volume(_) => "VOLUME",
            Instruction::StopSignal(_) => "STOPSIGNAL",
            Instruction::Arg(_) => "ARG",
            Instruction::Shell(_) => "SHELL",
        }
    }
}

/// Parses one ONBUILD trigger expression into a command.
pub fn parse_trigger(expr: &str) -> Result<Command, ParseError> {
    let parsed = parser::parse(expr.as_bytes())?;
    if parsed.nodes.len() != 1 {
        return Err(ParseError {
            line: 1,
            message: "onbuild trigger should be a single expression".into(),
        });
    }
    let n = &parsed.nodes[0];
    let inst = parse_instruction(n).map_err(|m| ParseError {
        line: 1,
        message: m,
    })?;
    Ok(Command {
        inst,
        code: n.original.trim().to_string(),
        line: 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn df(s: &str) -> Dockerfile {
        parse_dockerfile(s.as_bytes()).unwrap()
    }

    fn err(s: &str) -> ParseError {
        parse_dockerfile(s.as_bytes()).unwrap_err()
    }

    #[test]
    fn stages_and_meta_args() {
        let d = df(
            "ARG V=1\nFROM busybox:${V} AS Build\nRUN x\nFROM scratch\nCOPY --from=build /a /b\n",
        );
        assert_eq!(d.meta_args.len(), 1);
        assert_eq!(d.stages.len(), 2);
        assert_eq!(d.stages[0].name.as_deref(), Some("build"));
        assert_eq!(d.stage_index("BUILD"), Some(0));
        match &d.stages[1].commands[0].inst {
            Instruction::Copy(c) => {
                assert_eq!(c.from.as_deref(), Some("build"));
                assert_eq!(c.sources, vec!["/a"]);
                assert_eq!(c.dest, "/b");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_name_line_and_cause() {
        let e = err("FROM a\nRUN x\nFOO bar\n");
        assert_eq!(e.line, 3);
        assert_eq!(
            e.to_string(),
            "dockerfile parse error on line 3: unknown instruction: FOO"
        );
        let e = err("RUN x\n");
        assert_eq!(e.line, 1);
        assert!(e.message.contains("no build stage"));
        assert!(
            err("FROM a\nCOPY x\n")
                .message
                .contains("at least two arguments")
        );
        assert!(err("FROM a b\n").message.contains("one or three"));
        assert!(err("FROM a AS 1x\n").message.contains("invalid name"));
        assert!(
            err("FROM a AS x\nFROM b AS x\n")
                .message
                .contains("already used")
        );
        assert!(err("FROM a\nSHELL sh -c\n").message.contains("JSON form"));
        assert!(
            err("FROM a\nCOPY --nope=1 a b\n")
                .message
                .contains("unknown flag")
        );
        assert!(
            err("FROM a\nONBUILD FROM x\n")
                .message
                .contains("isn't allowed")
        );
        assert!(
            err("FROM a\nHEALTHCHECK NONE x\n")
                .message
                .contains("no arguments")
        );
        assert!(
            err("FROM a\nHEALTHCHECK --retries=-1 CMD x\n")
                .message
                .contains("negative")
        );
        assert!(err("FROM a\nWORKDIR\n").message.contains("exactly one"));
    }

    #[test]
    fn healthcheck_forms() {
        let d = df(
            "FROM a\nHEALTHCHECK --interval=5s --timeout=1m30s --retries=3 CMD curl -f x\nHEALTHCHECK CMD [\"a\",\"b\"]\nHEALTHCHECK NONE\n",
        );
        let c = &d.stages[0].commands;
        let Instruction::Healthcheck(h) = &c[0].inst else {
            panic!()
        };
        assert_eq!(h.test, vec!["CMD-SHELL", "curl -f x"]);
        assert_eq!(h.interval, Duration::from_secs(5));
        assert_eq!(h.timeout, Duration::from_secs(90));
        assert_eq!(h.retries, 3);
        let Instruction::Healthcheck(h) = &c[1].inst else {
            panic!()
        };
        assert_eq!(h.test, vec!["CMD", "a", "b"]);
        let Instruction::Healthcheck(h) = &c[2].inst else {
            panic!()
        };
        assert_eq!(h.test, vec!["NONE"]);
    }

    #[test]
    fn copy_heredoc_sources_and_flags() {
        let d = df("FROM a\nCOPY --chown=1:2 --chmod=600 <<EOF a* /dst/\nhello\nEOF\n");
        let Instruction::Copy(c) = &d.stages[0].commands[0].inst else {
            panic!()
        };
        assert_eq!(c.sources, vec!["a*"]);
        assert_eq!(c.inline[0].data, "hello\n");
        assert_eq!(c.chown.as_deref(), Some("1:2"));
        assert_eq!(c.chmod.as_deref(), Some("600"));
    }

    #[test]
    fn run_and_cmd_forms() {
        let d = df(
            "FROM a\nRUN echo a b\nCMD [\"x\"]\nENTRYPOINT top -b\nONBUILD RUN echo hi\nARG A B=2\n",
        );
        let c = &d.stages[0].commands;
        let Instruction::Run { cmd, .. } = &c[0].inst else {
            panic!()
        };
        assert_eq!(cmd.args, vec!["echo a b"]);
        assert!(cmd.prepend_shell);
        let Instruction::Cmd(cmd) = &c[1].inst else {
            panic!()
        };
        assert!(!cmd.prepend_shell);
        let Instruction::Onbuild(e) = &c[3].inst else {
            panic!()
        };
        assert_eq!(e, "RUN echo hi");
        let t = parse_trigger(e).unwrap();
        assert!(matches!(t.inst, Instruction::Run { .. }));
        assert_eq!(
            c[4].inst,
            Instruction::Arg(vec![("A".into(), None), ("B".into(), Some("2".into()))])
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_go_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(
            parse_go_duration("250ms").unwrap(),
            Duration::from_millis(250)
        );
        assert!(parse_go_duration("5").is_err());
        assert!(parse_go_duration("x").is_err());
    }
}
