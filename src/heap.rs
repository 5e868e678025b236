//! The binaries' heap: talc over the system allocator, behind a pthread mutex.
//!
//! Why not the system allocator alone: the shipped binary is static musl, and musl's allocator
//! returns each emptied group of small blocks to the kernel at once, so a CNI process (a few
//! milliseconds of parsing, JSON-RPC and records) spent a fifth of its CPU in mmap/munmap and
//! the page faults that follow (docs/performance.md: ADD 2.55 -> 2.11 ms of CPU, DEL 2.28 ->
//! 1.97). talc serves small blocks from 1 MiB blocks it takes from the system allocator and
//! gives back when they empty, so a daemon (`dra-plugin`, `gc --every`) still returns memory.
//!
//! The lock is a pthread mutex, not a spin lock (a preempted holder would make the daemons'
//! threads spin) nor parking_lot (whose parking allocates, which inside the allocator could
//! recurse). A global allocator must not allocate to lock.

use std::alloc::System;
use std::cell::UnsafeCell;
use talc::source::GlobalAllocSource;
use talc::TalcLock;

/// The `#[global_allocator]` type of `userspace` and `userspace-testkit`.
pub type Heap = TalcLock<PthreadMutex, GlobalAllocSource<System>>;

/// A heap that takes its memory from the system allocator on first use.
pub const fn heap() -> Heap {
    TalcLock::new(GlobalAllocSource::new(System))
}

/// A `lock_api` raw mutex over a pthread mutex, usable in a `static` (statically initialised,
/// never moved once used, as POSIX requires of a mutex).
pub struct PthreadMutex(UnsafeCell<libc::pthread_mutex_t>);

// SAFETY: a pthread mutex is made to be shared between threads; every access goes through the
// pthread calls, which synchronise.
unsafe impl Sync for PthreadMutex {}
// SAFETY: lock_api requires Send for a raw mutex moved before use; an unlocked, never-used
// pthread mutex initialised with PTHREAD_MUTEX_INITIALIZER holds no thread identity.
unsafe impl Send for PthreadMutex {}

// SAFETY: lock/try_lock/unlock have pthread mutex semantics: exclusive, and `unlock` is only
// called by lock_api for a lock this thread holds (GuardNoSend keeps guards on their thread).
unsafe impl lock_api::RawMutex for PthreadMutex {
    #[allow(clippy::declare_interior_mutable_const)] // lock_api's INIT is a const by design
    const INIT: Self = PthreadMutex(UnsafeCell::new(libc::PTHREAD_MUTEX_INITIALIZER));

    type GuardMarker = lock_api::GuardNoSend;

    fn lock(&self) {
        // SAFETY: the mutex is initialised (INIT) and lives as long as `self`. A default mutex
        // fails only on misuse (EDEADLK is not reported for the default type).
        unsafe { libc::pthread_mutex_lock(self.0.get()) };
    }

    fn try_lock(&self) -> bool {
        // SAFETY: as in `lock`.
        unsafe { libc::pthread_mutex_trylock(self.0.get()) == 0 }
    }

    unsafe fn unlock(&self) {
        // SAFETY: the caller (lock_api) holds the lock on this thread.
        unsafe { libc::pthread_mutex_unlock(self.0.get()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lock_api::RawMutex;
    use std::alloc::{GlobalAlloc, Layout};
    use std::sync::Arc;

    #[test]
    fn the_mutex_excludes() {
        let m = PthreadMutex::INIT;
        m.lock();
        assert!(!m.try_lock(), "held: a second lock must fail");
        // SAFETY: locked above on this thread.
        unsafe { m.unlock() };
        assert!(m.try_lock(), "free again");
        // SAFETY: locked by the try_lock above.
        unsafe { m.unlock() };
    }

    /// Threads allocating, filling, checking and freeing blocks of every size class and of
    /// sizes beyond talc's 1 MiB blocks, through one heap: no block is handed out twice and
    /// none is overwritten.
    #[test]
    fn threads_share_the_heap_without_overlap() {
        let heap: Arc<Heap> = Arc::new(heap());
        let workers: Vec<_> = (0..4u8)
            .map(|t| {
                let heap = Arc::clone(&heap);
                std::thread::spawn(move || {
                    let mut live: Vec<(*mut u8, Layout, u8)> = Vec::new();
                    for i in 0..3000usize {
                        let size = match i % 7 {
                            6 if i % 500 == 6 => (1 << 20) + 17,
                            k => 8usize << (k + (i % 5)),
                        };
                        let layout = Layout::from_size_align(size, 1 << (i % 6)).expect("valid layout");
                        // SAFETY: nonzero size; the block is freed below with its layout.
                        let p = unsafe { heap.alloc(layout) };
                        assert!(!p.is_null(), "allocation of {size} failed");
                        assert_eq!(p as usize % layout.align(), 0);
                        let mark = t.wrapping_mul(31).wrapping_add(i as u8);
                        // SAFETY: p points to `size` writable bytes.
                        unsafe { std::ptr::write_bytes(p, mark, size) };
                        live.push((p, layout, mark));
                        if i % 3 == 0 {
                            let (q, l, m) = live.swap_remove((i * 7) % live.len());
                            // SAFETY: q holds l.size() bytes this thread wrote with m.
                            let bytes = unsafe { std::slice::from_raw_parts(q, l.size()) };
                            assert!(bytes.iter().all(|b| *b == m), "a block was overwritten");
                            // SAFETY: allocated above with l, freed once.
                            unsafe { heap.dealloc(q, l) };
                        }
                    }
                    for (q, l, m) in live {
                        // SAFETY: as above.
                        let bytes = unsafe { std::slice::from_raw_parts(q, l.size()) };
                        assert!(bytes.iter().all(|b| *b == m), "a block was overwritten");
                        // SAFETY: as above.
                        unsafe { heap.dealloc(q, l) };
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().expect("worker");
        }
    }
}
