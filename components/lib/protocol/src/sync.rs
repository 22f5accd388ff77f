//! The atomics the rings use: `core`'s, or `loom`'s when the crate is built with `--cfg loom`
//! so that the loom tests explore every interleaving and memory ordering of the ring code.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, Ordering};

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{fence, AtomicU32, Ordering};
