//! An emulated API on loopback that speaks both documented error contracts.
//!
//! Shared by the integration tests (`mod support;`) and the demo
//! (`#[path = "../tests/support/emulator.rs"]`). Each path has a script of replies, consumed in
//! order (the last reply of an `always` script repeats; an empty script answers 200), and a log
//! of every request the server actually received: when, method, query, body length and
//! checksum, so tests assert on what reached the server rather than on what the client thinks
//! it sent.
#![allow(dead_code, unreachable_pub)]

use axum::{Router, body::Body, extract::Request, response::Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use hyper_util::{
    rt::TokioExecutor, rt::TokioIo, server::conn::auto, service::TowerToHyperService,
};
use serde_json::{Value, json};
use std::{
    collections::{HashMap, VecDeque},
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::{net::TcpListener, sync::Notify, time::Instant};

/// One reply of a script.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A complete response.
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: Bytes,
    },
    /// Close the connection without a response (RST: zero linger).
    Reset,
    /// Never answer.
    Stall,
    /// Answer after a delay (on tokio's clock).
    Delay(Duration, Box<Reply>),
    /// An error status with a body that never ends.
    Endless { status: u16 },
    /// An error status with a body that sends one byte per `every`, `len` bytes in all.
    Trickle {
        status: u16,
        every: Duration,
        len: usize,
    },
}

impl Reply {
    /// `200 {"ok": true}`.
    pub fn ok() -> Reply {
        Reply::json(200, json!({"ok": true}))
    }
    /// A JSON body with a status.
    pub fn json(status: u16, body: Value) -> Reply {
        Reply::Respond {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Bytes::from(body.to_string()),
        }
    }
    /// A raw body with a status.
    pub fn raw(status: u16, body: impl Into<Bytes>) -> Reply {
        Reply::Respond {
            status,
            headers: vec![],
            body: body.into(),
        }
    }
    /// `{"detail": message}` (first page).
    pub fn detail(status: u16, message: &str) -> Reply {
        Reply::json(status, json!({ "detail": message }))
    }
    /// `{code, message, fix?}` (second page's envelope).
    pub fn envelope(status: u16, code: &str, message: &str, fix: Option<&str>) -> Reply {
        let mut body = json!({"code": code, "message": message});
        if let Some(fix) = fix {
            body["fix"] = json!(fix);
        }
        Reply::json(status, body)
    }
    /// The structured 409 `agent_connected` (first page).
    pub fn agent_connected(agent_id: &str) -> Reply {
        Reply::json(
            409,
            json!({
                "error": "agent_connected",
                "message": format!("Agent {agent_id} is currently connected to another installation. Release it first or retry with X-Force-Rotate: true."),
                "agent_id": agent_id,
            }),
        )
    }
    /// 429 with `Retry-After: secs`.
    pub fn too_many(secs: u64) -> Reply {
        Reply::envelope(429, "RESOURCE_EXHAUSTED", "Too many requests", None)
            .header("retry-after", &secs.to_string())
    }
    /// 503 `REFRESH_IN_PROGRESS` with `Retry-After: secs`.
    pub fn refresh_in_progress(secs: u64) -> Reply {
        Reply::envelope(
            503,
            "REFRESH_IN_PROGRESS",
            "Another credential refresh for this team and agent is already running",
            None,
        )
        .header("retry-after", &secs.to_string())
    }
    /// An MCP `tools/call` result (JSON-RPC 2.0 in an HTTP 200) with one text content.
    pub fn mcp_result(text: &str) -> Reply {
        Reply::json(
            200,
            json!({"jsonrpc": "2.0", "id": 1, "result": {
                "content": [{"type": "text", "text": text}],
                "isError": false,
            }}),
        )
    }
    /// An MCP tool error inside an HTTP 200 (second page): `result.isError` with the payload
    /// `{"error": {code, message}}` in `structuredContent` and as the text content.
    pub fn mcp_error(code: &str, message: &str) -> Reply {
        let payload = json!({"error": {"code": code, "message": message}});
        Reply::json(
            200,
            json!({"jsonrpc": "2.0", "id": 1, "result": {
                "isError": true,
                "content": [{"type": "text", "text": payload.to_string()}],
                "structuredContent": payload,
            }}),
        )
    }
    /// The bytes of a `Respond` reply's body (empty for the others).
    pub fn body(&self) -> Bytes {
        match self {
            Reply::Respond { body, .. } => body.clone(),
            _ => Bytes::new(),
        }
    }
    /// `status` with `count` extra response headers (`x-h-0: v` …) and an empty body.
    pub fn many_headers(status: u16, count: usize) -> Reply {
        Reply::Respond {
            status,
            headers: (0..count)
                .map(|i| (format!("x-h-{i}"), "v".into()))
                .collect(),
            body: Bytes::new(),
        }
    }

