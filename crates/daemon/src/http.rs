//! HTTP plumbing shared by the handlers: the body type, JSON and error answers, query parsing
//! with Docker's conventions, and bridges between async bodies and blocking work.

use std::collections::BTreeMap;
use std::io;

use bytes::Bytes;
use futures_util::TryStreamExt;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use serde::Serialize;
use tokio::sync::mpsc;

pub type Body = BoxBody<Bytes, io::Error>;
pub type Resp = Response<Body>;

/// An error answer: status + Docker's `{"message": …}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, m)
    }
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, m)
    }
    pub fn conflict(m: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, m)
    }
    pub fn internal(m: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, m)
    }
    pub fn into_response(self) -> Resp {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, "{}", self.message);
        } else {
            tracing::debug!(status = %self.status, "{}", self.message);
        }
        json(
            self.status,
            &berth_api::models::ErrorMessage {
                message: self.message,
            },
        )
    }
}

impl From<berth_image::Error> for ApiError {
    fn from(e: berth_image::Error) -> Self {
        use berth_image::Error as E;
        let status = match &e {
            E::NotFound(_) => StatusCode::NOT_FOUND,
            E::Conflict(_) => StatusCode::CONFLICT,
            E::Invalid(_) | E::Ambiguous(_) => StatusCode::BAD_REQUEST,
            E::Content(berth_image::content::ContentError::DigestMismatch { .. }) => {
                StatusCode::BAD_REQUEST
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<berth_image::content::ContentError> for ApiError {
    fn from(e: berth_image::content::ContentError) -> Self {
        berth_image::Error::from(e).into()
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        ApiError::internal(format!("internal task failed: {e}"))
    }
}

pub type ApiResult = Result<Resp, ApiError>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

pub fn empty_body() -> Body {
    full(Bytes::new())
}

pub fn json<T: Serialize>(status: StatusCode, v: &T) -> Resp {
    let bytes = serde_json::to_vec(v).expect("responses serialize");
    let mut r = Response::new(full(bytes));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

pub fn ok_json<T: Serialize>(v: &T) -> ApiResult {
    Ok(json(StatusCode::OK, v))
}

pub fn status_only(status: StatusCode) -> ApiResult {
    let mut r = Response::new(empty_body());
    *r.status_mut() = status;
    Ok(r)
}

/// A streamed body fed from a channel (blocking producers use [`ChannelWriter`]).
pub fn channel_body(rx: mpsc::Receiver<io::Result<Bytes>>) -> Body {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item.map(Frame::data), rx))
    });
    StreamBody::new(stream).boxed()
}

pub fn streaming(
    status: StatusCode,
    content_type: &'static str,
    rx: mpsc::Receiver<io::Result<Bytes>>,
) -> Resp {
    let mut r = Response::new(channel_body(rx));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// A blocking `Write` that sends what it is given down a response channel, in large chunks.
pub struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

const CHUNK: usize = 256 * 1024;

impl ChannelWriter {
    pub fn new(tx: mpsc::Sender<io::Result<Bytes>>) -> Self {
        ChannelWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        }
    }
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "client went away"))
    }
    /// Ends the stream with an error the client will see as a broken transfer.
    pub fn fail(mut self, e: io::Error) {
        let _ = self.send();
        let _ = self.tx.blocking_send(Err(e));
    }
}

impl io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

impl Drop for ChannelWriter {
    fn drop(&mut self) {
        let _ = self.send();
    }
}

/// A request body as a blocking reader; use only inside `spawn_blocking`.
pub fn body_reader(body: Incoming) -> impl io::Read + Send + 'static {
    let stream = http_body_util::BodyStream::new(body)
        .map_ok(|frame| frame.into_data().unwrap_or_default())
        .map_err(io::Error::other);
    DrainOnDrop(tokio_util::io::SyncIoBridge::new(
        tokio_util::io::StreamReader::new(stream),
    ))
}

/// Reads what is left of a request body (up to a limit) when a handler gives up early.
/// Closing a socket with unread input makes the kernel reset the connection, and the client
/// would then see "connection reset" instead of the error answer.
struct DrainOnDrop<R: io::Read>(R);

const DRAIN_LIMIT: u64 = 64 << 20;

