//! A virtio block device (device id 2) backed by an image file.
//!
//! Requests are the three-part chains of virtio 1.x §5.2.6: a 16-byte header (type, reserved,
//! sector) readable by the device, data (readable for writes, writable for reads) and a status
//! byte, the last writable byte. The device offers `VIRTIO_BLK_F_FLUSH` only, so the
//! configuration space the driver may read is `capacity` (a `u64` at offset 0); the other
//! fields read 0. virtio-drivers 0.13's `VirtIOBlk` negotiates `RO`, `FLUSH`,
//! `RING_INDIRECT_DESC`, `RING_EVENT_IDX` and `VERSION_1`, and reads only `capacity`, so this is
//! all it needs.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::{VirtioBackend, Width};

/// Bytes per sector; virtio-blk addresses in 512-byte sectors whatever the image's block size.
const SECTOR_SIZE: u64 = 512;
/// `VIRTIO_BLK_F_FLUSH`.
const FEATURE_FLUSH: u64 = 1 << 9;
/// Request types.
const REQUEST_IN: u32 = 0;
const REQUEST_OUT: u32 = 1;
const REQUEST_FLUSH: u32 = 4;
const REQUEST_GET_ID: u32 = 8;
/// Status values.
const STATUS_OK: u8 = 0;
const STATUS_IOERR: u8 = 1;
const STATUS_UNSUPP: u8 = 2;
/// Bytes of the request header.
const HEADER_SIZE: usize = 16;
/// Bytes of the device id string `GET_ID` returns.
const ID_SIZE: usize = 20;
/// Queue size offered (QEMU's default for virtio-blk).
const QUEUE_MAX_SIZE: u16 = 256;

/// A virtio-blk backend on an image file, read-write.
#[derive(Debug)]
pub struct Blk {
    file: File,
    path: PathBuf,
    /// Whole sectors in the image when it was opened; a trailing partial sector is not used.
    capacity: u64,
}

impl Blk {
    /// Opens the image at `path` for reading and writing.
    ///
    /// # Errors
    /// The file cannot be opened read-write or its size read.
    pub fn open(path: &Path) -> std::io::Result<Blk> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        let capacity = file.metadata()?.len() / SECTOR_SIZE;
        Ok(Blk {
            file,
            path: path.to_path_buf(),
            capacity,
        })
    }

    /// Capacity in 512-byte sectors.
    #[must_use]
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// The byte offset of `sectors` sectors at `sector`, if all of them lie on the device.
    fn byte_offset(&self, sector: u64, bytes: usize) -> Option<u64> {
        let bytes = u64::try_from(bytes).ok()?;
        if bytes % SECTOR_SIZE != 0 {
            return None;
        }
        let end = sector.checked_add(bytes / SECTOR_SIZE)?;
        (end <= self.capacity).then(|| sector * SECTOR_SIZE)
    }

    /// Carries out one request; `data_out` is what follows the header, `data_in` the writable
    /// bytes before the status byte.
    fn execute(&mut self, kind: u32, sector: u64, data_out: &[u8], data_in: &mut [u8]) -> u8 {
        match kind {
            REQUEST_IN => {
                let Some(offset) = self.byte_offset(sector, data_in.len()) else {
                    log::debug!(
                        "virtio-blk: read of {} bytes at sector {sector} out of range",
                        data_in.len()
                    );
                    return STATUS_IOERR;
                };
                match self.file.read_exact_at(data_in, offset) {
                    Ok(()) => STATUS_OK,
                    Err(error) => {
                        log::debug!("virtio-blk: {}: read: {error}", self.path.display());
                        data_in.fill(0);
                        STATUS_IOERR
                    }
                }
            }
            REQUEST_OUT => {
                let Some(offset) = self.byte_offset(sector, data_out.len()) else {
                    log::debug!(
                        "virtio-blk: write of {} bytes at sector {sector} out of range",
                        data_out.len()
                    );
                    return STATUS_IOERR;
                };
                match self.file.write_all_at(data_out, offset) {
                    Ok(()) => STATUS_OK,
                    Err(error) => {
                        log::debug!("virtio-blk: {}: write: {error}", self.path.display());
                        STATUS_IOERR
                    }
                }
            }
            REQUEST_FLUSH => match self.file.sync_data() {
                Ok(()) => STATUS_OK,
                Err(error) => {
                    log::debug!("virtio-blk: {}: flush: {error}", self.path.display());
                    STATUS_IOERR
                }
            },
            REQUEST_GET_ID => {
                // Up to 20 bytes, NUL-padded, not NUL-terminated when 20 long (§5.2.6).
                let mut id = [0u8; ID_SIZE];
                let name = b"warden-blk";
                if let Some(prefix) = id.get_mut(..name.len()) {
                    prefix.copy_from_slice(name);
                }
                for (out, byte) in data_in.iter_mut().zip(id) {
                    *out = byte;
                }
                STATUS_OK
            }
            _ => {
                log::debug!("virtio-blk: unsupported request type {kind}");
                STATUS_UNSUPP
            }
        }
    }
}