    /// A short label of what this reply does, for the request log.
    pub fn label(&self) -> String {
        match self {
            Reply::Respond { status, .. } => status.to_string(),
            Reply::Reset => "reset".into(),
            Reply::Stall => "stall".into(),
            Reply::Delay(..) => "slow".into(),
            Reply::Endless { .. } => "endless".into(),
            Reply::Trickle { .. } => "trickle".into(),
        }
    }

    /// Adds a header to a `Respond` reply.
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        if let Reply::Respond { headers, .. } = &mut self {
            headers.push((name.into(), value.into()));
        }
        self
    }
}

/// What the server received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub at: Instant,
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body_len: usize,
    pub body_sum: u64,
    /// What the server answered: the status, or `reset` / `stall` / `slow` / `endless` / `trickle`.
    pub reply: String,
}

#[derive(Default)]
struct Script {
    replies: VecDeque<Reply>,
    repeat_last: bool,
}

/// Random faults for paths without a script, drawn from a seeded generator.
#[derive(Clone, Debug)]
pub struct Chaos {
    pub seed: u64,
    /// Percentages (0–100) of each fault; the rest is 200.
    pub unavailable: u32,
    pub rate_limited: u32,
    pub reset: u32,
    pub slow: u32,
    pub garbage: u32,
    pub bad_request: u32,
    /// How long a slow response takes.
    pub slow_for: Duration,
    /// `Retry-After` of a rate-limited response, in seconds.
    pub retry_after_secs: u64,
    /// Outages: `[from, to)` windows, from when the chaos starts, in which every path
    /// answers `503`.
    pub bursts: Vec<(Duration, Duration)>,
}

#[derive(Default)]
struct State {
    scripts: Mutex<HashMap<String, Script>>,
    seen: Mutex<Vec<Seen>>,
    chaos: Mutex<Option<(rand::rngs::StdRng, Chaos, Instant)>>,
    /// (path, when the 429 was answered, Retry-After) of every rate-limited reply.
    limited: Mutex<Vec<(String, Instant, Duration)>>,
}

/// The running emulated API.
#[derive(Clone)]
pub struct Emulator {
    addr: SocketAddr,
    state: Arc<State>,
}

/// FNV-1a, 64 bits: a checksum of what the server received.
pub fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

