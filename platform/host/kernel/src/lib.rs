//! The host platform's model of the Microkit kernel's slow path, as a sans-IO state machine:
//! interrupts, faults, restarts, stops and fault injection. The launcher feeds it what the PD
//! processes do and carries out what it answers (signal an interrupt, deliver a fault to a
//! parent, start, restart or stop a process).
//!
//! Notifications and protected procedure calls are not here: they go from PD to PD over channel
//! handles (eventfds and call slots) the launcher creates from [`PdConfig::channels`], and each
//! PD's runtime applies the delivery rules (one entry point at a time, coalescing, notifications
//! before calls; see `warden-microkit`'s host backend). What stays with the kernel
//! (see `shared/MICROKIT-NOTES.md`):
//! * an interrupt is a notification on its channel and stays masked until the PD acknowledges
//!   it; one raised while masked is signalled after the acknowledgement;
//! * a fault stops the PD; its parent's `fault` entry receives it (the PD stays stopped until
//!   the parent restarts or stops it), or, with no parent, the PD is dead for good;
//! * only a parent restarts or stops its children; a stopped or restarted PD's call not yet
//!   taken by its callee is cancelled, and a stopped PD's fault not yet delivered is withdrawn
//!   (seL4 cancels the IPC of a thread it suspends or restarts);
//! * a restart keeps what seL4 keeps: interrupts masked stay masked, and the kernel signals them
//!   again to the new start (on seL4 a restart only sets the program counter: the notification
//!   word is kept), and faults not yet answered are delivered again to a restarted parent.

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

/// What the launcher must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Signal the interrupt of this IRQ channel to the PD.
    Signal(PdIndex, u8),
    /// Deliver a child's fault to its parent: (parent, the child's id, the kind).
    Fault(PdIndex, u8, FaultKind),
    /// Deliver an injected fault (its code) to the PD.
    Inject(PdIndex, u8),
    /// A caller (the second PD) was stopped or restarted: tell the callee (the first) to cancel
    /// the call on its channel `u8` if it has not taken it yet. It comes before the `Stop` or
    /// `Restart`, so the caller's start it names is the one that ends.
    CancelCall(PdIndex, u8, PdIndex),
    /// A child was stopped: tell its parent (this PD) to withdraw the child's (id `u8`) fault if
    /// it has not run `fault` for it yet.
    WithdrawFault(PdIndex, u8),
    /// Start the PD's process again from the beginning.
    Restart(PdIndex),
    /// Stop the PD's process for good.
    Stop(PdIndex),
    /// A fault nobody handles: log it; the PD is dead.
    Dead(PdIndex, FaultKind),
}

