//! The one process-wide tracing subscriber of the test binary.
//!
//! Every test of the binary shares one process, so a global subscriber would see every test's
//! events. This one records nothing until a test holds a [`Capture`]; captures are taken one at
//! a time. While a capture is held, events from tests running beside it are recorded too:
//! stricter, never wrong, for tests that assert what the output does *not* contain.
//!
//! Its filter is dynamic (asked for every event), so tracing never caches a callsite as
//! "never interesting": a test may also install a scoped subscriber with
//! `tracing::subscriber::set_default` (after [`install`]) and see every event of its thread.
use std::{
    io,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
};
use tracing_subscriber::{filter::filter_fn, layer::SubscriberExt, prelude::*};

static RECORDING: AtomicBool = AtomicBool::new(false);

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl io::Write for Buffer {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn buffer() -> &'static Buffer {
    static BUFFER: OnceLock<Buffer> = OnceLock::new();
    BUFFER.get_or_init(|| {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL)
            .with_filter(filter_fn(|_| RECORDING.load(Ordering::SeqCst)));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        buffer
    })
}

/// Installs the global subscriber (recording nothing) if it is not installed yet.
pub fn install() {
    buffer();
}

/// Records every tracing event of the process, at every level and target, while held.
pub struct Capture {
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

/// Waits for the other captures to end, then starts recording into an empty buffer.
pub async fn capture() -> Capture {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let buffer = buffer();
    let turn = TURN.lock().await;
    buffer.0.lock().unwrap().clear();
    RECORDING.store(true, Ordering::SeqCst);
    Capture { _turn: turn }
}

impl Capture {
    /// Everything recorded since this capture began.
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&buffer().0.lock().unwrap()).into_owned()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        RECORDING.store(false, Ordering::SeqCst);
        buffer().0.lock().unwrap().clear();
    }
}
