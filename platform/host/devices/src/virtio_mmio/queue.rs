//! The split virtqueues behind a transport (virtio 1.x §2.7): a queue's addresses as the driver set
//! them, and the processing of its available descriptor chains, everything read from DMA memory
//! untrusted.

use super::*;

/// Descriptor flags (§2.7.5).
pub(crate) const DESC_NEXT: u16 = 1;

pub(crate) const DESC_WRITE: u16 = 2;

pub(crate) const DESC_INDIRECT: u16 = 4;

/// Avail ring flag: the driver does not want used-buffer interrupts.
pub(crate) const AVAIL_NO_INTERRUPT: u16 = 1;

/// Bytes of one descriptor and one used element.
pub(crate) const DESCRIPTOR_SIZE: u64 = 16;

pub(crate) const USED_ELEMENT_SIZE: u64 = 8;

/// Upper bound on the readable (and, separately, writable) bytes of one chain, so a hostile
/// length cannot make the launcher allocate without bound.
pub(crate) const MAX_CHAIN_BYTES: u64 = 64 << 20;

/// Why the transport stopped processing a queue and asked for a reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueFault {
    /// `QueueNum` is 0, above `QueueNumMax`, or not a power of two.
    BadQueueSize {
        /// The queue.
        queue: u16,
        /// The size the driver set.
        size: u32,
    },
    /// `avail.idx` is more than the queue size ahead of the chains processed.
    AvailIndexTooFarAhead {
        /// The queue.
        queue: u16,
        /// The driver's `avail.idx`.
        avail_idx: u16,
        /// The next chain the device would process.
        last_avail_idx: u16,
    },
    /// A chain's head or `next` index is not below the queue size.
    IndexOutOfRange {
        /// The queue.
        queue: u16,
        /// The index.
        index: u16,
    },
    /// A chain has more descriptors than the queue: it loops.
    ChainLoop {
        /// The queue.
        queue: u16,
        /// The chain's head.
        head: u16,
    },
    /// An indirect descriptor, though `VIRTIO_F_INDIRECT_DESC` is not offered.
    IndirectDescriptor {
        /// The queue.
        queue: u16,
        /// The descriptor's index.
        index: u16,
    },
    /// A device-readable descriptor after a device-writable one (§2.7.4.2).
    ReadableAfterWritable {
        /// The queue.
        queue: u16,
        /// The descriptor's index.
        index: u16,
    },
    /// A chain's readable or writable part is longer than the model accepts.
    ChainTooLong {
        /// The queue.
        queue: u16,
        /// The chain's head.
        head: u16,
    },
    /// The queue's rings or a buffer are not in DMA memory.
    Dma {
        /// The queue.
        queue: u16,
        /// The refused access.
        error: DmaError,
    },
}

impl fmt::Display for QueueFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadQueueSize { queue, size } => write!(f, "queue {queue}: bad size {size}"),
            Self::AvailIndexTooFarAhead {
                queue,
                avail_idx,
                last_avail_idx,
            } => write!(
                f,
                "queue {queue}: avail.idx {avail_idx} too far ahead of {last_avail_idx}"
            ),
            Self::IndexOutOfRange { queue, index } => {
                write!(f, "queue {queue}: descriptor index {index} out of range")
            }
            Self::ChainLoop { queue, head } => write!(f, "queue {queue}: chain {head} loops"),
            Self::IndirectDescriptor { queue, index } => {
                write!(
                    f,
                    "queue {queue}: descriptor {index} is indirect (not negotiated)"
                )
            }
            Self::ReadableAfterWritable { queue, index } => {
                write!(
                    f,
                    "queue {queue}: readable descriptor {index} after writable ones"
                )
            }
            Self::ChainTooLong { queue, head } => write!(f, "queue {queue}: chain {head} too long"),
            Self::Dma { queue, error } => write!(f, "queue {queue}: {error}"),
        }
    }
}

