//! The scripted gRPC server and a bare tonic channel, with ErrorDecodeLayer in between.
#![cfg(feature = "tonic")]
mod support;

use support::grpc::{GrpcReply, GrpcServer, SAY, SayRequest, call};
use tonic::{Code, transport::Channel};
use tower_api_retry::ErrorDecodeLayer;

#[tokio::test]
async fn decode_layer_keeps_grpc_codes() {
    let server = GrpcServer::start().await;
    server.script(
        SAY,
        [
            GrpcReply::Pushback(Code::Unavailable, "restarting", 1500),
            GrpcReply::Status(Code::InvalidArgument, "bad name"),
        ],
    );
    let channel = Channel::from_shared(server.url()).unwrap().connect_lazy();
    let stack = tower::ServiceBuilder::new()
        .layer(ErrorDecodeLayer::new())
        .service(channel);
    let mut grpc = tonic::client::Grpc::new(stack);
    let req = || SayRequest {
        name: "ada".into(),
        payload: vec![1, 2, 3],
    };

    let status = call(&mut grpc, SAY, req()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(status.message(), "restarting");
    let status = call(&mut grpc, SAY, req()).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let ok = call(&mut grpc, SAY, req()).await.unwrap();
    assert_eq!(ok.message, "hello ada");
    assert_eq!(server.seen(SAY).len(), 3);
}
