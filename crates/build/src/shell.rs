//! Docker's shell-word processing for Dockerfiles (BuildKit's `shell.Lex`): quotes, escapes and
//! `$var`, `${var}`, `${var:-d}`, `${var:+a}`, `${var?m}`, `${var#p}`, `${var%p}`,
//! `${var/p/r}` substitution, with or without splitting into words.
//!
//! Variables are looked up in an [`Env`]; unset ones expand to nothing (or stay as written with
//! `skip_unset_env`, which heredoc detection uses).

/// Where `$NAME` is looked up.
pub trait Env {
    fn get(&self, name: &str) -> Option<String>;
}

/// `KEY=VALUE` strings, the last one of a key winning (docker's `EnvsFromSlice`).
impl Env for [String] {
    fn get(&self, name: &str) -> Option<String> {
        self.iter().rev().find_map(|e| {
            let (k, v) = e.split_once('=').unwrap_or((e.as_str(), ""));
            (k == name).then(|| v.to_string())
        })
    }
}

impl Env for Vec<String> {
    fn get(&self, name: &str) -> Option<String> {
        Env::get(self.as_slice(), name)
    }
}

impl Env for std::collections::BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        std::collections::BTreeMap::get(self, name).cloned()
    }
}

/// No variables at all.
pub struct NoEnv;
impl Env for NoEnv {
    fn get(&self, _: &str) -> Option<String> {
        None
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexError(pub String);

impl std::fmt::Display for LexError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LexError {}

fn err(m: impl Into<String>) -> LexError {
    LexError(m.into())
}

/// The lexer's options (BuildKit's `Lex`).
#[derive(Debug, Clone)]
pub struct Lex {
    pub escape: char,
    /// Keep quote characters in the output.
    pub raw_quotes: bool,
    /// Keep escape characters in the output.
    pub raw_escapes: bool,
    /// Leave `$X` as written when X is unset.
    pub skip_unset_env: bool,
}

impl Lex {
    pub fn new(escape: char) -> Lex {
        Lex {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_unset_env: false,
        }
    }

    /// Expands `word` into one string (spaces kept).
    pub fn process_word(&self, word: &str, env: &dyn Env) -> Result<String, LexError> {
        self.process(word, env).map(|(w, _)| w)
    }

    /// Expands `word` and splits the result into words, as the shell would.
    pub fn process_words(&self, word: &str, env: &dyn Env) -> Result<Vec<String>, LexError> {
        self.process(word, env).map(|(_, ws)| ws)
    }

    fn process(&self, word: &str, env: &dyn Env) -> Result<(String, Vec<String>), LexError> {
        let mut sw = ShellWord {
            lex: self,
            chars: word.chars().collect(),
            pos: 0,
            env,
            raw_escapes: self.raw_escapes,
        };
        sw.process_stop_on(None, self.raw_escapes)
            .map_err(|e| err(format!("failed to process {word:?}: {e}")))
    }
}

struct ShellWord<'a> {
    lex: &'a Lex,
    chars: Vec<char>,
    pos: usize,
    env: &'a dyn Env,
    raw_escapes: bool,
}

#[derive(Default)]
struct Words {
    buf: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() && self.in_word {
            if !self.buf.is_empty() {
                self.words.push(std::mem::take(&mut self.buf));
                self.in_word = false;
            }
        } else if !ch.is_whitespace() {
            self.add_raw_char(ch);
        }
    }
    fn add_raw_char(&mut self, ch: char) {
        self.buf.push(ch);
        self.in_word = true;
    }
    fn add_string(&mut self, s: &str) {
        for ch in s.chars() {
            self.add_char(ch);
        }
    }
    fn add_raw_string(&mut self, s: &str) {
        self.buf.push_str(s);
        self.in_word = true;
    }
    fn get_words(mut self) -> Vec<String> {
        if !self.buf.is_empty() {
            self.words.push(std::mem::take(&mut self.buf));
        }
        self.words
    }
}

