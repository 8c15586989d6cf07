//! What tower-api-retry makes of the sample errors of both reference pages.
//!
//! Every sample error of the "Errors" and "Errors & Rate Limits" pages is decoded twice: with
//! `ApiError::decode`, and through `ErrorDecodeLayer` around an in-process `tower::service_fn`
//! server (no network). It prints what the crate decided and exits non-zero if anything
//! differs from what the pages say. For the whole stack against servers on loopback, see the
//! `demo` example.
//!
//! ```sh
//! cargo run --example samples
//! ```

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use std::{convert::Infallible, time::Duration};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
use tower_api_retry::{
    ApiError, Disposition, ErrorDecodeLayer,
    builtin::{BudgetState, Credits, Objective},
};

/// One sample error and what the pages say a careful caller makes of it.
struct Sample {
    what: &'static str,
    status: u16,
    headers: &'static [(&'static str, &'static str)],
    body: &'static str,
    code: &'static str,
    disposition: Disposition,
    message: &'static str,
    fix: Option<&'static str>,
    retry_after: Option<u64>,
}

const SAMPLES: &[Sample] = &[
    Sample {
        what: "Errors page: space not active (409 detail)",
        status: 409,
        headers: &[],
        body: r#"{"detail": "Space is not active"}"#,
        code: "FAILED_PRECONDITION",
        disposition: Disposition::FixRequest,
        message: "Space is not active",
        fix: None,
        retry_after: None,
    },
    Sample {
        what: "Errors page: tenant suspended (403 detail)",
        status: 403,
        headers: &[],
        body: r#"{"detail":"Tenant is suspended"}"#,
        code: "PERMISSION_DENIED",
        disposition: Disposition::Forbidden,
        message: "Tenant is suspended",
        fix: None,
        retry_after: None,
    },
    Sample {
        what: "Errors page: agent connected elsewhere (structured 409)",
        status: 409,
        headers: &[],
        body: r#"{"error": "agent_connected", "message": "Agent agt_... is currently connected to another installation. Release it first or retry with X-Force-Rotate: true.", "agent_id": "agt_..."}"#,
        code: "agent_connected",
        disposition: Disposition::FixRequest,
        message: "Agent agt_... is currently connected to another installation. Release it first or retry with X-Force-Rotate: true.",
        fix: None,
        retry_after: None,
    },
    Sample {
        what: "Errors & Rate Limits page: the error envelope",
        status: 401,
        headers: &[],
        body: r#"{"code": "INVALID_API_KEY", "message": "The API key you sent is not recognized.", "fix": "Generate a new key in Settings → API Keys and update your config."}"#,
        code: "INVALID_API_KEY",
        disposition: Disposition::Reauthenticate,
        message: "The API key you sent is not recognized.",
        fix: Some("Generate a new key in Settings → API Keys and update your config."),
        retry_after: None,
    },
    Sample {
        what: "Errors & Rate Limits page: the MCP error payload",
        status: 403,
        headers: &[],
        body: r#"{"error": {"code": "PERMISSION_DENIED", "message": "Human-readable description", "fix": "Optional — actionable next step for the caller", "details": {"nodeId": "node_1", "fieldName": "parentId"}}}"#,
        code: "PERMISSION_DENIED",
        disposition: Disposition::Forbidden,
        message: "Human-readable description",
        fix: Some("Optional — actionable next step for the caller"),
        retry_after: None,
    },
    Sample {
        what: "Errors & Rate Limits page: JSON-RPC -32602 input validation",
        status: 400,
        headers: &[],
        body: r#"{"jsonrpc": "2.0", "id": 1, "error": {"code": -32602, "message": "Input validation error"}}"#,
        code: "INVALID_ARGUMENT",
        disposition: Disposition::FixRequest,
        message: "Input validation error",
        fix: None,
        retry_after: None,
    },
    Sample {
        what: "Errors & Rate Limits page: rate limited, honour Retry-After",
        status: 429,
        headers: &[("retry-after", "30")],
        body: r#"{"code": "RESOURCE_EXHAUSTED", "message": "Too many requests", "fix": "Back off and retry later"}"#,
        code: "RESOURCE_EXHAUSTED",
        disposition: Disposition::RateLimited,
        message: "Too many requests",
        fix: Some("Back off and retry later"),
        retry_after: Some(30),
    },
    Sample {
        what: "Errors & Rate Limits page: REFRESH_IN_PROGRESS 503 + Retry-After",
        status: 503,
        headers: &[("retry-after", "2")],
        body: r#"{"code": "REFRESH_IN_PROGRESS", "message": "Another credential refresh for this team and agent is already running"}"#,
        code: "REFRESH_IN_PROGRESS",
        disposition: Disposition::Retry,
        message: "Another credential refresh for this team and agent is already running",
        fix: None,
        retry_after: Some(2),
    },
    Sample {
        what: "a proxy's HTML error page (5xx: transient)",
        status: 502,
        headers: &[("content-type", "text/html")],
        body: "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>",
        code: "UNAVAILABLE",
        disposition: Disposition::Retry,
        message: "502 Bad Gateway",
        fix: None,
        retry_after: None,
    },
    Sample {
        what: "gRPC trailers-only UNAVAILABLE in an HTTP 200",
        status: 200,
        headers: &[
            ("grpc-status", "14"),
            ("grpc-message", "backend%20restarting"),
        ],
        body: "",
        code: "UNAVAILABLE",
        disposition: Disposition::Retry,
        message: "backend restarting",
        fix: None,
        retry_after: None,
    },
];

