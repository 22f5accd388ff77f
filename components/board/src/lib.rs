//! The board's devices, read from its flattened device tree (skeleton).
#![no_std]
#![forbid(unsafe_code)]
