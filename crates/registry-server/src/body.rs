//! Response bodies: nothing, bytes in memory (manifests, JSON), or a slice of a blob file
//! streamed from disk.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use hyper::body::{Frame, SizeHint};
use tokio::io::{AsyncRead, ReadBuf};

const CHUNK: usize = 256 * 1024;

pub enum Body {
    Empty,
    Full(Option<Bytes>),
    File {
        file: tokio::fs::File,
        remaining: u64,
        buf: BytesMut,
    },
}

impl Body {
    pub fn full(b: impl Into<Bytes>) -> Body {
        let b = b.into();
        if b.is_empty() {
            Body::Empty
        } else {
            Body::Full(Some(b))
        }
    }

    /// `len` bytes of `file` from its current position.
    pub fn file(file: tokio::fs::File, len: u64) -> Body {
        Body::File {
            file,
            remaining: len,
            buf: BytesMut::new(),
        }
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            Body::Empty => Poll::Ready(None),
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::File {
                file,
                remaining,
                buf,
            } => {
                if *remaining == 0 {
                    return Poll::Ready(None);
                }
                let want = (*remaining).min(CHUNK as u64) as usize;
                if buf.len() != want {
                    buf.resize(want, 0);
                }
                let mut rb = ReadBuf::new(&mut buf[..]);
                ready!(Pin::new(file).poll_read(cx, &mut rb))?;
                let n = rb.filled().len();
                if n == 0 {
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "blob file shorter than expected",
                    ))));
                }
                *remaining -= n as u64;
                let chunk = buf.split_to(n).freeze();
                buf.clear();
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Empty => true,
            Body::Full(b) => b.is_none(),
            Body::File { remaining, .. } => *remaining == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Empty => SizeHint::with_exact(0),
            Body::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Body::File { remaining, .. } => SizeHint::with_exact(*remaining),
        }
    }
}