impl ShellWord<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn next(&mut self) -> Option<char> {
        let c = self.chars.get(self.pos).copied();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), LexError> {
        let saved = self.raw_escapes;
        self.raw_escapes = raw_escapes;
        let r = self.process_stop_on_inner(stop);
        self.raw_escapes = saved;
        r
    }

    fn process_stop_on_inner(
        &mut self,
        stop: Option<char>,
    ) -> Result<(String, Vec<String>), LexError> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if stop == Some(ch) {
                self.next();
                return Ok((result, words.get_words()));
            }
            let special = match ch {
                '$' => Some(self.process_dollar()?),
                '<' => Some(self.process_possible_heredoc()),
                '\'' => Some(self.process_single_quote()?),
                '"' => Some(self.process_double_quote()?),
                _ => None,
            };
            if let Some(tmp) = special {
                result.push_str(&tmp);
                if ch == '$' {
                    words.add_string(&tmp);
                } else {
                    words.add_raw_string(&tmp);
                }
                continue;
            }
            let mut ch = self.next().expect("peeked");
            if ch == self.lex.escape {
                if self.raw_escapes {
                    words.add_raw_char(ch);
                    result.push(ch);
                }
                match self.next() {
                    None => break,
                    Some(c) => ch = c,
                }
                words.add_raw_char(ch);
            } else {
                words.add_char(ch);
            }
            result.push(ch);
        }
        if let Some(s) = stop {
            return Err(err(format!(
                "unexpected end of statement while looking for matching {s}"
            )));
        }
        Ok((result, words.get_words()))
    }

    fn process_single_quote(&mut self) -> Result<String, LexError> {
        let mut out = String::new();
        let q = self.next().expect("quote");
        if self.lex.raw_quotes {
            out.push(q);
        }
        loop {
            match self.next() {
                None => {
                    return Err(err(
                        "unexpected end of statement while looking for matching single-quote",
                    ));
                }
                Some('\'') => {
                    if self.lex.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn process_double_quote(&mut self) -> Result<String, LexError> {
        let mut out = String::new();
        let q = self.next().expect("quote");
        if self.lex.raw_quotes {
            out.push(q);
        }
        loop {
            match self.peek() {
                None => {
                    return Err(err(
                        "unexpected end of statement while looking for matching double-quote",
                    ));
                }
                Some('"') => {
                    self.next();
                    if self.lex.raw_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => {
                    let v = self.process_dollar()?;
                    out.push_str(&v);
                }
                Some(_) => {
                    let mut ch = self.next().expect("peeked");
                    if ch == self.lex.escape {
                        if self.raw_escapes {
                            out.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            Some(c) if c == '"' || c == '$' || c == self.lex.escape => {
                                ch = self.next().expect("peeked");
                            }
                            _ => {}
                        }
                    }
                    out.push(ch);
                }
            }
        }
    }

    fn get_env(&self, name: &str) -> Option<String> {
        self.env.get(name)
    }

    fn process_dollar(&mut self) -> Result<String, LexError> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.lex.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.next();
        match self.peek() {
            None => return Err(err("syntax error: missing '}'")),
            Some('{') | Some('}') | Some(':') => return Err(err("syntax error: bad substitution")),
            _ => {}
        }
        let name = self.process_name();
        let ch = self.next();
        let Some(mut ch) = ch else {
            return Err(err("syntax error: missing '}'"));
        };
        let mut chs = ch.to_string();
        let mut null_is_unset = false;
        match ch {
            '}' => Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.lex.skip_unset_env => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' | '+' | '-' | '?' | '#' | '%' => {
                if ch == ':' {
                    null_is_unset = true;
                    match self.next() {
                        Some(c) => {
                            ch = c;
                            chs.push(c);
                        }
                        None => return Err(err("syntax error: missing '}'")),
                    }
                }
                let raw = ch == '#' || ch == '%';
                if null_is_unset && raw {
                    return Err(err(format!("unsupported modifier ({chs}) in substitution")));
                }
                let word = match self.process_stop_on(Some('}'), raw) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        if self.peek().is_none() {
                            return Err(err("syntax error: missing '}'"));
                        }
                        return Err(e);
                    }
                };
                let value = self.get_env(&name);
                if self.lex.skip_unset_env && value.is_none() {
                    return Ok(format!("${{{name}{chs}{word}}}"));
                }
                let set = value.is_some();
                let value = value.unwrap_or_default();
                let unset = !set || (null_is_unset && value.is_empty());
                match ch {
                    '-' => Ok(if unset { word } else { value }),
                    '+' => Ok(if unset { String::new() } else { word }),
                    '?' => {
                        if !set {
                            let m = if word.is_empty() {
                                "is not allowed to be unset".to_string()
                            } else {
                                word
                            };
                            return Err(err(format!("{name}: {m}")));
                        }
                        if null_is_unset && value.is_empty() {
                            let m = if word.is_empty() {
                                "is not allowed to be empty".to_string()
                            } else {
                                word
                            };
                            return Err(err(format!("{name}: {m}")));
                        }
                        Ok(value)
                    }
                    '%' | '#' => {
                        let (greedy, pat) = match word.strip_prefix(ch) {
                            Some(rest) => (true, rest.to_string()),
                            None => (false, word),
                        };
                        let pat = Pattern::parse(&pat)?;
                        Ok(if ch == '%' {
                            pat.trim_suffix(&value, greedy)
                        } else {
                            pat.trim_prefix(&value, greedy)
                        })
                    }
                    _ => Err(err(format!("unsupported modifier ({chs}) in substitution"))),
                }
            }
            '/' => {
                let all = self.peek() == Some('/');
                if all {
                    self.next();
                }
                let pattern = match self.process_stop_on(Some('/'), true) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        if self.peek().is_none() {
                            return Err(err("syntax error: missing '/' in ${}"));
                        }
                        return Err(e);
                    }
                };
                let replacement = match self.process_stop_on(Some('}'), true) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        if self.peek().is_none() {
                            return Err(err("syntax error: missing '}'"));
                        }
                        return Err(e);
                    }
                };
                let value = self.get_env(&name);
                if self.lex.skip_unset_env && value.is_none() {
                    return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
                }
                let value = value.unwrap_or_default();
                let pat = Pattern::parse(&pattern).map_err(|e| {
                    err(format!("invalid pattern ({pattern}) in substitution: {e}"))
                })?;
                Ok(pat.replace(&value, &replacement, all))
            }
            _ => Err(err(format!("unsupported modifier ({chs}) in substitution"))),
        }
    }

    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_ascii_digit() {
                while let Some(c) = self.peek() {
                    if !c.is_ascii_digit() {
                        break;
                    }
                    name.push(c);
                    self.next();
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return ch.to_string();
            }
            if !ch.is_alphanumeric() && ch != '_' {
                break;
            }
            name.push(ch);
            self.next();
        }
        name
    }

    fn process_possible_heredoc(&mut self) -> String {
        self.next();
        if self.peek() != Some('<') {
            return "<".into();
        }
        self.next();
        let mut out = String::from("<<");
        while let Some(c) = self.peek() {
            if c == '\t' || c == '\r' || c == ' ' {
                out.push(c);
                self.next();
            } else {
                break;
            }
        }
        out
    }
}

