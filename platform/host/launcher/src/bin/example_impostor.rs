//! Example PD (host tests): tries to speak for another PD and to use channels it has not got.
//! In `init` it opens a second connection to the launcher claiming to be PD 2 ("victim" in
//! `impostor.xml`), in its first incarnation: the launcher must refuse it (the process at the
//! other end of the socket is not the victim's) and hand it none of the victim's channel
//! handles. It then notifies on channel 0, which is the victim's and not its own: refused.
//! Last, it counts the channel handles (pipes beyond its standard output and error, memfds) its
//! process holds: none.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use warden_microkit::host_protocol::{write_frame, FromPd};
use warden_microkit::{Channel, Handler};

#[path = "support/descriptors.rs"]
mod descriptors;

struct Impostor;

impl Handler for Impostor {
    type Error = &'static str;
}

/// Claims to be the victim; returns how many bytes the launcher sent on that connection.
fn impersonate() -> std::io::Result<usize> {
    let socket = std::env::var("WARDEN_HOST_SOCKET").map_err(std::io::Error::other)?;
    let mut stream = UnixStream::connect(socket)?;
    let hello = FromPd::Hello {
        pd: 2,
        incarnation: 1,
    };
    write_frame(&mut stream, &hello.encode())?;
    write_frame(&mut stream, &FromPd::Restart(0).encode())?;
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    let mut received = Vec::new();
    match stream.read_to_end(&mut received) {
        Ok(_) => Ok(received.len()),
        Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => Ok(received.len()),
        Err(error) => Err(error),
    }
}

/// Channel handles this process holds: pipes beyond its standard output and error (which the
/// launcher reads), and memfds.
fn handles_held() -> usize {
    descriptors::descriptors("pipe:").len() + descriptors::descriptors("memfd:").len()
}

fn main() -> Result<(), warden_microkit::HostError> {
    warden_microkit::run(|| {
        match impersonate() {
            Ok(bytes) => {
                println!("impostor: claimed to be 'victim'; the launcher sent {bytes} bytes")
            }
            Err(error) => println!("impostor: could not connect: {error}"),
        }
        Channel::new(0).notify();
        println!("impostor: holds {} channel handles", handles_held());
        Impostor
    })
}