impl Emulator {
    /// Starts the server on `127.0.0.1:0`; it runs until the runtime shuts down.
    pub async fn start() -> Emulator {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let kill = Arc::new(Notify::new());
                let state = st.clone();
                let k = kill.clone();
                let router = Router::new()
                    .fallback(move |req: Request| handle(state.clone(), k.clone(), req));
                tokio::spawn(async move {
                    let _ = stream.set_nodelay(true);
                    let _ = stream.set_zero_linger();
                    let service = TowerToHyperService::new(router);
                    let builder = auto::Builder::new(TokioExecutor::new());
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        _ = conn => {}
                        _ = kill.notified() => {} // dropping the connection resets it
                    }
                });
            }
        });
        Emulator { addr, state }
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT{path_and_query}`.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.addr, path_and_query)
    }

    /// Replies for `path`, in order; then 200.
    pub fn script(&self, path: &str, replies: impl IntoIterator<Item = Reply>) {
        let script = Script {
            replies: replies.into_iter().collect(),
            repeat_last: false,
        };
        self.state
            .scripts
            .lock()
            .unwrap()
            .insert(path.into(), script);
    }

    /// Replies for `path`, in order, the last one repeating forever.
    pub fn always(&self, path: &str, replies: impl IntoIterator<Item = Reply>) {
        let script = Script {
            replies: replies.into_iter().collect(),
            repeat_last: true,
        };
        self.state
            .scripts
            .lock()
            .unwrap()
            .insert(path.into(), script);
    }

    /// Every request received for `path`, in arrival order.
    pub fn seen(&self, path: &str) -> Vec<Seen> {
        self.state
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path == path)
            .cloned()
            .collect()
    }

    /// Every request received.
    pub fn all_seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// Serves paths without a script with random faults.
    pub fn chaos(&self, chaos: Chaos) {
        use rand::SeedableRng;
        *self.state.chaos.lock().unwrap() = Some((
            rand::rngs::StdRng::seed_from_u64(chaos.seed),
            chaos,
            Instant::now(),
        ));
    }

    /// Every 429 the server answered: path, when, and the `Retry-After` it sent.
    pub fn rate_limited(&self) -> Vec<(String, Instant, Duration)> {
        self.state.limited.lock().unwrap().clone()
    }
}

fn chaos_reply(state: &State) -> Option<Reply> {
    use rand::Rng;
    let mut guard = state.chaos.lock().unwrap();
    let (rng, c, start) = guard.as_mut()?;
    let at = start.elapsed();
    if c.bursts.iter().any(|(from, to)| at >= *from && at < *to) {
        return Some(Reply::detail(503, "Server restarting"));
    }
    let roll = rng.random_range(0..100u32);
    let mut edge = 0;
    let mut hit = |pct: u32| {
        edge += pct;
        roll < edge
    };
    Some(if hit(c.unavailable) {
        Reply::detail(503, "Server restarting")
    } else if hit(c.rate_limited) {
        Reply::too_many(c.retry_after_secs)
    } else if hit(c.reset) {
        Reply::Reset
    } else if hit(c.slow) {
        Reply::Delay(c.slow_for, Box::new(Reply::ok()))
    } else if hit(c.garbage) {
        let mut junk = vec![0u8; 1024 * 1024];
        rng.fill(&mut junk[..]);
        Reply::raw(502, junk)
    } else if hit(c.bad_request) {
        Reply::detail(400, "A required field is missing")
    } else {
        Reply::ok()
    })
}

fn next_reply(state: &State, path: &str) -> Reply {
    let mut scripts = state.scripts.lock().unwrap();
    let Some(script) = scripts.get_mut(path) else {
        drop(scripts);
        return chaos_reply(state).unwrap_or_else(Reply::ok);
    };
    if script.repeat_last && script.replies.len() == 1 {
        return script.replies[0].clone();
    }
    script.replies.pop_front().unwrap_or_else(Reply::ok)
}

async fn handle(
    state: Arc<State>,
    kill: Arc<Notify>,
    req: Request,
) -> Result<Response, Infallible> {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 64 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let path = parts.uri.path().to_owned();
    let mut reply = next_reply(&state, &path);
    state.seen.lock().unwrap().push(Seen {
        reply: reply.label(),
        at: Instant::now(),
        method: parts.method.clone(),
        path: path.clone(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers.clone(),
        body_len: body.len(),
        body_sum: checksum(&body),
    });
    loop {
        match reply {
            Reply::Delay(d, next) => {
                tokio::time::sleep(d).await;
                reply = *next;
            }
            other => return Ok(respond(&state, &path, other, &kill).await),
        }
    }
}

async fn respond(state: &State, path: &str, reply: Reply, kill: &Notify) -> Response {
    match reply {
        Reply::Respond {
            status,
            headers,
            body,
        } => {
            if status == 429 {
                let after = headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
                    .and_then(|(_, v)| v.parse().ok())
                    .map(Duration::from_secs)
                    .unwrap_or_default();
                state
                    .limited
                    .lock()
                    .unwrap()
                    .push((path.to_owned(), Instant::now(), after));
            }
            let mut res = Response::new(Body::from(body));
            *res.status_mut() = StatusCode::from_u16(status).unwrap();
            for (k, v) in headers {
                res.headers_mut().append(
                    HeaderName::try_from(k).unwrap(),
                    HeaderValue::try_from(v).unwrap(),
                );
            }
            res
        }
        Reply::Reset => {
            kill.notify_one();
            std::future::pending().await
        }
        Reply::Stall | Reply::Delay(..) => std::future::pending().await,
        Reply::Endless { status } => {
            let chunk = Bytes::from(vec![b'x'; 16 * 1024]);
            let stream =
                futures_util::stream::repeat_with(move || Ok::<_, Infallible>(chunk.clone()));
            let mut res = Response::new(Body::from_stream(stream));
            *res.status_mut() = StatusCode::from_u16(status).unwrap();
            res
        }
        Reply::Trickle { status, every, len } => {
            let stream = futures_util::stream::unfold(0usize, move |n| async move {
                if n == len {
                    return None;
                }
                tokio::time::sleep(every).await;
                Some((Ok::<_, Infallible>(Bytes::from_static(b"x")), n + 1))
            });
            let mut res = Response::new(Body::from_stream(stream));
            *res.status_mut() = StatusCode::from_u16(status).unwrap();
            res
        }
    }
}
