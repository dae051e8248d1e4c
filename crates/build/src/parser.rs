//! The Dockerfile parser: bytes → one [`Node`] per instruction, with docker's grammar (BuildKit's
//! `frontend/dockerfile/parser`): parser directives (`# syntax=`, `# escape=`, `# check=`),
//! comments, line continuations (also across comment lines), heredocs (`<<EOF`, `<<-EOF`,
//! quoted terminators), the JSON exec form, builder flags (`--from=…`) and each instruction's
//! argument rules (name=value pairs, whitespace lists, ONBUILD's sub-instruction).

use std::fmt;

use crate::shell::{Lex, NoEnv};

/// One inline document of a RUN/COPY/ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    pub name: String,
    pub file_descriptor: u32,
    /// Expand variables in the content (the terminator word was not quoted).
    pub expand: bool,
    /// `<<-`: leading tabs are stripped.
    pub chomp: bool,
    pub content: String,
}

/// One parsed instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The instruction word as written (`RUN`, `run`…).
    pub cmd: String,
    /// Builder flags (`--from=build`), as written.
    pub flags: Vec<String>,
    /// Arguments by the instruction's rules (BuildKit's `nodeArgs`).
    pub args: Vec<String>,
    /// The exec (JSON array) form was used.
    pub json: bool,
    /// The whole instruction text (continuations joined).
    pub original: String,
    pub heredocs: Vec<Heredoc>,
    /// ONBUILD's trigger instruction.
    pub sub: Option<Box<Node>>,
    /// 1-based lines where the instruction starts and ends.
    pub start_line: usize,
    pub end_line: usize,
}

impl Node {
    pub fn lower(&self) -> String {
        self.cmd.to_ascii_lowercase()
    }
}

/// A parse failure, with the line it happened on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "dockerfile parse error on line {}: {}",
            self.line, self.message
        )
    }
}

impl std::error::Error for ParseError {}

fn perr(line: usize, m: impl Into<String>) -> ParseError {
    ParseError {
        line,
        message: m.into(),
    }
}

/// A parsed Dockerfile.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub nodes: Vec<Node>,
    pub escape: char,
    pub syntax: Option<String>,
    pub warnings: Vec<String>,
}

const DIRECTIVES: [&str; 3] = ["syntax", "escape", "check"];

#[derive(Default)]
struct DirectiveParser {
    done: bool,
    seen: Vec<String>,
}

impl DirectiveParser {
    /// `Some((name, value))` for a directive line; `Err` for a repeated one.
    fn parse_line(&mut self, line: &str) -> Result<Option<(String, String)>, String> {
        if self.done {
            return Ok(None);
        }
        let Some(rest) = line.strip_prefix('#') else {
            self.done = true;
            return Ok(None);
        };
        let rest = rest.trim_start();
        // ^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$
        let name_len = rest
            .char_indices()
            .take_while(|(i, c)| {
                if *i == 0 {
                    c.is_ascii_alphabetic()
                } else {
                    c.is_ascii_alphanumeric()
                }
            })
            .count();
        let parsed = (name_len > 0)
            .then(|| {
                let (name, after) = rest.split_at(name_len);
                let after = after.trim_start().strip_prefix('=')?;
                let value = after.trim();
                (!value.is_empty()).then(|| (name.to_ascii_lowercase(), value.to_string()))
            })
            .flatten();
        let Some((k, v)) = parsed else {
            self.done = true;
            return Ok(None);
        };
        if !DIRECTIVES.contains(&k.as_str()) {
            self.done = true;
            return Ok(None);
        }
        if self.seen.contains(&k) {
            return Err(format!("only one {k} parser directive can be used"));
        }
        self.seen.push(k.clone());
        Ok(Some((k, v)))
    }
}

struct State {
    escape: char,
    directives: DirectiveParser,
    syntax: Option<String>,
}

