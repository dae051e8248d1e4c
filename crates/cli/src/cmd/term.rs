//! The local terminal: raw mode for TTY sessions (always restored), its size, and docker's
//! detach-key notation.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use rustix::termios::{OptionalActions, Termios, tcgetattr, tcgetwinsize, tcsetattr};

/// docker's default detach sequence, ctrl-p ctrl-q.
pub const DEFAULT_DETACH_KEYS: [u8; 2] = [16, 17];

/// moby/term's `ToBytes`: `ctrl-p,ctrl-q`, `a,b`, `DEL`.
pub fn parse_detach_keys(keys: &str) -> Result<Vec<u8>, String> {
    let mut codes = Vec::new();
    for key in keys.split(',') {
        if key.len() == 1 {
            codes.push(key.as_bytes()[0]);
            continue;
        }
        if key == "DEL" {
            codes.push(127);
            continue;
        }
        let code = key
            .strip_prefix("ctrl-")
            .filter(|c| c.len() == 1)
            .and_then(|c| match c.as_bytes()[0] {
                b'@' => Some(0),
                c @ b'a'..=b'z' => Some(c - b'a' + 1),
                b'[' => Some(27),
                b'\\' => Some(28),
                b']' => Some(29),
                b'^' => Some(30),
                b'_' => Some(31),
                _ => None,
            })
            .ok_or_else(|| format!("Unknown character: '{key}'"))?;
        codes.push(code);
    }
    Ok(codes)
}

/// The detach sequence for a TTY session: the user's, or the default when absent or invalid
/// (docker warns and falls back).
pub fn detach_keys_or_default(keys: Option<&str>) -> Vec<u8> {
    match keys.filter(|k| !k.is_empty()) {
        None => DEFAULT_DETACH_KEYS.to_vec(),
        Some(k) => parse_detach_keys(k).unwrap_or_else(|e| {
            eprintln!("WARNING: invalid detach escape keys, using default: {e}");
            DEFAULT_DETACH_KEYS.to_vec()
        }),
    }
}

/// stdin in raw mode, restored once — by [`RawTerminal::restore`] or on drop.
#[derive(Clone)]
pub struct RawTerminal {
    saved: Arc<Mutex<Option<Termios>>>,
}

impl RawTerminal {
    /// Puts stdin in raw mode if it is a terminal (and `NORAW` is unset, as in docker).
    pub fn enable() -> std::io::Result<RawTerminal> {
        let stdin = std::io::stdin();
        let mut saved = None;
        if stdin.is_terminal() && std::env::var_os("NORAW").is_none() {
            let original = tcgetattr(&stdin)?;
            let mut raw = original.clone();
            raw.make_raw();
            tcsetattr(&stdin, OptionalActions::Now, &raw)?;
            saved = Some(original);
        }
        Ok(RawTerminal {
            saved: Arc::new(Mutex::new(saved)),
        })
    }

    /// A guard that does nothing (no TTY session).
    pub fn disabled() -> RawTerminal {
        RawTerminal {
            saved: Arc::new(Mutex::new(None)),
        }
    }

    pub fn restore(&self) {
        let mut guard = self.saved.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = guard.take() {
            let _ = tcsetattr(std::io::stdin(), OptionalActions::Now, &t);
        }
    }
}

/// Any handle going away restores the terminal: the session's pumps restore it when they end
/// (as docker does) and the command's own handle on every way out.
impl Drop for RawTerminal {
    fn drop(&mut self) {
        self.restore();
    }
}

/// The size of the terminal on stdout as (height, width); (0, 0) when not a terminal.
pub fn tty_size() -> (u16, u16) {
    let out = std::io::stdout();
    if !out.is_terminal() {
        return (0, 0);
    }
    match tcgetwinsize(&out) {
        Ok(ws) => (ws.ws_row, ws.ws_col),
        Err(_) => (0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_key_notation() {
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), vec![16, 17]);
        assert_eq!(parse_detach_keys("ctrl-a,x").unwrap(), vec![1, b'x']);
        assert_eq!(
            parse_detach_keys("ctrl-@,ctrl-_,DEL").unwrap(),
            vec![0, 31, 127]
        );
        assert_eq!(
            parse_detach_keys("ctrl-1").unwrap_err(),
            "Unknown character: 'ctrl-1'"
        );
        assert_eq!(
            parse_detach_keys("foo").unwrap_err(),
            "Unknown character: 'foo'"
        );
        assert_eq!(detach_keys_or_default(None), vec![16, 17]);
        assert_eq!(detach_keys_or_default(Some("ctrl-x")), vec![24]);
    }
}
