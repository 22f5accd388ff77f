//! Names of the manager's objects as they cross PD boundaries: (index, generation) handles.
//!
//! A slot in one of the manager's tables is reused after its object is deleted; its generation
//! goes up when that happens. A handle that names an older generation is *stale*: the manager
//! answers it with a `Stale…` error and never with the newer object that now lives in the slot
//! (the same idea as Hubris task generations and Stern's version counters).

macro_rules! generational_handle {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name {
            index: u32,
            generation: u32,
        }

        impl $name {
            /// The handle of slot `index` at `generation`. Whether it names a live object is
            /// decided by the manager when the handle is used.
            #[must_use]
            pub const fn from_parts(index: u32, generation: u32) -> Self {
                Self { index, generation }
            }

            /// Slot index in the manager's table.
            #[must_use]
            pub const fn index(self) -> u32 {
                self.index
            }

            /// Generation of the slot when the handle was issued.
            #[must_use]
            pub const fn generation(self) -> u32 {
                self.generation
            }
        }

        impl core::fmt::Display for $name {
            /// `index:generation`, as the shell and the logs write handles.
            fn fmt(&self, formatter: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(formatter, "{}:{}", self.index, self.generation)
            }
        }
    };
}

generational_handle!(
    /// A device in the manager's device tree.
    DeviceId
);
generational_handle!(
    /// A registered driver (one driver lives in one driver PD).
    DriverId
);
generational_handle!(
    /// A bus: the devices and drivers that are matched against each other.
    BusId
);

/// A protection domain, as numbered by the system description (the manager's child id for
/// driver PDs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PdId(pub u32);

/// The id a request gets when it enters the manager's queue; its completion carries it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u32);

/// Names one driver callback in flight. The reply must quote it; a reply that quotes a callback
/// that is no longer in flight (late, duplicated or forged) is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallbackId {
    operation: u32,
    sequence: u64,
}

impl CallbackId {
    /// The callback id of `operation`'s callback number `sequence`.
    #[must_use]
    pub const fn from_parts(operation: u32, sequence: u64) -> Self {
        Self {
            operation,
            sequence,
        }
    }

    /// The manager operation that issued the callback.
    #[must_use]
    pub const fn operation(self) -> u32 {
        self.operation
    }

    /// Globally unique sequence number of the callback.
    #[must_use]
    pub const fn sequence(self) -> u64 {
        self.sequence
    }
}