impl State {
    /// Handles a possible directive; true if the line was one.
    fn directive(&mut self, line: &str) -> Result<bool, String> {
        match self.directives.parse_line(line)? {
            Some((k, v)) => {
                if k == "escape" {
                    if v != "`" && v != "\\" {
                        return Err(format!("invalid escape token '{v}' does not match ` or \\"));
                    }
                    self.escape = v.chars().next().expect("one char");
                } else if k == "syntax" {
                    self.syntax = Some(v);
                }
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// docker's line-continuation rule: a trailing escape token (not itself escaped by a
    /// preceding one, and possibly followed by blanks) continues the line.
    fn trim_continuation<'a>(&self, line: &'a str) -> (&'a str, bool) {
        let t = line.trim_end_matches([' ', '\t']);
        if let Some(before) = t.strip_suffix(self.escape) {
            // `([^\\])\\[ \t]*$` or `^\\[ \t]*$`
            if before.is_empty() || !before.ends_with(self.escape) {
                return (before, false);
            }
        }
        (line, true)
    }
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

fn is_blank(s: &str) -> bool {
    trim_newline(s).trim_start().is_empty()
}

/// Splits into lines, keeping the line endings (BuildKit's `scanLines`).
fn lines(src: &str) -> Vec<&str> {
    src.split_inclusive('\n').collect()
}

/// Parses a whole Dockerfile.
pub fn parse(src: &[u8]) -> Result<Parsed, ParseError> {
    let src = src.strip_prefix(&[0xEF, 0xBB, 0xBF][..]).unwrap_or(src);
    let text = String::from_utf8_lossy(src);
    let all = lines(&text);
    let mut st = State {
        escape: '\\',
        directives: DirectiveParser::default(),
        syntax: None,
    };
    let mut nodes = Vec::new();
    let mut warnings = Vec::new();
    let mut i = 0;
    let mut current_line = 0;
    while i < all.len() {
        let raw = all[i];
        i += 1;
        let line = trim_newline(raw).trim_start();
        st.directive(line).map_err(|e| perr(current_line, e))?;
        current_line += 1;
        let start_line = current_line;
        let line = if is_comment(line) { "" } else { line };
        let (first, mut end) = st.trim_continuation(line);
        if end && first.is_empty() {
            continue;
        }
        let mut buf = first.to_string();
        let mut empty_continuation = false;
        while !end && i < all.len() {
            let raw = all[i];
            i += 1;
            let l = trim_newline(raw);
            st.directive(l).map_err(|e| perr(current_line, e))?;
            current_line += 1;
            if is_comment(raw) {
                continue;
            }
            if is_blank(l) {
                empty_continuation = true;
                continue;
            }
            let (t, e) = st.trim_continuation(l);
            buf.push_str(t);
            end = e;
        }
        if empty_continuation {
            warnings.push(format!("Empty continuation line found in: {buf}"));
        }
        let mut node = node_from_line(&buf, st.escape).map_err(|e| perr(start_line, e))?;
        if can_contain_heredoc(&node) && buf.contains("<<") {
            let docs = heredocs_from_line(&buf).map_err(|e| perr(start_line, e))?;
            for mut doc in docs {
                let mut content = String::new();
                let mut terminated = false;
                while i < all.len() {
                    let raw = all[i];
                    i += 1;
                    current_line += 1;
                    let mut possible = trim_newline(raw);
                    if doc.chomp {
                        possible = possible.trim_start_matches('\t');
                    }
                    if possible == doc.name {
                        terminated = true;
                        break;
                    }
                    content.push_str(raw);
                }
                if !terminated {
                    return Err(perr(start_line, "unterminated heredoc"));
                }
                doc.content = content;
                let is_onbuild = node.lower() == "onbuild";
                if let Some(sub) = node.sub.as_mut().filter(|_| is_onbuild) {
                    sub.heredocs.push(doc.clone());
                }
                node.heredocs.push(doc);
            }
        }
        node.start_line = start_line;
        node.end_line = current_line;
        if let Some(sub) = node.sub.as_mut() {
            sub.start_line = start_line;
            sub.end_line = current_line;
        }
        nodes.push(node);
    }
    if nodes.is_empty() {
        return Err(perr(current_line, "file with no instructions"));
    }
    Ok(Parsed {
        nodes,
        escape: st.escape,
        syntax: st.syntax,
        warnings,
    })
}

fn can_contain_heredoc(node: &Node) -> bool {
    let n = match (&node.sub, node.lower().as_str()) {
        (Some(sub), "onbuild") => sub,
        _ => node,
    };
    matches!(n.lower().as_str(), "add" | "copy" | "run") && !n.json
}

fn is_ws(c: char) -> bool {
    matches!(c, '\t' | '\x0b' | '\x0c' | '\r' | ' ')
}

/// Splits `KEY rest` on the first run of whitespace (`[\t\v\f\r ]+`).
fn split_ws2(s: &str) -> (&str, &str) {
    match s.find(is_ws) {
        Some(i) => (&s[..i], s[i..].trim_start_matches(is_ws)),
        None => (s, ""),
    }
}

fn split_ws_all(s: &str) -> Vec<String> {
    s.split(is_ws).map(str::to_string).collect()
}

/// Parses one instruction line into a node (without heredoc bodies).
pub fn node_from_line(line: &str, escape: char) -> Result<Node, String> {
    let (cmd, rest) = split_ws2(line.trim());
    let (args_str, flags) = if rest.is_empty() {
        (String::new(), Vec::new())
    } else {
        extract_builder_flags(rest, escape)
    };
    let args_str = args_str.trim().to_string();
    let mut node = Node {
        cmd: cmd.to_string(),
        flags,
        args: Vec::new(),
        json: false,
        original: line.to_string(),
        heredocs: Vec::new(),
        sub: None,
        start_line: 0,
        end_line: 0,
    };
    let rest = args_str.as_str();
    match cmd.to_ascii_lowercase().as_str() {
        "add" | "copy" | "volume" => match parse_json(rest)? {
            Some(a) => {
                node.args = a;
                node.json = true;
            }
            None => node.args = whitespace_list(rest),
        },
        "cmd" | "entrypoint" | "run" | "shell" if !rest.is_empty() => match parse_json(rest)? {
            Some(a) => {
                node.args = a;
                node.json = true;
            }
            None => node.args = vec![rest.to_string()],
        },
        "arg" => node.args = parse_words(rest, escape),
        "env" => node.args = parse_name_val(rest, "ENV", escape)?,
        "label" => node.args = parse_name_val(rest, "LABEL", escape)?,
        "expose" | "from" => node.args = whitespace_list(rest),
        "maintainer" | "stopsignal" | "user" | "workdir" if !rest.is_empty() => {
            node.args = vec![rest.to_string()];
        }
        "healthcheck" => {
            let (typ, after) = match rest.find(char::is_whitespace) {
                Some(i) => (&rest[..i], rest[i..].trim_start()),
                None => (rest, ""),
            };
            if !typ.is_empty() {
                node.args.push(typ.to_string());
                if !after.is_empty() {
                    match parse_json(after)? {
                        Some(a) => {
                            node.args.extend(a);
                            node.json = true;
                        }
                        None => node.args.push(after.to_string()),
                    }
                }
            }
        }
        "onbuild" if !rest.is_empty() => {
            let child = node_from_line(rest, escape)?;
            node.args.push(child.cmd.clone());
            node.args.extend(child.args.iter().cloned());
            node.sub = Some(Box::new(child));
        }
        _ => {}
    }
    Ok(node)
}

fn whitespace_list(rest: &str) -> Vec<String> {
    if rest.is_empty() {
        return Vec::new();
    }
    split_ws_all(rest)
}

const NOT_STRING_ARRAY: &str =
    "when using JSON array syntax, arrays must be comprised of strings only";

/// `Ok(None)`: not a JSON array (the shell form). An array with non-strings is an error.
fn parse_json(rest: &str) -> Result<Option<Vec<String>>, String> {
    let rest = rest.trim_start();
    if !rest.starts_with('[') {
        return Ok(None);
    }
    let v: Vec<serde_json::Value> = match serde_json::from_str(rest) {
        Ok(v) => v,
        Err(_) => return Ok(None),
    };
    let mut out = Vec::with_capacity(v.len());
    for x in v {
        match x {
            serde_json::Value::String(s) => out.push(s),
            _ => return Err(NOT_STRING_ARRAY.to_string()),
        }
    }
    Ok(Some(out))
}

/// Words with their quotes kept (BuildKit's `parseWords`); quotes go at expansion time.
pub fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut buf = String::new();
    let mut pos = 0;
    loop {
        let at_end = pos >= chars.len();
        let ch = chars.get(pos).copied().unwrap_or('\0');
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if ch.is_whitespace() {
                pos += 1;
                continue;
            }
            phase = Phase::Word;
        }
        if at_end {
            if blank_ok || !buf.is_empty() {
                words.push(std::mem::take(&mut buf));
            }
            break;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if blank_ok || !buf.is_empty() {
                    words.push(std::mem::take(&mut buf));
                }
                buf.clear();
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if ch == escape {
                if pos + 1 == chars.len() {
                    pos += 1;
                    continue;
                }
                buf.push(ch);
                pos += 1;
                buf.push(chars[pos]);
                pos += 1;
                continue;
            }
            buf.push(ch);
            pos += 1;
            continue;
        }
        // In quotes.
        if ch == quote {
            phase = Phase::Word;
        }
        if ch == escape && quote != '\'' {
            if pos + 1 == chars.len() {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            buf.push(ch);
            pos += 1;
            buf.push(chars[pos]);
            pos += 1;
            continue;
        }
        buf.push(ch);
        pos += 1;
    }
    words
}

/// ENV/LABEL: `KEY value` (old form) or `K1=v1 K2=v2`; flattened as (key, value, sep) triples.
fn parse_name_val(rest: &str, key: &str, escape: char) -> Result<Vec<String>, String> {
    let words = parse_words(rest, escape);
    if words.is_empty() {
        return Ok(Vec::new());
    }
    if !words[0].contains('=') {
        let (k, v) = split_ws2(rest);
        if v.is_empty() {
            return Err(format!("{key} must have two arguments"));
        }
        return Ok(vec![k.to_string(), v.to_string(), String::new()]);
    }
    let mut out = Vec::new();
    for w in words {
        let Some((k, v)) = w.split_once('=') else {
            return Err(format!(
                "Syntax error - can't find = in {w:?}. Must be of the form: name=value"
            ));
        };
        out.push(k.to_string());
        out.push(v.to_string());
        out.push("=".to_string());
    }
    Ok(out)
}

/// Takes leading `--flag[=value]` words off the arguments (BuildKit's `extractBuilderFlags`).
fn extract_builder_flags(line: &str, escape: char) -> (String, Vec<String>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let b: Vec<char> = line.chars().collect();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut buf = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut pos = 0;
    let rest_from = |pos: usize| b[pos..].iter().collect::<String>();
    while pos <= b.len() {
        let at_end = pos == b.len();
        let ch = b.get(pos).copied().unwrap_or('\0');
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if ch.is_whitespace() {
                pos += 1;
                continue;
            }
            if ch != '-' || pos + 1 == b.len() || b[pos + 1] != '-' {
                return (rest_from(pos), words);
            }
            phase = Phase::Word;
        }
        if at_end {
            if buf != "--" && (blank_ok || !buf.is_empty()) {
                words.push(buf.clone());
            }
            break;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if buf == "--" {
                    return (rest_from(pos), words);
                }
                if blank_ok || !buf.is_empty() {
                    words.push(std::mem::take(&mut buf));
                }
                buf.clear();
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                pos += 1;
                continue;
            }
            let mut c = ch;
            if ch == escape {
                if pos + 1 == b.len() {
                    pos += 1;
                    continue;
                }
                pos += 1;
                c = b[pos];
            }
            buf.push(c);
            pos += 1;
            continue;
        }
        // Quote.
        if ch == quote {
            phase = Phase::Word;
            pos += 1;
            continue;
        }
        let mut c = ch;
        if ch == escape {
            if pos + 1 == b.len() {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            c = b[pos];
        }
        buf.push(c);
        pos += 1;
    }
    (String::new(), words)
}

/// Parses a heredoc word (`<<EOF`, `<<-"EOF"`, `3<<EOF`); None if `src` is not one.
pub fn parse_heredoc(src: &str) -> Result<Option<Heredoc>, String> {
    // ^(\d*)<<(-?)\s*([^<]*)$
    let digits = src.chars().take_while(char::is_ascii_digit).count();
    let Some(after) = src[digits..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, after) = match after.strip_prefix('-') {
        Some(a) => (true, a),
        None => (false, after),
    };
    let rest = after.trim_start();
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    let fd: u32 = src[..digits].parse().unwrap_or(0);
    let mut lex = Lex::new('\\');
    lex.skip_unset_env = true;
    let words = lex.process_words(rest, &NoEnv).map_err(|e| e.to_string())?;
    if words.len() != 1 {
        return Ok(None);
    }
    lex.raw_quotes = true;
    let raw = lex.process_words(rest, &NoEnv).map_err(|e| e.to_string())?;
    if raw.len() != words.len() {
        return Err(format!(
            "internal lexing of heredoc produced inconsistent results: {rest}"
        ));
    }
    let count = |w: &str| w.matches(['\'', '"']).count();
    let word = words[0].clone();
    Ok(Some(Heredoc {
        expand: count(&word) == count(&raw[0]),
        name: word,
        chomp,
        file_descriptor: fd,
        content: String::new(),
    }))
}

fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, String> {
    let mut lex = Lex::new('\\');
    lex.raw_quotes = true;
    lex.raw_escapes = true;
    lex.skip_unset_env = true;
    let words = lex.process_words(line, &NoEnv).unwrap_or_default();
    let mut out = Vec::new();
    for w in words {
        if let Some(h) = parse_heredoc(&w)? {
            out.push(h);
        }
    }
    Ok(out)
}

/// `<<-` content: leading tabs removed from every line.
pub fn chomp_heredoc(content: &str) -> String {
    content
        .split_inclusive('\n')
        .map(|l| l.trim_start_matches('\t'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Vec<Node> {
        parse(s.as_bytes()).unwrap().nodes
    }

    #[test]
    fn continuations_comments_and_lines() {
        let n = p("FROM busybox\n# c\nRUN echo a \\\n  # inside\n  b \\\n\n  c\nENV A=1\n");
        assert_eq!(n.len(), 3);
        assert_eq!(n[1].args, vec!["echo a   b   c"]);
        assert_eq!((n[1].start_line, n[1].end_line), (3, 7));
        assert_eq!(n[2].start_line, 8);
        // A continuation at end of file still ends the instruction.
        let n = p("FROM a\nRUN echo \\");
        assert_eq!(n[1].args, vec!["echo"]);
    }

    #[test]
    fn escaped_escape_is_not_a_continuation() {
        let n = p("FROM a\nRUN echo \\\\\nRUN x\n");
        assert_eq!(n.len(), 3);
        assert_eq!(n[1].args, vec!["echo \\\\"]);
    }

    #[test]
    fn escape_directive() {
        let r = parse(b"# escape=`\nFROM a\nRUN dir c:\\ `\n  /w\n").unwrap();
        assert_eq!(r.escape, '`');
        assert_eq!(r.nodes[1].args, vec!["dir c:\\   /w"]);
        // Directives after an instruction or a plain comment are plain comments.
        let r = parse(b"# hello\n# escape=`\nFROM a\nRUN a `\n").unwrap();
        assert_eq!(r.escape, '\\');
        assert!(parse(b"# escape=x\nFROM a\n").is_err());
        let e = parse(b"# escape=`\n# escape=\\\nFROM a\n").unwrap_err();
        assert!(e.message.contains("only one escape parser directive"));
        let r = parse(b"# syntax=docker/dockerfile:1\nFROM a\n").unwrap();
        assert_eq!(r.syntax.as_deref(), Some("docker/dockerfile:1"));
    }

    #[test]
    fn json_and_shell_forms() {
        let n = p("FROM a\nCMD [\"echo\", \"hi\"]\nCMD echo hi\nCMD [\"bad\"\nENTRYPOINT []\n");
        assert!(n[1].json);
        assert_eq!(n[1].args, vec!["echo", "hi"]);
        assert!(!n[2].json);
        assert_eq!(n[2].args, vec!["echo hi"]);
        assert!(!n[3].json, "unterminated JSON is the shell form");
        assert!(n[4].json && n[4].args.is_empty());
        let e = parse(b"FROM a\nCMD [\"a\", 1]\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("strings only"));
    }

    #[test]
    fn env_and_label_forms() {
        let n = p("FROM a\nENV A B C\nENV X=1 Y=\"a b\" Z=\nLABEL \"k\"=v\n");
        assert_eq!(n[1].args, vec!["A", "B C", ""]);
        assert_eq!(
            n[2].args,
            vec!["X", "1", "=", "Y", "\"a b\"", "=", "Z", "", "="]
        );
        assert_eq!(n[3].args, vec!["\"k\"", "v", "="]);
        assert!(parse(b"FROM a\nENV A\n").is_err());
        assert!(parse(b"FROM a\nENV A=1 B\n").is_err());
    }

    #[test]
    fn flags() {
        let n = p("FROM --platform=linux/amd64 a AS b\nCOPY --from=b --chown=1:2 x y\n");
        assert_eq!(n[0].flags, vec!["--platform=linux/amd64"]);
        assert_eq!(n[0].args, vec!["a", "AS", "b"]);
        assert_eq!(n[1].flags, vec!["--from=b", "--chown=1:2"]);
        assert_eq!(n[1].args, vec!["x", "y"]);
    }

    #[test]
    fn heredocs() {
        let n = p(
            "FROM a\nRUN <<EOF\necho hi\nEOF\nCOPY <<-\"A\" <<B /x/\n\ta $X\n\tA\nb\nB\nRUN echo\n",
        );
        assert_eq!(n.len(), 4);
        assert_eq!(n[1].heredocs[0].name, "EOF");
        assert_eq!(n[1].heredocs[0].content, "echo hi\n");
        assert!(n[1].heredocs[0].expand);
        assert_eq!(n[2].heredocs.len(), 2);
        assert!(n[2].heredocs[0].chomp && !n[2].heredocs[0].expand);
        assert_eq!(n[2].heredocs[0].content, "\ta $X\n");
        assert_eq!(n[2].heredocs[1].content, "b\n");
        assert_eq!(n[3].start_line, 10);
        assert!(parse(b"FROM a\nRUN <<EOF\nx\n").is_err());
        // JSON form and other instructions take no heredocs.
        let n = p("FROM a\nRUN [\"echo\", \"<<EOF\"]\nLABEL a=<<EOF\n");
        assert!(n[1].heredocs.is_empty() && n[2].heredocs.is_empty());
        assert_eq!(chomp_heredoc("\t\ta\n\tb\n"), "a\nb\n");
    }

    #[test]
    fn onbuild_subcommand() {
        let n = p("FROM a\nONBUILD RUN echo hi\n");
        assert_eq!(n[1].args, vec!["RUN", "echo hi"]);
        assert_eq!(n[1].sub.as_ref().unwrap().cmd, "RUN");
    }

    #[test]
    fn words() {
        assert_eq!(
            parse_words("a 'b c' d\\ e", '\\'),
            vec!["a", "'b c'", "d\\ e"]
        );
        assert_eq!(parse_words("A=\"\" B", '\\'), vec!["A=\"\"", "B"]);
    }

    #[test]
    fn empty_file() {
        assert_eq!(
            parse(b"# only a comment\n\n").unwrap_err().message,
            "file with no instructions"
        );
    }

    #[test]
    fn buildkit_testfile_docker() {
        // From BuildKit's parser testfiles: a continued RUN with blank continuation lines.
        let src = "FROM ubuntu:14.04\nRUN apt-get update && apt-get install -y \\\n\tapt-utils \\\n\n\taufs-tools\nENV PATH /usr/local/go/bin:$PATH\n";
        let n = p(src);
        assert_eq!(
            n[1].args,
            vec!["apt-get update && apt-get install -y \tapt-utils \taufs-tools"]
        );
        assert_eq!(n[2].args, vec!["PATH", "/usr/local/go/bin:$PATH", ""]);
    }
}
