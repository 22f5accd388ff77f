//! Example PD (host tests): breaks the kernel socket's rules. In `init` it opens a second
//! connection to the launcher as itself, which the launcher must refuse (one connection a
//! start), and sends a malformed frame there, which must count for nothing; then it writes a
//! malformed frame on its own connection (its socket descriptor, found in `/proc/self/fd`),
//! for which the launcher must stop it as a fault, saying why, and tell its parent.
#![allow(
    unsafe_code,
    reason = "a hostile PD writes to its own socket behind the runtime's back"
)]

use std::io::Write;
use std::os::fd::BorrowedFd;
use std::os::unix::net::UnixStream;

use warden_microkit::host_protocol::{write_frame, FromPd};
use warden_microkit::Handler;

#[path = "support/descriptors.rs"]
mod descriptors;

struct Garbler;

impl Handler for Garbler {
    type Error = &'static str;
}

const GARBAGE: [u8; 8] = [4, 0, 0, 0, 0xee, 1, 2, 3];

fn second_connection() -> std::io::Result<UnixStream> {
    let variable = |name| std::env::var(name).map_err(std::io::Error::other);
    let mut stream = UnixStream::connect(variable("WARDEN_HOST_SOCKET")?)?;
    let hello = FromPd::Hello {
        pd: variable("WARDEN_PD_INDEX")?
            .parse()
            .map_err(std::io::Error::other)?,
        incarnation: variable("WARDEN_PD_INCARNATION")?
            .parse()
            .map_err(std::io::Error::other)?,
    };
    write_frame(&mut stream, &hello.encode())?;
    stream.write_all(&GARBAGE)?;
    Ok(stream)
}

fn main() -> Result<(), warden_microkit::HostError> {
    warden_microkit::run(|| {
        match second_connection() {
            Ok(second) => {
                std::thread::sleep(std::time::Duration::from_millis(500));
                println!("garbler: a malformed frame sent on a second connection; still running");
                for fd in descriptors::descriptors("socket:") {
                    // SAFETY: the descriptor is open for the life of the process (the runtime
                    // never closes its connection); it is borrowed for one write.
                    let socket = unsafe { BorrowedFd::borrow_raw(fd) };
                    let _ = rustix::io::write(socket, &GARBAGE);
                }
                println!("garbler: a malformed frame sent on its own connection");
                drop(second);
            }
            Err(error) => println!("garbler: {error}"),
        }
        std::thread::sleep(std::time::Duration::from_secs(5));
        Garbler
    })
}
