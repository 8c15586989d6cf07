//! Gates shared by a fleet of processes, on Redis: [`RedisStore`], a [`GateStore`].
//!
//! Each process keeps its own gates as its *local view*, so the success path never waits on
//! the network. A rejection closes the key in Redis with one script call, which publishes
//! it; when a key's time is up, only the holder of its *probe lease* probes, and its answer
//! opens (or closes) the key fleet-wide. Scripts read Redis's own clock (`TIME`), so the
//! machines' clocks never matter; pub/sub drops messages, so a process reads every gate again
//! on each (re)subscription and once a second while any is closed. Every call has a
//! timeout: while Redis is away, a process works on its local view alone.

use super::{
    Key, RateLimitGates,
    health::Health,
    lanes::Lanes,
    policy::{self, Entry, ProbeId},
    store::{GateStore, Lease, MemoryStore},
};
use crate::quota::Quota;
use crate::sync::lock;
use foldhash::fast::FixedState;
use futures_core::Stream;
use redis::{Client, Script, aio::ConnectionManager};
use std::collections::HashMap;
use std::{
    fmt,
    pin::Pin,
    sync::{
        Arc, LazyLock, Mutex, Weak,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    task::Poll,
    time::Duration,
};
use tokio::sync::mpsc;

/// The default for [`RedisStore::probe_lease`]: 5 seconds.
const DEFAULT_PROBE_LEASE: Duration = Duration::from_secs(5);

/// The default for [`RedisStore::timeout`]: 250 milliseconds.
const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(250);

/// The default for [`RedisStore::resync_interval`]: 1 second.
const DEFAULT_RESYNC_INTERVAL: Duration = Duration::from_secs(1);

/// Fire-and-forget changes waiting for the writer: beyond this many, changes are dropped
/// (the local view has them; the fleet catches up at the next rejection).
const QUEUE: usize = 1024;

/// The shortest wait a denied lease sets, so a process never spins on a lease.
const MIN_LEASE_WAIT: Duration = Duration::from_millis(10);

macro_rules! script {
    ($file:literal) => {
        concat!(include_str!("fleet/common.lua"), include_str!($file))
    };
}

/// Where a fleet of processes that share an API key keeps its rate-limit gates: a Redis
/// server that every process reaches. Give one per process to [`RateLimitGates::shared`]:
/// a rate limit seen by one process then closes the path for the whole fleet, and after the
/// window exactly one process probes.
///
/// The namespace names the fleet's gates in Redis: give every process on one API key the
/// same one, for example the key's *id* (never the secret).
///
/// ```
/// use tower_api_retry::rate_limit::{RateLimitBackoffLayer, RateLimitGates, RedisStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisStore::new("redis://127.0.0.1:6379/", "key-id-7f3a")?;
/// // Connects in the background: nothing waits for Redis here, and without it the gates
/// // work as local ones.
/// let gates = RateLimitGates::new().shared(store)?;
/// let layer = RateLimitBackoffLayer::new().gates(gates);
/// # let _ = layer;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    target: Target,
    namespace: String,
    probe_lease: Duration,
    timeout: Duration,
    resync_every: Duration,
    max_closed: Duration,
}

/// One server, or a cluster (and the nodes it was given, to subscribe through).
#[derive(Clone)]
enum Target {
    Single(Client),
    Cluster {
        client: Box<redis::cluster::ClusterClient>,
        nodes: Vec<Client>,
    },
}

impl Target {
    /// The addresses, without user names or passwords.
    fn addrs(&self) -> Vec<String> {
        let addr = |c: &Client| c.get_connection_info().addr().to_string();
        match self {
            Target::Single(c) => vec![addr(c)],
            Target::Cluster { nodes, .. } => nodes.iter().map(addr).collect(),
        }
    }

    /// The scripts for this target: a cluster's publish to a shard channel (`SPUBLISH`), so
    /// a change reaches the one shard that holds the fleet's gates, not every node.
    fn scripts(&self) -> &'static Scripts {
        static PLAIN: LazyLock<Scripts> = LazyLock::new(|| Scripts::new("PUBLISH"));
        static SHARDED: LazyLock<Scripts> = LazyLock::new(|| Scripts::new("SPUBLISH"));
        match self {
            Target::Single(_) => &PLAIN,
            Target::Cluster { .. } => &SHARDED,
        }
    }
}

/// A connection for commands: it reconnects by itself.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Conn {
    async fn invoke<T: redis::FromRedisValue>(
        &mut self,
        call: &redis::ScriptInvocation<'_>,
    ) -> redis::RedisResult<T> {
        match self {
            Conn::Single(c) => call.invoke_async(c).await,
            Conn::Cluster(c) => call.invoke_async(c).await,
        }
    }

    async fn load(&mut self, script: &Script) -> redis::RedisResult<String> {
        match self {
            Conn::Single(c) => script.prepare_invoke().load_async(c).await,
            Conn::Cluster(c) => script.prepare_invoke().load_async(c).await,
        }
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The addresses only: a URL's user name and password never show.
        f.debug_struct("RedisStore")
            .field("addrs", &self.target.addrs())
            .field("namespace", &self.namespace)
            .field("probe_lease", &self.probe_lease)
            .field("timeout", &self.timeout)
            .field("resync_interval", &self.resync_every)
            .field("max_closed", &self.max_closed)
            .finish()
    }
}

/// Why a [`RedisStore`] could not be set up.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedisStoreError {
    /// The URL is not a Redis URL (`redis://`, `rediss://` or `unix://`). The URL itself
    /// is not repeated: it may hold a password.
    InvalidUrl,
    /// The namespace is empty, longer than 128 bytes, or holds `{`, `}` or a control
    /// character.
    InvalidNamespace,
    /// [`RateLimitGates::shared`] was called outside a tokio runtime: the store's
    /// background tasks need one.
    NoRuntime,
}

