//! Warden's virtio-mmio transport for virtio-drivers, over the register-access trait (skeleton).
#![cfg_attr(not(test), no_std)]
