//! The host platform's model of the Microkit kernel's event delivery, as a sans-IO state
//! machine: which entry point of which PD runs next, given notifications, protected procedure
//! calls, interrupts and faults. The launcher feeds it what the PD processes do and carries out
//! what it answers (enter a PD, return from a call, start, restart or stop a process).
//!
//! The rules are the Microkit's (see `shared/MICROKIT-NOTES.md`):
//! * a PD runs one entry point at a time, and only after its `init` returned;
//! * notifications are binary semaphores per channel, OR-accumulated while the PD is busy and
//!   delivered together as one channel set; repeated signals before delivery coalesce;
//! * pending notifications are delivered before queued protected procedure calls (the bound
//!   notification is seen before the endpoint);
//! * a protected procedure call blocks the caller until the callee's `protected` returns; only
//!   a `pp` end may call, only a `notify` end may signal, and anything else is refused, as
//!   libmicrokit refuses it;
//! * an interrupt is delivered as a notification on its channel and stays masked until the PD
//!   acknowledges it; one raised while masked is delivered after the acknowledgement;
//! * a fault stops the PD; its parent's `fault` entry receives it (the PD stays blocked until the
//!   parent restarts or stops it), or, with no parent, the PD is dead for good. A PD that faults
//!   while serving a call leaves its caller blocked, as on seL4: the launcher keeps running.

use std::collections::VecDeque;

/// Channel and IRQ ids of one PD: 0–61.
pub const CHANNELS: usize = 62;

/// Index of a PD in the system description (document order).
pub type PdIndex = usize;

/// One end of a channel as seen from the PD that owns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelEnd {
    /// The PD at the other end.
    pub peer: PdIndex,
    /// The id of the channel at the other end.
    pub peer_id: u8,
    /// This end may notify (`notify`, default true).
    pub may_notify: bool,
    /// This end may call the other (`pp="true"` on this end).
    pub may_call: bool,
}

/// What the model needs to know about one PD.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PdConfig {
    /// Its name, for errors.
    pub name: String,
    /// The parent and this PD's child id under it.
    pub parent: Option<(PdIndex, u8)>,
    /// Channels by id.
    pub channels: [Option<ChannelEnd>; CHANNELS],
    /// IRQ channel ids this PD owns.
    pub irqs: u64,
}

/// A Microkit message info: label and message-register count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct MessageInfo {
    /// The label.
    pub label: u64,
    /// Registers used.
    pub count: u16,
}

/// Message registers carried with a call, a reply or a fault.
pub type Registers = Vec<u64>;

/// Fault kinds, numbered as seL4's fault labels on ARM (MCS) so a parent sees the same labels on
/// both platforms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// A capability fault (on the host: a refused kernel operation).
    Cap = 1,
    /// An unknown system call (on the host: the process called exit).
    UnknownSyscall = 2,
    /// A user exception (on the host: a Rust panic or abort).
    UserException = 3,
    /// A virtual-memory fault (on the host: SIGSEGV or SIGBUS, e.g. a write to a read-only
    /// map).
    VmFault = 6,
}

/// An entry point to run in a PD.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// `init()`.
    Init,
    /// `notified(channels)`: the bits of the channels that were signalled.
    Notified(u64),
    /// `protected(channel, info)` with the caller's registers.
    Protected {
        /// The channel (this PD's id).
        channel: u8,
        /// The message info.
        info: MessageInfo,
        /// The registers.
        registers: Registers,
    },
    /// `fault(child, info)`: `info.label` is the fault kind.
    Fault {
        /// The child's id.
        child: u8,
        /// The fault's message info.
        info: MessageInfo,
    },
    /// `inject(fault)` (the host platform's fault injection): the fault's code.
    Inject(u8),
}

/// What the launcher must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Run this entry point in this PD (it is idle now).
    Enter(PdIndex, Entry),
    /// Return from the PD's `pp_call` with this reply.
    ReturnFromCall(PdIndex, MessageInfo, Registers),
    /// Start the PD's process again from the beginning (then `Enter(.., Init)` follows).
    Restart(PdIndex),
    /// Stop the PD's process for good.
    Stop(PdIndex),
    /// A fault nobody handles: log it; the PD is dead.
    Dead(PdIndex, FaultKind),
}

