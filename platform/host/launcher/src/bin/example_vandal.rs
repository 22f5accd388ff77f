//! Example PD (host tests): vandalises the call slot it shares with its server, as any PD can
//! (the slot is mapped in its process, and it holds the doorbell): it writes garbage over the whole slot (a call
//! that seems to wait, a register count of 2^32 - 1, nonsense sequence numbers) and writes
//! 10,000 times to every pipe it holds (its doorbell, its notifications). The server must come through it, and the vandal's next honest
//! call must get the right answer.
#![allow(
    unsafe_code,
    reason = "a hostile PD maps its call slot by hand, from its own descriptors"
)]

use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicU32, Ordering};

use warden_microkit::host_protocol::SLOT_BYTES;
use warden_microkit::{get_mr, set_mr, Channel, ChannelSet, Handler, MessageInfo};

#[path = "support/descriptors.rs"]
mod descriptors;

const SERVER: Channel = Channel::new(1);

struct Vandal;

impl Handler for Vandal {
    type Error = &'static str;

    fn notified(&mut self, _channels: ChannelSet) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// The call slots mapped in this process (the runtime keeps the mappings and closes the
/// memfds): their addresses, from `/proc/self/maps`.
fn slots() -> Vec<usize> {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains("memfd:warden-call-slot"))
        .filter_map(|line| usize::from_str_radix(line.split('-').next()?, 16).ok())
        .collect()
}

fn vandalise() -> usize {
    let mut words_written = 0;
    for address in slots() {
        // SAFETY: `address` starts a live shared mapping of SLOT_BYTES (the runtime's call slot,
        // never unmapped); AtomicU32 accepts every bit pattern, and the runtime accesses the
        // slot through atomics only, so writing it here races with nothing non-atomic.
        let words =
            unsafe { core::slice::from_raw_parts(address as *const AtomicU32, SLOT_BYTES / 4) };
        for (index, word) in words.iter().enumerate() {
            word.store(0xdead_0000 ^ index as u32, Ordering::Release);
        }
        // A call that seems to wait, with a register count of 2^32 - 1.
        if let [call, taken, reply, _, _, _, count, ..] = words {
            call.store(0x1234, Ordering::Release);
            taken.store(0, Ordering::Release);
            reply.store(0xffff_ffff, Ordering::Release);
            count.store(u32::MAX, Ordering::Release);
        }
        words_written += words.len();
    }
    for fd in descriptors::descriptors("pipe:") {
        // SAFETY: as above: open for the life of the process, borrowed for the writes.
        let pipe = unsafe { BorrowedFd::borrow_raw(fd) };
        for _ in 0..10_000 {
            let _ = rustix::io::write(pipe, &[1]);
        }
    }
    words_written
}

fn main() -> Result<(), warden_microkit::HostError> {
    warden_microkit::run(|| {
        let words = vandalise();
        println!("vandal: wrote garbage over {words} words of call slot and rang every pipe");
        std::thread::sleep(std::time::Duration::from_millis(300));
        set_mr(0, 21);
        let reply = SERVER.pp_call(MessageInfo::new(0, 1));
        println!(
            "vandal: after the garbage, 21 * 2 = {} (label {})",
            get_mr(0),
            reply.label()
        );
        Vandal
    })
}