/// Every row of the "Authentication & Subscription Codes" table (and the connect-time codes
/// it names), at its documented status, with what the page says to do.
const AUTH_TABLE: &[(&str, u16, Disposition)] = &[
    ("INVALID_API_KEY", 401, Disposition::Reauthenticate),
    ("KEY_REVOKED", 401, Disposition::Reauthenticate),
    ("KEY_AUTO_DISABLED", 401, Disposition::Reauthenticate),
    ("KEY_EXPIRED", 401, Disposition::Reauthenticate),
    (
        "AGENT_DISCONNECTED_CODING_TOOL",
        401,
        Disposition::Reauthenticate,
    ),
    (
        "AGENT_DISCONNECTED_AUTOMATED",
        401,
        Disposition::Reauthenticate,
    ),
    ("AGENT_BLOCKED", 401, Disposition::NeedsHuman),
    ("SUBSCRIPTION_CANCELED", 409, Disposition::NeedsHuman),
    ("NO_ACTIVE_USER", 409, Disposition::NeedsHuman),
    ("KEY_ROTATION_FAILED", 422, Disposition::NeedsHuman),
    ("REFRESH_IN_PROGRESS", 503, Disposition::Retry),
    ("AGENT_KEY_CONFLICT", 403, Disposition::Forbidden),
    ("TRUST_REQUIRED", 403, Disposition::NeedsHuman),
];

/// Mismatches against the pages, reported at the end.
#[derive(Default)]
struct Check {
    failures: Vec<String>,
}

impl Check {
    fn eq<T: PartialEq + std::fmt::Debug>(&mut self, what: &str, field: &str, got: T, want: T) {
        if got != want {
            let line = format!("MISMATCH {what}: {field} is {got:?}, the page says {want:?}");
            eprintln!("{line}");
            self.failures.push(line);
        }
    }
}

fn headers_of(sample: &Sample) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in sample.headers {
        map.append(HeaderName::from_static(k), HeaderValue::from_static(v));
    }
    map
}

fn check_api(check: &mut Check, sample: &Sample, err: &ApiError) {
    let what = sample.what;
    check.eq(what, "code", err.code().as_str(), sample.code);
    check.eq(what, "status", err.status().as_u16(), sample.status);
    check.eq(what, "disposition", err.disposition(), sample.disposition);
    check.eq(what, "message", err.message(), sample.message);
    check.eq(what, "fix", err.fix(), sample.fix);
    check.eq(
        what,
        "retry_after",
        err.retry_after(),
        sample.retry_after.map(Duration::from_secs),
    );
}

