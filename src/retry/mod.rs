//! Middleware that retries what the contract says is transient (placeholder: issue 3).
