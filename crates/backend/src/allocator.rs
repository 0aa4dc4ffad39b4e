//! The allocator of the binaries that run backbones and the solver on a CPU backend.
//!
//! flex and ndarray allocate a fresh buffer for every intermediate tensor: a ResNet-50 batch of
//! 32 makes activation maps and im2col matrices of 100–230 MB each, the solver one |B|×d
//! mini-batch per step. The system allocator maps each such buffer afresh and the kernel zeroes
//! its pages again on first touch; mimalloc reuses them, and [`retain_freed_memory`] stops it
//! from handing them back to the kernel 10 ms after they are freed (its default), so the next
//! layer or step finds its buffer already faulted in. A binary opts in with
//!
//! ```no_run
//! #[global_allocator]
//! static GLOBAL: backend::allocator::MiMalloc = backend::allocator::MiMalloc;
//!
//! fn main() {
//!     backend::allocator::retain_freed_memory();
//!     // ...
//! }
//! ```
//!
//! The cost is that the process keeps its peak footprint until it exits. The path solver asks
//! for less ([`release_freed_memory_after`]): its buffers recur every step (milliseconds), but at
//! ImageNet size it also makes one-off buffers of hundreds of MB (the screened copy of X for one
//! λ, never the same size again) that would otherwise stay in the footprint for the whole run.

pub use mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (the same index in its v2 and v3 headers;
/// libmimalloc-sys names no constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Never return freed pages to the operating system (mimalloc's `purge_delay = -1`). Harmless
/// when mimalloc is not the global allocator: it then only sets an unused option.
pub fn retain_freed_memory() {
    // SAFETY: mi_option_set only stores a value in mimalloc's option table; any thread, any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

/// Return freed pages to the kernel once they have stayed unused for `ms` milliseconds
/// (mimalloc's `purge_delay`): far longer than the gap between two uses of a step's buffer.
pub fn release_freed_memory_after(ms: u32) {
    // SAFETY: as in `retain_freed_memory`.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, ms as std::os::raw::c_long) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        retain_freed_memory();
        // SAFETY: reads mimalloc's option table.
        let delay = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(delay, -1);
        release_freed_memory_after(1000);
        assert_eq!(
            unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) },
            1000
        );
        retain_freed_memory();
        // the neighbouring options keep their defaults (eager_commit_delay 1, use_numa_nodes 0)
        assert_eq!(unsafe { libmimalloc_sys::mi_option_get(14) }, 1);
        assert_eq!(unsafe { libmimalloc_sys::mi_option_get(16) }, 0);
    }
}
