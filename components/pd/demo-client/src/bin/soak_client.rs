//! The soak client's binary: `warden-host soak` runs it in the client PD's place (the logic is
//! in the library's `soak` module).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]
warden_microkit::protection_domain!(warden_demo_client::soak::init);
