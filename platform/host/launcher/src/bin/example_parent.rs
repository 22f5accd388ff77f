//! Example PD (host tests): restarts its faulting child once, then stops it.

use warden_microkit::{Child, Handler, MessageInfo};

struct Parent {
    faults: u32,
}

impl Handler for Parent {
    type Error = &'static str;

    fn fault(
        &mut self,
        child: Child,
        message: MessageInfo,
    ) -> Result<Option<MessageInfo>, Self::Error> {
        self.faults += 1;
        println!(
            "parent: child {} faulted (label {})",
            child.index(),
            message.label()
        );
        if self.faults < 2 {
            child.restart();
        } else {
            child.stop();
        }
        Ok(None)
    }
}

fn main() -> Result<(), warden_microkit::HostError> {
    warden_microkit::run(|| Parent { faults: 0 })
}
