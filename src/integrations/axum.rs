//! `axum` interop: [`ReplayBody`](crate::retry::ReplayBody) for `axum::body::Body`, so an
//! axum request body is sent again on retry (up to
//! [`max_replay_bytes`](crate::RetryLayer::max_replay_bytes)).

crate::retry::body::replay_by_capture! {
    [] axum::body::Body => Self::new;
}

#[cfg(test)]
mod tests {
    use crate::retry::{
        ReplayBody,
        body::tests::{drain, frames, three_attempts},
    };

    #[tokio::test]
    async fn axum_bodies_replay() {
        let got = three_attempts(axum::body::Body::new(frames(&[b"x", b"yz"], true)), 64).await;
        let first = got[0].clone().unwrap();
        assert_eq!(&first.0[..], b"xyz");
        assert!(got.iter().all(|a| a.as_ref() == Ok(&first)));
        // Never sent: handed back.
        let (unsent, copy) = axum::body::Body::new(frames(&[b"x", b"yz"], true)).capture(64);
        drop(unsent);
        let again = axum::body::Body::replay(&copy).unwrap();
        assert_eq!(drain(again).await, first);
    }
}
