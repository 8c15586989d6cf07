//! Placeholder demo (issue 2 builds it).
fn main() {}
