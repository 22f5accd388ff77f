//! The client side: the manager's half of `warden_services::admin`, for a PD that calls on one
//! of the client channels ([`crate::interface::CLIENTS`]). Queries are answered from the core's
//! state; `Bind`, `Unbind` and `Rescan` enter the core's queue as the client's requests, and the
//! reply says whether they were accepted (their outcome is logged when they complete, and shows
//! in the tree).

use log::{info, warn};

use warden_manager_core::{Request, Requester};
use warden_microkit::Channel;
use warden_protocol::{DecodeError, Message, Status};
use warden_services::admin::{self, Device, Driver, Refusal};
use warden_vocabulary::{DeviceId, DriverId};

use crate::{status_of, DeviceManager};

impl DeviceManager {
    /// A call from the administrative client on `channel`.
    pub(crate) fn client_call(
        &mut self,
        channel: Channel,
        call: Result<Message, DecodeError>,
    ) -> Message {
        admin::serve(
            &mut AdminServer {
                manager: self,
                channel,
            },
            call,
        )
    }

    /// A device as a client sees it.
    fn describe(&self, device: DeviceId) -> Result<Device, Status> {
        let info = self.core.device(device).map_err(status_of)?;
        Ok(Device {
            id: device,
            parent: info.parent,
            driver: info.driver,
            state: info.state,
            match_data: info.match_data.clone(),
            resources: info.resources.clone(),
        })
    }
}

/// The manager serving one client's call.
struct AdminServer<'a> {
    manager: &'a mut DeviceManager,
    channel: Channel,
}

impl AdminServer<'_> {
    fn request(&mut self, request: Request) -> Result<(), Status> {
        let requester = Requester::Client(u32::from(self.channel.index()));
        match self.manager.request(requester, request) {
            Message::Completion {
                status: Status::Ok, ..
            } => Ok(()),
            Message::Completion { status, .. } => Err(status),
            _ => Err(Status::Failed),
        }
    }
}

impl admin::Server for AdminServer<'_> {
    fn next_device(&mut self, cursor: u64) -> Option<Device> {
        let next = self
            .manager
            .core
            .devices()
            .find(|device| u64::from(device.index()) >= cursor)?;
        self.manager.describe(next).ok()
    }

    fn device(&mut self, device: DeviceId) -> Result<Device, Status> {
        self.manager.describe(device)
    }

    fn driver(&mut self, driver: DriverId) -> Result<Driver, Status> {
        let info = self.manager.core.driver(driver).map_err(status_of)?;
        Ok(Driver {
            id: driver,
            pd: info.pd,
            bound: info.bound_devices,
            name: info.name.try_into().unwrap_or_default(),
        })
    }

    fn bind(&mut self, device: DeviceId, driver: DriverId) -> Result<(), Status> {
        info!(
            "manager: client on channel {} asks to bind device {device} ({}) to driver {driver}",
            self.channel.index(),
            crate::report::compatible(&self.manager.core, device)
        );
        self.request(Request::Bind { device, driver })
    }

    fn unbind(&mut self, device: DeviceId) -> Result<(), Status> {
        info!(
            "manager: client on channel {} asks to unbind device {device} ({})",
            self.channel.index(),
            crate::report::compatible(&self.manager.core, device)
        );
        self.request(Request::Unbind(device))
    }

    fn rescan(&mut self) -> Result<(), Status> {
        info!(
            "manager: client on channel {} asks for a rescan",
            self.channel.index()
        );
        self.request(Request::Rescan)
    }

    fn refused(&mut self, why: Refusal<'_>) {
        match why {
            Refusal::NotOffered(call) => warn!(
                "manager: call not offered to clients, from channel {}: {call:?}",
                self.channel.index()
            ),
            Refusal::Malformed(error) => warn!(
                "manager: malformed call from the client on channel {}: {error:?}",
                self.channel.index()
            ),
        }
    }
}
