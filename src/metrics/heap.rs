//! The appliance's own heap: giving freed memory back to the kernel, and how much is in use.
//! The only unsafe code of the metrics module.
//!
//! glibc's malloc returns memory to the kernel only from the top of its heap. A reconcile pass
//! that adds a thousand ports, or a thousand interfaces' statistics copied every 5 s, leaves
//! many small freed chunks between live ones; measured with 1000 interfaces, the appliance sat
//! at 33 MiB resident, of which 14 MiB were such free fragments. `malloc_trim(0)` releases the
//! free pages anywhere in the heap (glibc >= 2.8) in well under a millisecond at this size, so
//! it runs after each background reading and after each scrape.
//!
//! A scrape of a thousand interfaces is a 1.7 MB body. glibc maps a block that large on its own
//! and unmaps it when freed, but then raises its threshold for the next ones to that size, so
//! from the second scrape on the bodies came from the heap: measured, 38.5 MiB resident right
//! after 90 scrapes against 23.7 MiB before them. [`tune`] fixes the threshold.

/// Blocks this large and larger are mapped on their own and unmapped when freed.
const MMAP_THRESHOLD: i32 = 256 * 1024;

/// Fixes malloc's mmap threshold (glibc only; elsewhere nothing to do). Called once, as the
/// metrics start.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets one of glibc's malloc parameters; it takes no pointer.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// Returns free heap pages to the kernel (glibc only; elsewhere nothing to do).
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and madvises glibc's own free lists under its arena
    // locks; it takes no pointer from us and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Bytes allocated and not freed, over all of malloc's arenas and the blocks mapped on their
/// own (glibc only). Resident memory beyond it is the binary, stacks, and freed memory malloc
/// has not given back. (Its count of free bytes is not given: it includes pages already given
/// back by `malloc_trim`.)
pub fn in_use() -> Option<u64> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 returns a struct by value and takes no pointer.
        let m = unsafe { libc::mallinfo2() };
        Some((m.uordblks + m.hblkhd) as u64)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_held_counts_in_use_and_counts_no_longer_once_freed() {
        // The count is the whole process's, and other tests allocate and free on other
        // threads meanwhile: a block far larger than their churn, and a margin for it.
        const BLOCK: u64 = 256 << 20;
        const MARGIN: u64 = 32 << 20;
        let before = in_use().expect("glibc");
        // Zeroed: mapped, counted, never touched.
        let block = vec![0u8; BLOCK as usize];
        let held = in_use().expect("glibc");
        assert!(held + MARGIN >= before + BLOCK, "{before} -> {held}");
        drop(block);
        let after = in_use().expect("glibc");
        assert!(after + BLOCK <= held + MARGIN, "{held} -> {after}");
    }
}
