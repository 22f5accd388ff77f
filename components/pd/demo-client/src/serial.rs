//! The serial demo client: a client of the console in sDDF's serial protocol
//! (`warden_services::sddf_serial`), written as an sDDF component composed with Warden's UART
//! driver by the system description alone would be (`systems/qemu_virt_sddf_serial.toml`).
//!
//! It greets on the console, then echoes what is typed and answers each line:
//! `serial-client: got 'LINE' (N characters, through sDDF's serial protocol)`. Its channel 1 is
//! the console driver; what the driver queues is untrusted like any peer's input.

use heapless::String;
use log::{info, warn};
use warden_microkit::{ChannelSet, Handler};
use warden_services::sddf_serial;

/// What this PD expects of the system description.
pub mod interface {
    pub use warden_interface::serial_client::SERIAL;
    use warden_interface::serial_client::{
        SERIAL_RX_DATA, SERIAL_RX_QUEUE, SERIAL_TX_DATA, SERIAL_TX_QUEUE,
    };

    /// sDDF's serial maps (`warden_services::sddf_serial::SYMBOLS`).
    pub const SDDF_REGIONS: [(&str, &str); 4] = [
        SERIAL_RX_QUEUE,
        SERIAL_RX_DATA,
        SERIAL_TX_QUEUE,
        SERIAL_TX_DATA,
    ];
}

/// The longest line it answers (longer ones are answered by their length alone).
pub const LINE_BYTES: usize = 80;

/// The serial demo client's state.
pub struct SerialClient {
    serial: Option<sddf_serial::Client>,
    line: String<LINE_BYTES>,
    /// Characters of the current line, kept or not.
    length: usize,
}

impl SerialClient {
    /// Writes `text`, as much as the queue takes.
    fn write(serial: &mut sddf_serial::Client, text: &[u8]) {
        let moved = serial.write(text);
        if moved.refused > 0 || moved.corrupt {
            warn!(
                "serial-client: the transmit queue took {} of {} characters",
                moved.characters,
                text.len()
            );
        }
    }

    /// Takes what was received: echoes it, answers each finished line.
    fn read(&mut self) {
        // In batches of what fits here; what does not stays queued for the next batch (a queue's
        // worth at most, so a driver refilling it cannot keep this PD here).
        for _ in 0..sddf_serial::MAX_CAPACITY / 256 {
            let Some(serial) = self.serial.as_mut() else {
                return;
            };
            let mut received = [0u8; 256];
            let mut count = 0;
            let moved = serial.read(&mut |bytes| {
                let room = received.get_mut(count..).unwrap_or_default();
                let took = room.len().min(bytes.len());
                for (to, from) in room.iter_mut().zip(bytes) {
                    *to = *from;
                }
                count += took;
                took
            });
            if moved.corrupt {
                warn!("serial-client: the receive queue is corrupt (its tail is impossible)");
            }
            self.answer(received.get(..count).unwrap_or_default());
            if moved.refused == 0 {
                break;
            }
        }
    }

    /// Echoes `received` and answers each line it finishes.
    fn answer(&mut self, received: &[u8]) {
        let Some(serial) = self.serial.as_mut() else {
            return;
        };
        for byte in received {
            match byte {
                b'\r' | b'\n' => {
                    Self::write(serial, b"\r\n");
                    let mut answer: String<160> = String::new();
                    let _ = core::fmt::Write::write_fmt(
                        &mut answer,
                        format_args!(
                            "serial-client: got '{}' ({} characters, through sDDF's serial protocol)\r\n",
                            if self.length > LINE_BYTES { "(too long)" } else { self.line.as_str() },
                            self.length
                        ),
                    );
                    Self::write(serial, answer.as_bytes());
                    self.line.clear();
                    self.length = 0;
                }
                0x20..=0x7e => {
                    Self::write(serial, core::slice::from_ref(byte));
                    let _ = self.line.push(char::from(*byte));
                    self.length += 1;
                }
                _ => {}
            }
        }
    }
}

impl Handler for SerialClient {
    type Error = &'static str;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if channels.contains(interface::SERIAL) {
            self.read();
        }
        Ok(())
    }
}

