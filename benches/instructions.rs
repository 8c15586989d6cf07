//! Instructions and allocations per request, counted by callgrind: deterministic figures that
//! do not move with the machine's load, for the success path of each layer, the rate-limit
//! gate and typed decoding.
//!
//! ```sh
//! cargo bench --bench instructions              # every scenario, three markdown tables
//! cargo bench --bench instructions -- gate      # only the scenarios whose name contains "gate"
//! cargo bench --bench instructions --features redis -- gate   # with gates shared on Redis
//! ```
//!
//! The shared-gates scenario needs the `redis` feature and `redis-server` (it starts one on
//! a free loopback port); without them it is skipped.
//!
//! The bench re-runs itself under `valgrind --tool=callgrind` once per scenario with `N`
//! requests and once with `2N`, and reports the difference divided by `N`: what one more
//! request costs, with the set-up (runtime, services, closing 10,000 keys) cancelled out.
//! Allocations are the calls callgrind counted into `malloc`, `calloc`, `realloc`,
//! `posix_memalign`, `aligned_alloc` and `memalign`, taken the same way. Without valgrind the
//! bench says how to install it and exits successfully.
//!
//! Futures are polled once with a no-op waker inside a tokio runtime context whose clock is
//! paused: every scenario is ready at once, so no scheduler is counted, and nothing that runs
//! once a second (the gate's sweep of idle keys) lands in one run and not the other. Each figure includes building the request
//! (the same in every scenario of a table), which is why the tables show the overhead over
//! the bare service. Valgrind runs one thread at a time, so the two-thread gate scenario counts
//! the instructions of both threads (the lock path included), not the cost of cache lines
//! moving between cores: that is what criterion's `benches/gate.rs` shows.
//!
//! Run without `--bench` (as `cargo test --benches` does), every scenario runs a few times
//! natively as a smoke test, without valgrind.

#![allow(missing_docs)]

mod support;

#[path = "../tests/it/support/external.rs"]
mod external;
#[cfg(feature = "redis")]
#[path = "../tests/it/support/redis.rs"]
mod redis_server;

use http::{HeaderMap, Request, StatusCode};
use std::{
    future::Future,
    hint::black_box,
    path::PathBuf,
    pin::pin,
    process::{Command, ExitCode},
    task::{Context, Poll, Waker},
};
use support::{Bare, CloningPolicy, Req, SHAPES, close_10k, full_request as request, server};
use tower::{Layer, Service, ServiceBuilder};
use tower_api_retry::{
    ApiError, Error, ErrorDecodeLayer, RateLimitBackoffLayer, RetryLayer, ServiceBuilderExt,
    rate_limit::RateLimitGates,
};

// ---------------------------------------------------------------------------------------------
// Scenarios

/// A group of scenarios shown as one table: the first is the baseline the others are compared
/// with.
struct Table {
    title: &'static str,
    scenarios: &'static [Scenario],
}

struct Scenario {
    name: &'static str,
    label: &'static str,
    /// Runs `n` requests (or decodes) after its own set-up.
    run: fn(u64),
    /// Requests in the short run (the long run has twice as many).
    n: u64,
}

const SUCCESS: Table = Table {
    title: "Success path (an inner service that answers 200 at once)",
    scenarios: &[
        Scenario {
            name: "success/bare",
            label: "bare service",
            run: |n| in_runtime(|| drive(server(), n)),
            n: 1000,
        },
        Scenario {
            name: "success/tower_retry",
            label: "`tower::retry` (policy that clones the request)",
            run: |n| in_runtime(|| drive(tower::retry::Retry::new(CloningPolicy(3), server()), n)),
            n: 1000,
        },
        Scenario {
            name: "success/retry",
            label: "`RetryLayer` alone",
            run: |n| in_runtime(|| drive(RetryLayer::new().layer(server()), n)),
            n: 1000,
        },
        Scenario {
            name: "success/decode",
            label: "`ErrorDecodeLayer` alone",
            run: |n| in_runtime(|| drive(ErrorDecodeLayer::new().layer(server()), n)),
            n: 1000,
        },
        Scenario {
            name: "success/rate_limit",
            label: "`RateLimitBackoffLayer` alone, no key closed",
            run: |n| in_runtime(|| drive(RateLimitBackoffLayer::new().layer(server()), n)),
            n: 1000,
        },
        Scenario {
            name: "success/full_stack",
            label: "full stack (`.api_contract()`)",
            run: |n| {
                in_runtime(|| drive(ServiceBuilder::new().api_contract().service(server()), n))
            },
            n: 1000,
        },
    ],
};

