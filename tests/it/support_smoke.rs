//! The emulated API itself behaves as scripted (so other tests can trust its logs), and the
//! lookup of external programs skips or fails as documented.

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

#[test]
fn a_missing_program_skips_outside_ci_and_fails_under_ci() {
    let find = || {
        crate::support::external::find_program(
            "tower-api-retry-no-such-program",
            &["/nonexistent/tower-api-retry-no-such-program"],
            "apt-get install -y nothing",
        )
    };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        let panic = std::panic::catch_unwind(find).unwrap_err();
        let message = panic.downcast_ref::<String>().unwrap();
        assert_eq!(
            message,
            "tower-api-retry-no-such-program not installed (apt-get install -y nothing)"
        );
    } else {
        assert_eq!(find(), None);
    }
    // A program that exists is found, in CI or not.
    assert!(crate::support::external::find_program("sh", &[], "").is_some());
}