/// The PD's `init`: greets on the console.
#[must_use]
pub fn init() -> SerialClient {
    let serial = sddf_serial::Regions::from_system()
        .map(|regions| sddf_serial::Client::new(interface::SERIAL, regions));
    match serial.as_ref() {
        Some(_) => info!("serial-client: writing to the console in sDDF's serial protocol"),
        None => warn!("serial-client: this system maps no sDDF serial regions; nothing to do"),
    }
    let mut client = SerialClient {
        serial,
        line: String::new(),
        length: 0,
    };
    if let Some(serial) = client.serial.as_mut() {
        SerialClient::write(
            serial,
            b"serial-client: hello through sDDF's serial protocol; type a line\r\n",
        );
    }
    // Characters that came before this PD started (a restart) are answered now.
    client.read();
    client
}

/// A hostile sDDF serial client, for sim-test. The characters typed are its clock: on each
/// notification that brings some, it flips its transmit queue's tail between an impossible
/// value (three kinds in turn) and a sane but empty one, notifying the console driver
/// [`hostile::NOTIFICATIONS`] times after each store; after [`hostile::PHASES`] flips it puts
/// the tail back and writes a line. The driver must refuse the scribbled queue without a
/// warning each time it turns corrupt again, stay up, and write the line.
pub mod hostile {
    use core::sync::atomic::Ordering;
    use log::{info, warn};
    use warden_microkit::{ChannelSet, Handler};
    use warden_services::sddf_serial;

    /// How many flips (half of them to an impossible tail).
    pub const PHASES: usize = 20;
    /// Notifications after each store.
    pub const NOTIFICATIONS: usize = 48;

    /// The hostile client.
    pub struct Hostile {
        regions: Option<sddf_serial::Regions>,
        /// The sane tail, taken before the first flip.
        tail: Option<u32>,
        phase: usize,
    }

    impl Hostile {
        fn flip(&mut self, regions: sddf_serial::Regions) {
            let control = regions.transmit.control_words();
            let Some(word) = control.first() else {
                return;
            };
            let tail = *self
                .tail
                .get_or_insert_with(|| word.load(Ordering::Relaxed));
            let garbage = [
                0xdead_beef_u32,
                u32::MAX,
                tail.wrapping_add(regions.transmit.capacity() + 1),
            ];
            let value = if self.phase % 2 == 0 {
                garbage.get(self.phase / 2 % 3).copied().unwrap_or(u32::MAX)
            } else {
                tail
            };
            word.store(value, Ordering::Release);
            for _ in 0..NOTIFICATIONS {
                super::interface::SERIAL.notify();
            }
            self.phase += 1;
            if self.phase == PHASES {
                word.store(tail, Ordering::Release);
                info!(
                    "hostile-serial: {} notifications over a transmit queue scribbled {} times sent; its tail is back",
                    PHASES * NOTIFICATIONS,
                    PHASES / 2
                );
                let mut client = sddf_serial::Client::new(super::interface::SERIAL, regions);
                client.write(
                    b"hostile-serial: the console still writes for this client once its queue is sane\r\n",
                );
            }
        }
    }

    impl Handler for Hostile {
        type Error = &'static str;

        fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
            let Some(regions) = self.regions else {
                return Ok(());
            };
            if channels.contains(super::interface::SERIAL) {
                // What was typed is taken (and ignored), so the receive queue keeps moving.
                let moved = sddf_serial::Client::new(super::interface::SERIAL, regions)
                    .read(&mut |bytes| bytes.len());
                if moved.characters > 0 && self.phase < PHASES {
                    self.flip(regions);
                }
            }
            Ok(())
        }
    }

    /// The PD's `init`: it waits for characters.
    #[must_use]
    pub fn init() -> Hostile {
        let regions = sddf_serial::Regions::from_system();
        if regions.is_none() {
            warn!("hostile-serial: no sDDF serial regions are mapped");
        } else {
            info!("hostile-serial: waiting for characters, its clock");
        }
        Hostile {
            regions,
            tail: None,
            phase: 0,
        }
    }
}