impl fmt::Display for RedisStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RedisStoreError::InvalidUrl => "not a Redis URL",
            RedisStoreError::InvalidNamespace => {
                "invalid namespace: 1 to 128 bytes, no braces or control characters"
            }
            RedisStoreError::NoRuntime => "a Redis store needs a tokio runtime",
        })
    }
}

impl std::error::Error for RedisStoreError {}

impl RedisStore {
    /// The store at `url` (`redis://[user:password@]host:port/db`, `rediss://` for TLS
    /// where the `redis` crate has a TLS feature enabled), for the fleet named `namespace`.
    /// Only checks both: nothing connects until [`RateLimitGates::shared`].
    pub fn new(url: &str, namespace: &str) -> Result<RedisStore, RedisStoreError> {
        let client = Client::open(url).map_err(|_| RedisStoreError::InvalidUrl)?;
        RedisStore::with_target(Target::Single(client), namespace)
    }

    /// The store on the Redis Cluster reached through `urls` (some of its nodes; the others
    /// are discovered), for the fleet named `namespace`. A namespace's gates live in one
    /// slot (one hash tag), so each gate costs one call, as on a single server, and changes
    /// go by sharded pub/sub (`SPUBLISH`, `SSUBSCRIBE` over RESP3: Redis 7 or later) to that
    /// slot's shard only, never broadcast to every node.
    ///
    /// ```
    /// use tower_api_retry::rate_limit::RedisStore;
    ///
    /// let store = RedisStore::cluster(
    ///     &["redis://10.0.0.1:7000/", "redis://10.0.0.2:7000/", "redis://10.0.0.3:7000/"],
    ///     "key-id-7f3a",
    /// )?;
    /// # let _ = store;
    /// # Ok::<_, tower_api_retry::rate_limit::RedisStoreError>(())
    /// ```
    pub fn cluster(urls: &[&str], namespace: &str) -> Result<RedisStore, RedisStoreError> {
        let nodes = urls
            .iter()
            .map(|url| Client::open(*url).map_err(|_| RedisStoreError::InvalidUrl))
            .collect::<Result<Vec<_>, _>>()?;
        if nodes.is_empty() {
            return Err(RedisStoreError::InvalidUrl);
        }
        let client = redis::cluster::ClusterClient::new(urls.to_vec())
            .map_err(|_| RedisStoreError::InvalidUrl)?;
        RedisStore::with_target(
            Target::Cluster {
                client: Box::new(client),
                nodes,
            },
            namespace,
        )
    }

    fn with_target(target: Target, namespace: &str) -> Result<RedisStore, RedisStoreError> {
        if namespace.is_empty()
            || namespace.len() > 128
            || namespace
                .chars()
                .any(|c| c == '{' || c == '}' || c.is_control())
        {
            return Err(RedisStoreError::InvalidNamespace);
        }
        Ok(RedisStore {
            target,
            namespace: namespace.to_owned(),
            probe_lease: DEFAULT_PROBE_LEASE,
            timeout: DEFAULT_REDIS_TIMEOUT,
            resync_every: DEFAULT_RESYNC_INTERVAL,
            max_closed: super::layer::DEFAULT_MAX_CLOSED,
        })
    }

    /// How long the fleet's one probe of a key may take before another process may probe
    /// instead (default 5 s): the longest the fleet waits for a probe whose process died.
    /// Keep it above the time a request usually takes.
    pub fn probe_lease(mut self, lease: Duration) -> Self {
        self.probe_lease = lease.max(Duration::from_millis(1));
        self
    }

    /// How long any one call to Redis may take (default 250 ms). A call that takes longer
    /// counts as Redis being unreachable: the process goes on with its local view.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How often a process reads every gate of the fleet again while any of its own gates
    /// is closed (default 1 s): the bound on how long a lost message leaves a gate unshared.
    /// Also how often a process that lost Redis tries again (doubling, up to four times).
    pub fn resync_interval(mut self, every: Duration) -> Self {
        self.resync_every = every.max(Duration::from_millis(10));
        self
    }

    /// The longest the fleet's word closes a key in this process (default 1 hour, as
    /// [`RateLimitBackoffLayer::max_closed`](super::RateLimitBackoffLayer::max_closed)):
    /// a Redis that lies, or a process of the fleet with a longer cap, cannot shut a path
    /// here for longer.
    pub fn max_closed(mut self, max: Duration) -> Self {
        self.max_closed = max;
        self
    }

    /// The namespace's Redis key (or channel) `what`: `gates`, `events`, `budget` (the
    /// processes sharing the retry budget) or `members`. One hash tag per namespace, so a
    /// Redis Cluster keeps every key of a fleet in one slot.
    fn redis_key(&self, what: &str) -> String {
        format!("tower-api-retry:{{{}}}:{what}", self.namespace)
    }
}

