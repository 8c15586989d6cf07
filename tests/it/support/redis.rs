//! A real `redis-server` on a free loopback port, started and stopped by the test.
//!
//! `--save '' --appendonly no`: nothing is written to disk. Without `redis-server` the test
//! is skipped with an install hint, except under `CI=true` (see [`external`](super::external)).
#![allow(dead_code, unreachable_pub)]

use super::external;
use std::{
    net::{TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A running redis-server, killed on drop.
pub struct RedisServer {
    program: PathBuf,
    port: u16,
    args: Vec<String>,
    child: Option<Child>,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A free port below the kernel's ephemeral range (32768 and up), with its cluster bus port
/// (+10000) too: a killed server is restarted on its port, which an outgoing connection
/// could otherwise have taken as its local port in the meantime.
fn free_port() -> u16 {
    loop {
        let port = 10_000 + rand::random::<u16>() % 12_000;
        if TcpListener::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok()
        {
            return port;
        }
    }
}

impl RedisServer {
    /// Starts a server, or `None` (the test skips) when redis-server is not installed.
    pub fn start() -> Option<RedisServer> {
        Self::start_with(&[])
    }

    /// Starts a server with extra arguments (e.g. `--cluster-enabled yes`).
    pub fn start_with(extra: &[&str]) -> Option<RedisServer> {
        let program = external::redis_server()?;
        let mut server = RedisServer {
            program,
            port: free_port(),
            args: extra.iter().map(|a| a.to_string()).collect(),
            child: None,
        };
        server.spawn();
        Some(server)
    }

    fn spawn(&mut self) {
        let port = self.port.to_string();
        let child = Command::new(&self.program)
            .args([
                "--port",
                &port,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--protected-mode", "no"])
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        // Ready when it answers PING.
        let started = Instant::now();
        loop {
            if let Ok(mut conn) = self.client().get_connection()
                && redis::cmd("PING").query::<String>(&mut conn).is_ok()
            {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "redis-server did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).unwrap()
    }

    /// A synchronous connection for the test's own commands.
    pub fn conn(&self) -> redis::Connection {
        self.client().get_connection().expect("connect to redis")
    }

    /// SIGKILL: gone at once, nothing flushed.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // The port is free once nothing listens on it.
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            && started.elapsed() < Duration::from_secs(5)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts it again on the same port, with the same arguments (empty: it saved nothing;
    /// a cluster node keeps its configuration file).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// How many commands of each name the server ran since the last `CONFIG RESETSTAT`,
    /// without the test's own `INFO` and `CONFIG`.
    pub fn commands(&self) -> std::collections::BTreeMap<String, u64> {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut self.conn())
            .unwrap();
        info.lines()
            .filter_map(|line| {
                let rest = line.strip_prefix("cmdstat_")?;
                let (name, stats) = rest.split_once(':')?;
                let calls = stats
                    .split(',')
                    .find_map(|kv| kv.strip_prefix("calls="))?
                    .parse()
                    .ok()?;
                Some((name.to_owned(), calls))
            })
            .filter(|(name, _)| name != "info" && !name.starts_with("config"))
            .collect()
    }

    pub fn reset_stats(&self) {
        redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query::<()>(&mut self.conn())
            .unwrap();
    }
}

/// A Redis Cluster of three primaries, no replicas, each a [`RedisServer`] with its own
/// directory (for its `nodes.conf`), created with `redis-cli --cluster create`.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
    dir: PathBuf,
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl RedisCluster {
    /// Starts the three nodes and joins them, or `None` when redis-server is not installed.
    pub fn start() -> Option<RedisCluster> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tower-api-retry-cluster-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        let mut cluster = RedisCluster {
            nodes: Vec::new(),
            dir: dir.clone(),
        };
        for n in 0..3 {
            let node_dir = dir.join(n.to_string());
            std::fs::create_dir_all(&node_dir).unwrap();
            let node_dir = node_dir.to_str().unwrap().to_owned();
            cluster.nodes.push(RedisServer::start_with(&[
                "--cluster-enabled",
                "yes",
                "--cluster-node-timeout",
                "2000",
                "--dir",
                &node_dir,
            ])?);
        }
        let cli = cluster.nodes[0].program.with_file_name("redis-cli");
        let addrs: Vec<String> = cluster
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new(&cli)
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        cluster.wait_ok();
        Some(cluster)
    }

    /// Waits until every running node says `cluster_state:ok`.
    pub fn wait_ok(&self) {
        let started = Instant::now();
        for node in self.nodes.iter().filter(|n| n.child.is_some()) {
            loop {
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query(&mut node.conn())
                    .unwrap_or_default();
                if info.contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "the cluster never became ok: {info}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Every node's URL.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The node that serves `key`'s slot.
    pub fn owner_of(&mut self, key: &str) -> &mut RedisServer {
        let mut conn = self.nodes[0].conn();
        let slot: i64 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut conn)
            .unwrap();
        let slots: Vec<redis::Value> = redis::cmd("CLUSTER").arg("SLOTS").query(&mut conn).unwrap();
        let port = slots
            .iter()
            .find_map(|range| {
                let redis::Value::Array(range) = range else {
                    return None;
                };
                let from: i64 = redis::from_redis_value_ref(&range[0]).ok()?;
                let to: i64 = redis::from_redis_value_ref(&range[1]).ok()?;
                let redis::Value::Array(primary) = &range[2] else {
                    return None;
                };
                let port: i64 = redis::from_redis_value_ref(&primary[1]).ok()?;
                (from..=to).contains(&slot).then_some(port)
            })
            .expect("a node serves every slot");
        self.nodes
            .iter_mut()
            .find(|n| i64::from(n.port) == port)
            .unwrap()
    }
}
