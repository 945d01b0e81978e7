//! The binary's memory allocator: a bump allocator over a static arena, for a process that
//! lives well under a millisecond. musl's allocator maps and unmaps pages for many small
//! allocations; each of those is a system call, and with a second thread alive an unmap also
//! costs a TLB shootdown. The arena is in `.bss`: its pages cost nothing until touched, and a
//! free is a no-op (the process is about to exit). An allocation that does not fit goes to
//! the system allocator, so nothing is ever refused that would otherwise succeed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicUsize, Ordering};

const SIZE: usize = 512 * 1024;

#[repr(C, align(4096))]
struct Memory(UnsafeCell<[u8; SIZE]>);

// SAFETY: every byte range is handed out at most once (the bump is atomic), so threads never
// share a range.
unsafe impl Sync for Memory {}

static MEMORY: Memory = Memory(UnsafeCell::new([0; SIZE]));
static USED: AtomicUsize = AtomicUsize::new(0);

pub struct Arena;

impl Arena {
    fn contains(ptr: *mut u8) -> bool {
        let base = MEMORY.0.get() as usize;
        (base..base + SIZE).contains(&(ptr as usize))
    }
}

// SAFETY: `alloc` returns either a fresh, suitably aligned range of the arena that no other
// call returns, or what `System` returns; `dealloc` gives `System` back only its own pointers.
unsafe impl GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let base = MEMORY.0.get() as usize;
        let mut used = USED.load(Ordering::Relaxed);
        loop {
            let start = (base + used).next_multiple_of(layout.align()) - base;
            let Some(end) = start.checked_add(layout.size()).filter(|&e| e <= SIZE) else {
                // SAFETY: forwarded with the caller's valid layout.
                return unsafe { System.alloc(layout) };
            };
            match USED.compare_exchange_weak(used, end, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return (base + start) as *mut u8,
                Err(now) => used = now,
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !Self::contains(ptr) {
            // SAFETY: not the arena's, so `System` allocated it with this layout.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !Self::contains(ptr) {
            // SAFETY: `System`'s own pointer, with the layout it was allocated with.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: same alignment, a size the caller guarantees is valid.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: a valid layout.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both ranges are valid for the smaller size and do not overlap (the new
            // one was handed out after the old one).
            unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_distinct_and_falls_back() {
        let a = Arena;
        // SAFETY: valid layouts; pointers written within their sizes.
        unsafe {
            let l8 = Layout::from_size_align(24, 8).unwrap();
            let l64 = Layout::from_size_align(100, 64).unwrap();
            let p = a.alloc(l8);
            let q = a.alloc(l64);
            assert!(Arena::contains(p) && Arena::contains(q));
            assert_eq!(q as usize % 64, 0);
            assert!(q as usize >= p as usize + 24);
            p.write_bytes(1, 24);
            let r = a.realloc(p, l8, 4000);
            assert_eq!(*r.add(23), 1);
            let big = Layout::from_size_align(SIZE + 1, 8).unwrap();
            let b = a.alloc(big);
            assert!(!b.is_null() && !Arena::contains(b));
            a.dealloc(b, big);
        }
    }
}