impl RateLimitGates {
    /// These gates, shared with every process that uses the same Redis `store` and
    /// namespace. Starts the store's background tasks on the current tokio runtime (they end
    /// when the last clone of the gates is dropped); nothing waits for Redis here.
    ///
    /// See [`RedisStore`] for an example.
    pub fn shared(self, store: RedisStore) -> Result<RateLimitGates, RedisStoreError> {
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| RedisStoreError::NoRuntime)?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let fleet = Arc::new(Fleet {
            hash: store.redis_key("gates"),
            channel: store.redis_key("events"),
            holder: format!("{:016x}", rand::random::<u64>()),
            store,
            conn: Mutex::new(None),
            healthy: AtomicBool::new(false),
            subscribed: AtomicBool::new(false),
            ops: tx,
            members: Members::default(),
            counting: AtomicBool::new(false),
            told: Mutex::default(),
            runtime: runtime.clone(),
        });
        let local = Local {
            view: Arc::downgrade(&self.view),
            lanes: Arc::downgrade(&self.lanes),
            health: Arc::downgrade(&self.health),
        };
        runtime.spawn(writer(fleet.clone(), rx, local.clone()));
        runtime.spawn(subscriber(fleet.clone(), local));
        let store = Arc::new(Shared {
            view: self.view.clone(),
            fleet,
        });
        Ok(RateLimitGates { store, ..self })
    }

    /// Shares the floor of `retry`'s [retry budget](crate::retry::RetryBudget) with every
    /// process of the fleet that does the same: with N processes alive, each gets
    /// `min_per_sec / N` retries a second, so the fleet retries at the floor, not N times it.
    /// Costs one script call per process per second; while Redis does not answer, each
    /// process keeps the whole floor. Local gates, or a layer without a budget, change nothing.
    ///
    /// Call it inside a tokio runtime, after the layer's last
    /// [`budget`](crate::RetryLayer::budget) call (which makes a new budget).
    ///
    /// ```
    /// use tower_api_retry::{RetryLayer, rate_limit::{RateLimitGates, RedisStore}};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let gates = RateLimitGates::new().shared(RedisStore::new("redis://127.0.0.1/", "key-id-7f3a")?)?;
    /// let retry = RetryLayer::new();
    /// gates.share_retry_budget(&retry);
    /// assert_eq!(retry.budget_sharers(), Some(1)); // until Redis has answered
    /// # Ok(())
    /// # }
    /// ```
    pub fn share_retry_budget(&self, retry: &crate::retry::RetryLayer) {
        let (Some(fleet), Some(bucket)) = (self.fleet(), &retry.budget) else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("rate-limit gates: a shared retry budget needs a tokio runtime");
            return;
        };
        runtime.spawn(heartbeat(fleet.clone(), Arc::downgrade(bucket)));
    }

    /// How many processes spend these gates' announced quotas, each its share: `None` for
    /// local gates. A process becomes a member, and the others leave it a share, with its
    /// first announced quota (its own or one heard from the fleet) or its first call of this
    /// method; from then on it counts itself once a second (one script call), and the others
    /// count it as soon as it does. 1 until counted, or once Redis has not answered for 3 s.
    ///
    /// ```
    /// use tower_api_retry::rate_limit::{RateLimitGates, RedisStore};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let gates = RateLimitGates::new().shared(RedisStore::new("redis://127.0.0.1/", "key-id-7f3a")?)?;
    /// assert_eq!(gates.sharers(), Some(1)); // until Redis has answered
    /// assert_eq!(RateLimitGates::new().sharers(), None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn sharers(&self) -> Option<u32> {
        self.fleet()?;
        Some(self.store.sharers())
    }

    /// `true` when these gates are shared through a store that answers now, and hears the
    /// fleet's changes; `false` for local gates, or while the store is unreachable (the
    /// gates then work locally).
    pub fn is_shared(&self) -> bool {
        self.fleet().is_some_and(|f| f.is_shared())
    }

    fn fleet(&self) -> Option<&Arc<Fleet>> {
        let store: &dyn std::any::Any = &*self.store;
        store.downcast_ref::<Shared>().map(|s| &s.fleet)
    }
}

/// The Redis store at work: this process's view, and the fleet it tells of every change.
#[derive(Debug)]
struct Shared {
    view: Arc<MemoryStore>,
    fleet: Arc<Fleet>,
}

impl GateStore for Shared {
    fn close(
        &self,
        key: Key,
        now: std::time::Instant,
        wait: Duration,
        probe: Option<ProbeId>,
        outage: bool,
    ) -> Option<Entry> {
        let tracked = self.view.peek(key);
        let e = self.view.close(key, now, wait, probe, outage)?;
        // A closure for an outage is told even when it changes nothing here: the fleet
        // learns it is one.
        if tracked != Some(e) || outage {
            let by_probe = tracked.is_some_and(|t| policy::is_probe(&t, probe));
            let wait = e.until.saturating_duration_since(now);
            self.fleet.send(Op::Close {
                key,
                wait,
                probe: by_probe,
                outage,
            });
        }
        Some(e)
    }

    fn open(&self, key: Key, probe: ProbeId) -> bool {
        let opened = self.view.open(key, probe);
        if opened {
            self.fleet.send(Op::Open(key));
        }
        opened
    }

    fn release_probe(&self, key: Key, probe: ProbeId) -> bool {
        let released = self.view.release_probe(key, probe);
        if released {
            self.fleet.send(Op::Release(key));
        }
        released
    }

    fn sharers(&self) -> u32 {
        self.fleet.start_counting();
        self.fleet.members.get()
    }

    fn announce(&self, scope: Key, quota: &Quota, reset: Duration) {
        let Some(remaining) = quota.remaining else {
            return;
        };
        if !self.fleet.is_shared() {
            return;
        }
        // Told once per window (at least a second apart): every process hears the quota
        // before it sends, and reads the server's count from its own answers after that.
        let now = tokio::time::Instant::now().into_std();
        let window = quota.window.unwrap_or(reset).max(Duration::from_secs(1));
        {
            let mut told = lock(&self.fleet.told);
            if told
                .get(&scope)
                .is_some_and(|at| now.saturating_duration_since(*at) < window)
            {
                return;
            }
            if told.len() >= self.view.max_keys() {
                told.retain(|_, at| now.saturating_duration_since(*at) < window);
                if told.len() >= self.view.max_keys() {
                    // As many scopes told within a window as keys are kept: this one stays
                    // local, and the memory bounded.
                    return;
                }
            }
            told.insert(scope, now);
        }
        self.fleet.send(Op::Announce {
            scope,
            remaining,
            limit: quota.limit,
            window: quota.window,
            reset,
        });
    }

