//! How devstack takes a `std::sync` lock: a lock poisoned by a thread that panicked while it
//! held it is taken all the same, with the data as that thread left it. For a supervisor this is
//! the right way on: what the locks guard (log buffers, the group record, counters, caches) stays
//! usable after a half-done update, while a second panic on every thread that touches it would
//! stop the very cleanup (killing the stack's processes, writing their record, restoring the
//! terminal) that must still happen. The first panic has already been reported by the hook.

use std::sync::{LockResult, Mutex, MutexGuard, PoisonError, TryLockError};

/// `Mutex::lock` and `try_lock`, poisoned or not.
pub trait Locked<T: ?Sized> {
    fn locked(&self) -> MutexGuard<'_, T>;
    /// None: another thread holds it now.
    fn try_locked(&self) -> Option<MutexGuard<'_, T>>;
}

impl<T: ?Sized> Locked<T> for Mutex<T> {
    fn locked(&self) -> MutexGuard<'_, T> {
        self.lock().unpoisoned()
    }

    fn try_locked(&self) -> Option<MutexGuard<'_, T>> {
        match self.try_lock() {
            Ok(guard) => Some(guard),
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }
}

/// The guard of any other `std::sync` wait or lock (`Condvar::wait`, `RwLock::read`, …),
/// poisoned or not.
pub trait Unpoisoned<G> {
    fn unpoisoned(self) -> G;
}

impl<G> Unpoisoned<G> for LockResult<G> {
    fn unpoisoned(self) -> G {
        self.unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_is_taken_with_its_data() {
        let m = std::sync::Arc::new(Mutex::new(1));
        let held = m.clone();
        std::thread::spawn(move || {
            let mut guard = held.lock().unwrap();
            *guard = 2;
            panic!("mid-update, the lock held");
        })
        .join()
        .unwrap_err();
        assert!(m.is_poisoned());
        assert_eq!(*m.locked(), 2);
        assert_eq!(m.try_locked().as_deref(), Some(&2));
        let held = m.locked();
        assert!(m.try_locked().is_none());
        drop(held);
    }
}
