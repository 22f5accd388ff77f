//! The virtio-blk driver PD's binary (the logic is in the library).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]
warden_microkit::protection_domain!(virtio_blk_driver::init);