    fn lease(&self, key: Key, probe: ProbeId) -> Option<Lease> {
        if !self.fleet.is_shared() {
            return None;
        }
        let (fleet, view) = (self.fleet.clone(), self.view.clone());
        Some(Box::pin(async move {
            match fleet.lease(key).await {
                Leased::Go => true,
                Leased::Wait {
                    left,
                    rejections,
                    last_delay,
                } => {
                    let now = tokio::time::Instant::now().into_std();
                    merge(&view, key, now, left, rejections, last_delay);
                    view.release_probe(key, probe);
                    false
                }
            }
        }))
    }
}

/// Another process closed `key` for `wait` from `now`, after `rejections` consecutive
/// rejections, the last one closing it for `last_delay`: the entry's time moves later (never
/// earlier) and it keeps the higher count, so the next probe's backoff continues the fleet's.
fn merge(
    view: &MemoryStore,
    key: Key,
    now: std::time::Instant,
    wait: Duration,
    rejections: u32,
    last_delay: Duration,
) -> Option<Entry> {
    view.update(key, now, |entry| {
        let entry = entry.copied().unwrap_or(Entry::closed(now, wait));
        let mut next = policy::closed_again(&entry, now, wait, None);
        if rejections > next.rejections {
            next.rejections = rejections;
            next.last_delay = last_delay;
        }
        next
    })
}

/// A process's connection to its fleet's gates.
struct Fleet {
    store: RedisStore,
    hash: String,
    channel: String,
    /// This process's name as a lease holder.
    holder: String,
    /// Set once the first connection is made; it reconnects by itself afterwards.
    conn: Mutex<Option<Conn>>,
    /// Redis answered the last call.
    healthy: AtomicBool,
    /// The subscription is up and the local view was read from Redis since.
    subscribed: AtomicBool,
    ops: mpsc::Sender<Op>,
    /// How many processes of the fleet are alive, each spending its share of an announced
    /// quota: 1 until they are counted (from the first announced quota, or the first
    /// [`RateLimitGates::sharers`], on), or once Redis has not answered for [`ALIVE`].
    members: Members,
    /// The count has started (once a second, and at each `m` message).
    counting: AtomicBool,
    /// When each scope's announced quota was last told to the fleet.
    told: Mutex<HashMap<Key, std::time::Instant, FixedState>>,
    runtime: tokio::runtime::Handle,
}

impl fmt::Debug for Fleet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fleet")
            .field("store", &self.store)
            .field("shared", &self.healthy.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// A change the fleet hears of without anybody waiting for it.
#[derive(Debug)]
enum Op {
    /// Closed for `wait` from now; `probe`: by the rejection of this process's probe;
    /// `outage`: for an outage.
    Close {
        key: Key,
        wait: Duration,
        probe: bool,
        outage: bool,
    },
    /// This process's probe was answered: open (if it held the lease).
    Open(Key),
    /// This process's probe got no answer: the lease is free.
    Release(Key),
    /// A quota announced to this process for `scope`.
    Announce {
        scope: Key,
        remaining: u64,
        limit: Option<u64>,
        window: Option<Duration>,
        reset: Duration,
    },
}

/// What the fleet says of a probe this process is about to send.
#[derive(Debug, PartialEq, Eq)]
enum Leased {
    /// Send it: the lease is this process's, the key is open fleet-wide, or Redis did not
    /// answer (the local view decides).
    Go,
    /// Another process probes, or the key is closed for longer: wait this long (at most),
    /// after `rejections` consecutive rejections, the last for `last_delay`.
    Wait {
        left: Duration,
        rejections: u32,
        last_delay: Duration,
    },
}

struct Scripts {
    announce: Script,
    close: Script,
    lease: Script,
    open: Script,
    release: Script,
    snapshot: Script,
    budget: Script,
}

impl Scripts {
    /// The scripts, publishing with `publish` (`PUBLISH` or `SPUBLISH`).
    fn new(publish: &str) -> Scripts {
        let script = |body: &str| Script::new(&format!("local PUBLISH = '{publish}'\n{body}"));
        Scripts {
            announce: script(script!("fleet/announce.lua")),
            close: script(script!("fleet/close.lua")),
            lease: script(script!("fleet/lease.lua")),
            open: script(script!("fleet/open.lua")),
            release: script(script!("fleet/release.lua")),
            snapshot: script(script!("fleet/snapshot.lua")),
            budget: script(script!("fleet/budget.lua")),
        }
    }
}

fn field(key: Key) -> String {
    format!("{:016x}", key.0)
}

fn parse_field(s: &str) -> Option<Key> {
    (s.len() == 16)
        .then(|| u64::from_str_radix(s, 16).ok())
        .flatten()
        .map(Key)
}

/// Milliseconds as a duration, at most `max`: what Redis says is bounded like any hint.
fn millis(ms: i64, max: Duration) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0)).min(max)
}

impl Fleet {
    /// Starts counting the fleet's members, once: later calls only read (no write to a
    /// shared cache line).
    fn start_counting(self: &Arc<Self>) {
        if !self.counting.load(Ordering::Relaxed) && !self.counting.swap(true, Ordering::Relaxed) {
            self.runtime.spawn(count_members(Arc::downgrade(self)));
        }
    }

    /// Redis answers, and the local view was read from it since the subscription.
    fn is_shared(&self) -> bool {
        self.healthy.load(Ordering::Relaxed) && self.subscribed.load(Ordering::Relaxed)
    }

    fn send(&self, op: Op) {
        if self.ops.try_send(op).is_err() {
            tracing::debug!("rate-limit gates: the Redis queue is full; a change stays local");
        }
    }

