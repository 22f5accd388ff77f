//! INTx routing: the swizzle every bridge applies (PCI-to-PCI Bridge 1.2 §9.1), so that the
//! host bridge's `interrupt-map` needs entries for its own bus's device numbers only.

/// An interrupt pin of a device, as seen on some bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Intx {
    /// The device number on that bus.
    pub device: u8,
    /// The function number (what an `interrupt-map-mask` covering it matches).
    pub function: u8,
    /// The pin, 1–4 (INTA–INTD).
    pub pin: u8,
}

/// The pin on a bridge's primary side that pin `pin` (1–4) of device `device` behind it comes
/// out on.
#[must_use]
pub const fn swizzle(pin: u8, device: u8) -> u8 {
    (pin.wrapping_sub(1).wrapping_add(device % 4)) % 4 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_zero_keeps_its_pin_and_each_device_rotates_it() {
        assert_eq!(swizzle(1, 0), 1);
        assert_eq!(swizzle(4, 0), 4);
        assert_eq!(swizzle(1, 1), 2);
        assert_eq!(swizzle(4, 1), 1);
        assert_eq!(swizzle(2, 31), 1);
    }
}
