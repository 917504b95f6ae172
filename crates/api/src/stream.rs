//! Responses that stay open: a service answers with [`EventStream::response`] (server-sent
//! events, say) and the server sends each chunk the service's sender yields, until the sender is
//! dropped, the client goes away (the receiver is dropped with the connection, so the sender's
//! next `send` fails) or nimbus stops (the stream ends at once so that shutdown is not held up).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::sync::{mpsc, watch};

use crate::{ApiResponse, Body};

/// The receiving end of a streamed response, carried in the response's extensions from the
/// service to the server (extensions must be `Clone`, hence the shared slot).
#[derive(Clone)]
pub struct EventStream(Arc<Mutex<Option<mpsc::Receiver<Bytes>>>>);

impl EventStream {
    /// A response whose body is every chunk sent on the returned channel's sender; `capacity`
    /// bounds what waits for a slow client.
    pub fn response(content_type: &'static str, capacity: usize) -> (ApiResponse, mpsc::Sender<Bytes>) {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let mut response = ApiResponse::new(Body::default());
        let headers = response.headers_mut();
        headers.insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(content_type));
        headers.insert(hyper::header::CACHE_CONTROL, hyper::header::HeaderValue::from_static("no-store"));
        response.extensions_mut().insert(EventStream(Arc::new(Mutex::new(Some(receiver)))));
        (response, sender)
    }

    fn take(&self) -> Option<mpsc::Receiver<Bytes>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// What the server sends: a whole body, or a stream that ends when nimbus stops.
pub enum Served {
    Whole(Body),
    Stream { chunks: mpsc::Receiver<Bytes>, stopping: Pin<Box<dyn std::future::Future<Output = ()> + Send>> },
}

/// Turns a service's response into what the server sends.
pub(crate) fn served(response: ApiResponse, stopping: &watch::Receiver<bool>) -> hyper::Response<Served> {
    let (mut parts, body) = response.into_parts();
    match parts.extensions.remove::<EventStream>().and_then(|stream| stream.take()) {
        None => hyper::Response::from_parts(parts, Served::Whole(body)),
        Some(chunks) => {
            let mut stopping = stopping.clone();
            let stopping = Box::pin(async move {
                let _ = stopping.wait_for(|stop| *stop).await;
            });
            hyper::Response::from_parts(parts, Served::Stream { chunks, stopping })
        }
    }
}

impl HttpBody for Served {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match &mut *self {
            Served::Whole(body) => Pin::new(body).poll_frame(cx),
            Served::Stream { chunks, stopping } => {
                if stopping.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(None);
                }
                chunks.poll_recv(cx).map(|chunk| chunk.map(|bytes| Ok(Frame::data(bytes))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Served::Whole(body) => body.is_end_stream(),
            Served::Stream { .. } => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Served::Whole(body) => body.size_hint(),
            Served::Stream { .. } => SizeHint::default(),
        }
    }
}
