//! A retry storm that outlives its trigger, side by side: no retries, `tower::retry`, and
//! this crate's default stack.
//!
//! ```text
//! cargo run --release --example metastable
//! ```
//!
//! 150 GETs a second for 30 s to a server of 8 slots of 40 ms (200 a second) with a FIFO
//! queue and no shedding, whose service time doubles to 80 ms from the 2nd to the 7th second; every client times each
//! attempt out after 1 s. Time is virtual (tokio's paused clock): the run is quick and its
//! figures are the same on any machine, up to the retry jitter. Per second, for each client:
//! goodput (successes), attempts that reached the server, and failed requests (the trigger's
//! seconds are marked `*`); then when goodput is back after the trigger's end, how many
//! requests failed, attempts per request, and when the last caller got its answer.

#[path = "support/metastable.rs"]
mod metastable;

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    let reports = rt.block_on(metastable::run_all());
    print!("{}", metastable::table(&reports));
}