impl VirtioBackend for Blk {
    fn device_id(&self) -> u32 {
        2
    }

    fn features(&self) -> u64 {
        FEATURE_FLUSH
    }

    fn queue_count(&self) -> u16 {
        1
    }

    fn queue_max_size(&self) -> u16 {
        QUEUE_MAX_SIZE
    }

    fn config_read(&self, offset: u64, width: Width) -> u32 {
        // `capacity` is the only field the offered features make valid.
        let capacity = self.capacity.to_le_bytes();
        let mut bytes = [0u8; 4];
        for (index, byte) in bytes.iter_mut().take(width.bytes()).enumerate() {
            let at = offset
                .checked_add(index as u64)
                .and_then(|at| usize::try_from(at).ok());
            *byte = at.and_then(|at| capacity.get(at)).copied().unwrap_or(0);
        }
        u32::from_le_bytes(bytes)
    }

    fn process(&mut self, queue: u16, request: &[u8], response: &mut [u8]) -> usize {
        if queue != 0 {
            return 0;
        }
        let Some((status, data_in)) = response.split_last_mut() else {
            // No room even for the status byte: nothing can be reported.
            log::debug!("virtio-blk: request without a status byte");
            return 0;
        };
        *status = match request.split_at_checked(HEADER_SIZE) {
            Some((header, data_out)) => {
                let mut kind = [0u8; 4];
                let mut sector = [0u8; 8];
                kind.copy_from_slice(header.get(..4).unwrap_or(&[0; 4]));
                sector.copy_from_slice(header.get(8..16).unwrap_or(&[0; 8]));
                self.execute(
                    u32::from_le_bytes(kind),
                    u64::from_le_bytes(sector),
                    data_out,
                    data_in,
                )
            }
            None => {
                log::debug!("virtio-blk: request shorter than its header");
                STATUS_IOERR
            }
        };
        // The status byte is the last byte of the response, so the whole response counts as
        // written (data included, zeroed where a read failed).
        response.len()
    }

