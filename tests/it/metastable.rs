//! A retry storm does not become metastable: after a trigger that doubles the server's
//! service time for 5 s under an open-loop load, the default stack's goodput is back within
//! 5 s of the trigger's end, and it fails fewer requests than no retries at all, where
//! `tower::retry` never recovers. See `examples/metastable.rs` for the table.

#[path = "../../examples/support/metastable.rs"]
mod sim;

use sim::Client;

#[tokio::test(start_paused = true)]
async fn a_retry_storm_does_not_outlive_its_trigger() {
    let reports = sim::run_all().await;
    let table = sim::table(&reports);
    let [none, tower, ours] = [Client::NoRetries, Client::TowerRetry, Client::Crate]
        .map(|c| reports.iter().find(|r| r.client == c).unwrap());
    // The scenario is the right one: naive retries keep the server overloaded to the end.
    assert_eq!(tower.recovery(), None, "tower::retry recovered:\n{table}");
    // Without retries the server recovers by itself once the trigger ends.
    assert!(
        none.recovery().is_some(),
        "no retries never recovered:\n{table}"
    );
    let back = ours.recovery();
    assert!(
        back.is_some_and(|s| s <= 5),
        "goodput back {back:?} s after the trigger's end:\n{table}"
    );
    assert!(
        ours.failed < none.failed,
        "{} failed, against {} without retries:\n{table}",
        ours.failed,
        none.failed
    );
}
