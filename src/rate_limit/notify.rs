//! Waking the requests that wait at a gate, per key: every change of a key's entry (or of
//! its lane's schedule) wakes its waiters, and so does forgetting it (dropping the
//! [`Waiters`]). A woken request asks the gate again, so a spurious wake-up costs one look-up.

use std::{future::Future, pin::pin, task::Poll};
use tokio::{sync::watch, time::Instant};

/// The wake-up side of one key: held by the store while the key is tracked.
#[derive(Debug)]
pub(crate) struct Waiters(watch::Sender<()>);

/// One waiting request's subscription to its key's changes.
#[derive(Debug)]
pub(crate) struct Waiter(watch::Receiver<()>);

impl Waiters {
    /// No waiters yet.
    pub(crate) fn new() -> Waiters {
        Waiters(watch::Sender::new(()))
    }

    /// A subscription to the changes after this call.
    pub(crate) fn subscribe(&self) -> Waiter {
        Waiter(self.0.subscribe())
    }

    /// Wakes every current waiter of the key.
    pub(crate) fn wake(&self) {
        self.0.send_replace(());
    }
}

impl Waiter {
    /// Resolves at the first change of either subscription (a key's entry, a lane's
    /// schedule), or at `wake`.
    pub(crate) async fn wait_either(a: Option<Waiter>, b: Option<Waiter>, wake: Instant) {
        async fn changed(waiter: Option<Waiter>) {
            match waiter {
                Some(mut w) => drop(w.0.changed().await),
                None => std::future::pending().await,
            }
        }
        let mut sleep = pin!(tokio::time::sleep_until(wake));
        let (mut a, mut b) = (pin!(changed(a)), pin!(changed(b)));
        std::future::poll_fn(|cx| {
            // A change, a forgotten key or lane, or the time: any of them wakes.
            if a.as_mut().poll(cx).is_ready()
                || b.as_mut().poll(cx).is_ready()
                || sleep.as_mut().poll(cx).is_ready()
            {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    impl Waiter {
        /// Resolves at the key's first change since the subscription, when the key is forgotten,
        /// or at `wake`, whichever comes first.
        pub(crate) async fn wait(self, wake: Instant) {
            Waiter::wait_either(Some(self), None, wake).await;
        }

        /// The key changed, or was forgotten, since the subscription.
        pub(crate) fn woken(&self) -> bool {
            self.0.has_changed().unwrap_or(true)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_wakes_before_the_time() {
        let waiters = Waiters::new();
        let waiter = waiters.subscribe();
        assert!(!waiter.woken());
        let far = Instant::now() + Duration::from_secs(3600);
        let wait = tokio::spawn(waiter.wait(far));
        tokio::task::yield_now().await;
        waiters.wake();
        wait.await.unwrap();
        assert!(Instant::now() < far);
    }

    #[tokio::test(start_paused = true)]
    async fn forgetting_the_key_wakes_everyone() {
        let waiters = Waiters::new();
        let (a, b) = (waiters.subscribe(), waiters.subscribe());
        let far = Instant::now() + Duration::from_secs(3600);
        let (a, b) = (tokio::spawn(a.wait(far)), tokio::spawn(b.wait(far)));
        tokio::task::yield_now().await;
        drop(waiters);
        a.await.unwrap();
        b.await.unwrap();
        assert!(Instant::now() < far);
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_change_the_time_wakes() {
        let waiters = Waiters::new();
        let start = Instant::now();
        waiters
            .subscribe()
            .wait(start + Duration::from_secs(2))
            .await;
        assert_eq!(Instant::now() - start, Duration::from_secs(2));
        // A change before the subscription is not seen.
        waiters.wake();
        let late = waiters.subscribe();
        assert!(!late.woken());
    }
}
