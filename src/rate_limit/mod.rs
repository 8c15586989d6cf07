//! Middleware that stops sending on a rate-limited path until it resets (placeholder: issue 4).
