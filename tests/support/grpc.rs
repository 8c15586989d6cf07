//! A scripted gRPC server (real tonic server machinery over HTTP/2 on loopback) with
#![allow(dead_code, unreachable_pub)]
//! hand-written prost messages: no protoc needed.

use http::uri::PathAndQuery;
use hyper_util::{
    rt::TokioExecutor, rt::TokioIo, server::conn::auto, service::TowerToHyperService,
};
use std::{
    collections::{HashMap, VecDeque},
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
};
use tokio::{net::TcpListener, time::Instant};
use tonic::{Code, Status};
use tonic_prost::ProstCodec;

/// `echo.Echo/Say` request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SayRequest {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(bytes = "vec", tag = "2")]
    pub payload: Vec<u8>,
}

/// `echo.Echo/Say` reply.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SayReply {
    #[prost(string, tag = "1")]
    pub message: String,
}

/// The method paths the server serves (any path under `/echo.Echo/` is accepted).
pub const SAY: &str = "/echo.Echo/Say";
pub const OTHER: &str = "/echo.Echo/Other";

/// One scripted reply.
#[derive(Clone, Debug)]
pub enum GrpcReply {
    Ok,
    Status(Code, &'static str),
    /// A status with `grpc-retry-pushback-ms`.
    Pushback(Code, &'static str, i64),
}

/// What the server received.
#[derive(Clone, Debug)]
pub struct GrpcSeen {
    pub at: Instant,
    pub method: String,
    pub request: SayRequest,
}

#[derive(Default)]
struct State {
    scripts: Mutex<HashMap<String, VecDeque<GrpcReply>>>,
    seen: Mutex<Vec<GrpcSeen>>,
}

/// The running gRPC server.
#[derive(Clone)]
pub struct GrpcServer {
    addr: SocketAddr,
    state: Arc<State>,
}

impl GrpcServer {
    pub async fn start() -> GrpcServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = st.clone();
                let svc = tower::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(dispatch(state, req).await) }
                });
                tokio::spawn(async move {
                    let builder = auto::Builder::new(TokioExecutor::new()).http2_only();
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc))
                        .await;
                });
            }
        });
        GrpcServer { addr, state }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replies for `method`, in order; then OK.
    pub fn script(&self, method: &str, replies: impl IntoIterator<Item = GrpcReply>) {
        self.state
            .scripts
            .lock()
            .unwrap()
            .insert(method.into(), replies.into_iter().collect());
    }

    /// Every request received for `method`.
    pub fn seen(&self, method: &str) -> Vec<GrpcSeen> {
        self.state
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.method == method)
            .cloned()
            .collect()
    }
}

async fn dispatch(
    state: Arc<State>,
    req: http::Request<hyper::body::Incoming>,
) -> http::Response<tonic::body::Body> {
    let method = req.uri().path().to_owned();
    let svc = tower::service_fn(move |r: tonic::Request<SayRequest>| {
        let state = state.clone();
        let method = method.clone();
        async move {
            let request = r.into_inner();
            let name = request.name.clone();
            state.seen.lock().unwrap().push(GrpcSeen {
                at: Instant::now(),
                method: method.clone(),
                request,
            });
            let reply = state
                .scripts
                .lock()
                .unwrap()
                .get_mut(&method)
                .and_then(VecDeque::pop_front)
                .unwrap_or(GrpcReply::Ok);
            match reply {
                GrpcReply::Ok => Ok(tonic::Response::new(SayReply {
                    message: format!("hello {name}"),
                })),
                GrpcReply::Status(code, msg) => Err(Status::new(code, msg)),
                GrpcReply::Pushback(code, msg, ms) => {
                    let mut status = Status::new(code, msg);
                    status
                        .metadata_mut()
                        .insert("grpc-retry-pushback-ms", ms.to_string().parse().unwrap());
                    Err(status)
                }
            }
        }
    });
    tonic::server::Grpc::new(ProstCodec::<SayReply, SayRequest>::default())
        .unary(svc, req)
        .await
}

/// Calls `method` with `request` through any gRPC service (a `Channel`, or a stack over one).
pub async fn call<S>(
    grpc: &mut tonic::client::Grpc<S>,
    method: &'static str,
    request: SayRequest,
) -> Result<SayReply, Status>
where
    S: tonic::client::GrpcService<tonic::body::Body>,
    S::Error: Into<tower_api_retry::BoxError>,
    S::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <S::ResponseBody as http_body::Body>::Error: Into<tower_api_retry::BoxError> + Send,
{
    grpc.ready()
        .await
        .map_err(|e| Status::unknown(e.into().to_string()))?;
    let codec = ProstCodec::<SayRequest, SayReply>::default();
    grpc.unary(
        tonic::Request::new(request),
        PathAndQuery::from_static(method),
        codec,
    )
    .await
    .map(tonic::Response::into_inner)
}