    /// Whether a probe of `key` may go: asks for the key's lease when Redis answers, and
    /// says [`Leased::Go`] at once when it does not.
    async fn lease(&self, key: Key) -> Leased {
        let Some(mut conn) = self.connection() else {
            return Leased::Go;
        };
        let lease_ms = u64::try_from(self.store.probe_lease.as_millis()).unwrap_or(u64::MAX);
        let mut call = self.store.target.scripts().lease.key(&self.hash);
        call.arg(field(key)).arg(&self.holder).arg(lease_ms);
        let reply: Option<Vec<i64>> = self.call(conn.invoke(&call)).await;
        match reply.as_deref() {
            Some([1, left, rejections, last, ..]) => Leased::Wait {
                left: millis(*left, self.store.max_closed).max(MIN_LEASE_WAIT),
                rejections: u32::try_from(*rejections).unwrap_or(u32::MAX).max(1),
                last_delay: millis(*last, self.store.max_closed),
            },
            Some([2, left, ..]) => Leased::Wait {
                left: millis(*left, self.store.probe_lease).max(MIN_LEASE_WAIT),
                rejections: 0,
                last_delay: Duration::ZERO,
            },
            _ => Leased::Go,
        }
    }

    /// The connection, when Redis answered the last call.
    fn connection(&self) -> Option<Conn> {
        if !self.healthy.load(Ordering::Relaxed) {
            return None;
        }
        lock(&self.conn).clone()
    }

    /// Runs one call with the store's timeout; the outcome sets the health.
    async fn call<T>(&self, call: impl Future<Output = redis::RedisResult<T>>) -> Option<T> {
        match tokio::time::timeout(self.store.timeout, call).await {
            Ok(Ok(v)) => {
                self.set_healthy(true);
                Some(v)
            }
            Ok(Err(e)) => {
                self.set_unhealthy(&format_args!("{:?}", e.kind()));
                None
            }
            Err(_) => {
                self.set_unhealthy(&"timed out");
                None
            }
        }
    }

    fn set_healthy(&self, up: bool) {
        if up && !self.healthy.swap(true, Ordering::Relaxed) {
            tracing::info!(namespace = %self.store.namespace, "rate-limit gates: shared through Redis");
        }
    }

    fn set_unhealthy(&self, why: &dyn fmt::Display) {
        if self.healthy.swap(false, Ordering::Relaxed) {
            tracing::warn!(namespace = %self.store.namespace, reason = %why, "rate-limit gates: Redis unreachable, gates are local until it answers");
        }
    }

    /// Connects (once; the manager reconnects by itself afterwards) and loads the scripts,
    /// so a rejection costs one call.
    async fn connect(&self) -> Option<Conn> {
        if let Some(conn) = lock(&self.conn).clone() {
            return Some(conn);
        }
        let timeout = self.store.timeout;
        let connecting = async {
            match &self.store.target {
                Target::Single(client) => {
                    let config = redis::aio::ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(timeout))
                        .set_response_timeout(Some(timeout))
                        .set_number_of_retries(1)
                        .set_max_delay(self.store.resync_every);
                    ConnectionManager::new_with_config(client.clone(), config)
                        .await
                        .map(Conn::Single)
                }
                Target::Cluster { client, .. } => {
                    let config = redis::cluster::ClusterConfig::new()
                        .set_connection_timeout(timeout)
                        .set_response_timeout(timeout);
                    client
                        .get_async_connection_with_config(config)
                        .await
                        .map(Conn::Cluster)
                }
            }
        };
        let conn = match tokio::time::timeout(timeout * 4, connecting).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                self.set_unhealthy(&format_args!("{:?}", e.kind()));
                return None;
            }
            Err(_) => {
                self.set_unhealthy(&"connection timed out");
                return None;
            }
        };
        *lock(&self.conn) = Some(conn.clone());
        Some(conn)
    }

    /// Loads the scripts (after a connection, or a restart of Redis that forgot them).
    async fn load(&self, conn: &mut Conn) -> bool {
        let s = self.store.target.scripts();
        for script in [
            &s.announce,
            &s.close,
            &s.lease,
            &s.open,
            &s.release,
            &s.snapshot,
            &s.budget,
        ] {
            if self.call(conn.load(script)).await.is_none() {
                return false;
            }
        }
        true
    }

    /// Every gate of the fleet, read again into the local view. `false` when Redis did not
    /// answer.
    async fn resync(&self, local: &Local) -> bool {
        let Some(mut conn) = lock(&self.conn).clone() else {
            return false;
        };
        let reply: Option<Vec<redis::Value>> = self
            .call(conn.invoke(&self.store.target.scripts().snapshot.key(&self.hash)))
            .await;
        let Some(values) = reply else {
            return false;
        };
        if !local.alive() {
            return true;
        }
        for gate in values.chunks_exact(5) {
            let (Ok(f), Ok(left), Ok(rej), Ok(last), Ok(out)) = (
                redis::from_redis_value_ref::<String>(&gate[0]),
                redis::from_redis_value_ref::<i64>(&gate[1]),
                redis::from_redis_value_ref::<i64>(&gate[2]),
                redis::from_redis_value_ref::<i64>(&gate[3]),
                redis::from_redis_value_ref::<i64>(&gate[4]),
            ) else {
                continue;
            };
            if let Some(key) = parse_field(&f) {
                let max = self.store.max_closed;
                local.closed(key, millis(left, max), rej, millis(last, max), out == 1);
            }
        }
        true
    }

    /// Applies one message of the channel.
    fn apply(self: &Arc<Self>, payload: &str, local: &Local) {
        if !local.alive() {
            return;
        }
        let mut words = payload.split(' ');
        let kind = words.next();
        if kind == Some("m") {
            // A process joined the fleet's count: counted here at once (when this one counts).
            if let Some(n) = words.next().and_then(|w| w.parse::<u32>().ok())
                && self.counting.load(Ordering::Relaxed)
            {
                self.members.joined(n);
            }
            return;
        }
        match (kind, words.next().and_then(parse_field)) {
            (Some("c"), Some(key)) => {
                let mut num = || words.next().and_then(|w| w.parse::<i64>().ok());
                if let (Some(left), Some(rej), Some(last), Some(out)) = (num(), num(), num(), num())
                {
                    let max = self.store.max_closed;
                    local.closed(key, millis(left, max), rej, millis(last, max), out == 1);
                }
            }
            (Some("o"), Some(key)) => local.opened(key),
            (Some("q"), Some(scope)) => {
                let mut num = || words.next().and_then(|w| w.parse::<i64>().ok());
                let (Some(remaining), Some(reset), Some(limit), Some(window), Some(from)) =
                    (num(), num(), num(), num(), words.next())
                else {
                    return;
                };
                if from == self.holder {
                    return;
                }
                let max = self.store.max_closed;
                let quota = Quota {
                    remaining: u64::try_from(remaining).ok(),
                    limit: u64::try_from(limit).ok(),
                    window: (window >= 0).then(|| millis(window, max)),
                    reset: Some(millis(reset, max)),
                };
                // A quota heard before any answer of this process's own starts its count.
                self.start_counting();
                local.announced(scope, &quota, self.members.get());
            }
            _ => tracing::debug!("rate-limit gates: ignoring a message that is not the store's"),
        }
    }
}