/// Why the model refused something a PD asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No IRQ with this id at this PD.
    InvalidChannel(u8),
    /// The PD may not do that (e.g. restart a PD that is not its child, answer a fault that is
    /// not waiting).
    NotPermitted,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Run {
    Running,
    /// Faulted; waiting for its parent to restart or stop it. `answered`: the parent's `fault`
    /// returned without a reply (the child stays stopped; the fault is not delivered again).
    Faulted {
        kind: FaultKind,
        answered: bool,
    },
    /// Stopped or dead.
    Gone,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct PdState {
    run: Run,
    /// IRQ channels signalled and not yet acknowledged.
    masked: u64,
    /// IRQs raised while masked: signalled after the acknowledgement.
    raised_while_masked: u64,
}

/// The model of the whole system.
#[derive(Clone, Debug)]
pub struct Kernel {
    config: Vec<PdConfig>,
    state: Vec<PdState>,
}

impl Kernel {
    /// A system whose PDs are all starting.
    #[must_use]
    pub fn new(config: Vec<PdConfig>) -> Self {
        let state = config
            .iter()
            .map(|_| PdState {
                run: Run::Running,
                masked: 0,
                raised_while_masked: 0,
            })
            .collect();
        Self { config, state }
    }

    fn state(&mut self, pd: PdIndex) -> Result<&mut PdState, Refusal> {
        self.state.get_mut(pd).ok_or(Refusal::NotPermitted)
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
        Ok(vec![Action::Signal(pd, channel)])
    }

    /// A device model lowered the (level-triggered) interrupt line of `pd`'s IRQ channel
    /// `channel` before it was signalled: as at a GIC, an interrupt that is no longer asserted
    /// is not signalled after the acknowledgement. One signalled already stays signalled (and
    /// masked until acknowledged).
    ///
    /// # Errors
    /// [`Refusal::InvalidChannel`] if `pd` has no IRQ with that id.
    pub fn lower_irq(&mut self, pd: PdIndex, channel: u8) -> Result<(), Refusal> {
        let bit = self.irq_bit(pd, channel)?;
        self.state(pd)?.raised_while_masked &= !bit;
        Ok(())
    }

    /// `microkit_irq_ack(channel)` from `pd`: unmask; an interrupt raised meanwhile is signalled.
    ///
    /// # Errors
    /// [`Refusal::InvalidChannel`] if `pd` has no IRQ with that id.
    pub fn irq_ack(&mut self, pd: PdIndex, channel: u8) -> Result<Vec<Action>, Refusal> {
        let bit = self.irq_bit(pd, channel)?;
        let state = self.state(pd)?;
        state.masked &= !bit;
        if state.raised_while_masked & bit != 0 {
            state.raised_while_masked &= !bit;
            state.masked |= bit;
            return Ok(vec![Action::Signal(pd, channel)]);
        }
        Ok(Vec::new())
    }

    /// The process of `pd` crashed (signal, panic, abort, exit) or was stopped as a fault.
    pub fn fault(&mut self, pd: PdIndex, kind: FaultKind) -> Vec<Action> {
        let parent = self.config.get(pd).and_then(|config| config.parent);
        let Some(state) = self.state.get_mut(pd) else {
            return Vec::new();
        };
        if state.run != Run::Running {
            return Vec::new();
        }
        match parent {
            Some((parent, id)) => {
                state.run = Run::Faulted {
                    kind,
                    answered: false,
                };
                vec![Action::Fault(parent, id, kind)]
            }
            None => {
                state.run = Run::Gone;
                vec![Action::Dead(pd, kind)]
            }
        }
    }

    /// `fault` returned in `parent` for its child `child`; `resume` if it returned a reply (on
    /// seL4 the reply resumes the child at the faulting instruction; a host process that crashed
    /// cannot resume, so the host starts it again). Without a reply the child stays stopped.
    ///
    /// # Errors
    /// [`Refusal::NotPermitted`] if `child` is not a faulted child of `parent`.
    pub fn fault_done(
        &mut self,
        parent: PdIndex,
        child: u8,
        resume: bool,
    ) -> Result<Vec<Action>, Refusal> {
        let child = self.child_of(parent, child)?;
        let Some(state) = self.state.get_mut(child) else {
            return Ok(Vec::new());
        };
        let Run::Faulted { kind, .. } = state.run else {
            // Restarted or stopped by the handler already: nothing to resume.
            return Ok(Vec::new());
        };
        if resume {
            return Ok(self.start_again(child));
        }
        state.run = Run::Faulted {
            kind,
            answered: true,
        };
        Ok(Vec::new())
    }

    /// The host platform injects fault `code` into `pd`.
    ///
    /// # Errors
    /// [`Refusal::NotPermitted`] if the PD is stopped or faulted.
    pub fn inject(&mut self, pd: PdIndex, code: u8) -> Result<Vec<Action>, Refusal> {
        if self.state(pd)?.run != Run::Running {
            return Err(Refusal::NotPermitted);
        }
        Ok(vec![Action::Inject(pd, code)])
    }

    /// `microkit_pd_restart(child, entry)` from `parent`.
    ///
    /// # Errors
    /// [`Refusal::NotPermitted`] if `child` is not a child of `parent`.
    pub fn restart(&mut self, parent: PdIndex, child: u8) -> Result<Vec<Action>, Refusal> {
        let child = self.child_of(parent, child)?;
        Ok(self.start_again(child))
    }

    /// The PD that is `parent`'s child `child`, if any.
    #[must_use]
    pub fn child(&self, parent: PdIndex, child: u8) -> Option<PdIndex> {
        self.config
            .iter()
            .position(|config| config.parent == Some((parent, child)))
    }

    /// `microkit_pd_stop(child)` from `parent`.
    ///
    /// # Errors
    /// [`Refusal::NotPermitted`] if `child` is not a child of `parent`.
    pub fn stop(&mut self, parent: PdIndex, child: u8) -> Result<Vec<Action>, Refusal> {
        let id = child;
        let child = self.child_of(parent, id)?;
        self.state(child)?.run = Run::Gone;
        let mut actions = self.cancel_calls(child);
        actions.extend([Action::Stop(child), Action::WithdrawFault(parent, id)]);
        Ok(actions)
    }

    /// `pd`'s process (a new start of it) is connected: what it must be told again. Interrupts
    /// signalled to an earlier start and not acknowledged are signalled again (on seL4 they stay
    /// pending on the PD's notification across a restart), and the faults of its children that
    /// wait for an answer are delivered again (an earlier start may have died before answering).
    #[must_use]
    pub fn connected(&self, pd: PdIndex) -> Vec<Action> {
        let mut actions = Vec::new();
        let Some(state) = self.state.get(pd) else {
            return actions;
        };
        for channel in 0..CHANNELS as u8 {
            if state.masked & (1 << channel) != 0 {
                actions.push(Action::Signal(pd, channel));
            }
        }
        for (child, config) in self.config.iter().enumerate() {
            if let (
                Some((parent, id)),
                Some(Run::Faulted {
                    kind,
                    answered: false,
                }),
            ) = (config.parent, self.state.get(child).map(|state| state.run))
            {
                if parent == pd {
                    actions.push(Action::Fault(pd, id, kind));
                }
            }
        }
        actions
    }

    fn child_of(&self, parent: PdIndex, child: u8) -> Result<PdIndex, Refusal> {
        let parent_runs = self
            .state
            .get(parent)
            .is_some_and(|state| state.run == Run::Running);
        if !parent_runs {
            return Err(Refusal::NotPermitted);
        }
        self.config
            .iter()
            .position(|config| config.parent == Some((parent, child)))
            .ok_or(Refusal::NotPermitted)
    }

    /// Runs the PD from the start again. Interrupts masked stay as they are: on seL4 a restart
    /// only sets the program counter.
    fn start_again(&mut self, pd: PdIndex) -> Vec<Action> {
        match self.state.get_mut(pd) {
            Some(state) => {
                state.run = Run::Running;
                let mut actions = self.cancel_calls(pd);
                actions.push(Action::Restart(pd));
                actions
            }
            None => Vec::new(),
        }
    }

    /// The calls `pd` may have waiting at its callees: one per end that may call.
    fn cancel_calls(&self, pd: PdIndex) -> Vec<Action> {
        self.config
            .get(pd)
            .into_iter()
            .flat_map(|config| config.channels.iter().flatten())
            .filter(|end| end.may_call)
            .map(|end| Action::CancelCall(end.peer, end.peer_id, pd))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: PdIndex = 0;
    const SERVER: PdIndex = 1;
    const CHILD: PdIndex = 2;

    /// client, server (owns IRQ channel 7), and child (the server's child 3).
    fn system() -> Kernel {
        let none = [None; CHANNELS];
        let config = |name: &str, parent, irqs| PdConfig {
            name: name.into(),
            parent,
            channels: none,
            irqs,
        };
        Kernel::new(vec![
            config("client", None, 0),
            config("server", None, 1 << 7),
            config("child", Some((SERVER, 3)), 0),
        ])
    }

    #[test]
    fn irqs_stay_masked_until_acknowledged() {
        let mut kernel = system();
        assert_eq!(
            kernel.raise_irq(SERVER, 7).unwrap(),
            vec![Action::Signal(SERVER, 7)]
        );
        assert!(kernel.raise_irq(SERVER, 7).unwrap().is_empty(), "masked");
        assert!(kernel.raise_irq(SERVER, 7).unwrap().is_empty(), "masked");
        assert_eq!(
            kernel.irq_ack(SERVER, 7).unwrap(),
            vec![Action::Signal(SERVER, 7)],
            "raised while masked: signalled once after the acknowledgement"
        );
        assert!(kernel.irq_ack(SERVER, 7).unwrap().is_empty());
        assert_eq!(
            kernel.raise_irq(SERVER, 7).unwrap(),
            vec![Action::Signal(SERVER, 7)]
        );
    }

    #[test]
    fn a_lowered_line_is_not_signalled_after_the_acknowledgement() {
        let mut kernel = system();
        kernel.raise_irq(SERVER, 7).unwrap();
        assert!(kernel.raise_irq(SERVER, 7).unwrap().is_empty(), "masked");
        kernel.lower_irq(SERVER, 7).unwrap();
        assert!(kernel.irq_ack(SERVER, 7).unwrap().is_empty());
        assert_eq!(kernel.lower_irq(SERVER, 6), Err(Refusal::InvalidChannel(6)));
    }

    #[test]
    fn refused_like_sel4() {
        let mut kernel = system();
        assert_eq!(
            kernel.irq_ack(SERVER, 6),
            Err(Refusal::InvalidChannel(6)),
            "not an IRQ of this PD"
        );
        assert_eq!(
            kernel.raise_irq(CLIENT, 7),
            Err(Refusal::InvalidChannel(7)),
            "another PD's IRQ"
        );
        assert_eq!(
            kernel.irq_ack(SERVER, 200),
            Err(Refusal::InvalidChannel(200))
        );
        assert_eq!(
            kernel.restart(CLIENT, 3),
            Err(Refusal::NotPermitted),
            "not the parent"
        );
        assert_eq!(kernel.stop(CLIENT, 3), Err(Refusal::NotPermitted));
        assert_eq!(
            kernel.fault_done(CLIENT, 3, true),
            Err(Refusal::NotPermitted)
        );
        assert_eq!(
            kernel.restart(SERVER, 9),
            Err(Refusal::NotPermitted),
            "no child 9"
        );
        assert_eq!(kernel.inject(99, 1), Err(Refusal::NotPermitted));
    }

    #[test]
    fn a_childs_fault_reaches_its_parent_and_the_child_waits_for_its_answer() {
        let mut kernel = system();
        assert_eq!(
            kernel.fault(CHILD, FaultKind::VmFault),
            vec![Action::Fault(SERVER, 3, FaultKind::VmFault)]
        );
        assert!(kernel.fault(CHILD, FaultKind::VmFault).is_empty(), "once");
        assert_eq!(kernel.inject(CHILD, 1), Err(Refusal::NotPermitted));
        // A restarted parent is told again.
        assert_eq!(
            kernel.connected(SERVER),
            vec![Action::Fault(SERVER, 3, FaultKind::VmFault)]
        );
        assert_eq!(
            kernel.fault_done(SERVER, 3, true).unwrap(),
            vec![Action::Restart(CHILD)]
        );
        assert!(kernel.connected(SERVER).is_empty(), "resumed");
        assert!(
            kernel.fault_done(SERVER, 3, true).unwrap().is_empty(),
            "not faulted now"
        );
    }

    #[test]
    fn a_fault_answered_without_a_reply_leaves_the_child_stopped() {
        let mut kernel = system();
        kernel.fault(CHILD, FaultKind::UserException);
        assert!(kernel.fault_done(SERVER, 3, false).unwrap().is_empty());
        assert!(
            kernel.connected(SERVER).is_empty(),
            "answered: a restarted parent is not told again"
        );
        assert_eq!(
            kernel.inject(CHILD, 1),
            Err(Refusal::NotPermitted),
            "still stopped"
        );
        assert_eq!(
            kernel.restart(SERVER, 3).unwrap(),
            vec![Action::Restart(CHILD)]
        );
        assert_eq!(
            kernel.inject(CHILD, 1).unwrap(),
            vec![Action::Inject(CHILD, 1)]
        );
        assert_eq!(
            kernel.stop(SERVER, 3).unwrap(),
            vec![Action::Stop(CHILD), Action::WithdrawFault(SERVER, 3)]
        );
        assert!(
            kernel.fault(CHILD, FaultKind::Cap).is_empty(),
            "stopped PDs do not fault"
        );
    }

    #[test]
    fn a_stopped_or_restarted_callers_calls_are_cancelled() {
        let mut config = system().config;
        config[CHILD].channels[2] = Some(ChannelEnd {
            peer: CLIENT,
            peer_id: 7,
            may_notify: true,
            may_call: true,
        });
        let mut kernel = Kernel::new(config);
        kernel.fault(CHILD, FaultKind::Cap);
        assert_eq!(
            kernel.restart(SERVER, 3).unwrap(),
            vec![Action::CancelCall(CLIENT, 7, CHILD), Action::Restart(CHILD)]
        );
        assert_eq!(
            kernel.stop(SERVER, 3).unwrap(),
            vec![
                Action::CancelCall(CLIENT, 7, CHILD),
                Action::Stop(CHILD),
                Action::WithdrawFault(SERVER, 3)
            ]
        );
    }

    #[test]
    fn a_fault_without_a_parent_is_final() {
        let mut kernel = system();
        assert_eq!(
            kernel.fault(SERVER, FaultKind::UserException),
            vec![Action::Dead(SERVER, FaultKind::UserException)]
        );
        assert!(kernel.fault(SERVER, FaultKind::UserException).is_empty());
        assert_eq!(
            kernel.restart(SERVER, 3),
            Err(Refusal::NotPermitted),
            "a dead parent"
        );
    }

    #[test]
    fn a_restart_keeps_interrupts_masked_and_signals_them_again() {
        let mut kernel = system();
        let child_irq = {
            let mut config = kernel.config.clone();
            config[CHILD].irqs = 1 << 2;
            Kernel::new(config)
        };
        kernel = child_irq;
        assert_eq!(
            kernel.raise_irq(CHILD, 2).unwrap(),
            vec![Action::Signal(CHILD, 2)]
        );
        kernel.fault(CHILD, FaultKind::UserException);
        kernel.restart(SERVER, 3).unwrap();
        assert_eq!(kernel.connected(CHILD), vec![Action::Signal(CHILD, 2)]);
        assert!(
            kernel.raise_irq(CHILD, 2).unwrap().is_empty(),
            "still masked"
        );
    }
}