/// A shell pattern of `${v#p}`, `${v%p}`, `${v/p/r}`: `*`, `?` and `\`-escaped literals.
#[derive(Debug)]
struct Pattern(Vec<Tok>);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok {
    Star,
    Any,
    Lit(char),
}

impl Pattern {
    fn parse(p: &str) -> Result<Pattern, LexError> {
        let mut out = Vec::new();
        let mut it = p.chars().peekable();
        while let Some(c) = it.next() {
            match c {
                '*' => out.push(Tok::Star),
                '?' => out.push(Tok::Any),
                '\\' => match it.peek().copied() {
                    Some('}') | Some('/') => {}
                    Some(n @ ('*' | '?' | '\\')) => {
                        it.next();
                        out.push(Tok::Lit(n));
                    }
                    Some(n) => return Err(err(format!("invalid escape '\\{n}'"))),
                    None => return Err(err("invalid escape '\\'")),
                },
                c => out.push(Tok::Lit(c)),
            }
        }
        Ok(Pattern(out))
    }

    /// Whether the pattern matches all of `s`.
    fn matches(&self, s: &[char]) -> bool {
        fn m(p: &[Tok], s: &[char]) -> bool {
            match p.first() {
                None => s.is_empty(),
                Some(Tok::Star) => (0..=s.len()).any(|i| m(&p[1..], &s[i..])),
                Some(Tok::Any) => !s.is_empty() && m(&p[1..], &s[1..]),
                Some(Tok::Lit(c)) => s.first() == Some(c) && m(&p[1..], &s[1..]),
            }
        }
        m(&self.0, s)
    }

    fn trim_prefix(&self, value: &str, greedy: bool) -> String {
        let v: Vec<char> = value.chars().collect();
        let mut ends: Vec<usize> = (0..=v.len()).collect();
        if greedy {
            ends.reverse();
        }
        for e in ends {
            if self.matches(&v[..e]) {
                return v[e..].iter().collect();
            }
        }
        value.to_string()
    }

