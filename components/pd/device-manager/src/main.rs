//! The device-manager PD binary: the handler lives in the library (`warden_device_manager::init`).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

warden_microkit::protection_domain!(warden_device_manager::init);
