//! The device-manager PD binary: the handler lives in the library (`device_manager::init`).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

warden_microkit::protection_domain!(device_manager::init);
