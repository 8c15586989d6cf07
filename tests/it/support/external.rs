//! External programs the tests run (nginx, redis-server): found, or the test is skipped.
//!
//! Outside CI a missing program skips the test with one line saying how to install it. With
//! `CI=true` it fails the test instead: CI installs them (`.ci/run`), so a missing one there is
//! a broken machine, not a reason to pass.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

/// The path of `program`: one of `candidates` that exists, else `program` on `PATH`.
///
/// When it is missing, prints `skipping: <program> not installed (<install>)` and returns
/// `None`, or panics with that hint when the environment has `CI=true`.
pub fn find_program(program: &str, candidates: &[&str], install: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(program))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let found = candidates
        .iter()
        .map(PathBuf::from)
        .chain(on_path)
        .find(|p| p.is_file());
    if found.is_none() {
        let hint = format!("{program} not installed ({install})");
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{hint}");
        }
        println!("skipping: {hint}");
    }
    found
}

/// nginx, from Debian's `nginx-light`.
pub fn nginx() -> Option<PathBuf> {
    find_program(
        "nginx",
        &["/usr/sbin/nginx"],
        "apt-get install -y nginx-light",
    )
}

/// redis-server, from Debian's `redis-server`.
pub fn redis_server() -> Option<PathBuf> {
    find_program(
        "redis-server",
        &["/usr/bin/redis-server"],
        "apt-get install -y redis-server",
    )
}
