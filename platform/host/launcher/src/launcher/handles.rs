//! The fast path's handles: for every channel, a pipe per direction its ends may notify in,
//! and a call slot (a sealed memfd of one page with a doorbell pipe) per `pp` end. Pipes, not
//! eventfds: each end of a pipe is an open file of its own, so neither peer can change the
//! other's (an eventfd shared by two PDs is one open file, and a PD that cleared its
//! `O_NONBLOCK` would make its peer's next write or read block for ever). The
//! launcher makes them once and keeps them for the whole run, so what a PD's peer signalled
//! while it was restarting waits for its next start, as a notification word does on seL4. Each
//! start of a PD is handed its own ends, and nothing else, over its socket (`SCM_RIGHTS`); the
//! launcher never reads or writes them afterwards.

use std::io::IoSlice;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;

use rustix::fs::{fcntl_add_seals, ftruncate, memfd_create, MemfdFlags, SealFlags};
use rustix::net::{sendmsg, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
use rustix::pipe::{pipe_with, PipeFlags};
use warden_microkit::host_protocol::{framed, write_frame, Handle, ToPd, SLOT_BYTES};

use super::PdConfig;

/// One handle of a PD's: its channel id, its kind, its descriptors.
pub(crate) struct Given {
    channel: u8,
    handle: Handle,
    descriptors: Vec<OwnedFd>,
}

/// Every PD's handles, by PD index, and every PD's maps' memory (the map's number, its
/// descriptor).
pub(crate) struct Handles(Vec<Vec<Given>>, Vec<Vec<(u16, OwnedFd)>>);

/// A one-way signal: (the end the receiver reads, the end the sender writes), both
/// non-blocking, each an open file of its own.
fn notification() -> std::io::Result<(OwnedFd, OwnedFd)> {
    Ok(pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?)
}

/// A call slot's memory: a page neither peer can shrink (a PD that truncated a shared file
/// would make its peer's next access a bus error) or grow.
fn slot() -> std::io::Result<OwnedFd> {
    let memory = memfd_create(
        "warden-call-slot",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )?;
    ftruncate(&memory, SLOT_BYTES as u64)?;
    fcntl_add_seals(
        &memory,
        SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL,
    )?;
    Ok(memory)
}

/// A memory region's memory: a memfd of its size that starts with its `prefill_path` file (read
/// now, as the microkit tool reads it when it builds the image, at most the region's size),
/// sealed so that no PD can shrink it (its peers' next access would be a bus error) or grow it.
pub(crate) fn region(
    index: usize,
    region: &warden_system::MemoryRegion,
) -> std::io::Result<std::fs::File> {
    let memory = memfd_create(
        // Named by index: a memfd's name is at most 249 bytes, a region's name is not bounded.
        format!("warden-region-{index}"),
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )?;
    let mut file = std::fs::File::from(memory);
    if let Some(prefill) = &region.prefill {
        let source = std::fs::File::open(&prefill.path)?;
        std::io::copy(&mut std::io::Read::take(source, region.size), &mut file)?;
    }
    file.set_len(region.size)?;
    fcntl_add_seals(&file, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)?;
    Ok(file)
}

/// A descriptor of `memory` that is an open file of its own, read-write only if `writable`: a
/// PD handed a read-only one cannot map it writable (nor make its mapping writable later, nor
/// write it through `/proc/self/mem`), and nothing it does to its open file touches another's.
/// Not a wall against a hostile PD: a process may reopen `/proc/self/fd/N` read-write (the
/// memfd's inode is its user's, mode 0777), so a PD that does so before the runtime closes the
/// descriptor could write a region it maps read-only. The runtime closes it once mapped.
pub(crate) fn opened_for(memory: &std::fs::File, writable: bool) -> std::io::Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(writable)
        .open(format!("/proc/self/fd/{}", memory.as_raw_fd()))?;
    Ok(file.into())
}

impl Handles {
    /// Makes the handles of every channel in `config`, and keeps `memory` (by PD: its maps'
    /// numbers and descriptors) to hand over with them.
    pub(crate) fn new(
        config: &[PdConfig],
        memory: Vec<Vec<(u16, OwnedFd)>>,
    ) -> std::io::Result<Self> {
        let mut given: Vec<Vec<Given>> = config.iter().map(|_| Vec::new()).collect();
        for (pd, pd_config) in config.iter().enumerate() {
            for (id, end) in pd_config.channels.iter().enumerate() {
                let Some(end) = end else { continue };
                let channel = id as u8;
                // Each direction is made from the sending end, so each is made once.
                if end.may_notify {
                    let (read, write) = notification()?;
                    push(&mut given, pd, channel, Handle::NotifyOut, vec![write]);
                    push(
                        &mut given,
                        end.peer,
                        end.peer_id,
                        Handle::NotifyIn,
                        vec![read],
                    );
                }
                if end.may_call {
                    let (memory, (doorbell_read, doorbell_write)) = (slot()?, notification()?);
                    let peer = vec![memory.try_clone()?, doorbell_read];
                    push(
                        &mut given,
                        pd,
                        channel,
                        Handle::CallOut,
                        vec![memory, doorbell_write],
                    );
                    push(&mut given, end.peer, end.peer_id, Handle::CallIn, peer);
                }
            }
        }
        Ok(Self(given, memory))
    }

