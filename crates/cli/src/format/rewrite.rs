//! Source-level adjustments that make gtmpl execute a template the way Go's `text/template`
//! does, without forking gtmpl:
//!
//! - every output action gets `| _berth_print` appended, so values print as Go's `%v`
//!   (`[a b]`, `map[k:v]`, `<nil>`) instead of Rust's `Debug` form;
//! - `range` over a map walks it in sorted key order (gtmpl walks a `HashMap`): one-variable
//!   and variable-less ranges go through `_berth_range`, and `range $k, $v := …` becomes a
//!   range over sorted entries with `$k`/`$v` declared inside;
//! - `{{range …}}…{{else}}…{{end}}` runs the else branch only for an empty collection
//!   (gtmpl always runs it), by closing the range and testing the pipeline with `if not`.
//!
//! Only action boundaries and the first words of actions are looked at; gtmpl still parses
//! the result and reports syntax errors.

/// Prints an action's value as Go does.
pub const PRINT_FN: &str = "_berth_print";
/// Turns a map into its values in key order; other values pass through.
pub const RANGE_FN: &str = "_berth_range";
/// Turns a map or list into `{Key, Value}` entries in Go's iteration order.
pub const ENTRIES_FN: &str = "_berth_entries";
/// Wraps a value in a one-element list, to set dot without testing truth (as `with` would).
pub const ONCE_FN: &str = "_berth_once";

/// A template whose actions cannot be delimited; messages are Go's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanError {
    pub line: usize,
    pub message: &'static str,
}

#[derive(Debug)]
enum Frame {
    /// `if`, `with`, `define`, `block`: passed through untouched.
    Other,
    Range {
        /// The ranged pipeline, re-evaluated to decide whether `else` applies.
        pipe: String,
        /// The two-variable form, which opens an extra inner range.
        entries: bool,
        in_else: bool,
    },
}

/// An action as written: `{{` [`-` ws] content [ws `-`] `}}`.
struct Action<'a> {
    left_trim: bool,
    content: &'a str,
    right_trim: bool,
}

impl Action<'_> {
    /// Writes `inner` actions in sequence, putting this action's trim markers on the first
    /// and last of them.
    fn emit(&self, out: &mut String, inner: &[String]) {
        let last = inner.len().saturating_sub(1);
        for (i, body) in inner.iter().enumerate() {
            out.push_str(if i == 0 && self.left_trim {
                "{{- "
            } else {
                "{{"
            });
            out.push_str(body);
            out.push_str(if i == last && self.right_trim {
                " -}}"
            } else {
                "}}"
            });
        }
    }

    fn verbatim(&self, out: &mut String) {
        out.push_str(if self.left_trim { "{{-" } else { "{{" });
        out.push_str(self.content);
        out.push_str(if self.right_trim { " -}}" } else { "}}" });
    }
}

/// Rewrites `src` as described in the module documentation.
pub fn rewrite(src: &str) -> Result<String, ScanError> {
    let bytes = src.as_bytes();
    let mut out = String::with_capacity(src.len() + 32);
    let mut frames: Vec<Frame> = Vec::new();
    let mut ranges = 0usize;
    let mut i = 0;
    while let Some(k) = src[i..].find("{{") {
        let open = i + k;
        out.push_str(&src[i..open]);
        let line = 1 + src[..open].matches('\n').count();
        let err = |message| ScanError { line, message };
        let mut j = open + 2;
        let left_trim = bytes.get(j) == Some(&b'-') && bytes.get(j + 1).is_some_and(is_space);
        if left_trim {
            j += 1;
        }
        let body_start = j + src[j..].len() - src[j..].trim_start().len();
        if src[body_start..].starts_with("/*") {
            // Comments pass through unchanged; they must end right at the delimiter.
            let end = src[body_start + 2..]
                .find("*/")
                .map(|e| body_start + 2 + e + 2)
                .ok_or(err("unclosed comment"))?;
            let after = &src[end..];
            let close = if after.starts_with("}}") {
                end + 2
            } else if after.len() >= 4
                && is_space(&after.as_bytes()[0])
                && after[1..].starts_with("-}}")
            {
                end + 4
            } else {
                return Err(err("comment ends before closing delimiter"));
            };
            out.push_str(&src[open..close]);
            i = close;
            continue;
        }
        let close = find_close(src, j).ok_or(err("unclosed action"))?;
        let right_trim = close >= j + 2 && bytes[close - 1] == b'-' && is_space(&bytes[close - 2]);
        let content_end = if right_trim { close - 2 } else { close };
        let action = Action {
            left_trim,
            content: &src[j..content_end.max(j)],
            right_trim,
        };
        rewrite_action(&action, &mut out, &mut frames, &mut ranges);
        i = close + 2;
    }
    out.push_str(&src[i..]);
    Ok(out)
}