/// The gates a fleet's background tasks update: weak, so they end with the gates.
#[derive(Clone)]
struct Local {
    view: Weak<MemoryStore>,
    lanes: Weak<Lanes>,
    health: Weak<Health>,
}

impl Local {
    fn alive(&self) -> bool {
        self.view.strong_count() > 0 && self.lanes.strong_count() > 0
    }

    /// The gates, while they live.
    fn upgrade(&self) -> Option<(Arc<MemoryStore>, Arc<Lanes>, Arc<Health>)> {
        Some((
            self.view.upgrade()?,
            self.lanes.upgrade()?,
            self.health.upgrade()?,
        ))
    }

    fn any_closed(&self) -> Option<bool> {
        Some(!self.view.upgrade()?.is_empty())
    }

    /// The bound on the fleet's gates in Redis: the local one.
    fn max_keys(&self) -> usize {
        self.view.upgrade().map_or(0, |s| s.max_keys())
    }

    /// Another process of the fleet closed `key` for `wait` from now; `outage`: for an
    /// outage, which this process then holds as its own (its probe's outage signal keeps the
    /// gate closed, and the lane reopens on a slow start).
    fn closed(
        &self,
        key: Key,
        wait: Duration,
        rejections: i64,
        last_delay: Duration,
        outage: bool,
    ) {
        let Some((view, lanes, health)) = self.upgrade() else {
            return;
        };
        let now = tokio::time::Instant::now().into_std();
        let tracked = view.peek(key);
        let rejections = u32::try_from(rejections.max(1)).unwrap_or(u32::MAX);
        let Some(e) = merge(&view, key, now, wait, rejections, last_delay) else {
            return;
        };
        let newly_out = outage && health.mark_out(key, now);
        if tracked != Some(e) || newly_out {
            let counts = tracked.is_none();
            lanes.rejected(key, now, tracked.map(|t| t.until), e.until, counts);
            if newly_out {
                lanes.outage(key, now, e.until);
            }
        }
    }

    /// Another process was announced `quota` for `scope`: this one spends its share of it.
    fn announced(&self, scope: Key, quota: &Quota, members: u32) {
        if let (Some(lanes), Some(reset)) = (self.lanes.upgrade(), quota.reset) {
            let now = tokio::time::Instant::now().into_std();
            lanes.announced(scope, now, &quota.shared_by(members), reset);
        }
    }

    /// Another process's probe opened `key`.
    fn opened(&self, key: Key) {
        let Some((view, lanes, health)) = self.upgrade() else {
            return;
        };
        if view.remove_if(key, |_| true) {
            health.forget(key);
            lanes.opened(key, tokio::time::Instant::now().into_std());
            tracing::debug!(key = %key, "rate-limit gate: opened by the fleet");
        }
    }
}

/// Sends the local changes to Redis, one script call each, in order.
async fn writer(fleet: Arc<Fleet>, mut ops: mpsc::Receiver<Op>, local: Local) {
    while let Some(op) = ops.recv().await {
        // Tried even while the last call failed: this is how the writer finds Redis back.
        let Some(mut conn) = lock(&fleet.conn).clone() else {
            continue;
        };
        let s = fleet.store.target.scripts();
        // The outcome only sets the health: the local view has the change either way.
        let _: Option<i64> = match op {
            Op::Close {
                key,
                wait,
                probe,
                outage,
            } => {
                let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
                let holder = if probe { fleet.holder.as_str() } else { "" };
                let max_keys = local.max_keys();
                let mut call = s.close.key(&fleet.hash);
                call.arg(field(key))
                    .arg(wait_ms)
                    .arg(holder)
                    .arg(max_keys)
                    .arg(&fleet.channel)
                    .arg(u8::from(outage));
                fleet.call(conn.invoke(&call)).await
            }
            Op::Open(key) => {
                let mut call = s.open.key(&fleet.hash);
                call.arg(field(key)).arg(&fleet.holder).arg(&fleet.channel);
                fleet.call(conn.invoke(&call)).await
            }
            Op::Release(key) => {
                let mut call = s.release.key(&fleet.hash);
                call.arg(field(key)).arg(&fleet.holder);
                fleet.call(conn.invoke(&call)).await
            }
            Op::Announce {
                scope,
                remaining,
                limit,
                window,
                reset,
            } => {
                let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
                let mut call = s.announce.key(&fleet.hash);
                call.arg(&fleet.holder)
                    .arg(field(scope))
                    .arg(remaining)
                    .arg(ms(reset))
                    .arg(limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX)))
                    .arg(window.map_or(-1, |w| i64::try_from(ms(w)).unwrap_or(i64::MAX)))
                    .arg(&fleet.channel);
                fleet.call(conn.invoke(&call)).await
            }
        };
    }
}

