//! A model as its driver sees the device: through the register trait. What the launcher does for
//! a driver PD's device map, for the drivers' tests: each access goes to the model at once, in
//! program order, and the test looks at the model between accesses.

use std::cell::{RefCell, RefMut};
use std::sync::{Arc, Mutex};

use warden_registers::{access_ok, Registers, Width};

use crate::{Device, DmaMemory, NoDma};

/// A model behind the register trait, with `M` as its DMA memory.
pub struct ModelRegisters<D, M = NoDma> {
    model: RefCell<D>,
    memory: RefCell<M>,
}

impl<D: Device> ModelRegisters<D> {
    /// The window of a model that does no DMA (a UART, an RTC).
    pub fn new(model: D) -> Self {
        Self::with_memory(model, NoDma)
    }
}

impl<D: Device, M: DmaMemory> ModelRegisters<D, M> {
    /// The window of a model whose DMA goes to `memory`.
    pub fn with_memory(model: D, memory: M) -> Self {
        Self {
            model: RefCell::new(model),
            memory: RefCell::new(memory),
        }
    }

    /// The model, to look at or act on between accesses (a test's side of the device).
    ///
    /// # Panics
    /// If it is already borrowed: not while a register access is under way, which holds it.
    pub fn model(&self) -> RefMut<'_, D> {
        self.model.borrow_mut()
    }

    /// Whether the model's interrupt line is asserted.
    pub fn irq_level(&self) -> bool {
        self.model.borrow().irq_level()
    }
}

impl<D: Device, M: DmaMemory> std::fmt::Debug for ModelRegisters<D, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelRegisters")
            .field("kind", &self.model.borrow().kind())
            .finish_non_exhaustive()
    }
}

impl<D: Device, M: DmaMemory> Registers for ModelRegisters<D, M> {
    fn size(&self) -> usize {
        usize::try_from(self.model.borrow().size()).unwrap_or(0)
    }

    fn read(&self, offset: usize, width: Width) -> u32 {
        if !access_ok(offset, width, self.size()) {
            return width.all_ones();
        }
        let mut memory = self.memory.borrow_mut();
        self.model
            .borrow_mut()
            .read(offset as u64, width, &mut *memory)
    }

    fn write(&self, offset: usize, width: Width, value: u32) {
        if access_ok(offset, width, self.size()) {
            let mut memory = self.memory.borrow_mut();
            self.model
                .borrow_mut()
                .write(offset as u64, width, value, &mut *memory);
        }
    }
}

/// An output stream a test can look into (what a UART model transmitted).
#[derive(Clone, Debug, Default)]
pub struct SharedOutput(Arc<Mutex<Vec<u8>>>);

impl SharedOutput {
    /// Everything written so far.
    ///
    /// # Panics
    /// If a writer panicked while holding it.
    #[must_use]
    pub fn contents(&self) -> Vec<u8> {
        self.0.lock().map(|bytes| bytes.clone()).unwrap_or_default()
    }
}

impl std::io::Write for SharedOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
