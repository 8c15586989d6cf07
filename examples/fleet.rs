//! A fleet of worker processes on one API key: local gates against gates shared on Redis.
//!
//! ```sh
//! cargo run --release --example fleet --features redis
//! REDIS_URL=redis://127.0.0.1:6379/ cargo run --release --example fleet --features redis
//! ```
//!
//! The API (in this process, on loopback) limits `/limited/{n}` with one token bucket of 200
//! requests/s, burst 20, answering `429` + `Retry-After: 1` over it: the limit of one API
//! key. Four worker processes (this program, started again) each run 8 workers sending 150
//! GETs through the default stack (`ServiceBuilder::new().api_contract()`'s layers), first
//! each on its own gates, then on gates shared through Redis (`REDIS_URL`, or a
//! `redis-server` started here on a free port when one is installed:
//! `apt-get install -y redis-server`).
//!
//! Per process and for the fleet it prints: *429s* the API answered; *in-window*: requests
//! a process's gate let through inside the window of any `429` of the fleet, more than
//! 200 ms after it was answered (a closure reaches every process in well under a
//! millisecond on an idle machine; the margin is for a loaded one); *probes*: arrivals
//! after a window's end before the first of them was answered.

#[path = "../tests/it/support/external.rs"]
mod external;
#[path = "../tests/it/support/fleet.rs"]
mod fleet;
#[path = "../tests/it/support/limited.rs"]
mod limited;
#[path = "../tests/it/support/redis.rs"]
mod redis_server;

use fleet::FleetFigures;

const PROCESSES: usize = 4;
const WORKERS: usize = 8;
const REQUESTS: usize = 150;

fn table(title: &str, figures: &FleetFigures) {
    println!("\n{title}");
    println!("| process | ok | failed | 429s | in-window | probes |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (n, p) in &figures.processes {
        println!(
            "| {n} | {} | {} | {} | {} | {} |",
            p.ok, p.failed, p.rejected, p.in_window, p.probes
        );
    }
    let t = figures.total();
    println!(
        "| fleet | {} | {} | {} | {} | {} in {} windows |",
        t.ok, t.failed, t.rejected, t.in_window, t.probes, figures.windows
    );
}

fn main() {
    // Started again as a worker: `worker` runs it, with its own runtime.
    if fleet::worker(WORKERS, REQUESTS) {
        return;
    }
    tokio::runtime::Runtime::new()
        .expect("a tokio runtime")
        .block_on(compare());
}

async fn compare() {
    // Redis: the given one, or one of our own.
    let own;
    let url = match std::env::var("REDIS_URL") {
        Ok(url) => url,
        Err(_) => {
            // Without redis-server, `external` prints how to install it.
            match redis_server::RedisServer::start() {
                Some(server) => {
                    own = server;
                    own.url()
                }
                None => {
                    println!(
                        "Set REDIS_URL, or install redis-server to let this example start one."
                    );
                    return;
                }
            }
        }
    };
    let exe = std::env::current_exe().expect("this program's path");
    let command = || tokio::process::Command::new(&exe);
    println!(
        "{PROCESSES} processes x {WORKERS} workers, {REQUESTS} GETs each, one API key limited to 200/s"
    );
    let local = fleet::run(PROCESSES, None, command).await;
    table("Each process on its own gates", &local);
    let shared = fleet::run(PROCESSES, Some(&url), command).await;
    table("Gates shared on Redis", &shared);
    let (l, s) = (local.total(), shared.total());
    println!(
        "\nShared gates saved {} in-window arrivals ({} -> {}) and {} 429s ({} -> {}).",
        l.in_window.saturating_sub(s.in_window),
        l.in_window,
        s.in_window,
        l.rejected.saturating_sub(s.rejected),
        l.rejected,
        s.rejected
    );
}
