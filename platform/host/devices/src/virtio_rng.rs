//! A virtio entropy device (device id 4): one queue, every writable buffer filled with bytes.

use std::fs::File;
use std::io::Read;

use crate::{VirtioBackend, Width};

/// Queue size offered.
const QUEUE_MAX_SIZE: u16 = 256;

/// A function that fills the buffer it is given with random bytes.
pub type EntropySource = Box<dyn FnMut(&mut [u8]) + Send>;

/// Where the random bytes come from.
enum Source {
    /// A function the launcher or a test chose.
    Function(EntropySource),
    /// The host's `/dev/urandom`, opened on first use.
    Os(Option<File>),
}

/// A virtio-rng backend.
pub struct Rng {
    source: Source,
}

impl std::fmt::Debug for Rng {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Rng {
    /// An entropy device whose bytes come from `source` (which fills the buffer it is given).
    #[must_use]
    pub fn new(source: EntropySource) -> Self {
        Self {
            source: Source::Function(source),
        }
    }

    /// An entropy device reading the host's `/dev/urandom`. The file is opened on the first
    /// request; if it cannot be read, requests complete with no bytes rather than with bytes
    /// that are not random.
    #[must_use]
    pub fn from_os() -> Self {
        Self {
            source: Source::Os(None),
        }
    }
}

/// Fills `buffer` from `/dev/urandom`, opening it into `file` if needed.
fn read_os(file: &mut Option<File>, buffer: &mut [u8]) -> std::io::Result<()> {
    let file = match file {
        Some(file) => file,
        None => file.insert(File::open("/dev/urandom")?),
    };
    file.read_exact(buffer)
}

impl VirtioBackend for Rng {
    fn device_id(&self) -> u32 {
        4
    }

    fn features(&self) -> u64 {
        0
    }

    fn queue_count(&self) -> u16 {
        1
    }

    fn queue_max_size(&self) -> u16 {
        QUEUE_MAX_SIZE
    }

    fn config_read(&self, _offset: u64, _width: Width) -> u32 {
        // virtio-rng has no configuration space.
        0
    }

    fn process(&mut self, queue: u16, _request: &[u8], response: &mut [u8]) -> usize {
        if queue != 0 {
            return 0;
        }
        match &mut self.source {
            Source::Function(fill) => {
                fill(response);
                response.len()
            }
            Source::Os(file) => match read_os(file, response) {
                Ok(()) => response.len(),
                Err(error) => {
                    log::debug!("virtio-rng: /dev/urandom: {error}");
                    *file = None;
                    response.fill(0);
                    0
                }
            },
        }
    }

    fn describe(&self) -> String {
        match self.source {
            Source::Function(_) => "virtio-rng".to_string(),
            Source::Os(_) => "virtio-rng (/dev/urandom)".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_the_whole_response_from_the_source() {
        let mut counter = 0u8;
        let mut rng = Rng::new(Box::new(move |buffer| {
            for byte in buffer {
                counter = counter.wrapping_add(1);
                *byte = counter;
            }
        }));
        let mut response = [0; 5];
        assert_eq!(rng.process(0, &[], &mut response), 5);
        assert_eq!(response, [1, 2, 3, 4, 5]);
        assert_eq!(rng.process(1, &[], &mut response), 0);
        assert_eq!(
            (rng.device_id(), rng.queue_count(), rng.features()),
            (4, 1, 0)
        );
        assert_eq!(rng.config_read(0, Width::U32), 0);
    }

    #[test]
    fn os_source_reads_urandom() {
        let mut rng = Rng::from_os();
        let mut response = [0; 64];
        assert_eq!(rng.process(0, &[], &mut response), 64);
        assert!(response.iter().any(|byte| *byte != 0));
        assert!(rng.describe().contains("urandom"));
    }
}
