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
    child: Option<Child>,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
            child: None,
        };
        server.spawn(extra);
        Some(server)
    }

    fn spawn(&mut self, extra: &[&str]) {
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
            .args(extra)
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

    /// Starts it again on the same port (empty: it kept nothing).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn(&[]);
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
