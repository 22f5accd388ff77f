//! Who asks the manager for something.

use warden_vocabulary::PdId;

/// Who sent an outside request; completions are addressed to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Requester {
    /// The manager PD itself: the board's devices at start-up, devices it finds on its own.
    Manager,
    /// A client or administrator PD: trusted to manage devices.
    Client(u32),
    /// A driver PD: may only act on devices bound to its drivers and on their children.
    Driver(PdId),
}
