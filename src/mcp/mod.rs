//! MCP mode of the error decoder. Over MCP a tool error does not change the HTTP status: it
//! comes back as a 200 whose JSON-RPC `result` has `isError: true`, which the retry and
//! rate-limit layers would take for a success. [`McpDecodeLayer`] reads a JSON success (up to
//! 64 KiB, for up to 10 s), turns a tool error into the same typed [`Error`](crate::Error) as
//! an HTTP error, and hands every other body back byte for byte in an [`McpBody`].
//! [`ApiContractLayer::mcp`](crate::ApiContractLayer::mcp) installs the whole stack in this
//! mode; [`McpDecodeLayer`] has an example.

mod body;
mod inspect;
mod layer;

pub use body::McpBody;
pub use layer::{McpDecode, McpDecodeLayer, ResponseFuture};

#[cfg(test)]
mod tests {
    use super::{
        inspect::{inspect, is_json},
        *,
    };
    use crate::{decode::Credentials, decode::ErrorDecodeLayer};
    use bytes::Bytes;
    use http::{HeaderMap, Request, Response, StatusCode, header::CONTENT_TYPE};
    use http_body::{Body, Frame, SizeHint};
    use http_body_util::{BodyExt, StreamBody};
    use std::convert::Infallible;
    use std::{
        pin::Pin,
        task::{Context, Poll},
        time::Duration,
    };
    use tower::ServiceExt;
    use tower::{Layer, Service};