impl std::error::Error for QueueFault {}

/// The transport's state of one virtqueue.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Queue {
    /// `QueueNum` as written.
    pub(crate) size: u32,
    pub(crate) ready: bool,
    pub(crate) descriptors: u64,
    pub(crate) driver_area: u64,
    pub(crate) device_area: u64,
    /// The next avail ring entry to process.
    pub(crate) last_avail_idx: u16,
    /// The next used ring entry to fill (equal to `last_avail_idx` as chains complete in order,
    /// kept apart for clarity).
    pub(crate) used_idx: u16,
}

/// One descriptor as read from the table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Descriptor {
    pub(crate) address: u64,
    pub(crate) len: u32,
    pub(crate) flags: u16,
    pub(crate) next: u16,
}

/// Processing of one notified queue: the split virtqueue of §2.7, device side.
pub(crate) struct QueueProcessor<'a> {
    pub(crate) index: u16,
    pub(crate) queue: Queue,
    pub(crate) dma: &'a mut dyn DmaMemory,
    pub(crate) backend: &'a mut dyn VirtioBackend,
    /// Whether a used element was written (and so an interrupt may be due).
    pub(crate) used_any: bool,
}

impl QueueProcessor<'_> {
    fn dma_fault(&self, error: DmaError) -> QueueFault {
        QueueFault::Dma {
            queue: self.index,
            error,
        }
    }

    fn read_bytes<const N: usize>(&self, address: u64) -> Result<[u8; N], QueueFault> {
        let mut bytes = [0; N];
        self.dma
            .read(address, &mut bytes)
            .map_err(|error| self.dma_fault(error))?;
        Ok(bytes)
    }

    fn read_u16(&self, address: u64) -> Result<u16, QueueFault> {
        self.read_bytes(address).map(u16::from_le_bytes)
    }

    fn write(&mut self, address: u64, data: &[u8]) -> Result<(), QueueFault> {
        self.dma
            .write(address, data)
            .map_err(|error| QueueFault::Dma {
                queue: self.index,
                error,
            })
    }

    /// The queue size as a `u16` (checked to be a power of two at most `QueueNumMax` ≤ 32768).
    fn size(&self) -> u16 {
        u16::try_from(self.queue.size).unwrap_or(u16::MAX)
    }

    /// Processes every available chain. Returns whether the driver wants an interrupt.
    pub(super) fn run(&mut self) -> Result<bool, QueueFault> {
        let size = self.size();
        let avail = self.queue.driver_area;
        loop {
            let avail_idx = self.read_u16(avail.wrapping_add(2))?;
            let pending = avail_idx.wrapping_sub(self.queue.last_avail_idx);
            if pending == 0 {
                break;
            }
            if pending > size {
                return Err(QueueFault::AvailIndexTooFarAhead {
                    queue: self.index,
                    avail_idx,
                    last_avail_idx: self.queue.last_avail_idx,
                });
            }
            let slot = self.queue.last_avail_idx % size;
            let head = self.read_u16(avail.wrapping_add(4 + 2 * u64::from(slot)))?;
            let written = self.process_chain(head)?;
            self.push_used(head, written)?;
            self.queue.last_avail_idx = self.queue.last_avail_idx.wrapping_add(1);
        }
        let flags = self.read_u16(avail)?;
        Ok(flags & AVAIL_NO_INTERRUPT == 0)
    }

    fn read_descriptor(&self, index: u16) -> Result<Descriptor, QueueFault> {
        if index >= self.size() {
            return Err(QueueFault::IndexOutOfRange {
                queue: self.index,
                index,
            });
        }
        let address = self
            .queue
            .descriptors
            .wrapping_add(DESCRIPTOR_SIZE * u64::from(index));
        let bytes: [u8; 16] = self.read_bytes(address)?;
        let [a0, a1, a2, a3, a4, a5, a6, a7, l0, l1, l2, l3, f0, f1, n0, n1] = bytes;
        Ok(Descriptor {
            address: u64::from_le_bytes([a0, a1, a2, a3, a4, a5, a6, a7]),
            len: u32::from_le_bytes([l0, l1, l2, l3]),
            flags: u16::from_le_bytes([f0, f1]),
            next: u16::from_le_bytes([n0, n1]),
        })
    }

    /// Walks the chain at `head`, runs the backend on it and scatters the response. Returns the
    /// bytes written.
    fn process_chain(&mut self, head: u16) -> Result<u32, QueueFault> {
        let mut request = Vec::new();
        let mut writable: Vec<(u64, usize)> = Vec::new();
        let mut writable_len: u64 = 0;
        let mut index = head;
        let mut count: u16 = 0;
        loop {
            if count >= self.size() {
                return Err(QueueFault::ChainLoop {
                    queue: self.index,
                    head,
                });
            }
            count += 1;
            let descriptor = self.read_descriptor(index)?;
            if descriptor.flags & DESC_INDIRECT != 0 {
                return Err(QueueFault::IndirectDescriptor {
                    queue: self.index,
                    index,
                });
            }
            let len = u64::from(descriptor.len);
            let too_long = QueueFault::ChainTooLong {
                queue: self.index,
                head,
            };
            if descriptor.flags & DESC_WRITE != 0 {
                writable_len += len;
                if writable_len > MAX_CHAIN_BYTES {
                    return Err(too_long);
                }
                let len = usize::try_from(len).map_err(|_| too_long)?;
                writable.push((descriptor.address, len));
            } else {
                if !writable.is_empty() {
                    return Err(QueueFault::ReadableAfterWritable {
                        queue: self.index,
                        index,
                    });
                }
                let start = request.len();
                let end = usize::try_from(len)
                    .ok()
                    .and_then(|len| start.checked_add(len))
                    .filter(|end| *end as u64 <= MAX_CHAIN_BYTES)
                    .ok_or(too_long)?;
                request.resize(end, 0);
                let target = request.get_mut(start..).unwrap_or_default();
                self.dma
                    .read(descriptor.address, target)
                    .map_err(|error| QueueFault::Dma {
                        queue: self.index,
                        error,
                    })?;
            }
            if descriptor.flags & DESC_NEXT == 0 {
                break;
            }
            index = descriptor.next;
        }

        let mut response = vec![0; usize::try_from(writable_len).unwrap_or(0)];
        let written = self
            .backend
            .process(self.index, &request, &mut response)
            .min(response.len());
        let mut remaining = response.get(..written).unwrap_or_default();
        for (address, len) in writable {
            if remaining.is_empty() {
                break;
            }
            let (part, rest) = remaining.split_at(len.min(remaining.len()));
            self.write(address, part)?;
            remaining = rest;
        }
        // `written` is at most MAX_CHAIN_BYTES, which fits.
        Ok(u32::try_from(written).unwrap_or(u32::MAX))
    }

    /// Writes the used element for `head`, then publishes it with `used.idx`: the element must
    /// be visible before the index that covers it (§2.7.8).
    fn push_used(&mut self, head: u16, written: u32) -> Result<(), QueueFault> {
        let used = self.queue.device_area;
        let slot = self.queue.used_idx % self.size();
        let mut element = [0u8; 8];
        let (id, len) = element.split_at_mut(4);
        id.copy_from_slice(&u32::from(head).to_le_bytes());
        len.copy_from_slice(&written.to_le_bytes());
        self.write(
            used.wrapping_add(4 + USED_ELEMENT_SIZE * u64::from(slot)),
            &element,
        )?;
        self.queue.used_idx = self.queue.used_idx.wrapping_add(1);
        self.write(used.wrapping_add(2), &self.queue.used_idx.to_le_bytes())?;
        self.used_any = true;
        Ok(())
    }
}
