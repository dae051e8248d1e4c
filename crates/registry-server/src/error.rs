//! The distribution spec's error codes and the `{"errors":[…]}` body they travel in.

use http::StatusCode;

/// The spec's error codes (code-1 … code-14), plus `UNKNOWN` for server faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
    Unknown,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::BlobUnknown => "BLOB_UNKNOWN",
            Code::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            Code::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            Code::DigestInvalid => "DIGEST_INVALID",
            Code::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            Code::ManifestInvalid => "MANIFEST_INVALID",
            Code::ManifestUnknown => "MANIFEST_UNKNOWN",
            Code::NameInvalid => "NAME_INVALID",
            Code::NameUnknown => "NAME_UNKNOWN",
            Code::SizeInvalid => "SIZE_INVALID",
            Code::Unauthorized => "UNAUTHORIZED",
            Code::Denied => "DENIED",
            Code::Unsupported => "UNSUPPORTED",
            Code::TooManyRequests => "TOOMANYREQUESTS",
            Code::Unknown => "UNKNOWN",
        }
    }

    /// The status the spec (or distribution, where the spec is silent) pairs with the code.
    pub fn status(self) -> StatusCode {
        match self {
            Code::BlobUnknown
            | Code::BlobUploadUnknown
            | Code::ManifestUnknown
            | Code::NameUnknown => StatusCode::NOT_FOUND,
            Code::BlobUploadInvalid
            | Code::DigestInvalid
            | Code::ManifestBlobUnknown
            | Code::ManifestInvalid
            | Code::NameInvalid
            | Code::SizeInvalid => StatusCode::BAD_REQUEST,
            Code::Unauthorized => StatusCode::UNAUTHORIZED,
            Code::Denied => StatusCode::FORBIDDEN,
            Code::Unsupported => StatusCode::METHOD_NOT_ALLOWED,
            Code::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Code::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The spec's one-line description, used as the message.
    pub fn message(self) -> &'static str {
        match self {
            Code::BlobUnknown => "blob unknown to registry",
            Code::BlobUploadInvalid => "blob upload invalid",
            Code::BlobUploadUnknown => "blob upload unknown to registry",
            Code::DigestInvalid => "provided digest did not match uploaded content",
            Code::ManifestBlobUnknown => {
                "manifest references a manifest or blob unknown to registry"
            }
            Code::ManifestInvalid => "manifest invalid",
            Code::ManifestUnknown => "manifest unknown",
            Code::NameInvalid => "invalid repository name",
            Code::NameUnknown => "repository name not known to registry",
            Code::SizeInvalid => "provided length did not match content length",
            Code::Unauthorized => "authentication required",
            Code::Denied => "requested access to the resource is denied",
            Code::Unsupported => "The operation is unsupported.",
            Code::TooManyRequests => "too many requests",
            Code::Unknown => "unknown error",
        }
    }
}

/// One failed request: a status, one or more coded errors, and headers to add (challenges,
/// `Range`, `Retry-After`).
#[derive(Debug)]
pub struct RegistryError {
    pub status: StatusCode,
    pub errors: Vec<(Code, String, serde_json::Value)>,
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

impl RegistryError {
    pub fn new(code: Code) -> RegistryError {
        RegistryError {
            status: code.status(),
            errors: vec![(code, code.message().to_string(), serde_json::Value::Null)],
            headers: Vec::new(),
        }
    }

    /// The code with a more specific message.
    pub fn msg(code: Code, message: impl Into<String>) -> RegistryError {
        let mut e = RegistryError::new(code);
        e.errors[0].1 = message.into();
        e
    }

    pub fn detail(mut self, detail: serde_json::Value) -> RegistryError {
        if let Some(e) = self.errors.last_mut() {
            e.2 = detail;
        }
        self
    }

    pub fn status(mut self, status: StatusCode) -> RegistryError {
        self.status = status;
        self
    }

    pub fn header(mut self, name: &'static str, value: &str) -> RegistryError {
        if let Ok(v) = http::HeaderValue::from_str(value) {
            self.headers.push((http::HeaderName::from_static(name), v));
        }
        self
    }

    /// A server-side fault; the cause goes to the log, not to the client.
    pub fn internal(cause: impl std::fmt::Display) -> RegistryError {
        tracing::error!("internal error: {cause}");
        RegistryError::new(Code::Unknown)
    }

    pub fn body(&self) -> String {
        let errors: Vec<serde_json::Value> = self
            .errors
            .iter()
            .map(|(code, message, detail)| {
                let mut o = serde_json::Map::new();
                o.insert("code".into(), code.as_str().into());
                o.insert("message".into(), message.clone().into());
                if !detail.is_null() {
                    o.insert("detail".into(), detail.clone());
                }
                serde_json::Value::Object(o)
            })
            .collect();
        serde_json::json!({ "errors": errors }).to_string()
    }
}

impl From<std::io::Error> for RegistryError {
    fn from(e: std::io::Error) -> Self {
        RegistryError::internal(e)
    }
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
