//! Placeholder (issue 2 builds it).
fn main() {}