    fn json_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, "application/json".parse().unwrap());
        h
    }

    #[test]
    fn inspect_ignores_ordinary_and_odd_messages() {
        let h = json_headers();
        for body in [
            &br#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#[..],
            br#"{"jsonrpc":"2.0","id":1,"result":{"isError":false}}"#,
            br#"{"jsonrpc":"2.0","id":1,"result":[1,2]}"#,
            br#"{"jsonrpc":"2.0","id":1,"result":null,"error":null}"#,
            br#"{"jsonrpc":"2.0","id":1,"result":{"content":[]},"error":false}"#,
            br#"[{"jsonrpc":"2.0","id":1,"result":{}}]"#,
            b"not json",
            b"",
        ] {
            assert!(inspect(StatusCode::OK, &h, body, &Credentials::new()).is_none());
        }
    }

    #[test]
    fn inspect_prefers_structured_content_then_text() {
        let h = json_headers();
        let both = br#"{"result":{"isError":true,"content":[{"type":"text","text":"{\"error\":{\"code\":\"NOT_FOUND\",\"message\":\"t\"}}"}],"structuredContent":{"error":{"code":"ALREADY_EXISTS","message":"s"}}}}"#;
        let api = inspect(StatusCode::OK, &h, both, &Credentials::new()).unwrap();
        assert_eq!(api.code(), &crate::code::ErrorCode::AlreadyExists);
        let envelope = br#"{"result":{"isError":true,"content":[{"type":"text","text":"{\"code\":\"UNAVAILABLE\",\"message\":\"later\"}"}]}}"#;
        let api = inspect(StatusCode::OK, &h, envelope, &Credentials::new()).unwrap();
        assert_eq!(api.code(), &crate::code::ErrorCode::Unavailable);
        assert!(crate::error::Error::from(api).is_retryable());
    }

    #[test]
    fn is_json_media_types() {
        let mut h = HeaderMap::new();
        for (ct, want) in [
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            ("application/problem+json", true),
            ("text/event-stream", false),
            ("json", false),
        ] {
            h.insert(CONTENT_TYPE, ct.parse().unwrap());
            assert_eq!(is_json(&h), want, "{ct}");
        }
        assert!(!is_json(&HeaderMap::new()));
    }

    type Chunks =
        StreamBody<futures_util::stream::BoxStream<'static, Result<Frame<Bytes>, Infallible>>>;

    fn respond(
        frames: Vec<Frame<Bytes>>,
        trickle: bool,
    ) -> impl Service<Request<()>, Response = Response<Chunks>, Error = Infallible, Future: Send> + Clone
    {
        let frames = std::sync::Arc::new(std::sync::Mutex::new(Some(frames)));
        tower::service_fn(move |_: Request<()>| {
            let frames = frames.lock().unwrap().take().unwrap();
            async move {
                use futures_util::StreamExt;
                let stream = futures_util::stream::iter(frames.into_iter().map(Ok));
                let stream = if trickle {
                    stream
                        .then(|f| async {
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            f
                        })
                        .boxed()
                } else {
                    stream.boxed()
                };
                let mut res = Response::new(StreamBody::new(stream));
                *res.headers_mut() = json_headers();
                Ok(res)
            }
        })
    }

    async fn frames_of<B: Body<Data = Bytes>>(body: B) -> (Vec<u8>, Option<HeaderMap>)
    where
        B::Error: std::fmt::Debug,
    {
        let collected = body.collect().await.unwrap();
        let trailers = collected.trailers().cloned();
        (collected.to_bytes().to_vec(), trailers)
    }

    #[tokio::test]
    async fn trailers_survive_inspection() {
        let mut trailers = HeaderMap::new();
        trailers.insert("x-t", "1".parse().unwrap());
        let svc = respond(
            vec![
                Frame::data(Bytes::from_static(br#"{"result":"#)),
                Frame::data(Bytes::from_static(b"{}}")),
                Frame::trailers(trailers.clone()),
            ],
            false,
        );
        let res = McpDecodeLayer::new()
            .layer(svc)
            .oneshot(Request::new(()))
            .await
            .unwrap();
        let (bytes, got) = frames_of(res.into_body()).await;
        assert_eq!(bytes, br#"{"result":{}}"#);
        assert_eq!(got, Some(trailers));
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickling_success_is_passed_through_uninspected() {
        let parts: Vec<Frame<Bytes>> = br#"{"result":{"isError":true}}"#
            .iter()
            .map(|b| Frame::data(Bytes::copy_from_slice(&[*b])))
            .collect();
        let svc = respond(parts, true);
        let layer = McpDecodeLayer::from(
            ErrorDecodeLayer::new().read_timeout(Some(Duration::from_secs(5))),
        );
        let res = layer.layer(svc).oneshot(Request::new(())).await.unwrap();
        let (bytes, _) = frames_of(res.into_body()).await;
        assert_eq!(bytes, br#"{"result":{"isError":true}}"#);
    }

    /// A body that is always ready with an empty frame: the buffering loop must yield.
    struct EmptyFramesForever;

    impl Body for EmptyFramesForever {
        type Data = Bytes;
        type Error = Infallible;
        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Ready(Some(Ok(Frame::data(Bytes::new()))))
        }
    }

    #[tokio::test]
    async fn endless_empty_frames_end_at_read_timeout() {
        let svc = tower::service_fn(|_: Request<()>| async {
            Ok::<_, Infallible>(
                Response::builder()
                    .header("content-type", "application/json")
                    .body(EmptyFramesForever)
                    .unwrap(),
            )
        });
        let layer = McpDecodeLayer::from(
            ErrorDecodeLayer::new().read_timeout(Some(Duration::from_millis(50))),
        );
        let res = tokio::time::timeout(
            Duration::from_secs(20),
            layer.layer(svc).oneshot(Request::new(())),
        )
        .await
        .expect("the MCP decoder yields, so its read timeout fires");
        assert!(res.is_ok(), "passed through uninspected");
    }

    /// An exact-length body that sends its first chunk and then stalls.
    struct Stalls {
        first: Option<Bytes>,
        left: u64,
    }

    impl Body for Stalls {
        type Data = Bytes;
        type Error = Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            match self.first.take() {
                Some(b) => {
                    self.left -= b.len() as u64;
                    Poll::Ready(Some(Ok(Frame::data(b))))
                }
                None => Poll::Pending,
            }
        }
        fn size_hint(&self) -> SizeHint {
            SizeHint::with_exact(self.left)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn size_hint_of_a_replayed_prefix_is_consistent() {
        let svc = tower::service_fn(|_: Request<()>| async {
            Ok::<_, Infallible>(
                Response::builder()
                    .header("content-type", "application/json")
                    .body(Stalls {
                        first: Some(Bytes::from_static(b"{\"result\":")),
                        left: 100,
                    })
                    .unwrap(),
            )
        });
        let layer = McpDecodeLayer::from(
            ErrorDecodeLayer::new().read_timeout(Some(Duration::from_millis(100))),
        );
        let res = layer.layer(svc).oneshot(Request::new(())).await.unwrap();
        let hint = res.body().size_hint();
        assert_eq!((hint.lower(), hint.upper()), (100, Some(100)));
    }
}