    fn trim_suffix(&self, value: &str, greedy: bool) -> String {
        let v: Vec<char> = value.chars().collect();
        let mut starts: Vec<usize> = (0..=v.len()).collect();
        if !greedy {
            starts.reverse();
        }
        for s in starts {
            if self.matches(&v[s..]) {
                return v[..s].iter().collect();
            }
        }
        value.to_string()
    }

    /// Replaces the leftmost-longest match (or every match with `all`).
    fn replace(&self, value: &str, rep: &str, all: bool) -> String {
        let v: Vec<char> = value.chars().collect();
        let mut out = String::new();
        let mut i = 0;
        let mut replaced = false;
        while i <= v.len() {
            if replaced && !all {
                out.extend(&v[i..]);
                return out;
            }
            let found = (i..=v.len())
                .rev()
                .find(|&e| (e > i || self.0.is_empty()) && self.matches(&v[i..e]));
            match found {
                Some(e) if e > i => {
                    out.push_str(rep);
                    i = e;
                    replaced = true;
                }
                _ => {
                    if i < v.len() {
                        out.push(v[i]);
                    }
                    i += 1;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // BuildKit's frontend/dockerfile/shell/envVarTest (the Linux rows).
    const ENV_VAR_TEST: &str = r#"hello                    |     hello
he'll'o                  |     hello
he'llo                   |     error
he\'llo                  |     he'llo
he\\'llo                 |     error
abc\tdef                 |     abctdef
"abc\tdef"               |     abc\tdef
"abc\\tdef"              |     abc\tdef
'abc\tdef'               |     abc\tdef
hello\                   |     hello
hello\\                  |     hello\
"hello                   |     error
"hello\"                 |     error
"hel'lo"                 |     hel'lo
'hello                   |     error
'hello\'                 |     hello\
'hello\there'            |     hello\there
'hello\\there'           |     hello\\there
"''"                     |     ''
$.                       |     $.
he$1x                    |     hex
he$.x                    |     he$.x
he$pwd.                  |     he.
he$PWD                   |     he/home
he\$PWD                  |     he$PWD
he\\$PWD                 |     he\/home
"he\$PWD"                |     he$PWD
"he\\$PWD"               |     he\/home
\${}                     |     ${}
\${}aaa                  |     ${}aaa
he\${}                   |     he${}
he\${}xx                 |     he${}xx
${}                      |     error
${}aaa                   |     error
he${}                    |     error
he${}xx                  |     error
he${hi}                  |     he
he${hi}xx                |     hexx
he${PWD}                 |     he/home
he${.}                   |     error
he${XXX:-000}xx          |     he000xx
he${PWD:-000}xx          |     he/homexx
he${XXX:-$PWD}xx         |     he/homexx
he${XXX:-${PWD:-yyy}}xx  |     he/homexx
he${XXX:-${YYY:-yyy}}xx  |     heyyyxx
he${XXX:YYY}             |     error
he${XXX?}                |     error
he${XXX:?}               |     error
he${PWD?}                |     he/home
he${PWD:?}               |     he/home
he${NULL?}               |     he
he${NULL:?}              |     error
he${XXX:+${PWD}}xx       |     hexx
he${PWD:+${XXX}}xx       |     hexx
he${PWD:+${SHELL}}xx     |     hebashxx
he${XXX:+000}xx          |     hexx
he${PWD:+000}xx          |     he000xx
'he${XX}'                |     he${XX}
"he${PWD}"               |     he/home
"he'$PWD'"               |     he'/home'
"$PWD"                   |     /home
'$PWD'                   |     $PWD
'\$PWD'                  |     \$PWD
'"hello"'                |     "hello"
he\$PWD                  |     he$PWD
"he\$PWD"                |     he$PWD
'he\$PWD'                |     he\$PWD
he${PWD                  |     error
he${PWD:=000}xx          |     error
he${PWD:+${PWD}:}xx      |     he/home:xx
he${XXX:-\$PWD:}xx       |     he$PWD:xx
he${XXX:-\${PWD}z}xx     |     he${PWDz}xx
안녕하세요                 |     안녕하세요
안'녕'하세요               |     안녕하세요
안'녕하세요                |     error
안녕\'하세요               |     안녕'하세요
$KOREAN                    |     한국어
안녕$KOREAN                |     안녕한국어
${{aaa}                   |     error
${aaa}}                   |     }
${aaa                     |     error
${{aaa:-bbb}              |     error
${aaa:-bbb}}              |     bbb}
${aaa:-bbb                |     error
${aaa:-bbb}               |     bbb
${aaa:-${bbb:-ccc}}       |     ccc
${aaa:-bbb ${foo}         |     error
${aaa:-bbb {foo}          |     bbb {foo
${:}                      |     error
${:-bbb}                  |     error
${:+bbb}                  |     error
$1                        |
${1}                      |
${1:+bbb}                 |
${1:-bbb}                 |     bbb
$999aaa                   |     aaa
${999:-bbb}aaa            |     bbbaaa
$001aaa                   |     aaa
$@                        |
${@:-bbb}                 |     bbb
$@@@                      |     @@
$@aaa                     |     aaa
$*                        |
$#                        |
${#:-bbb}                 |     bbb
$?                        |
$-                        |
$$                        |
${$:-bbb}                 |     bbb
$!                        |
$0                        |
${0:-bbb}                 |     bbb"#;

    fn test_env() -> Vec<String> {
        vec![
            "PWD=/home".into(),
            "SHELL=bash".into(),
            "KOREAN=한국어".into(),
            "NULL=".into(),
        ]
    }

    #[test]
    fn env_var_table() {
        let lex = Lex::new('\\');
        let env = test_env();
        for line in ENV_VAR_TEST.lines() {
            let (src, want) = line.split_once('|').unwrap();
            let (src, want) = (src.trim(), want.trim());
            let got = lex.process_word(src, &env);
            if want == "error" {
                assert!(got.is_err(), "{src:?} should fail, got {got:?}");
            } else {
                assert_eq!(got.as_deref(), Ok(want), "{src:?}");
            }
        }
    }

    // BuildKit's frontend/dockerfile/shell/wordsTest.
    #[test]
    fn words_table() {
        let table = "hello | hello
hello${hi}bye | hellobye
ENV hi=hi
hello${hi}bye | hellohibye
ENV space=abc  def
hello${space}bye | helloabc,defbye
hello\"${space}\"bye | helloabc  defbye
hello \"${space}\"bye | hello,abc  defbye
ENV leading=  ab c
hello${leading}def | hello,ab,cdef
hello\"${leading}\" def | hello  ab c,def
hello\"${leading}\" | hello  ab c
hello${leading} | hello,ab,c
ENV trailing=ab c   
hello${trailing} | helloab,c
hello${trailing}d | helloab,c,d
hello\"${trailing}\"d | helloab c   d
hel\"lo${trailing}\" | helloab c   
hello\" there  \" | hello there  
hello there     | hello,there
hello\\ there | hello there
hello\" there | error
hello\\\" there | hello\",there
hello\"\\\\there\" | hello\\there
hello\"\\there\" | hello\\there
hello'\\\\there' | hello\\\\there
hello'\\there' | hello\\there
hello'$there' | hello$there";
        let lex = Lex::new('\\');
        let mut env: Vec<String> = Vec::new();
        for line in table.lines() {
            if let Some(e) = line.strip_prefix("ENV ") {
                env.push(e.to_string());
                continue;
            }
            let (src, want) = line.split_once('|').unwrap();
            let src = src.trim();
            let want = want.strip_prefix(' ').unwrap_or(want);
            let got = lex.process_words(src, &env);
            if want.trim() == "error" {
                assert!(got.is_err(), "{src:?}");
                continue;
            }
            let want: Vec<&str> = want.split(',').collect();
            assert_eq!(got.unwrap(), want, "{src:?}");
        }
    }

    #[test]
    fn trims_and_replaces() {
        let env = vec!["F=foo.tar.gz".to_string(), "P=/a/b/c".to_string()];
        let lex = Lex::new('\\');
        let w = |s: &str| lex.process_word(s, &env).unwrap();
        assert_eq!(w("${F%.*}"), "foo.tar");
        assert_eq!(w("${F%%.*}"), "foo");
        assert_eq!(w("${F#*.}"), "tar.gz");
        assert_eq!(w("${F##*.}"), "gz");
        assert_eq!(w("${P/b/x}"), "/a/x/c");
        assert_eq!(w("${P//\\//-}"), "-a-b-c");
        assert_eq!(w("${F/?/X}"), "Xoo.tar.gz");
    }

    #[test]
    fn backtick_escape() {
        let lex = Lex::new('`');
        let env = vec!["A=1".to_string()];
        assert_eq!(lex.process_word("a`$A\\b", &env).unwrap(), "a$A\\b");
    }
}
