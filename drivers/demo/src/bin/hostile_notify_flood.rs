//! A hostile driver PD for the supervision tests (see `demo_driver::hostile`).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]
warden_microkit::protection_domain!(demo_driver::hostile::notify_flood);
