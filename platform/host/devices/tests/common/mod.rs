//! What the drivers' tests against the models share.

use warden_registers::{Registers, Width};

/// A window where no device answers: every read is all ones (a bus with nothing on it), every
/// write vanishes; `size` bytes long.
#[derive(Debug)]
pub struct Absent(pub usize);

impl Registers for Absent {
    fn size(&self) -> usize {
        self.0
    }
    fn read(&self, _offset: usize, width: Width) -> u32 {
        width.all_ones()
    }
    fn write(&self, _offset: usize, _width: Width, _value: u32) {}
}
