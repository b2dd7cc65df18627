//! Giving memory the allocator keeps back to the system after a big one-off step.
//!
//! glibc's malloc keeps freed memory in its arenas for reuse, and returns it to the system
//! only from the top of the heap. Publishing the tree of a lake of 100,000 files builds and
//! drops tens of MiB of temporaries (the folders under construction, each snapshot's file
//! paths for `lake.sql`); without a trim the daemon kept about 90 MiB of them at rest
//! (measured in `bench/`, `mirror`). `malloc_trim(0)` hands the free pages of every arena back
//! (`madvise(MADV_DONTNEED)`); it costs a walk of the free lists, milliseconds, and is called
//! only after such steps. This is the only `unsafe` outside the cache.
#![allow(unsafe_code)]

/// Returns the allocator's free memory to the system (glibc only; elsewhere nothing to do).
pub(crate) fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes a plain integer and only walks the allocator's own structures;
    // it is thread-safe (it locks each arena).
    unsafe {
        libc::malloc_trim(0);
    }
}