impl<R: io::Read> io::Read for DrainOnDrop<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl<R: io::Read> Drop for DrainOnDrop<R> {
    fn drop(&mut self) {
        let _ = io::copy(
            &mut io::Read::take(&mut self.0, DRAIN_LIMIT),
            &mut io::sink(),
        );
    }
}

/// Reads a whole (small) request body.
pub async fn body_bytes(body: Incoming, limit: usize) -> Result<Bytes, ApiError> {
    let collected = http_body_util::Limited::new(body, limit)
        .collect()
        .await
        .map_err(|e| ApiError::bad_request(format!("reading request body: {e}")))?;
    Ok(collected.to_bytes())
}

/// Query parameters, with Docker's readings of booleans, repeated keys and filters.
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(q: Option<&str>) -> Query {
        let pairs = q
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        Query { pairs }
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, k: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Docker's boolValue: anything but "", "0", "no", "false", "none" is true.
    pub fn bool(&self, k: &str) -> bool {
        match self.get(k) {
            None => false,
            Some(v) => !matches!(
                v.to_ascii_lowercase().as_str(),
                "" | "0" | "no" | "false" | "none"
            ),
        }
    }

    /// `filters={"key":["v"]}` or the old `{"key":{"v":true}}`.
    pub fn filters(&self) -> Result<Filters, ApiError> {
        let Some(raw) = self.get("filters") else {
            return Ok(Filters::default());
        };
        if raw.is_empty() {
            return Ok(Filters::default());
        }
        let v: serde_json::Value = serde_json::from_str(raw)
            .map_err(|e| ApiError::bad_request(format!("invalid filter: {e}")))?;
        let obj = v
            .as_object()
            .ok_or_else(|| ApiError::bad_request("invalid filter: not a JSON object"))?;
        let mut map = BTreeMap::new();
        for (k, vals) in obj {
            let list: Vec<String> = match vals {
                serde_json::Value::Array(a) => a
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect(),
                serde_json::Value::Object(o) => o
                    .iter()
                    .filter(|(_, b)| b.as_bool() == Some(true))
                    .map(|(k, _)| k.clone())
                    .collect(),
                _ => return Err(ApiError::bad_request(format!("invalid filter '{k}'"))),
            };
            map.insert(k.clone(), list);
        }
        Ok(Filters(map))
    }
}

#[derive(Debug, Default)]
pub struct Filters(pub BTreeMap<String, Vec<String>>);

impl Filters {
    pub fn get(&self, k: &str) -> &[String] {
        self.0.get(k).map(|v| v.as_slice()).unwrap_or(&[])
    }
    /// Refuses filter keys the endpoint does not know, as Docker does.
    pub fn only(&self, allowed: &[&str]) -> Result<(), ApiError> {
        for k in self.0.keys() {
            if !allowed.contains(&k.as_str()) {
                return Err(ApiError::bad_request(format!("invalid filter '{k}'")));
            }
        }
        Ok(())
    }
    /// A boolean filter (`dangling=true`); error on other values, as Docker.
    pub fn bool(&self, k: &str) -> Result<Option<bool>, ApiError> {
        let v = self.get(k);
        if v.is_empty() {
            return Ok(None);
        }
        let mut out = None;
        for x in v {
            let b = match x.to_ascii_lowercase().as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => return Err(ApiError::bad_request(format!("invalid filter '{k}={x}'"))),
            };
            out = Some(b);
        }
        Ok(out)
    }
    /// `label=key` or `label=key=value` against a label map.
    pub fn labels_match(&self, key: &str, labels: &BTreeMap<String, String>) -> bool {
        self.get(key).iter().all(|f| match f.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
            None => labels.contains_key(f.as_str()),
        })
    }
}

/// Docker's time filters (`until=`, `since=` on some endpoints): RFC 3339, unix seconds, or a
/// duration before now ("10m", "2h").
pub fn parse_time_filter(v: &str) -> Result<i64, ApiError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    if let Ok(secs) = v.split('.').next().unwrap_or("").parse::<i64>()
        && !v.is_empty()
    {
        return Ok(secs);
    }
    if let Ok(d) = humantime::parse_duration(v) {
        return Ok(now - d.as_secs() as i64);
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(v) {
        return Ok(t
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0));
    }
    Err(ApiError::bad_request(format!(
        "failed to parse value as time or duration: \"{v}\""
    )))
}