const GATE: Table = Table {
    title: "Rate-limit gate alone (`Request<()>`, an inner service that answers at once)",
    scenarios: &[
        Scenario {
            name: "gate/bare",
            label: "bare service",
            run: |n| in_runtime(|| drive_unit(Bare, n)),
            n: 2000,
        },
        Scenario {
            name: "gate/no_key_closed",
            label: "gate, no key closed",
            run: |n| in_runtime(|| drive_unit(RateLimitBackoffLayer::new().layer(Bare), n)),
            n: 2000,
        },
        Scenario {
            name: SHARED,
            label: "gate shared on Redis, no key closed",
            run: shared_no_key_closed,
            n: 2000,
        },
        Scenario {
            name: "gate/10k_closed",
            label: "gate, an open key among 10,000 closed",
            run: |n| in_runtime(|| drive_unit(closed_10k(), n)),
            n: 2000,
        },
        Scenario {
            name: "gate/10k_closed_2_threads",
            label: "the same, two threads (per request, both threads counted)",
            run: |n| {
                in_runtime(|| {
                    let svc = closed_10k();
                    let other = svc.clone();
                    // The second thread reads the same (paused) clock.
                    let handle = tokio::runtime::Handle::current();
                    let thread = std::thread::spawn(move || {
                        let _in_runtime = handle.enter();
                        drive_unit(other, n / 2)
                    });
                    drive_unit(svc, n - n / 2);
                    thread.join().unwrap();
                })
            },
            n: 2000,
        },
    ],
};

/// Needs the `redis` feature and `redis-server`: skipped without them.
const SHARED: &str = "gate/shared_no_key_closed";

/// Whether `scenario` can run here.
fn available(scenario: &Scenario) -> bool {
    scenario.name != SHARED || (cfg!(feature = "redis") && external::redis_server().is_some())
}

/// The gate on gates shared through a `redis-server` of its own, connected and subscribed
/// before the requests start. Its runtime (not paused: the store talks to a real server) is
/// not driven while they run, so the figure is the success path alone (which sends Redis
/// nothing), not the subscriber's idle work.
#[cfg(feature = "redis")]
fn shared_no_key_closed(n: u64) {
    use tower_api_retry::rate_limit::RedisStore;
    let Some(server) = redis_server::RedisServer::start() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _in_runtime = rt.enter();
    let store = RedisStore::new(&server.url(), "bench").unwrap();
    let gates = RateLimitGates::new().shared(store).unwrap();
    rt.block_on(async {
        while !gates.is_shared() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    });
    drive_unit(RateLimitBackoffLayer::new().gates(gates).layer(Bare), n);
}

#[cfg(not(feature = "redis"))]
fn shared_no_key_closed(_: u64) {}

macro_rules! decode_scenarios {
    ($($i:literal),*) => {
        &[$(
            Scenario {
                name: concat!("decode/typed/", $i),
                label: "typed",
                run: |n| decode_typed($i, n),
                n: 200,
            },
            Scenario {
                name: concat!("decode/value/", $i),
                label: "value",
                run: |n| decode_value($i, n),
                n: 200,
            },
        )*]
    };
}

const DECODE: Table = Table {
    title: "Typed decode (`ApiError::decode`) vs `serde_json::from_slice::<Value>`",
    scenarios: decode_scenarios!(0, 1, 2, 3, 4, 5),
};

const TABLES: [&Table; 3] = [&SUCCESS, &GATE, &DECODE];

// ---------------------------------------------------------------------------------------------
// Services and drivers

/// Polls `future` once; every scenario is ready at once.
fn poll_once<F: Future>(future: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(future).poll(&mut cx) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("a scenario's future is pending"),
    }
}

/// Runs `f` inside a tokio runtime whose clock is paused: no timer fires and no periodic
/// sweep runs while requests are counted, so a longer run does the same work per request.
fn in_runtime(f: impl FnOnce()) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let _in_runtime = rt.enter();
    f();
}

/// `n` requests through `svc`, each one's response checked and dropped.
fn drive<S>(mut svc: S, n: u64)
where
    S: Service<Req>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..n {
        assert!(svc.poll_ready(&mut cx).is_ready());
        black_box(poll_once(svc.call(request())).unwrap());
    }
}

fn drive_unit<S>(mut svc: S, n: u64)
where
    S: Service<Request<()>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..n {
        assert!(svc.poll_ready(&mut cx).is_ready());
        black_box(poll_once(svc.call(support::request())).unwrap());
    }
}