/// Keeps the subscription (and so the local view) up: subscribes, reads every gate, applies
/// the channel's messages, reads every gate again each second while any is closed, and
/// starts over whenever the connection goes.
async fn subscriber(fleet: Arc<Fleet>, local: Local) {
    let every = fleet.store.resync_every;
    let mut retry = every / 4;
    loop {
        if !local.alive() {
            return;
        }
        if let Some(mut conn) = fleet.connect().await
            && fleet.load(&mut conn).await
            && let Some(mut messages) = fleet.subscribe().await
            && fleet.resync(&local).await
        {
            retry = every / 4;
            fleet.subscribed.store(true, Ordering::Relaxed);
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                match next_event(&mut messages, &mut tick).await {
                    Event::Message(payload) => {
                        if let Ok(payload) = std::str::from_utf8(&payload) {
                            fleet.apply(payload, &local);
                        }
                    }
                    Event::Closed => {
                        tracing::debug!(
                            "rate-limit gates: the subscription closed, subscribing again"
                        );
                        break;
                    }
                    Event::Tick => match local.any_closed() {
                        None => return,
                        Some(true) => {
                            if !fleet.resync(&local).await {
                                break;
                            }
                        }
                        Some(false) => {}
                    },
                }
            }
        }
        fleet.subscribed.store(false, Ordering::Relaxed);
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(every * 4);
    }
}

/// How long a process counts as alive after its last heartbeat.
const ALIVE: Duration = Duration::from_secs(3);

/// The heartbeats' clock: a tick missed by a busy runtime is taken late, not twice.
fn each_second() -> tokio::time::Interval {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}

/// Tells Redis once a second that this process shares `bucket`'s floor, and sets the floor's
/// share from the number of processes alive. Ends with the bucket.
async fn heartbeat(fleet: Arc<Fleet>, bucket: Weak<crate::retry::budget::Bucket>) {
    let hash = fleet.store.redis_key("budget");
    let holder = format!("{}-{:08x}", fleet.holder, rand::random::<u32>());
    let mut tick = each_second();
    loop {
        tick.tick().await;
        let Some(bucket) = bucket.upgrade() else {
            return;
        };
        // Without an answer, the whole floor: Redis never takes retries away.
        bucket.share(fleet.alive(&hash, &holder, "").await.unwrap_or(1));
    }
}

/// Tells Redis once a second that this process is a member of the fleet, and counts the
/// members alive: each spends its share of an announced quota. Ends with the gates.
async fn count_members(fleet: Weak<Fleet>) {
    let mut answered = tokio::time::Instant::now();
    let mut tick = each_second();
    loop {
        tick.tick().await;
        let Some(fleet) = fleet.upgrade() else {
            return;
        };
        let hash = fleet.store.redis_key("members");
        let joins = fleet.members.joins();
        match fleet.alive(&hash, &fleet.holder, &fleet.channel).await {
            Some(alive) => {
                answered = tokio::time::Instant::now();
                fleet.members.counted(alive, joins);
            }
            // As long as the others still count this process (for `ALIVE`), the last count
            // holds; then the whole quota, as local gates spend it.
            None if answered.elapsed() >= ALIVE => fleet.members.counted(1, joins),
            None => {}
        }
    }
}

/// The members' count and the `m` messages heard, in one word: a count that crossed a join
/// message in flight (they come on two connections) is read together with it.
#[derive(Debug)]
struct Members(AtomicU64);

impl Default for Members {
    fn default() -> Self {
        Members(AtomicU64::new(1))
    }
}

impl Members {
    fn get(&self) -> u32 {
        (self.0.load(Ordering::Relaxed) as u32).max(1)
    }

    fn joins(&self) -> u32 {
        (self.0.load(Ordering::Relaxed) >> 32) as u32
    }

    /// A process joined: `n` are alive.
    fn joined(&self, n: u32) {
        let n = u64::from(n.clamp(1, 1_000_000));
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some((((v >> 32) + 1) & 0xffff_ffff) << 32 | n)
            });
    }

    /// A count of `alive`, asked for after `joins` join messages: when one came meanwhile,
    /// the count may predate it, and only raises the members (fewer are taken at the next).
    fn counted(&self, alive: u32, joins: u32) {
        let alive = u64::from(alive.clamp(1, 1_000_000));
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                let members = match (v >> 32) as u32 == joins {
                    true => alive,
                    false => alive.max(v & 0xffff_ffff),
                };
                Some(v & !0xffff_ffff | members)
            });
    }
}

impl Fleet {
    /// Marks `holder` alive in `hash` and returns how many are; `None` without Redis. A
    /// holder new to `hash` tells `channel` (when not empty) the count.
    async fn alive(&self, hash: &str, holder: &str, channel: &str) -> Option<u32> {
        let mut conn = lock(&self.conn).clone()?;
        let mut call = self.store.target.scripts().budget.key(hash);
        call.arg(holder)
            .arg(u64::try_from(ALIVE.as_millis()).unwrap_or(3000))
            .arg(channel);
        let alive: i64 = self.call(conn.invoke(&call)).await?;
        Some(u32::try_from(alive.clamp(1, 1_000_000)).unwrap_or(1))
    }
}

