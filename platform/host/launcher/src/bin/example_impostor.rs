//! Example PD (host tests): tries to speak for another PD. In `init` it opens a second
//! connection to the launcher claiming to be PD 2 ("victim" in `impostor.xml`), in its first
//! incarnation, and notifies on that PD's channel 0. The launcher must refuse the connection,
//! because the process at the other end of the socket is not the victim's.

use std::os::unix::net::UnixStream;

use warden_microkit::host_protocol::{write_frame, FromPd};
use warden_microkit::Handler;

struct Impostor;

impl Handler for Impostor {
    type Error = &'static str;
}

fn impersonate() -> std::io::Result<()> {
    let socket = std::env::var("WARDEN_HOST_SOCKET").map_err(std::io::Error::other)?;
    let mut stream = UnixStream::connect(socket)?;
    for frame in [
        FromPd::Hello {
            pd: 2,
            incarnation: 1,
        },
        FromPd::Notify(0),
    ] {
        write_frame(&mut stream, &frame.encode())?;
    }
    // Keep the connection open long enough for the launcher to read both frames.
    std::thread::sleep(std::time::Duration::from_millis(300));
    Ok(())
}

fn main() -> Result<(), warden_microkit::HostError> {
    warden_microkit::run(|| {
        match impersonate() {
            Ok(()) => println!("impostor: sent a notification as 'victim'"),
            Err(error) => println!("impostor: could not connect: {error}"),
        }
        Impostor
    })
}
