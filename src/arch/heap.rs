//! The hypervisor's heap (`buddy_system_allocator`), fed with a range of free RAM.

use buddy_system_allocator::LockedHeap;

#[global_allocator]
static HEAP: LockedHeap<32> = LockedHeap::empty();

/// Hands `[start, start + size)` to the heap. The range must be free RAM, mapped
/// read-write, and never handed to anything else.
pub fn init(start: u64, size: u64) {
    // SAFETY: the caller carved this range out of free RAM (it is reserved in the memory
    // map before anything else is allocated) and it is identity mapped read-write.
    unsafe { HEAP.lock().init(start as usize, size as usize) };
}

/// (bytes in use, bytes in total).
pub fn usage() -> (usize, usize) {
    let h = HEAP.lock();
    (h.stats_alloc_actual(), h.stats_total_bytes())
}
