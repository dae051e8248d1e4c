//! `.dockerignore` with docker's rules (moby's `patternmatcher` and `ignorefile`), not
//! gitignore's: patterns are anchored at the context root, `*` and `?` never cross `/`, `**`
//! spans any number of directories, a pattern that matches a directory matches everything
//! below it, and `!pattern` re-includes; the last matching pattern decides.

use globset::{GlobBuilder, GlobMatcher};

#[derive(Debug)]
struct Pattern {
    text: String,
    exclusion: bool,
    glob: GlobMatcher,
}

/// A compiled `.dockerignore`.
#[derive(Debug, Default)]
pub struct Matcher {
    patterns: Vec<Pattern>,
}

/// Go's `filepath.Clean` for slash paths.
pub fn clean(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            c => out.push(c),
        }
    }
    let s = out.join("/");
    match (rooted, s.is_empty()) {
        (true, _) => format!("/{s}"),
        (false, true) => ".".into(),
        (false, false) => s,
    }
}

/// Reads `.dockerignore` text into patterns as docker's `ignorefile.ReadAll` does.
pub fn read_patterns(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = if i == 0 {
            line.trim_start_matches('\u{feff}')
        } else {
            line
        };
        if line.starts_with('#') {
            continue;
        }
        let mut p = line.trim();
        if p.is_empty() {
            continue;
        }
        let invert = p.starts_with('!');
        if invert {
            p = p[1..].trim();
        }
        let mut pat = String::new();
        if !p.is_empty() {
            pat = clean(p);
            if pat.len() > 1 && pat.starts_with('/') {
                pat.remove(0);
            }
        }
        out.push(if invert { format!("!{pat}") } else { pat });
    }
    out
}

impl Matcher {
    /// Compiles patterns (as [`read_patterns`] returns them).
    pub fn new(patterns: &[String]) -> Result<Matcher, String> {
        let mut out = Vec::new();
        for p in patterns {
            let (exclusion, text) = match p.strip_prefix('!') {
                Some(t) => (true, t),
                None => (false, p.as_str()),
            };
            if text.is_empty() {
                return Err("illegal exclusion pattern: \"!\"".into());
            }
            let glob = GlobBuilder::new(text)
                .literal_separator(true)
                .backslash_escape(true)
                .empty_alternates(true)
                .build()
                .map_err(|e| format!("invalid pattern {text:?} in .dockerignore: {e}"))?
                .compile_matcher();
            out.push(Pattern {
                text: text.to_string(),
                exclusion,
                glob,
            });
        }
        Ok(Matcher { patterns: out })
    }

    /// Parses `.dockerignore` text.
    pub fn from_text(text: &str) -> Result<Matcher, String> {
        Matcher::new(&read_patterns(text))
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether there are `!` exceptions (then an excluded directory may still hold included files).
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    /// Whether `path` (relative to the context root, `/`-separated) is excluded: it or one of
    /// its parent directories matches, and no later `!` pattern matches it or a parent.
    pub fn excluded(&self, path: &str) -> bool {
        let path = clean(path.trim_start_matches('/'));
        let parents: Vec<&str> = {
            let mut v = Vec::new();
            let mut idx = 0;
            while let Some(i) = path[idx..].find('/') {
                v.push(&path[..idx + i]);
                idx += i + 1;
            }
            v
        };
        let mut matched = false;
        for p in &self.patterns {
            if p.exclusion != matched {
                continue;
            }
            let m = p.glob.is_match(&path) || parents.iter().any(|d| p.glob.is_match(d));
            if m {
                matched = !p.exclusion;
            }
        }
        matched
    }

    /// Whether a walk must still look inside an excluded directory `dir`: some exception
    /// could re-include something below it.
    pub fn may_include_below(&self, dir: &str) -> bool {
        let dir = clean(dir);
        self.patterns.iter().any(|p| {
            p.exclusion
                && (p.text.starts_with(&format!("{dir}/"))
                    || p.text.contains("**")
                    || !p.text.contains('/')
                    || p.text.contains(['*', '?', '[']))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(text: &str) -> Matcher {
        Matcher::from_text(text).unwrap()
    }

    #[test]
    fn reads_like_docker() {
        assert_eq!(
            read_patterns("# comment\n  /a/b/ \n!  c\n\n ./d/../e\n#x\n"),
            vec!["a/b", "!c", "e"]
        );
    }

    #[test]
    fn anchored_at_root_not_gitignore() {
        let i = m("foo\n*.log\n");
        assert!(i.excluded("foo"));
        assert!(
            i.excluded("foo/bar/baz"),
            "a matched dir excludes its content"
        );
        assert!(
            !i.excluded("sub/foo"),
            "not matched at any depth as gitignore would"
        );
        assert!(i.excluded("x.log"));
        assert!(!i.excluded("sub/x.log"), "* does not cross /");
    }

    #[test]
    fn double_star() {
        let i = m("**/*.tmp\na/**/z\n");
        assert!(i.excluded("x.tmp"));
        assert!(i.excluded("d/e/x.tmp"));
        assert!(i.excluded("a/z"));
        assert!(i.excluded("a/b/c/z"));
        assert!(!i.excluded("b/z"));
    }

    #[test]
    fn exceptions_last_match_wins() {
        let i = m("*.md\n!README.md\n");
        assert!(i.excluded("a.md"));
        assert!(!i.excluded("README.md"));
        let i = m("docs\n!docs/keep.txt\n");
        assert!(i.excluded("docs/other.txt"));
        assert!(!i.excluded("docs/keep.txt"));
        assert!(i.may_include_below("docs"));
        let i = m("!README.md\n*.md\n");
        assert!(i.excluded("README.md"), "a later pattern wins");
        let i = m("a\n");
        assert!(!i.may_include_below("a"));
    }

    #[test]
    fn question_mark_and_classes() {
        let i = m("f?le\n[ab].txt\n");
        assert!(i.excluded("file"));
        assert!(!i.excluded("f/le"));
        assert!(i.excluded("a.txt"));
        assert!(!i.excluded("c.txt"));
    }

    #[test]
    fn clean_paths() {
        assert_eq!(clean("./a//b/../c/"), "a/c");
        assert_eq!(clean("/../a"), "/a");
        assert_eq!(clean("../a"), "../a");
        assert_eq!(clean(""), ".");
    }
}