/// A gate whose map holds 10,000 closed keys (none of them the benchmarked one, nor of its
/// host).
fn closed_10k() -> impl Service<Request<()>, Error = Error> + Clone + Send + 'static {
    let gates = RateLimitGates::new();
    close_10k(&gates);
    RateLimitBackoffLayer::new().gates(gates).layer(Bare)
}

fn decode_typed(shape: usize, n: u64) {
    let (_, status, body) = SHAPES[shape];
    let status = StatusCode::from_u16(status).unwrap();
    let headers = HeaderMap::new();
    for _ in 0..n {
        black_box(ApiError::decode(
            black_box(status),
            black_box(&headers),
            black_box(body.as_bytes()),
        ));
    }
}

fn decode_value(shape: usize, n: u64) {
    let body = SHAPES[shape].2;
    for _ in 0..n {
        let _ = black_box(serde_json::from_slice::<serde_json::Value>(black_box(
            body.as_bytes(),
        )));
    }
}

// ---------------------------------------------------------------------------------------------
// Measuring

/// What callgrind counted in one run.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    instructions: u64,
    allocations: u64,
}

/// Per-request figures: the long run minus the short one, divided by the extra requests.
#[derive(Clone, Copy, Debug)]
struct PerRequest {
    instructions: f64,
    allocations: f64,
}

/// The functions whose calls count as allocations.
const ALLOCATORS: &[&str] = &[
    "malloc",
    "calloc",
    "realloc",
    "posix_memalign",
    "aligned_alloc",
    "memalign",
];

fn callgrind(name: &str, n: u64) -> Result<Counts, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out: PathBuf = std::env::temp_dir().join(format!(
        "tower-api-retry-callgrind.{}.{}.{n}.out",
        std::process::id(),
        name.replace('/', "_"),
    ));
    let status = Command::new("valgrind")
        .args([
            "--tool=callgrind",
            "--quiet",
            "--compress-strings=no",
            "--compress-pos=no",
            "--dump-line=no",
        ])
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(&exe)
        .args(["--scenario", name, &n.to_string()])
        .output()
        .map_err(|e| format!("running valgrind: {e}"))?;
    if !status.status.success() {
        return Err(format!(
            "{name} ({n}) failed under valgrind: {}\n{}",
            status.status,
            String::from_utf8_lossy(&status.stderr)
        ));
    }
    let text = std::fs::read_to_string(&out).map_err(|e| format!("{}: {e}", out.display()));
    let _ = std::fs::remove_file(&out);
    parse_callgrind(&text?).ok_or_else(|| format!("{name}: no totals in callgrind's output"))
}

/// The total instruction count and the calls into the allocator, from callgrind's output
/// (written with `--compress-strings=no`, so every `cfn=` line names its function).
fn parse_callgrind(text: &str) -> Option<Counts> {
    let mut counts = Counts::default();
    let mut total = None;
    let mut callee_allocates = false;
    for line in text.lines() {
        if let Some(rest) = line
            .strip_prefix("summary:")
            .or_else(|| line.strip_prefix("totals:"))
        {
            total = rest.split_whitespace().next()?.parse().ok();
        } else if let Some(name) = line.strip_prefix("cfn=") {
            let name = name.split('\'').next().unwrap_or(name).trim();
            callee_allocates = ALLOCATORS.contains(&name);
        } else if let Some(rest) = line.strip_prefix("calls=")
            && callee_allocates
        {
            counts.allocations += rest.split_whitespace().next()?.parse::<u64>().ok()?;
        }
    }
    counts.instructions = total?;
    Some(counts)
}

fn measure(scenario: &Scenario) -> Result<PerRequest, String> {
    let short = callgrind(scenario.name, scenario.n)?;
    let long = callgrind(scenario.name, 2 * scenario.n)?;
    let per = |a: u64, b: u64| (b as f64 - a as f64) / scenario.n as f64;
    Ok(PerRequest {
        instructions: per(short.instructions, long.instructions),
        allocations: per(short.allocations, long.allocations),
    })
}

// ---------------------------------------------------------------------------------------------
// Tables

