//! A global allocator for tests of the post-fork rule: code in a forked child (the stage, the
//! init, an exec'd process, a hook's child before its execve) allocates nothing, since another
//! thread of the program may have held the allocator's lock at the fork (an allocator without
//! fork handlers then deadlocks the child). A test program installs [`ChildAllocCounter`] as its
//! `#[global_allocator]`, calls [`ChildAllocCounter::arm`], and after its containers ran reads
//! [`ChildAllocCounter::count`]: every allocation, reallocation and free made by a process other
//! than the armed one, summed over all its descendants through a shared page.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicUsize, Ordering};

/// [`System`], counting what forked children of the armed process allocate and free.
pub struct ChildAllocCounter;

/// The armed process; 0 until [`ChildAllocCounter::arm`].
static OWNER: AtomicI32 = AtomicI32::new(0);
/// The counter, in a page shared with every process forked after `arm`.
static SHARED: AtomicPtr<AtomicUsize> = AtomicPtr::new(null_mut());

impl ChildAllocCounter {
    /// Count from now on, in every process forked from this one. Idempotent.
    pub fn arm() {
        if !SHARED.load(Ordering::Acquire).is_null() {
            return;
        }
        // SAFETY: an anonymous shared mapping of one page, no fd, no address hint; the result is
        // checked against MAP_FAILED before use.
        let page = unsafe {
            libc::mmap(
                null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert!(
            page != libc::MAP_FAILED,
            "mmap of the shared counter failed"
        );
        // A fresh anonymous mapping is zeroed: the counter starts at 0. A racing second `arm`
        // keeps the first page (the second one is leaked: a test helper, called once).
        let _ =
            SHARED.compare_exchange(null_mut(), page.cast(), Ordering::AcqRel, Ordering::Acquire);
        if std::env::var_os(TRACE_VAR).is_some() {
            // The first backtrace(3) loads the unwinder, which allocates: do it here, not in a
            // child.
            let mut frames = [null_mut(); 4];
            // SAFETY: the buffer holds the 4 frames asked for.
            unsafe { backtrace(frames.as_mut_ptr(), 4) };
            TRACE.store(true, Ordering::Relaxed);
        }
        OWNER.store(std::process::id() as i32, Ordering::Release);
    }

    /// Allocations, reallocations and frees made so far in forked children.
    pub fn count() -> usize {
        let p = SHARED.load(Ordering::Acquire);
        // SAFETY: once set, the pointer is a live page-aligned mapping that is never unmapped.
        unsafe { p.as_ref() }.map_or(0, |c| c.load(Ordering::SeqCst))
    }

    fn note() {
        let owner = OWNER.load(Ordering::Relaxed);
        // getpid(2), not std::process::id(): both are a plain syscall without a cache, but this
        // one cannot be mistaken for something that allocates.
        // SAFETY: getpid takes no arguments and cannot fail.
        if owner != 0 && unsafe { libc::getpid() } != owner {
            // SAFETY: as in `count`.
            if let Some(c) = unsafe { SHARED.load(Ordering::Relaxed).as_ref() } {
                c.fetch_add(1, Ordering::SeqCst);
                if TRACE.load(Ordering::Relaxed) {
                    trace();
                }
            }
        }
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; counting
// allocates nothing and takes no lock.
unsafe impl GlobalAlloc for ChildAllocCounter {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::note();
        // SAFETY: the caller's contract for `alloc` is `System.alloc`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::note();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        Self::note();
        // SAFETY: `ptr` came from this allocator, that is from `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::note();
        // SAFETY: as for `dealloc`, and the caller's contract on `new_size`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// With this variable set when [`ChildAllocCounter::arm`] runs, each counted allocation also
/// writes its stack to stderr (`binary(+offset)` frames, for `addr2line -f -C -e binary`): how
/// to find where a forked child allocates.
pub const TRACE_VAR: &str = "CASULO_CHILD_ALLOC_TRACE";

static TRACE: AtomicBool = AtomicBool::new(false);

/// The caller's stack on stderr, without allocating (backtrace_symbols_fd(3) writes directly).
fn trace() {
    let mut frames = [null_mut(); 48];
    // SAFETY: the buffer holds the 48 frames asked for; the result is the number filled in,
    // which is what backtrace_symbols_fd reads; fd 2 is the process's stderr.
    unsafe {
        let n = backtrace(frames.as_mut_ptr(), 48);
        libc::write(2, b"--- child alloc\n".as_ptr().cast(), 16);
        backtrace_symbols_fd(frames.as_ptr(), n, 2);
    }
}

// glibc's execinfo.h, which the libc crate does not bind.
extern "C" {
    fn backtrace(buffer: *mut *mut libc::c_void, size: libc::c_int) -> libc::c_int;
    fn backtrace_symbols_fd(buffer: *const *mut libc::c_void, size: libc::c_int, fd: libc::c_int);
}