    /// Hands a start of `pd` its maps' memory and its channel handles, then tells it to run
    /// `init`.
    pub(crate) fn hand_over(&self, pd: usize, stream: &UnixStream) -> std::io::Result<()> {
        let regions = self
            .1
            .get(pd)
            .into_iter()
            .flatten()
            .map(|(map, memory)| (ToPd::Region(*map), core::slice::from_ref(memory)));
        let channels = self.0.get(pd).into_iter().flatten().map(|given| {
            (
                ToPd::Handle(given.channel, given.handle),
                given.descriptors.as_slice(),
            )
        });
        for (frame, descriptors) in regions.chain(channels) {
            let frame = framed(&frame.encode());
            let borrowed: Vec<_> = descriptors.iter().map(AsFd::as_fd).collect();
            let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
            let mut control = SendAncillaryBuffer::new(&mut space);
            if !control.push(SendAncillaryMessage::ScmRights(&borrowed)) {
                return Err(std::io::Error::other("too many descriptors for one frame"));
            }
            let sent = sendmsg(
                stream,
                &[IoSlice::new(&frame)],
                &mut control,
                SendFlags::empty(),
            )?;
            if sent != frame.len() {
                // The descriptors went with the first byte; the rest of a 7-byte frame follows.
                let rest = frame.get(sent..).unwrap_or_default();
                rustix::io::write(stream, rest)?;
            }
        }
        write_frame(&mut &*stream, &ToPd::Init.encode())
    }

    /// Descriptors held for `pd` (for tests and the run's summary).
    #[cfg(test)]
    pub(crate) fn count(&self, pd: usize) -> usize {
        self.0
            .get(pd)
            .map_or(0, |given| given.iter().map(|g| g.descriptors.len()).sum())
    }
}

fn push(
    given: &mut [Vec<Given>],
    pd: usize,
    channel: u8,
    handle: Handle,
    descriptors: Vec<OwnedFd>,
) {
    if let Some(list) = given.get_mut(pd) {
        list.push(Given {
            channel,
            handle,
            descriptors,
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
    use super::*;
    use warden_host_kernel::{ChannelEnd, CHANNELS};

    fn pd(name: &str) -> PdConfig {
        PdConfig {
            name: name.into(),
            parent: None,
            channels: [None; CHANNELS],
            irqs: 0,
        }
    }

    /// client (channel 0, may call) — server (channel 5, may not notify); a bystander with no
    /// channels.
    fn config() -> Vec<PdConfig> {
        let (mut client, mut server) = (pd("client"), pd("server"));
        client.channels[0] = Some(ChannelEnd {
            peer: 1,
            peer_id: 5,
            may_notify: true,
            may_call: true,
        });
        server.channels[5] = Some(ChannelEnd {
            peer: 0,
            peer_id: 0,
            may_notify: false,
            may_call: false,
        });
        vec![client, server, pd("bystander")]
    }

    #[test]
    fn each_pd_holds_its_own_ends_and_nothing_else() {
        let handles = Handles::new(&config(), Vec::new()).unwrap();
        let kinds = |pd: usize| -> Vec<(u8, Handle)> {
            handles.0[pd]
                .iter()
                .map(|given| (given.channel, given.handle))
                .collect()
        };
        assert_eq!(kinds(0), [(0, Handle::NotifyOut), (0, Handle::CallOut)]);
        assert_eq!(
            kinds(1),
            [(5, Handle::NotifyIn), (5, Handle::CallIn)],
            "an end with notify=\"false\" gets no way to notify"
        );
        assert_eq!(
            (handles.count(0), handles.count(1), handles.count(2)),
            (3, 3, 0)
        );
    }

    #[test]
    fn a_call_slot_cannot_be_shrunk_or_grown_by_a_peer() {
        let handles = Handles::new(&config(), Vec::new()).unwrap();
        let slot = &handles.0[1][1].descriptors[0];
        assert!(ftruncate(slot, 0).is_err(), "shrink");
        assert!(ftruncate(slot, 2 * SLOT_BYTES as u64).is_err(), "grow");
        assert!(
            fcntl_add_seals(slot, SealFlags::WRITE).is_err(),
            "the seals are sealed"
        );
    }
}