fn print_api(err: &ApiError) {
    println!("  code         {}", err.code());
    println!("  status       {}", err.status());
    println!(
        "  disposition  {} (retryable: {})",
        err.disposition(),
        err.disposition().is_retryable()
    );
    println!("  message      {}", err.message());
    println!("  fix          {}", err.fix().unwrap_or("-"));
    match err.retry_after() {
        Some(d) => println!("  retry_after  {d:?}"),
        None => println!("  retry_after  -"),
    }
    if let Some(n) = err.numeric_code() {
        println!("  numeric code {n}");
    }
    if let Some(details) = err.details() {
        println!("  details      {details}");
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut check = Check::default();

    println!("== The pages' sample errors, decoded with ApiError::decode ==\n");
    for sample in SAMPLES {
        println!("{}", sample.what);
        println!(
            "  input        HTTP {} {:?} {}",
            sample.status, sample.headers, sample.body
        );
        let err = ApiError::decode(
            StatusCode::from_u16(sample.status).unwrap(),
            &headers_of(sample),
            sample.body.as_bytes(),
        );
        print_api(&err);
        check_api(&mut check, sample, &err);
        if let Some(conflict) = err.agent_connected() {
            // The page's two remedies: visible on the error, applied only by the caller.
            println!("  agent_id     {}", conflict.agent_id().unwrap_or("-"));
            let release = conflict.release_path().unwrap_or_default();
            println!("  remedy 1     POST {release}, then rotate again");
            let mut retry = Request::post("/api/actors/agt_.../rotate-key")
                .body(())
                .unwrap();
            conflict.force_rotate(&mut retry);
            println!(
                "  remedy 2     send the rotation again with X-Force-Rotate: {}",
                retry.headers()["x-force-rotate"].to_str().unwrap()
            );
            check.eq(
                sample.what,
                "agent_id",
                conflict.agent_id(),
                Some("agt_..."),
            );
            check.eq(
                sample.what,
                "release path",
                release.as_str(),
                "/api/actors/agt_.../release",
            );
        }
        println!();
    }

    println!("== Authentication & Subscription Codes: every row ==\n");
    for &(code, status, want) in AUTH_TABLE {
        let body = format!(r#"{{"code": "{code}", "message": "m"}}"#);
        let err = ApiError::decode(
            StatusCode::from_u16(status).unwrap(),
            &HeaderMap::new(),
            body.as_bytes(),
        );
        println!("  {status} {code:<32} -> {}", err.disposition());
        check.eq(code, "code", err.code().as_str(), code);
        check.eq(code, "disposition", err.disposition(), want);
    }
    println!();

    println!("== The same samples through ErrorDecodeLayer over a tower::service_fn server ==\n");
    let server = service_fn(|req: Request<Full<Bytes>>| async move {
        let sample = &SAMPLES[req.uri().path()[1..].parse::<usize>().unwrap()];
        let mut res = Response::builder().status(sample.status);
        for (k, v) in sample.headers {
            res = res.header(*k, *v);
        }
        Ok::<_, Infallible>(
            res.body(Full::new(Bytes::from_static(sample.body.as_bytes())))
                .unwrap(),
        )
    });
    let mut client = ServiceBuilder::new()
        .layer(ErrorDecodeLayer::new())
        .service(server);
    for (i, sample) in SAMPLES.iter().enumerate() {
        let req = Request::get(format!("/{i}")).body(Full::default()).unwrap();
        match client.ready().await.unwrap().call(req).await {
            Ok(res) => check.eq(
                sample.what,
                "layer result",
                format!("Ok({})", res.status()),
                "Err".into(),
            ),
            Err(err) => {
                println!("  {err}");
                match err.api() {
                    Some(api) => check_api(&mut check, sample, api),
                    None => check.eq(sample.what, "layer result", "transport error", "API error"),
                }
                check.eq(
                    sample.what,
                    "is_retryable",
                    err.is_retryable(),
                    sample.disposition.is_retryable(),
                );
            }
        }
    }
    // A success passes through untouched.
    let ok = service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
            b"{\"ok\":true}",
        ))))
    });
    let mut ok_client = ServiceBuilder::new()
        .layer(ErrorDecodeLayer::new())
        .service(ok);
    let res = ok_client
        .ready()
        .await
        .unwrap()
        .call(Request::new(Full::default()))
        .await;
    println!(
        "  200 -> {}",
        if res.is_ok() {
            "passed through untouched"
        } else {
            "ERROR"
        }
    );
    check.eq("success", "passed through", res.is_ok(), true);
    println!();

    println!("== Budgets & Quotas ==\n");
    let objectives = [
        (
            r#"{"currentObjective": {"allocated": 1000, "spent": 550, "remaining": 450, "remainingPct": 45}}"#,
            BudgetState::Normal,
        ),
        (
            r#"{"currentObjective": {"allocated": 1000, "spent": 700, "remaining": 300, "remainingPct": 30}}"#,
            BudgetState::SlowDown,
        ),
        (
            r#"{"currentObjective": {"allocated": 1000, "spent": 900, "remaining": 100, "remainingPct": 10}}"#,
            BudgetState::Finalize,
        ),
        (
            r#"{"currentObjective": {"allocated": 1000, "spent": 1000, "remaining": 0, "remainingPct": 0, "abortSignal": {"reason": "budget exhausted"}}}"#,
            BudgetState::Abort,
        ),
    ];
    for (json, want) in objectives {
        let value: serde_json::Value = serde_json::from_str(json).unwrap();
        let objective = Objective::from_value(&value).unwrap();
        let state = objective.state();
        let show = |c: Option<Credits>| c.map(|c| c.to_string()).unwrap_or_else(|| "-".into());
        println!(
            "  remainingPct {:>3} abortSignal {:<5} -> {:<8} (spent {} of {}, {} left)",
            objective.remaining_pct.unwrap_or(f64::NAN),
            objective.abort_signal.is_some(),
            format!("{state:?}"),
            show(objective.spent),
            show(objective.allocated),
            show(objective.remaining),
        );
        check.eq("budget", "state", state, want);
    }
    for (credits, dollars) in [(7, "$0.07"), (120, "$1.20")] {
        println!("  {credits} credits -> {}", Credits(credits));
        check.eq(
            "credits",
            "dollars",
            Credits(credits).to_string().as_str(),
            dollars,
        );
    }
    println!();

    if check.failures.is_empty() {
        println!("All decoded results match the pages.");
    } else {
        eprintln!("{} result(s) differ from the pages:", check.failures.len());
        for f in &check.failures {
            eprintln!("  {f}");
        }
        std::process::exit(1);
    }
}
