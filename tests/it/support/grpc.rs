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
    /// A trailers-only status.
    Status(Code, &'static str),
    /// A trailers-only status with `grpc-retry-pushback-ms`.
    Pushback(Code, &'static str, i64),
    /// A status with everything gRPC can carry, trailers-only or after initial metadata.
    Rich(RichStatus),
    /// OK after this long, whatever the call's `grpc-timeout` (a server that ignores it).
    Slow(std::time::Duration),
}

/// A status with rich details, custom metadata and any pushback text.
#[derive(Clone, Debug)]
pub struct RichStatus {
    pub code: Code,
    pub message: &'static str,
    /// Sent as `grpc-status-details-bin` (base64) when not empty.
    pub details: &'static [u8],
    /// Custom metadata sent with the status (`x-debug-id`, ...).
    pub metadata: &'static [(&'static str, &'static str)],
    /// `grpc-retry-pushback-ms`, verbatim.
    pub pushback: Option<&'static str>,
    /// `false`: a trailers-only response. `true`: headers first (with `x-initial-metadata`),
    /// no message, then the status in the trailers, as grpcio does after initial metadata and
    /// every streaming call does.
    pub in_trailers: bool,
}

impl RichStatus {
    pub fn new(code: Code, message: &'static str) -> RichStatus {
        RichStatus {
            code,
            message,
            details: b"",
            metadata: &[],
            pushback: None,
            in_trailers: false,
        }
    }

    /// The status tonic would send for this.
    pub fn to_status(&self) -> Status {
        let mut metadata = tonic::metadata::MetadataMap::new();
        for (k, v) in self.metadata {
            if k.ends_with("-bin") {
                metadata.insert_bin(
                    tonic::metadata::MetadataKey::from_bytes(k.as_bytes()).unwrap(),
                    tonic::metadata::MetadataValue::from_bytes(v.as_bytes()),
                );
            } else {
                metadata.insert(
                    tonic::metadata::MetadataKey::from_bytes(k.as_bytes()).unwrap(),
                    v.parse().unwrap(),
                );
            }
        }
        if let Some(p) = self.pushback {
            metadata.insert("grpc-retry-pushback-ms", p.parse().unwrap());
        }
        Status::with_details_and_metadata(
            self.code,
            self.message,
            bytes::Bytes::from_static(self.details),
            metadata,
        )
    }
}

/// What the server received.
#[derive(Clone, Debug)]
pub struct GrpcSeen {
    pub at: Instant,
    pub method: String,
    pub request: SayRequest,
    /// The `grpc-timeout` the request carried.
    pub timeout: Option<String>,
}

impl GrpcSeen {
    /// The `grpc-timeout` as a duration (`1*8DIGIT` and a unit, as gRPC defines it).
    pub fn timeout(&self) -> Option<std::time::Duration> {
        use std::time::Duration;
        let t = self.timeout.as_deref()?;
        let (value, unit) = t.split_at(t.len() - 1);
        assert!(value.len() <= 8, "{t}");
        let n: u64 = value.parse().unwrap();
        Some(match unit {
            "H" => Duration::from_secs(n * 3600),
            "M" => Duration::from_secs(n * 60),
            "S" => Duration::from_secs(n),
            "m" => Duration::from_millis(n),
            "u" => Duration::from_micros(n),
            "n" => Duration::from_nanos(n),
            _ => panic!("bad grpc-timeout {t}"),
        })
    }
}

#[derive(Default)]
struct State {
    scripts: Mutex<HashMap<String, VecDeque<GrpcReply>>>,
    seen: Mutex<Vec<GrpcSeen>>,
    /// tonic's `max_decoding_message_size`, when set.
    max_decoding: Mutex<Option<usize>>,
    /// grpcio's `max_receive_message_length`, when set.
    max_receive: Mutex<Option<usize>>,
    /// When each call refused for `max_receive` arrived.
    too_large: Mutex<Vec<Instant>>,
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
                tokio::spawn(serve(st.clone(), stream));
            }
        });
        GrpcServer { addr, state }
    }

    /// A tonic `Channel` to this server over in-memory pipes instead of TCP: nothing waits
    /// on the OS, so tests on tokio's paused clock see only virtual time.
    pub fn in_memory_channel(&self) -> tonic::transport::Channel {
        let state = self.state.clone();
        tonic::transport::Endpoint::from_static("http://grpc.test").connect_with_connector_lazy(
            tower::service_fn(move |_: http::Uri| {
                let state = state.clone();
                async move {
                    let (client, server) = tokio::io::duplex(1 << 20);
                    tokio::spawn(serve(state, server));
                    Ok::<_, std::io::Error>(TokioIo::new(client))
                }
            }),
        )
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

    /// Makes the server refuse request messages larger than `limit` bytes, as tonic does
    /// with `max_decoding_message_size` (before any handler runs: such a call is not `seen`).
    pub fn max_decoding_message_size(&self, limit: usize) {
        *self.state.max_decoding.lock().unwrap() = Some(limit);
    }

    /// Makes the server refuse request messages larger than `limit` bytes as grpcio (gRPC
    /// core) does with `max_receive_message_length`: `RESOURCE_EXHAUSTED`, "Received message
    /// larger than max (N vs. M)", no pushback, before any handler runs (such a call is not
    /// `seen`; see [`too_large`](Self::too_large)).
    pub fn max_receive_message_length(&self, limit: usize) {
        *self.state.max_receive.lock().unwrap() = Some(limit);
    }

    /// When each call refused for [`max_receive_message_length`](Self::max_receive_message_length)
    /// arrived.
    pub fn too_large(&self) -> Vec<Instant> {
        self.state.too_large.lock().unwrap().clone()
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

/// Serves one HTTP/2 connection.
async fn serve<IO>(state: Arc<State>, io: IO)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = tower::service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(dispatch(state, req).await) }
    });
    let builder = auto::Builder::new(TokioExecutor::new()).http2_only();
    let _ = builder
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(svc))
        .await;
}

