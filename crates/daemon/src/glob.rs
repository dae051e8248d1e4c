//! Go's `path.Match`, which Docker's `reference=` filters use: `*` and `?` never match `/`,
//! `[...]` classes with ranges and `^` negation, and `\` escapes.

/// Whether `name` matches the shell pattern `pattern`; an error for a malformed pattern.
pub fn path_match(pattern: &str, name: &str) -> Result<bool, String> {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    m(&p, &n).map_err(|_| format!("syntax error in pattern {pattern:?}"))
}

fn m(p: &[char], n: &[char]) -> Result<bool, ()> {
    let (mut pi, mut ni) = (0, 0);
    // Backtracking point for the latest `*`.
    let mut star: Option<(usize, usize)> = None;
    loop {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ni));
                    pi += 1;
                    continue;
                }
                '?' if ni < n.len() && n[ni] != '/' => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                '[' if ni < n.len() => {
                    let (matched, next) = class(p, pi, n[ni])?;
                    if matched && n[ni] != '/' {
                        pi = next;
                        ni += 1;
                        continue;
                    }
                }
                '\\' => {
                    let c = *p.get(pi + 1).ok_or(())?;
                    if ni < n.len() && n[ni] == c {
                        pi += 2;
                        ni += 1;
                        continue;
                    }
                }
                c if c != '?' && c != '[' && ni < n.len() && n[ni] == c => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                _ => {}
            }
        } else if ni == n.len() {
            return Ok(true);
        }
        // Mismatch: let the last `*` swallow one more character (never a `/`).
        match star {
            Some((sp, sn)) if sn < n.len() && n[sn] != '/' => {
                star = Some((sp, sn + 1));
                pi = sp + 1;
                ni = sn + 1;
            }
            _ => {
                // Validate the rest of the pattern so malformed ones are reported.
                check(&p[pi.min(p.len())..])?;
                return Ok(false);
            }
        }
    }
}

/// Matches `c` against the class starting at `p[start] == '['`; returns (matched, index after `]`).
fn class(p: &[char], start: usize, c: char) -> Result<(bool, usize), ()> {
    let mut i = start + 1;
    let negate = p.get(i) == Some(&'^');
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let ch = *p.get(i).ok_or(())?;
        if ch == ']' && !first {
            i += 1;
            break;
        }
        first = false;
        let lo = if ch == '\\' {
            i += 1;
            *p.get(i).ok_or(())?
        } else {
            ch
        };
        i += 1;
        let mut hi = lo;
        if p.get(i) == Some(&'-') && p.get(i + 1) != Some(&']') {
            i += 1;
            hi = *p.get(i).ok_or(())?;
            if hi == '\\' {
                i += 1;
                hi = *p.get(i).ok_or(())?;
            }
            i += 1;
        }
        if lo <= c && c <= hi {
            matched = true;
        }
    }
    Ok((matched != negate, i))
}

fn check(p: &[char]) -> Result<(), ()> {
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '\\' => {
                if i + 1 >= p.len() {
                    return Err(());
                }
                i += 2;
            }
            '[' => {
                let (_, next) = class(p, i, '\0')?;
                i = next;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::path_match;

    #[test]
    fn go_path_match_cases() {
        let cases = [
            ("abc", "abc", true),
            ("*", "abc", true),
            ("*c", "abc", true),
            ("a*", "a", true),
            ("a*", "abc", true),
            ("a*", "ab/c", false),
            ("a*/b", "abc/b", true),
            ("a*/b", "a/c/b", false),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", true),
            ("a*b?c*x", "abxbbxdbxebxczzx", true),
            ("a*b?c*x", "abxbbxdbxebxczzy", false),
            ("ab[c]", "abc", true),
            ("ab[b-d]", "abc", true),
            ("ab[e-g]", "abc", false),
            ("ab[^c]", "abc", false),
            ("ab[^e-g]", "abc", true),
            ("a\\*b", "a*b", true),
            ("a\\*b", "ab", false),
            ("a?b", "a☺b", true),
            ("a?b", "a/b", false),
            ("busy*", "busybox", true),
            ("busybox:*", "busybox:latest", true),
            ("*/*", "user/app", true),
            ("*", "user/app", false),
        ];
        for (p, n, want) in cases {
            assert_eq!(path_match(p, n).unwrap(), want, "{p} vs {n}");
        }
        assert!(path_match("[", "a").is_err());
        assert!(path_match("a\\", "b").is_err());
    }
}