fn print_success_like(
    table: &Table,
    results: &[(&Scenario, PerRequest)],
    reference: &str,
    reference_label: &str,
) {
    println!("\n### {}\n", table.title);
    println!(
        "| scenario | instructions / request | over bare | ratio vs {reference_label} | allocations / request | over bare |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    let Some((_, bare)) = results.first() else {
        return;
    };
    let reference_over = results
        .iter()
        .find(|(s, _)| s.name == reference)
        .map(|(_, r)| r.instructions - bare.instructions);
    for (i, (scenario, r)) in results.iter().enumerate() {
        let over = r.instructions - bare.instructions;
        let (over, ratio) = if i == 0 {
            ("—".to_owned(), "—".to_owned())
        } else {
            let ratio = match reference_over {
                Some(base) if base > 0.0 => format!("{:.2}×", over / base),
                _ => "—".to_owned(),
            };
            (format!("{:+.0}", round(over)), ratio)
        };
        let allocs_over = if i == 0 {
            "—".to_owned()
        } else {
            format!("{:+.1}", round(r.allocations - bare.allocations))
        };
        println!(
            "| {} | {:.0} | {over} | {ratio} | {:.1} | {allocs_over} |",
            scenario.label, r.instructions, r.allocations
        );
    }
}

/// `x` to one decimal, without a negative zero.
fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0 + 0.0
}

fn print_decode(results: &[(&Scenario, PerRequest)]) {
    println!("\n### {}\n", DECODE.title);
    println!(
        "| shape | typed instructions | `Value` instructions | ratio | typed allocations | `Value` allocations |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (i, (shape, _, _)) in SHAPES.iter().enumerate() {
        let find = |kind: &str| {
            let name = format!("decode/{kind}/{i}");
            results
                .iter()
                .find(|(s, _)| s.name == name)
                .map(|(_, r)| *r)
        };
        match (find("typed"), find("value")) {
            (Some(t), Some(v)) => println!(
                "| {shape} | {:.0} | {:.0} | {:.2}× | {:.1} | {:.1} |",
                t.instructions,
                v.instructions,
                t.instructions / v.instructions,
                t.allocations,
                v.allocations
            ),
            (Some(t), None) => println!(
                "| {shape} | {:.0} | | | {:.1} | |",
                t.instructions, t.allocations
            ),
            (None, Some(v)) => println!(
                "| {shape} | | {:.0} | | | {:.1} |",
                v.instructions, v.allocations
            ),
            (None, None) => {}
        }
    }
}

fn find_scenario(name: &str) -> Option<&'static Scenario> {
    TABLES
        .iter()
        .flat_map(|t| t.scenarios.iter())
        .find(|s| s.name == name)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();

    // Child: one scenario, `n` requests, under callgrind.
    if let [flag, name, n, ..] = args.as_slice()
        && flag == "--scenario"
    {
        let Some(scenario) = find_scenario(name) else {
            eprintln!("no scenario named {name}");
            return ExitCode::FAILURE;
        };
        let Ok(n) = n.parse() else {
            eprintln!("not a count: {n}");
            return ExitCode::FAILURE;
        };
        (scenario.run)(n);
        return ExitCode::SUCCESS;
    }

    let filter: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .map(String::as_str)
        .collect();
    let selected = |s: &Scenario| filter.is_empty() || filter.iter().any(|f| s.name.contains(f));

    // Not run by `cargo bench`: a quick native smoke test of every scenario.
    if !args.iter().any(|a| a == "--bench") {
        for scenario in TABLES.iter().flat_map(|t| t.scenarios.iter()) {
            if selected(scenario) && available(scenario) {
                (scenario.run)(2);
            }
        }
        println!("instructions: every scenario ran (natively; `cargo bench` counts them)");
        return ExitCode::SUCCESS;
    }

    if !Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        println!(
            "valgrind was not found: these counts need it (Debian/Ubuntu: `apt-get install \
             valgrind`; Fedora: `dnf install valgrind`; macOS is not supported). Skipping."
        );
        return ExitCode::SUCCESS;
    }

    println!(
        "Instructions and allocations per request, callgrind (N and 2N requests per scenario, \
         the difference divided by N)."
    );
    let mut failed = false;
    for (t, table) in TABLES.iter().enumerate() {
        let mut results = Vec::new();
        for scenario in table.scenarios.iter().filter(|s| selected(s)) {
            if !available(scenario) {
                eprintln!(
                    "{}: skipped (needs `--features redis` and redis-server: `apt-get install -y redis-server`)",
                    scenario.name
                );
                continue;
            }
            match measure(scenario) {
                Ok(r) => {
                    eprintln!(
                        "{:<32} {:>10.0} instructions {:>6.1} allocations",
                        scenario.name, r.instructions, r.allocations
                    );
                    results.push((scenario, r));
                }
                Err(e) => {
                    eprintln!("{e}");
                    failed = true;
                }
            }
        }
        if results.is_empty() {
            continue;
        }
        match t {
            0 => print_success_like(table, &results, "success/tower_retry", "`tower::retry`"),
            1 => print_success_like(table, &results, "gate/no_key_closed", "no key closed"),
            _ => print_decode(&results),
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
