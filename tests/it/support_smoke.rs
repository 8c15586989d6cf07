//! The emulated API itself behaves as scripted (so other tests can trust its logs).

use crate::support::{Emulator, Reply, checksum};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};

#[tokio::test]
async fn scripts_and_logs() {
    let api = Emulator::start().await;
    api.script(
        "/x",
        [Reply::detail(409, "Space is not active"), Reply::Reset],
    );
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = || {
        http::Request::post(api.url("/x?token=abc"))
            .body(Full::new(Bytes::from_static(b"hello")))
            .unwrap()
    };
    let res = client.request(req()).await.unwrap();
    assert_eq!(res.status(), 409);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], br#"{"detail":"Space is not active"}"#);
    assert!(client.request(req()).await.is_err(), "reset");
    let res = client.request(req()).await.unwrap();
    assert_eq!(res.status(), 200);
    let seen = api.seen("/x");
    assert_eq!(seen.len(), 3);
    assert!(
        seen.iter()
            .all(|s| s.body_sum == checksum(b"hello") && s.query.as_deref() == Some("token=abc"))
    );
}
