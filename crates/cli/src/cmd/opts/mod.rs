//! Parsing of docker's container flags into Engine API values: one module per kind of flag,
//! each a port of the docker CLI's validators with their messages.

pub mod kv;
pub mod mounts;
pub mod network;
pub mod ports;
pub mod timestamp;
pub mod values;

/// A rejected flag: docker reports errors found while reading a flag as
/// `invalid argument "V" for "-p, --publish" flag: …`, and later ones as the bare message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptError {
    Flag {
        flag: String,
        value: String,
        message: String,
    },
    Invalid(String),
}

impl std::fmt::Display for OptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OptError::Flag {
                flag,
                value,
                message,
            } => write!(f, "invalid argument {value:?} for {flag:?} flag: {message}"),
            OptError::Invalid(m) => f.write_str(m),
        }
    }
}

impl From<String> for OptError {
    fn from(m: String) -> Self {
        OptError::Invalid(m)
    }
}

/// pflag's name for a flag in messages: `-p, --publish` or `--expose`.
pub fn flag_name(long: &str, short: Option<char>) -> String {
    match short {
        Some(s) => format!("-{s}, --{long}"),
        None => format!("--{long}"),
    }
}

/// Applies a flag-level validator to each value of a repeated flag.
pub fn each<T>(
    long: &str,
    short: Option<char>,
    values: &[String],
    f: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, OptError> {
    values.iter().map(|v| one(long, short, v, &f)).collect()
}

/// Applies a flag-level validator to one value.
pub fn one<T>(
    long: &str,
    short: Option<char>,
    value: &str,
    f: impl Fn(&str) -> Result<T, String>,
) -> Result<T, OptError> {
    f(value).map_err(|message| OptError::Flag {
        flag: flag_name(long, short),
        value: value.to_string(),
        message,
    })
}

/// Applies a validator to an optional single-valued flag.
pub fn opt<T>(
    long: &str,
    short: Option<char>,
    value: &Option<String>,
    f: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<T>, OptError> {
    value.as_deref().map(|v| one(long, short, v, f)).transpose()
}

/// Go's `path.Clean` for slash-separated paths.
pub fn clean_path(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_paths() {
        assert_eq!(clean_path("/a/b/../c/./"), "/a/c");
        assert_eq!(clean_path("a//b"), "a/b");
        assert_eq!(clean_path("/.."), "/");
        assert_eq!(clean_path("../x"), "../x");
        assert_eq!(clean_path(""), ".");
        assert_eq!(clean_path("./"), ".");
    }

    #[test]
    fn flag_errors() {
        let e = one("publish", Some('p'), "x", |_| {
            Err::<(), _>("bad".to_string())
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid argument \"x\" for \"-p, --publish\" flag: bad"
        );
        let e = one("expose", None, "y", |_| Err::<(), _>("no".to_string())).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid argument \"y\" for \"--expose\" flag: no"
        );
    }
}
