//! The manager's tables' entries: buses, devices, drivers and operations, and the intrusive links
//! that put them on lists.

use super::*;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Bus {
    pub(crate) name: Name,
    pub(crate) devices: List,
    pub(crate) drivers: List,
    pub(crate) devices_version: u64,
    pub(crate) drivers_version: u64,
    pub(crate) next_sequence: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Queue {
    None,
    PendingProbe,
    Deferred,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Device {
    pub(crate) bus: u32,
    pub(crate) parent: Link,
    pub(crate) children: List,
    pub(crate) sibling: Links,
    pub(crate) bus_links: Links,
    /// Position on the bus's device list (increasing in list order).
    pub(crate) sequence: u64,
    pub(crate) driver: Link,
    pub(crate) driver_links: Links,
    pub(crate) state: DeviceState,
    /// Its match data and resources, in the store.
    pub(crate) data: DeviceData,
    pub(crate) lock_owner: Link,
    pub(crate) lock_waiters: List,
    pub(crate) added_by_binding: bool,
    /// The PD whose driver added this device from a probe (`__device_add`).
    pub(crate) added_by: MaybePd,
    /// Cleared by a manual unbind: the device is then not probed automatically.
    pub(crate) autoprobe: bool,
    pub(crate) queue: Queue,
    pub(crate) queue_links: Links,
    /// The PD whose driver this device lost when that PD died (cleared when it is bound again):
    /// what a query shows while the PD restarts or is quarantined.
    pub(crate) last_pd: MaybePd,
}

/// An optional PD in four bytes, as a [`Link`] holds an optional index (Microkit's PD ids are
/// 0–62, the host platform's the same: none is `u32::MAX`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct MaybePd(Link);

impl MaybePd {
    pub(crate) const NONE: Self = Self(Link::NONE);

    pub(crate) fn get(self) -> Option<PdId> {
        self.0.map(PdId)
    }
}

impl From<Option<PdId>> for MaybePd {
    fn from(pd: Option<PdId>) -> Self {
        Self(pd.map(|pd| pd.0).into())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Driver {
    pub(crate) bus: u32,
    pub(crate) pd: PdId,
    pub(crate) name: Name,
    /// Its match table, in the store's claims.
    pub(crate) table: Run,
    pub(crate) bus_links: Links,
    /// Position on the bus's driver list (increasing in list order).
    pub(crate) sequence: u64,
    pub(crate) devices: List,
    pub(crate) state: DriverState,
    pub(crate) in_flight: u32,
    pub(crate) idle_waiters: List,
    pub(crate) has_unregister_operation: bool,
    pub(crate) cleanup_queued: bool,
    pub(crate) cleanup_links: Links,
    /// How long its callbacks may take.
    pub(crate) deadline: core::time::Duration,
    /// Registered, and its walk over the bus's devices not started yet (it starts when an
    /// operation slot is free).
    pub(crate) attach_queued: bool,
    pub(crate) attach_links: Links,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Wait {
    Running,
    Ready,
    Lock(u32),
    CallbackSlot,
    Callback,
    DriverIdle(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct InFlight {
    pub(crate) sequence: u64,
    pub(crate) pd: PdId,
    pub(crate) kind: CallbackKind,
    pub(crate) device: u32,
    pub(crate) driver: u32,
    /// When it was sent.
    pub(crate) issued: Instant,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Reply {
    Status(Answer),
    Died,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Operation {
    pub(crate) request: Option<(RequestId, Requester)>,
    pub(crate) task: Task,
    pub(crate) links: Links,
    pub(crate) wait: Wait,
    pub(crate) in_flight: Option<InFlight>,
    /// A reply not yet acted on, with the driver that sent it.
    pub(crate) reply: Option<(Reply, u32)>,
    pub(crate) owned_locks: u32,
    pub(crate) slot_granted: bool,
}

macro_rules! link_field {
    ($marker:ident, $element:ty, $field:ident) => {
        #[derive(Clone, Copy)]
        pub(crate) struct $marker;
        impl LinkField<$element> for $marker {
            fn links(element: &$element) -> &Links {
                &element.$field
            }
            fn links_mut(element: &mut $element) -> &mut Links {
                &mut element.$field
            }
        }
    };
}

link_field!(SiblingLinks, Device, sibling);

link_field!(BusDeviceLinks, Device, bus_links);

link_field!(DriverDeviceLinks, Device, driver_links);

link_field!(QueueLinks, Device, queue_links);

link_field!(BusDriverLinks, Driver, bus_links);

link_field!(CleanupLinks, Driver, cleanup_links);

link_field!(AttachLinks, Driver, attach_links);

link_field!(OperationLinks, Operation, links);
