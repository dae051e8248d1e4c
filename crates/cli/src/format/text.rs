//! Small text helpers of docker's formatter: ID truncation and width-aware ellipsis.

use super::table::display_width;

/// docker's `TruncateID`: drop the algorithm, keep 12 characters.
pub fn truncate_id(id: &str) -> String {
    let hex = id.split_once(':').map(|(_, h)| h).unwrap_or(id);
    hex.chars().take(12).collect()
}

/// docker's `formatter.Ellipsis`: fit `s` in `max` display columns, ending in `…` when cut.
pub fn ellipsis(s: &str, max: usize) -> String {
    if max == 0 {
        return String::new();
    }
    let chars: Vec<char> = s.chars().collect();
    if max == 1 {
        return chars.first().map(|c| c.to_string()).unwrap_or_default();
    }
    if display_width(s) <= max {
        return s.to_string();
    }
    let mut width = 0;
    let mut out = String::new();
    for c in chars {
        let w = display_width(c.encode_utf8(&mut [0; 4]));
        if width + w > max - 1 {
            break;
        }
        width += w;
        out.push(c);
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert_eq!(truncate_id("sha256:0123456789abcdef"), "0123456789ab");
        assert_eq!(truncate_id("abc"), "abc");
    }

    #[test]
    fn ellipsis_like_docker() {
        assert_eq!(ellipsis("sleep 1000", 20), "sleep 1000");
        assert_eq!(
            ellipsis("/bin/sh -c 'while true; do sleep 1; done'", 20),
            "/bin/sh -c 'while t…"
        );
        assert_eq!(ellipsis("abcdef", 1), "a");
        assert_eq!(ellipsis("abcdef", 0), "");
        assert_eq!(ellipsis("abcdef", 6), "abcdef");
        assert_eq!(ellipsis("abcdefg", 6), "abcde…");
        assert_eq!(ellipsis("你好你好", 5), "你好…");
    }
}
