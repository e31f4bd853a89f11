//! What the fuzz targets share (docs/fuzzing.md).
//!
//! - [`CappedAllocator`]: every target installs it, so an allocation sized from a
//!   length read off the input, rather than from the bytes present, is a crash.
//! - [`init`]: every target calls it first, so a stack overflow is a crash libFuzzer
//!   records, not a silent SIGSEGV.
//! - [`check_seed`]: the committed seed corpus must stay valid input; scripts/fuzz.sh
//!   replays it with `OUTPOST_FUZZ_CHECK_SEEDS=1` before fuzzing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// The largest single allocation a target may make. No input is longer than 16 KiB
/// (scripts/fuzz.sh passes `-max_len`), and serde preallocates at most 1 MiB for a
/// collection whatever length the input claims, so anything above this was sized
/// from an unchecked length.
pub const MAX_ALLOCATION: usize = 4 << 20;

/// The system allocator, refusing an allocation over [`MAX_ALLOCATION`].
///
/// libFuzzer's own `-malloc_limit_mb` needs the malloc hooks of a sanitizer runtime,
/// which the default stable build (`--sanitizer none`) does not link, so the cap is
/// kept here. A refused allocation is reported by Rust as "memory allocation of N
/// bytes failed" and aborts, which libFuzzer records as a crash.
///
/// Only the first oversized allocation of the process is refused, and none while a
/// panic is reported: printing the backtrace reads the binary's debug information in
/// buffers larger than the cap, and refusing those would hide the report (or deadlock
/// on the backtrace lock) instead of finishing it.
#[derive(Debug)]
pub struct CappedAllocator;

/// Set once an allocation was refused: the process is on its way to abort.
static REFUSED_ONE: AtomicBool = AtomicBool::new(false);

fn refuse(size: usize) -> bool {
    size > MAX_ALLOCATION && !std::thread::panicking() && !REFUSED_ONE.swap(true, Ordering::Relaxed)
}

// SAFETY: every call is forwarded unchanged to `System`, or refused with a null
// pointer, which `GlobalAlloc` allows for any request.
unsafe impl GlobalAlloc for CappedAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if refuse(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's contract for `layout` is the one `System` needs.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if refuse(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: as in `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through this allocator, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if refuse(new_size) {
            return std::ptr::null_mut();
        }
        // SAFETY: as in `dealloc`; a null return leaves `ptr` allocated, as required.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// The alternate stack the SIGSEGV handler runs on: the overflowed stack has no room.
const SIGNAL_STACK_BYTES: usize = 256 * 1024;

/// Lets libFuzzer record a stack overflow. libFuzzer's `main` replaces Rust's, so
/// Rust's overflow handler and its alternate signal stack are never set up, and
/// libFuzzer's own SIGSEGV handler has no stack to run on after an overflow: the
/// process died by SIGSEGV without writing the input. This installs a handler on an
/// alternate stack that aborts; libFuzzer (whose init runs after this) keeps it
/// upstream of its own and records the abort as a crash, input included.
///
/// Left alone when a handler is already installed (AddressSanitizer's, which reports
/// overflows itself).
pub fn init() {
    // SAFETY: plain libc calls with valid pointers; the signal stack is leaked, so it
    // lives as long as the process, and the handler only calls async-signal-safe
    // functions (`write`, `abort`).
    unsafe {
        let mut current: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGSEGV, std::ptr::null(), &mut current) != 0
            || current.sa_sigaction != libc::SIG_DFL
        {
            return;
        }
        let stack = Box::leak(vec![0u8; SIGNAL_STACK_BYTES].into_boxed_slice());
        let alternate = libc::stack_t {
            ss_sp: stack.as_mut_ptr().cast(),
            ss_flags: 0,
            ss_size: stack.len(),
        };
        if libc::sigaltstack(&alternate, std::ptr::null_mut()) != 0 {
            return;
        }
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_segv as SegvHandler as libc::sighandler_t;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGSEGV, &action, std::ptr::null_mut());
    }
}

type SegvHandler = extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void);

extern "C" fn on_segv(
    _signal: libc::c_int,
    _info: *mut libc::siginfo_t,
    _context: *mut libc::c_void,
) {
    const MESSAGE: &[u8] =
        b"SIGSEGV: in safe Rust, a stack overflow (the stack is 2 MiB, as on a tokio worker)\n";
    // SAFETY: both are async-signal-safe; `MESSAGE` is a valid buffer.
    unsafe {
        libc::write(libc::STDERR_FILENO, MESSAGE.as_ptr().cast(), MESSAGE.len());
        libc::abort();
    }
}

/// Whether this run replays the seed corpus (`OUTPOST_FUZZ_CHECK_SEEDS=1`).
fn checking_seeds() -> bool {
    static CHECKING: OnceLock<bool> = OnceLock::new();
    *CHECKING.get_or_init(|| std::env::var_os("OUTPOST_FUZZ_CHECK_SEEDS").is_some_and(|v| v == "1"))
}

/// When replaying the seed corpus, runs `check` and panics with its error: a seed that
/// is no longer valid input means the format changed and `fuzz/make_corpus.py` needs
/// updating. While fuzzing it does nothing, not even run `check`.
pub fn check_seed(check: impl FnOnce() -> Result<(), String>) {
    if checking_seeds()
        && let Err(why) = check()
    {
        panic!("seed is no longer valid input: {why} (update fuzz/make_corpus.py and rerun it)");
    }
}
