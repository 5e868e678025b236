//! One dataplane connection shared by the steps of a verb: opened on first use, within the time
//! the verb has left, and forgotten after an error (a half-read reply would poison the next
//! request). Steps run one at a time, so the lock is never contended; it only makes the shared
//! connection `Sync`, as `Step` requires.

use std::future::Future;
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

pub struct LazyConn<C> {
    conn: Mutex<Option<C>>,
}

impl<C> Default for LazyConn<C> {
    fn default() -> Self {
        LazyConn { conn: Mutex::new(None) }
    }
}

impl<C> LazyConn<C> {
    /// The open connection, or a new one from `connect` (called only when none is open). A
    /// failed `connect` leaves none open, so the next call tries again.
    pub async fn get<E, F, Fut>(&self, connect: F) -> Result<MappedMutexGuard<'_, C>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<C, E>>,
    {
        let mut g = self.conn.lock().await;
        let conn = match g.take() {
            Some(c) => c,
            None => connect().await?,
        };
        Ok(MutexGuard::map(g, |slot| slot.insert(conn)))
    }

    /// Forget the connection after an error that may have left the stream mid-message.
    pub async fn reset(&self) {
        *self.conn.lock().await = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn connects_once_again_after_a_failure_and_after_a_reset() {
        let lazy: LazyConn<u32> = LazyConn::default();
        let calls = AtomicU32::new(0);
        let connect = || async {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            if n == 1 {
                Err("refused")
            } else {
                Ok(n)
            }
        };
        assert_eq!(lazy.get(connect).await.err(), Some("refused"));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // A failed connect leaves nothing open: the next get connects anew.
        assert_eq!(*lazy.get(connect).await.expect("second try"), 2);
        assert_eq!(*lazy.get(connect).await.expect("kept"), 2, "an open connection is reused");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        lazy.reset().await;
        assert_eq!(*lazy.get(connect).await.expect("after reset"), 3);
    }
}