async fn dispatch(
    state: Arc<State>,
    req: http::Request<hyper::body::Incoming>,
) -> http::Response<tonic::body::Body> {
    use http_body_util::BodyExt;
    let mut req = req.map(tonic::body::Body::new);
    let max_receive = *state.max_receive.lock().unwrap();
    if let Some(limit) = max_receive {
        // As gRPC core does: the message's length prefix (after its compression flag) is
        // checked against the limit before the handler sees anything.
        let (parts, body) = req.into_parts();
        let bytes = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let len = bytes
            .get(1..5)
            .map_or(0, |n| u32::from_be_bytes(n.try_into().unwrap()) as usize);
        if len > limit {
            state.too_large.lock().unwrap().push(Instant::now());
            return Status::resource_exhausted(format!(
                "Received message larger than max ({len} vs. {limit})"
            ))
            .into_http();
        }
        req = http::Request::from_parts(
            parts,
            tonic::body::Body::new(http_body_util::Full::new(bytes)),
        );
    }
    let method = req.uri().path().to_owned();
    let timeout = req
        .headers()
        .get("grpc-timeout")
        .map(|v| v.to_str().unwrap().to_owned());
    let reply = state
        .scripts
        .lock()
        .unwrap()
        .get_mut(&method)
        .and_then(VecDeque::pop_front)
        .unwrap_or(GrpcReply::Ok);
    let limit = *state.max_decoding.lock().unwrap();
    let in_trailers = match &reply {
        GrpcReply::Rich(rich) if rich.in_trailers => Some(rich.to_status()),
        _ => None,
    };
    let svc = tower::service_fn(move |r: tonic::Request<SayRequest>| {
        let state = state.clone();
        let method = method.clone();
        let timeout = timeout.clone();
        let reply = reply.clone();
        async move {
            let request = r.into_inner();
            let name = request.name.clone();
            state.seen.lock().unwrap().push(GrpcSeen {
                at: Instant::now(),
                method: method.clone(),
                request,
                timeout,
            });
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
                GrpcReply::Rich(rich) if rich.in_trailers => Ok(tonic::Response::new(SayReply {
                    message: String::new(),
                })),
                GrpcReply::Rich(rich) => Err(rich.to_status()),
                GrpcReply::Slow(after) => {
                    tokio::time::sleep(after).await;
                    Ok(tonic::Response::new(SayReply {
                        message: format!("hello {name}"),
                    }))
                }
            }
        }
    });
    let mut grpc = tonic::server::Grpc::new(ProstCodec::<SayReply, SayRequest>::default());
    if let Some(limit) = limit {
        grpc = grpc.max_decoding_message_size(limit);
    }
    let res = grpc.unary(svc, req).await;
    let Some(status) = in_trailers else {
        return res;
    };
    // Headers first (with initial metadata), no message, then the status in the trailers.
    let (mut parts, _) = res.into_parts();
    parts
        .headers
        .insert("x-initial-metadata", http::HeaderValue::from_static("yes"));
    let mut trailers = http::HeaderMap::new();
    status.add_header(&mut trailers).unwrap();
    let body = http_body_util::StreamBody::new(futures_util::stream::iter([Ok::<_, Status>(
        http_body::Frame::trailers(trailers),
    )]));
    http::Response::from_parts(parts, tonic::body::Body::new(body))
}

/// Calls `method` with `request` through any gRPC service (a `Channel`, or a stack over one).
pub async fn call<S>(
    grpc: &mut tonic::client::Grpc<S>,
    method: &'static str,
    request: SayRequest,
) -> Result<SayReply, Status>
where
    S: tonic::client::GrpcService<tonic::body::Body>,
    S::Error: Into<tower::BoxError>,
    S::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <S::ResponseBody as http_body::Body>::Error: Into<tower::BoxError> + Send,
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