fn is_space(b: &u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Index of the `}}` ending the action whose content starts at `from`, skipping quoted
/// strings, raw strings and character constants.
fn find_close(src: &str, from: usize) -> Option<usize> {
    let b = src.as_bytes();
    let mut p = from;
    while p < b.len() {
        match b[p] {
            q @ (b'"' | b'\'') => {
                p += 1;
                while p < b.len() && b[p] != q {
                    p += if b[p] == b'\\' { 2 } else { 1 };
                }
                p += 1;
            }
            b'`' => {
                p += 1 + src[p + 1..].find('`')?;
                p += 1;
            }
            b'}' if b.get(p + 1) == Some(&b'}') => return Some(p),
            _ => p += 1,
        }
    }
    None
}

fn leading_word(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// `$name` at the start of `s`, and what follows it.
fn leading_variable(s: &str) -> Option<(&str, &str)> {
    let rest = s.strip_prefix('$')?;
    let len = 1 + leading_word(rest).len();
    Some((&s[..len], &s[len..]))
}

/// A declaration or assignment (`$x := …`, `$x = …`, `$k, $v := …`) prints nothing.
fn is_declaration(t: &str) -> bool {
    let Some((_, rest)) = leading_variable(t) else {
        return false;
    };
    let rest = rest.trim_start();
    rest.starts_with(":=")
        || rest.starts_with(',')
        || (rest.starts_with('=') && !rest.starts_with("=="))
}

/// Splits a range clause into its declared variables and its pipeline.
fn split_range_clause(clause: &str) -> Option<(Vec<&str>, &str)> {
    let t = clause.trim_start();
    let Some((first, rest)) = leading_variable(t) else {
        return Some((Vec::new(), clause));
    };
    let mut vars = vec![first];
    let mut rest = rest.trim_start();
    if let Some(after_comma) = rest.strip_prefix(',') {
        let (second, after) = leading_variable(after_comma.trim_start())?;
        vars.push(second);
        rest = after.trim_start();
    }
    if let Some(pipe) = rest.strip_prefix(":=") {
        return Some((vars, pipe));
    }
    // `range $x.Items` ranges over a variable's field; anything else is left to gtmpl.
    (vars.len() == 1 && !rest.starts_with('=')).then_some((Vec::new(), clause))
}

fn rewrite_action(
    action: &Action<'_>,
    out: &mut String,
    frames: &mut Vec<Frame>,
    ranges: &mut usize,
) {
    let t = action.content.trim_start();
    let word = leading_word(t);
    match word {
        "if" | "with" | "define" | "block" => {
            frames.push(Frame::Other);
            action.verbatim(out);
        }
        "range" => match split_range_clause(&t[5..]) {
            Some((vars, pipe)) => {
                let pipe = pipe.trim().to_owned();
                *ranges += 1;
                let entries = vars.len() == 2;
                let inner = match vars.as_slice() {
                    [] => vec![format!("range {pipe} | {RANGE_FN}")],
                    [v] => vec![format!("range {v} := {pipe} | {RANGE_FN}")],
                    [k, v, ..] => {
                        let e = format!("$_berth_e{ranges}");
                        vec![
                            format!("range {e} := {pipe} | {ENTRIES_FN}"),
                            format!("{k} := {e}.Key"),
                            format!("{v} := {e}.Value"),
                            format!("range {ONCE_FN} {e}.Value"),
                        ]
                    }
                };
                action.emit(out, &inner);
                frames.push(Frame::Range {
                    pipe,
                    entries,
                    in_else: false,
                });
            }
            None => {
                frames.push(Frame::Other);
                action.verbatim(out);
            }
        },
        "else" if t[4..].trim().is_empty() => match frames.last_mut() {
            Some(Frame::Range {
                pipe,
                entries,
                in_else: in_else @ false,
            }) => {
                let mut inner = vec!["end".to_owned()];
                if *entries {
                    inner.push("end".to_owned());
                }
                inner.push(format!("if not ({pipe})"));
                action.emit(out, &inner);
                *in_else = true;
            }
            _ => action.verbatim(out),
        },
        "end" => match frames.pop() {
            Some(Frame::Range {
                entries: true,
                in_else: false,
                ..
            }) => action.emit(out, &["end".to_owned(), "end".to_owned()]),
            _ => action.verbatim(out),
        },
        "else" | "template" | "break" | "continue" => action.verbatim(out),
        _ if t.is_empty() || is_declaration(t) => action.verbatim(out),
        _ => {
            let body = format!("{} | {PRINT_FN}", action.content.trim_end());
            let body = body.strip_prefix(' ').unwrap_or(&body);
            action.emit(out, &[body.to_owned()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(s: &str) -> String {
        rewrite(s).unwrap()
    }

    #[test]
    fn output_actions_print_through_helper() {
        assert_eq!(
            rw("{{.ID}}\t{{ .Size }}"),
            "{{.ID | _berth_print}}\t{{.Size | _berth_print}}"
        );
        assert_eq!(rw("a {{- .X -}} b"), "a {{- .X | _berth_print -}} b");
        assert_eq!(rw("{{json .}}"), "{{json . | _berth_print}}");
        assert_eq!(
            rw("{{\"}}\" | printf \"%s\"}}"),
            "{{\"}}\" | printf \"%s\" | _berth_print}}"
        );
        assert_eq!(rw("{{`a}}b`}}"), "{{`a}}b` | _berth_print}}");
    }

    #[test]
    fn control_declarations_and_comments_untouched() {
        for s in [
            "{{if .X}}y{{else if .Y}}z{{else}}w{{end}}",
            "{{with .X}}{{end}}",
            "{{$x := .ID}}{{$x = 1}}",
            "{{/* a }} comment */}}",
            "{{- /* c */ -}}",
            "{{template \"t\" .}}",
            "{{define \"t\"}}{{end}}",
            "no actions",
        ] {
            assert_eq!(rw(s), s, "{s}");
        }
    }

    #[test]
    fn ranges() {
        assert_eq!(
            rw("{{range .L}}x{{end}}"),
            "{{range .L | _berth_range}}x{{end}}"
        );
        assert_eq!(
            rw("{{range $v := .L}}{{end}}"),
            "{{range $v := .L | _berth_range}}{{end}}"
        );
        assert_eq!(
            rw("{{range $k, $v := .L}}{{$k}}{{end}}"),
            "{{range $_berth_e1 := .L | _berth_entries}}{{$k := $_berth_e1.Key}}\
             {{$v := $_berth_e1.Value}}{{range _berth_once $_berth_e1.Value}}\
             {{$k | _berth_print}}{{end}}{{end}}"
        );
        assert_eq!(
            rw("{{range .L}}a{{else}}b{{end}}"),
            "{{range .L | _berth_range}}a{{end}}{{if not (.L)}}b{{end}}"
        );
        assert_eq!(
            rw("{{- range $k, $v := .L -}}a{{- else -}}b{{end}}"),
            "{{- range $_berth_e1 := .L | _berth_entries}}{{$k := $_berth_e1.Key}}\
             {{$v := $_berth_e1.Value}}{{range _berth_once $_berth_e1.Value -}}a\
             {{- end}}{{end}}{{if not (.L) -}}b{{end}}"
        );
        // An else inside an if inside a range belongs to the if.
        assert_eq!(
            rw("{{range .L}}{{if .}}a{{else}}b{{end}}{{end}}"),
            "{{range .L | _berth_range}}{{if .}}a{{else}}b{{end}}{{end}}"
        );
    }

    #[test]
    fn scan_errors() {
        assert_eq!(
            rewrite("{{.ID"),
            Err(ScanError {
                line: 1,
                message: "unclosed action"
            })
        );
        assert_eq!(
            rewrite("a\n{{/* x"),
            Err(ScanError {
                line: 2,
                message: "unclosed comment"
            })
        );
        assert_eq!(
            rewrite("{{/* x */ .X}}").unwrap_err().message,
            "comment ends before closing delimiter"
        );
    }
}
