use std::io;

/// The runtime's one error type.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec asks for something invalid or not supported.
    #[error("{0}")]
    InvalidSpec(String),
    /// A host-side operation failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// The container process could not be set up or could not `execve`, worded like runc and
    /// docker. `exit_code` is the status docker reports for it (126, 127) when it has one.
    #[error("{message}")]
    Process {
        message: String,
        exit_code: Option<i32>,
    },
    /// `-u user[:group]` could not be resolved (docker's wording).
    #[error("{0}")]
    User(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// docker's exit status for a failed start (126 cannot invoke, 127 not found).
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            Error::Process { exit_code, .. } => *exit_code,
            _ => None,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn errno(context: impl Into<String>, errno: i32) -> Error {
        Error::io(context, io::Error::from_raw_os_error(errno))
    }
}

/// Adds context to io results.
pub(crate) trait Context<T> {
    fn context(self, f: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for io::Result<T> {
    fn context(self, f: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(f(), e))
    }
}

/// strerror-like text as Go prints it (lower case, no errno number).
pub(crate) fn errno_text(errno: i32) -> String {
    let s = io::Error::from_raw_os_error(errno).to_string();
    // std renders "No such file or directory (os error 2)".
    let s = s.split(" (os error").next().unwrap_or(&s).to_string();
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
        None => s,
    }
}

/// moby's `translateContainerdStartErr`: the status docker gives a failed start.
pub(crate) fn docker_start_code(message: &str) -> Option<i32> {
    if message.contains("executable file not found")
        || message.contains("no such file or directory")
        || message.contains("not a directory")
    {
        Some(127)
    } else if message.contains("permission denied") {
        Some(126)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_texts_look_like_go() {
        assert_eq!(errno_text(libc::ENOENT), "no such file or directory");
        assert_eq!(errno_text(libc::EACCES), "permission denied");
    }

    #[test]
    fn docker_codes() {
        assert_eq!(
            docker_start_code("exec: \"nope\": executable file not found in $PATH"),
            Some(127)
        );
        assert_eq!(
            docker_start_code("exec: \"/etc/passwd\": permission denied"),
            Some(126)
        );
        assert_eq!(docker_start_code("sethostname: invalid argument"), None);
    }
}