    fn describe(&self) -> String {
        format!(
            "virtio-blk {} ({} sectors)",
            self.path.display(),
            self.capacity
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A temporary image file, removed on drop.
    struct Image(PathBuf);

    impl Image {
        fn new(name: &str, contents: &[u8]) -> Self {
            let path = std::env::temp_dir().join(format!(
                "warden-host-devices-{}-{name}.img",
                std::process::id()
            ));
            std::fs::write(&path, contents).unwrap();
            Self(path)
        }
    }

    impl Drop for Image {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn header(kind: u32, sector: u64) -> Vec<u8> {
        let mut bytes = kind.to_le_bytes().to_vec();
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&sector.to_le_bytes());
        bytes
    }

    fn image_contents() -> Vec<u8> {
        // 4 sectors and a partial one, each sector filled with its number.
        let mut contents: Vec<u8> = (0..4).flat_map(|sector| [sector as u8; 512]).collect();
        contents.extend_from_slice(&[9; 100]);
        contents
    }

    #[test]
    fn capacity_counts_whole_sectors_and_is_in_config_space() {
        let image = Image::new("capacity", &image_contents());
        let blk = Blk::open(&image.0).unwrap();
        assert_eq!(blk.capacity(), 4);
        assert_eq!(blk.config_read(0, Width::U32), 4);
        assert_eq!(blk.config_read(4, Width::U32), 0);
        assert_eq!(blk.config_read(0, Width::U8), 4);
        assert_eq!(blk.config_read(20, Width::U32), 0);
        assert_eq!(blk.config_read(u64::MAX, Width::U32), 0);
        assert_eq!(
            (blk.device_id(), blk.features(), blk.queue_count()),
            (2, 1 << 9, 1)
        );
        assert!(blk.describe().contains("4 sectors"));
    }

    #[test]
    fn reads_writes_and_flushes_sectors() {
        let image = Image::new("rw", &image_contents());
        let mut blk = Blk::open(&image.0).unwrap();
        let mut response = vec![0xee; 1025];
        assert_eq!(blk.process(0, &header(REQUEST_IN, 2), &mut response), 1025);
        assert_eq!(response[..512], [2; 512]);
        assert_eq!(response[512..1024], [3; 512]);
        assert_eq!(response[1024], STATUS_OK);

        let mut request = header(REQUEST_OUT, 1);
        request.extend_from_slice(&[0xab; 512]);
        let mut status = [0xee];
        assert_eq!(blk.process(0, &request, &mut status), 1);
        assert_eq!(status, [STATUS_OK]);
        assert_eq!(blk.process(0, &header(REQUEST_FLUSH, 0), &mut status), 1);
        assert_eq!(status, [STATUS_OK]);
        let on_disk = std::fs::read(&image.0).unwrap();
        assert_eq!(on_disk[512..1024], [0xab; 512]);
        assert_eq!(on_disk[1024..1536], [2; 512]);
    }

    #[test]
    fn out_of_range_partial_and_malformed_requests_fail() {
        let image = Image::new("errors", &image_contents());
        let mut blk = Blk::open(&image.0).unwrap();
        let mut response = vec![0xee; 1025];
        // The partial fifth sector is not part of the device.
        blk.process(0, &header(REQUEST_IN, 3), &mut response);
        assert_eq!(response[1024], STATUS_IOERR);
        blk.process(0, &header(REQUEST_IN, u64::MAX), &mut response);
        assert_eq!(response[1024], STATUS_IOERR);
        let mut odd = vec![0; 101];
        blk.process(0, &header(REQUEST_IN, 0), &mut odd);
        assert_eq!(odd[100], STATUS_IOERR);
        let mut request = header(REQUEST_OUT, 4);
        request.extend_from_slice(&[0; 512]);
        let mut status = [0xee];
        blk.process(0, &request, &mut status);
        assert_eq!(status, [STATUS_IOERR]);
        blk.process(0, &header(REQUEST_OUT, 0)[..10], &mut status);
        assert_eq!(status, [STATUS_IOERR]);
        blk.process(0, &header(99, 0), &mut status);
        assert_eq!(status, [STATUS_UNSUPP]);
        assert_eq!(blk.process(0, &header(REQUEST_IN, 0), &mut []), 0);
        assert_eq!(blk.process(1, &header(REQUEST_IN, 0), &mut status), 0);
        assert_eq!(std::fs::read(&image.0).unwrap(), image_contents());
    }

    #[test]
    fn get_id_names_the_device() {
        let image = Image::new("id", &image_contents());
        let mut blk = Blk::open(&image.0).unwrap();
        let mut response = [0xee; 21];
        blk.process(0, &header(REQUEST_GET_ID, 0), &mut response);
        assert_eq!(&response[..10], b"warden-blk");
        assert_eq!(response[10..20], [0; 10]);
        assert_eq!(response[20], STATUS_OK);
    }

    #[test]
    fn opening_a_missing_image_fails() {
        assert!(Blk::open(Path::new("/nonexistent/warden.img")).is_err());
    }
}