/// Why the model refused something a PD asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No such channel at this PD, or this end may not notify / call / acknowledge it.
    InvalidChannel(u8),
    /// The PD is not in a state where it may do that (e.g. returned from an entry it was not
    /// running, or restarted a PD that is not its child).
    NotPermitted,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Run {
    /// In its event loop, waiting.
    Idle,
    /// Running an entry point.
    Busy(Busy),
    /// Blocked in a `pp_call`; `resume` is what it was doing.
    Calling {
        /// The PD called.
        callee: PdIndex,
        /// What continues when the call returns.
        resume: Busy,
    },
    /// Faulted; waiting for its parent to restart or stop it.
    Faulted,
    /// Stopped or dead.
    Gone,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Busy {
    Init,
    Notified,
    Injected,
    /// Serving a call from this PD.
    Protected(PdIndex),
    /// Handling the fault of this child PD.
    Fault(PdIndex),
}

/// What waits on a PD's endpoint, in arrival order.
#[derive(Clone, Debug, PartialEq, Eq)]
enum EndpointMessage {
    Call {
        caller: PdIndex,
        channel: u8,
        info: MessageInfo,
        registers: Registers,
    },
    Fault {
        child: PdIndex,
        kind: FaultKind,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct PdState {
    run: Run,
    /// Signalled channels not yet delivered.
    pending: u64,
    /// IRQ channels delivered and not yet acknowledged.
    masked: u64,
    /// IRQs raised while masked: delivered after the acknowledgement.
    raised_while_masked: u64,
    endpoint: VecDeque<EndpointMessage>,
    /// Faults to inject, in order.
    injected: VecDeque<u8>,
}

impl PdState {
    fn new() -> Self {
        Self {
            run: Run::Busy(Busy::Init),
            pending: 0,
            masked: 0,
            raised_while_masked: 0,
            endpoint: VecDeque::new(),
            injected: VecDeque::new(),
        }
    }
}

/// The model of the whole system.
#[derive(Clone, Debug)]
pub struct Kernel {
    config: Vec<PdConfig>,
    state: Vec<PdState>,
}

impl Kernel {
    /// A system whose PDs are all about to run `init`; returns the kernel and the initial
    /// actions (enter `init` in every PD).
    #[must_use]
    pub fn new(config: Vec<PdConfig>) -> (Self, Vec<Action>) {
        let state = config.iter().map(|_| PdState::new()).collect();
        let actions = (0..config.len())
            .map(|pd| Action::Enter(pd, Entry::Init))
            .collect();
        (Self { config, state }, actions)
    }

    fn end(&self, pd: PdIndex, channel: u8) -> Option<ChannelEnd> {
        self.config
            .get(pd)?
            .channels
            .get(usize::from(channel))
            .copied()
            .flatten()
    }

    fn state(&mut self, pd: PdIndex) -> Result<&mut PdState, Refusal> {
        self.state.get_mut(pd).ok_or(Refusal::NotPermitted)
    }

    /// Is this PD running an entry point (and so allowed to act)?
    fn running(&self, pd: PdIndex) -> bool {
        self.state
            .get(pd)
            .is_some_and(|state| matches!(state.run, Run::Busy(_)))
    }

    /// `microkit_notify(channel)` from `pd`.
    ///
    /// # Errors
    /// [`Refusal::InvalidChannel`] if the channel does not exist or this end may not notify;
    /// [`Refusal::NotPermitted`] if `pd` is not running.
    pub fn notify(&mut self, pd: PdIndex, channel: u8) -> Result<Vec<Action>, Refusal> {
        if !self.running(pd) {
            return Err(Refusal::NotPermitted);
        }
        let end = self
            .end(pd, channel)
            .filter(|end| end.may_notify)
            .ok_or(Refusal::InvalidChannel(channel))?;
        self.state(end.peer)?.pending |= 1 << end.peer_id;
        Ok(self.dispatch(end.peer))
    }

    /// A device model raised the interrupt on `pd`'s IRQ channel `channel`.
    ///
    /// # Errors
    /// [`Refusal::InvalidChannel`] if `pd` has no IRQ with that id.
    pub fn raise_irq(&mut self, pd: PdIndex, channel: u8) -> Result<Vec<Action>, Refusal> {
        let bit = self.irq_bit(pd, channel)?;
        let state = self.state(pd)?;
        if state.masked & bit != 0 {
            state.raised_while_masked |= bit;
            return Ok(Vec::new());
        }
        state.masked |= bit;
        state.pending |= bit;
        Ok(self.dispatch(pd))
    }

    /// A device model lowered the (level-triggered) interrupt line of `pd`'s IRQ channel
    /// `channel` before the PD saw it: as at a GIC, an interrupt that is no longer asserted is
    /// not delivered, neither now nor after the acknowledgement. One already delivered stays
    /// delivered (and masked until acknowledged).
    ///
    /// # Errors
    /// [`Refusal::InvalidChannel`] if `pd` has no IRQ with that id.
    pub fn lower_irq(&mut self, pd: PdIndex, channel: u8) -> Result<(), Refusal> {
        let bit = self.irq_bit(pd, channel)?;
        let state = self.state(pd)?;
        state.raised_while_masked &= !bit;
        Ok(())
    }

    /// `microkit_irq_ack(channel)` from `pd`: unmask; an interrupt raised meanwhile is delivered.
    ///
    /// # Errors
    /// [`Refusal::InvalidChannel`] if `pd` has no IRQ with that id; [`Refusal::NotPermitted`]
    /// if `pd` is not running.
    pub fn irq_ack(&mut self, pd: PdIndex, channel: u8) -> Result<Vec<Action>, Refusal> {
        if !self.running(pd) {
            return Err(Refusal::NotPermitted);
        }
        let bit = self.irq_bit(pd, channel)?;
        let state = self.state(pd)?;
        state.masked &= !bit;
        if state.raised_while_masked & bit != 0 {
            state.raised_while_masked &= !bit;
            state.masked |= bit;
            state.pending |= bit;
        }
        Ok(self.dispatch(pd))
    }

    fn irq_bit(&self, pd: PdIndex, channel: u8) -> Result<u64, Refusal> {
        let owns = usize::from(channel) < CHANNELS
            && self
                .config
                .get(pd)
                .is_some_and(|config| config.irqs & (1 << channel) != 0);
        if owns {
            Ok(1 << channel)
        } else {
            Err(Refusal::InvalidChannel(channel))
        }
    }

    /// `microkit_ppcall(channel, info)` from `pd`, which is running an entry point: it blocks
    /// until the callee's `protected` returns ([`Action::ReturnFromCall`]).
    ///
    /// # Errors
    /// [`Refusal::InvalidChannel`] if this end may not call; [`Refusal::NotPermitted`] if `pd`
    /// is not running.
    pub fn call(
        &mut self,
        pd: PdIndex,
        channel: u8,
        info: MessageInfo,
        registers: Registers,
    ) -> Result<Vec<Action>, Refusal> {
        let end = self
            .end(pd, channel)
            .filter(|end| end.may_call)
            .ok_or(Refusal::InvalidChannel(channel))?;
        let caller = self.state(pd)?;
        let Run::Busy(resume) = caller.run else {
            return Err(Refusal::NotPermitted);
        };
        caller.run = Run::Calling {
            callee: end.peer,
            resume,
        };
        self.state(end.peer)?
            .endpoint
            .push_back(EndpointMessage::Call {
                caller: pd,
                channel: end.peer_id,
                info,
                registers,
            });
        Ok(self.dispatch(end.peer))
    }

    /// The entry point `pd` was running returned; `reply` is what `protected` returned, or
    /// whether `fault` asked to resume its child (`Some`).
    ///
    /// # Errors
    /// [`Refusal::NotPermitted`] if `pd` was not running an entry point.
    pub fn entry_returned(
        &mut self,
        pd: PdIndex,
        reply: Option<(MessageInfo, Registers)>,
    ) -> Result<Vec<Action>, Refusal> {
        let state = self.state(pd)?;
        let Run::Busy(busy) = state.run else {
            return Err(Refusal::NotPermitted);
        };
        state.run = Run::Idle;
        let mut actions = Vec::new();
        match busy {
            Busy::Init | Busy::Notified | Busy::Injected => {}
            Busy::Protected(caller) => {
                let (info, registers) = reply.unwrap_or_default();
                if let Some(caller_state) = self.state.get_mut(caller) {
                    if let Run::Calling { callee, resume } = caller_state.run {
                        if callee == pd {
                            caller_state.run = Run::Busy(resume);
                            actions.push(Action::ReturnFromCall(caller, info, registers));
                        }
                    }
                }
            }
            Busy::Fault(child) => {
                // On seL4 a reply resumes the child at the faulting instruction. A host
                // process that crashed cannot resume, so the host restarts it instead; a
                // parent that replies nothing leaves the child blocked, as on seL4.
                if reply.is_some() {
                    actions.extend(self.start_again(child));
                }
            }
        }
        actions.extend(self.dispatch(pd));
        Ok(actions)
    }

    /// The process of `pd` crashed (signal, panic, abort, exit).
    pub fn fault(&mut self, pd: PdIndex, kind: FaultKind) -> Vec<Action> {
        let parent = self.config.get(pd).and_then(|config| config.parent);
        let Some(state) = self.state.get_mut(pd) else {
            return Vec::new();
        };
        if matches!(state.run, Run::Gone | Run::Faulted) {
            return Vec::new();
        }
        // A caller it was serving stays blocked, as on seL4 (the reply is never sent).
        match parent {
            Some((parent, _)) => {
                state.run = Run::Faulted;
                if let Some(parent_state) = self.state.get_mut(parent) {
                    parent_state
                        .endpoint
                        .push_back(EndpointMessage::Fault { child: pd, kind });
                }
                self.dispatch(parent)
            }
            None => {
                state.run = Run::Gone;
                vec![Action::Dead(pd, kind)]
            }
        }
    }

    /// The host platform injects fault `code` into `pd`: delivered as an entry of its own once
    /// the PD is idle (after pending notifications).
    ///
    /// # Errors
    /// [`Refusal::NotPermitted`] if the PD is stopped or faulted.
    pub fn inject(&mut self, pd: PdIndex, code: u8) -> Result<Vec<Action>, Refusal> {
        let state = self.state(pd)?;
        if matches!(state.run, Run::Gone | Run::Faulted) {
            return Err(Refusal::NotPermitted);
        }
        state.injected.push_back(code);
        Ok(self.dispatch(pd))
    }

    /// `microkit_pd_restart(child, entry)` from `parent`.
    ///
    /// # Errors
    /// [`Refusal::NotPermitted`] if `child` is not a child of `parent` or `parent` is not
    /// running.
    pub fn restart(&mut self, parent: PdIndex, child: u8) -> Result<Vec<Action>, Refusal> {
        let child = self.child_of(parent, child)?;
        Ok(self.start_again(child))
    }

    /// `microkit_pd_stop(child)` from `parent`.
    ///
    /// # Errors
    /// [`Refusal::NotPermitted`] if `child` is not a child of `parent` or `parent` is not
    /// running.
    pub fn stop(&mut self, parent: PdIndex, child: u8) -> Result<Vec<Action>, Refusal> {
        let child = self.child_of(parent, child)?;
        self.state(child)?.run = Run::Gone;
        // A stopped thread's pending send is cancelled, as seL4 cancels the IPC of a suspended
        // TCB: a fault or a call it had queued is not delivered after the stop (it would be
        // taken for the next incarnation's).
        for state in &mut self.state {
            state.endpoint.retain(|message| match message {
                EndpointMessage::Fault { child: from, .. }
                | EndpointMessage::Call { caller: from, .. } => *from != child,
            });
        }
        Ok(vec![Action::Stop(child)])
    }

    fn child_of(&self, parent: PdIndex, child: u8) -> Result<PdIndex, Refusal> {
        if !self.running(parent) {
            return Err(Refusal::NotPermitted);
        }
        self.config
            .iter()
            .position(|config| config.parent == Some((parent, child)))
            .ok_or(Refusal::NotPermitted)
    }

    /// Runs `init` again. Notifications pending and IRQs masked stay as they are: on seL4 a
    /// restart only sets the program counter.
    fn start_again(&mut self, pd: PdIndex) -> Vec<Action> {
        match self.state.get_mut(pd) {
            Some(state) => {
                state.run = Run::Busy(Busy::Init);
                state.injected.clear();
                vec![Action::Restart(pd), Action::Enter(pd, Entry::Init)]
            }
            None => Vec::new(),
        }
    }

    /// If `pd` is idle and something waits for it, enter it: notifications first, then the
    /// endpoint in arrival order.
    fn dispatch(&mut self, pd: PdIndex) -> Vec<Action> {
        let child_id = |kernel: &Self, child: PdIndex| {
            kernel
                .config
                .get(child)
                .and_then(|config| config.parent)
                .map_or(0, |(_, id)| id)
        };
        let Some(state) = self.state.get_mut(pd) else {
            return Vec::new();
        };
        if state.run != Run::Idle {
            return Vec::new();
        }
        if state.pending != 0 {
            let channels = core::mem::take(&mut state.pending);
            state.run = Run::Busy(Busy::Notified);
            return vec![Action::Enter(pd, Entry::Notified(channels))];
        }
        if let Some(code) = state.injected.pop_front() {
            state.run = Run::Busy(Busy::Injected);
            return vec![Action::Enter(pd, Entry::Inject(code))];
        }
        match state.endpoint.pop_front() {
            Some(EndpointMessage::Call {
                caller,
                channel,
                info,
                registers,
            }) => {
                state.run = Run::Busy(Busy::Protected(caller));
                vec![Action::Enter(
                    pd,
                    Entry::Protected {
                        channel,
                        info,
                        registers,
                    },
                )]
            }
            Some(EndpointMessage::Fault { child, kind }) => {
                state.run = Run::Busy(Busy::Fault(child));
                let info = MessageInfo {
                    label: kind as u64,
                    count: 0,
                };
                let child = child_id(self, child);
                vec![Action::Enter(pd, Entry::Fault { child, info })]
            }
            None => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: PdIndex = 0;
    const SERVER: PdIndex = 1;
    const CHILD: PdIndex = 2;

    /// client --(channel 0 ↔ 5, client may call)-- server; server owns IRQ channel 7; child is
    /// the server's child 3, with a channel 1 ↔ 2 to the server.
    fn system() -> Kernel {
        let none = [None; CHANNELS];
        let mut client = PdConfig {
            name: "client".into(),
            parent: None,
            channels: none,
            irqs: 0,
        };
        let mut server = PdConfig {
            name: "server".into(),
            parent: None,
            channels: none,
            irqs: 1 << 7,
        };
        let mut child = PdConfig {
            name: "child".into(),
            parent: Some((SERVER, 3)),
            channels: none,
            irqs: 0,
        };
        client.channels[0] = Some(ChannelEnd {
            peer: SERVER,
            peer_id: 5,
            may_notify: true,
            may_call: true,
        });
        server.channels[5] = Some(ChannelEnd {
            peer: CLIENT,
            peer_id: 0,
            may_notify: true,
            may_call: false,
        });
        server.channels[2] = Some(ChannelEnd {
            peer: CHILD,
            peer_id: 1,
            may_notify: true,
            may_call: false,
        });
        child.channels[1] = Some(ChannelEnd {
            peer: SERVER,
            peer_id: 2,
            may_notify: false,
            may_call: false,
        });
        let (mut kernel, actions) = Kernel::new(vec![client, server, child]);
        assert_eq!(actions.len(), 3);
        for pd in [CLIENT, SERVER, CHILD] {
            assert!(kernel.entry_returned(pd, None).unwrap().is_empty());
        }
        kernel
    }

    fn info(label: u64) -> MessageInfo {
        MessageInfo { label, count: 1 }
    }

    #[test]
    fn notifications_coalesce_while_the_receiver_is_busy() {
        let mut kernel = system();
        // The server is busy with an interrupt...
        kernel.raise_irq(SERVER, 7).unwrap();
        // ...while the client signals three times and the IRQ fires again.
        let mut entered = Vec::new();
        kernel.state[CLIENT].run = Run::Busy(Busy::Notified);
        for _ in 0..3 {
            entered.extend(kernel.notify(CLIENT, 0).unwrap());
        }
        assert!(entered.is_empty(), "busy PDs are not entered");
        // One delivery with the client's channel bit only: repeated signals were one.
        let actions = kernel.entry_returned(SERVER, None).unwrap();
        assert_eq!(
            actions,
            vec![Action::Enter(SERVER, Entry::Notified(1 << 5))]
        );
    }

    #[test]
    fn pending_notifications_are_served_before_queued_calls() {
        let mut kernel = system();
        // The server is busy; a call arrives, then an interrupt.
        kernel.state[SERVER].run = Run::Busy(Busy::Notified);
        kernel.state[CLIENT].run = Run::Busy(Busy::Notified);
        assert!(kernel
            .call(CLIENT, 0, info(9), vec![42])
            .unwrap()
            .is_empty());
        assert!(kernel.raise_irq(SERVER, 7).unwrap().is_empty());
        // The notification is delivered first, then the call.
        let first = kernel.entry_returned(SERVER, None).unwrap();
        assert_eq!(first, vec![Action::Enter(SERVER, Entry::Notified(1 << 7))]);
        let second = kernel.entry_returned(SERVER, None).unwrap();
        assert_eq!(
            second,
            vec![Action::Enter(
                SERVER,
                Entry::Protected {
                    channel: 5,
                    info: info(9),
                    registers: vec![42]
                }
            )]
        );
    }

    #[test]
    fn a_call_blocks_the_caller_until_protected_returns() {
        let mut kernel = system();
        kernel.state[CLIENT].run = Run::Busy(Busy::Notified);
        let actions = kernel.call(CLIENT, 0, info(1), vec![7]).unwrap();
        assert!(matches!(
            actions.as_slice(),
            [Action::Enter(SERVER, Entry::Protected { .. })]
        ));
        assert_eq!(
            kernel.notify(CLIENT, 0),
            Err(Refusal::NotPermitted),
            "blocked callers do nothing"
        );
        let actions = kernel
            .entry_returned(SERVER, Some((info(2), vec![8])))
            .unwrap();
        assert_eq!(
            actions,
            vec![Action::ReturnFromCall(CLIENT, info(2), vec![8])]
        );
        assert!(kernel.notify(CLIENT, 0).is_ok(), "the caller runs again");
    }

    #[test]
    fn a_lowered_line_is_not_delivered_after_the_acknowledgement() {
        let mut kernel = system();
        let first = kernel.raise_irq(SERVER, 7).unwrap();
        assert_eq!(first, vec![Action::Enter(SERVER, Entry::Notified(1 << 7))]);
        kernel.entry_returned(SERVER, None).unwrap();
        assert!(kernel.raise_irq(SERVER, 7).unwrap().is_empty(), "masked");
        kernel.lower_irq(SERVER, 7).unwrap();
        kernel.state[SERVER].run = Run::Busy(Busy::Notified);
        kernel.irq_ack(SERVER, 7).unwrap();
        let after = kernel.entry_returned(SERVER, None).unwrap();
        assert!(
            after.is_empty(),
            "the line went low before the acknowledgement: {after:?}"
        );
        assert_eq!(kernel.lower_irq(SERVER, 6), Err(Refusal::InvalidChannel(6)));
    }

    #[test]
    fn a_stopped_childs_queued_fault_is_not_delivered() {
        let mut kernel = system();
        kernel.state[SERVER].run = Run::Busy(Busy::Notified);
        assert!(
            kernel.fault(CHILD, FaultKind::UserException).is_empty(),
            "queued"
        );
        assert_eq!(kernel.state[SERVER].endpoint.len(), 1);
        assert_eq!(kernel.stop(SERVER, 3).unwrap(), vec![Action::Stop(CHILD)]);
        assert!(kernel.state[SERVER].endpoint.is_empty());
        let after = kernel.entry_returned(SERVER, None).unwrap();
        assert!(
            !after
                .iter()
                .any(|action| matches!(action, Action::Enter(SERVER, Entry::Fault { .. }))),
            "{after:?}"
        );
    }

    #[test]
    fn irqs_stay_masked_until_acknowledged() {
        let mut kernel = system();
        let first = kernel.raise_irq(SERVER, 7).unwrap();
        assert_eq!(first, vec![Action::Enter(SERVER, Entry::Notified(1 << 7))]);
        kernel.entry_returned(SERVER, None).unwrap();
        assert!(kernel.raise_irq(SERVER, 7).unwrap().is_empty(), "masked");
        kernel.state[SERVER].run = Run::Busy(Busy::Notified);
        kernel.irq_ack(SERVER, 7).unwrap();
        let again = kernel.entry_returned(SERVER, None).unwrap();
        assert_eq!(again, vec![Action::Enter(SERVER, Entry::Notified(1 << 7))]);
    }

    #[test]
    fn refused_like_libmicrokit() {
        let mut kernel = system();
        kernel.state[CHILD].run = Run::Busy(Busy::Notified);
        assert_eq!(
            kernel.notify(CHILD, 1),
            Err(Refusal::InvalidChannel(1)),
            "notify=false end"
        );
        assert_eq!(
            kernel.notify(CHILD, 9),
            Err(Refusal::InvalidChannel(9)),
            "no such channel"
        );
        assert_eq!(
            kernel.call(CHILD, 1, info(0), vec![]),
            Err(Refusal::InvalidChannel(1)),
            "not pp"
        );
        kernel.state[SERVER].run = Run::Busy(Busy::Notified);
        assert_eq!(
            kernel.call(SERVER, 5, info(0), vec![]),
            Err(Refusal::InvalidChannel(5)),
            "pp on the other end"
        );
        assert_eq!(
            kernel.irq_ack(SERVER, 6),
            Err(Refusal::InvalidChannel(6)),
            "not an IRQ of this PD"
        );
        assert_eq!(
            kernel.restart(CLIENT, 3),
            Err(Refusal::NotPermitted),
            "not the parent"
        );
    }

    #[test]
    fn a_child_fault_reaches_its_parent_and_the_child_waits_for_a_restart() {
        let mut kernel = system();
        let actions = kernel.fault(CHILD, FaultKind::VmFault);
        assert_eq!(
            actions,
            vec![Action::Enter(
                SERVER,
                Entry::Fault {
                    child: 3,
                    info: MessageInfo { label: 6, count: 0 }
                }
            )]
        );
        // The child is blocked: its notifications wait.
        kernel.notify(SERVER, 2).unwrap();
        let restart = kernel.restart(SERVER, 3).unwrap();
        assert_eq!(
            restart,
            vec![Action::Restart(CHILD), Action::Enter(CHILD, Entry::Init)]
        );
        kernel.entry_returned(SERVER, None).unwrap();
        // After init, the notification that arrived meanwhile is delivered.
        let after_init = kernel.entry_returned(CHILD, None).unwrap();
        assert_eq!(
            after_init,
            vec![Action::Enter(CHILD, Entry::Notified(1 << 1))]
        );
    }

    #[test]
    fn a_fault_without_a_parent_is_final_and_leaves_callers_blocked() {
        let mut kernel = system();
        kernel.state[CLIENT].run = Run::Busy(Busy::Notified);
        kernel.call(CLIENT, 0, info(1), vec![]).unwrap();
        assert_eq!(
            kernel.fault(SERVER, FaultKind::UserException),
            vec![Action::Dead(SERVER, FaultKind::UserException)]
        );
        assert_eq!(
            kernel.entry_returned(SERVER, None),
            Err(Refusal::NotPermitted)
        );
        assert!(matches!(
            kernel.state[CLIENT].run,
            Run::Calling { callee: SERVER, .. }
        ));
        // The rest of the system goes on.
        assert!(kernel.fault(SERVER, FaultKind::UserException).is_empty());
    }
}