enum Event {
    /// A message's payload.
    Message(Vec<u8>),
    Closed,
    Tick,
}

/// The fleet's channel as subscribed: on a server, a plain subscription; on a cluster, a
/// shard channel on the connection to the shard that holds it, whose messages come as
/// RESP3 pushes.
enum Messages {
    Single(redis::aio::PubSubStream),
    Cluster {
        /// Kept open while subscribed.
        _conn: redis::cluster_async::ClusterConnection,
        pushes: mpsc::UnboundedReceiver<redis::PushInfo>,
    },
}

impl Fleet {
    /// Subscribes to the fleet's channel; `None` when Redis did not answer.
    async fn subscribe(&self) -> Option<Messages> {
        match &self.store.target {
            Target::Single(client) => {
                let mut pubsub = self.call(client.get_async_pubsub()).await?;
                self.call(pubsub.subscribe(&self.channel)).await?;
                Some(Messages::Single(pubsub.into_on_message()))
            }
            Target::Cluster { nodes, .. } => {
                let (tx, pushes) = mpsc::unbounded_channel();
                let infos = nodes.iter().map(|c| c.get_connection_info().clone());
                let client = redis::cluster::ClusterClientBuilder::new(infos)
                    .use_protocol(redis::ProtocolVersion::RESP3)
                    .push_sender(tx)
                    .connection_timeout(self.store.timeout)
                    .response_timeout(self.store.timeout)
                    .build()
                    .ok()?;
                let mut conn = self.call(client.get_async_connection()).await?;
                self.call(conn.ssubscribe(&self.channel)).await?;
                Some(Messages::Cluster {
                    _conn: conn,
                    pushes,
                })
            }
        }
    }
}

/// The next message of the subscription, its end, or the next tick. A cluster's connection
/// that dropped ends the subscription too: the messages it missed are read again when it
/// starts over.
async fn next_event(messages: &mut Messages, tick: &mut tokio::time::Interval) -> Event {
    std::future::poll_fn(|cx| {
        loop {
            let event = match messages {
                Messages::Single(stream) => match Pin::new(&mut *stream).poll_next(cx) {
                    Poll::Ready(Some(msg)) => Event::Message(msg.get_payload_bytes().to_vec()),
                    Poll::Ready(None) => Event::Closed,
                    Poll::Pending => break,
                },
                Messages::Cluster { pushes, .. } => match pushes.poll_recv(cx) {
                    Poll::Ready(Some(push)) => match push.kind {
                        redis::PushKind::SMessage => match push.data.get(1) {
                            Some(redis::Value::BulkString(payload)) => {
                                Event::Message(payload.clone())
                            }
                            _ => continue,
                        },
                        redis::PushKind::Disconnection | redis::PushKind::SUnsubscribe => {
                            Event::Closed
                        }
                        _ => continue,
                    },
                    Poll::Ready(None) => Event::Closed,
                    Poll::Pending => break,
                },
            };
            return Poll::Ready(event);
        }
        tick.poll_tick(cx).map(|_| Event::Tick)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_count_that_crossed_a_join_never_lowers_the_members() {
        let m = Members::default();
        assert_eq!(m.get(), 1);
        // A count asked for before a join, answered after it: it may predate the join.
        let before = m.joins();
        m.joined(3);
        m.counted(2, before);
        assert_eq!(m.get(), 3);
        // A count asked for after the join is taken as it is, fewer members too.
        m.counted(2, m.joins());
        assert_eq!(m.get(), 2);
        // Bounded either way: a lying Redis neither zeroes nor overflows it.
        m.joined(0);
        assert_eq!(m.get(), 1);
        m.counted(u32::MAX, m.joins());
        assert_eq!(m.get(), 1_000_000);
    }

    #[test]
    fn merges_keep_the_later_time_and_the_higher_count() {
        const S: fn(u64) -> Duration = Duration::from_secs;
        let t0 = Instant::now();
        let (a, b) = (Key::of("a"), Key::of("b"));
        // Merged from another process: later times and higher counts win, nothing shortens.
        let s = MemoryStore::new(10);
        let e = merge(&s, a, t0, S(10), 3, S(4)).unwrap();
        assert_eq!(
            (e.until, e.rejections, e.last_delay, e.probe),
            (t0 + S(10), 3, S(4), None)
        );
        let (_, waiter) = s.get(a, t0).unwrap();
        assert_eq!(merge(&s, a, t0, S(5), 1, S(1)), Some(e));
        assert!(!waiter.woken(), "nothing changed");
        let p = s.try_acquire_probe(b, t0);
        assert_eq!(p, None);
        let e = merge(&s, a, t0, S(20), 2, S(1)).unwrap();
        assert_eq!((e.until, e.rejections, e.last_delay), (t0 + S(20), 3, S(4)));
        assert!(waiter.woken());
        // A probe in flight keeps its role through a merge.
        s.close(b, t0, S(0), None, false).unwrap();
        let p = s.try_acquire_probe(b, t0).unwrap();
        let e = merge(&s, b, t0, S(2), 1, S(1)).unwrap();
        assert_eq!((e.until, e.probe), (t0 + S(2), Some(p)));
        // Forgotten: waiters woken, the count goes down.
        let (_, waiter) = s.get(a, t0).unwrap();
        assert!(s.remove_if(a, |_| true));
        assert!(waiter.woken() && s.peek(a).is_none());
        assert!(!s.remove_if(a, |_| true));
        assert_eq!(s.len(), 1);
        assert_eq!(merge(&MemoryStore::new(0), a, t0, S(1), 1, S(1)), None);
    }
}
