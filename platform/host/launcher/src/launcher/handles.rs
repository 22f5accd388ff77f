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

/// Every PD's handles, by PD index.
pub(crate) struct Handles(Vec<Vec<Given>>);

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

impl Handles {
    /// Makes the handles of every channel in `config`.
    pub(crate) fn new(config: &[PdConfig]) -> std::io::Result<Self> {
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
        Ok(Self(given))
    }

    /// Hands `pd`'s handles to a start of it, then tells it to run `init`.
    pub(crate) fn hand_over(&self, pd: usize, stream: &UnixStream) -> std::io::Result<()> {
        for given in self.0.get(pd).into_iter().flatten() {
            let frame = framed(&ToPd::Handle(given.channel, given.handle).encode());
            let borrowed: Vec<_> = given.descriptors.iter().map(AsFd::as_fd).collect();
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
        let handles = Handles::new(&config()).unwrap();
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
        let handles = Handles::new(&config()).unwrap();
        let slot = &handles.0[1][1].descriptors[0];
        assert!(ftruncate(slot, 0).is_err(), "shrink");
        assert!(ftruncate(slot, 2 * SLOT_BYTES as u64).is_err(), "grow");
        assert!(
            fcntl_add_seals(slot, SealFlags::WRITE).is_err(),
            "the seals are sealed"
        );
    }
}
