//! The crate's one way to take a lock.

/// Locks `m`, recovering a poisoned lock: a panic while holding one of the crate's locks cannot
/// leave its value half-written.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
