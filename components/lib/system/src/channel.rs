//! The `channel` element and its two `end`s.

use super::*;

/// One end of a channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct End {
    /// The PD (index in [`System::protection_domains`]).
    pub pd: usize,
    /// The PD's id for the channel.
    pub id: u64,
    /// This end may call the other.
    pub pp: bool,
    /// This end may notify.
    pub notify: bool,
    /// Symbol patched with `id` in this end's PD (`setvar_id`).
    pub setvar_id: Option<String>,
}

/// A channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Channel {
    /// Its two ends.
    pub ends: [End; 2],
    /// Where in the file.
    pub location: Location,
}

impl Parser<'_, '_> {
    pub(super) fn channel(&self, node: Node, system: &System) -> Result<Channel, SdfError> {
        self.attributes(node, &[])?;
        let elements = self.elements(node)?;
        let mut ends = Vec::new();
        for element in &elements {
            if element.tag_name().name() != "end" {
                return Err(self.error(
                    *element,
                    format!(
                        "unknown element <{}> in <channel>",
                        element.tag_name().name()
                    ),
                ));
            }
            self.attributes(*element, &["pd", "id", "pp", "notify", "setvar_id"])?;
            let pd_name = self.required(*element, "pd")?;
            let pd = system
                .protection_domains
                .iter()
                .position(|pd| pd.name == pd_name)
                .ok_or_else(|| {
                    self.error(*element, format!("no protection domain named '{pd_name}'"))
                })?;
            let id = self.required_number(*element, "id")?;
            if id > MAX_ID {
                return Err(self.error(*element, format!("channel id {id} is above {MAX_ID}")));
            }
            ends.push(End {
                pd,
                id,
                pp: self.boolean(*element, "pp", false)?,
                notify: self.boolean(*element, "notify", true)?,
                setvar_id: element.attribute("setvar_id").map(str::to_string),
            });
        }
        let Ok([first, second]) = <[End; 2]>::try_from(ends) else {
            return Err(self.error(node, "a channel must have exactly two <end> elements"));
        };
        if first.pd == second.pd {
            return Err(self.error(
                node,
                "both ends of a channel are in the same protection domain",
            ));
        }
        if first.pp && second.pp {
            return Err(self.error(node, "pp may be set on one end of a channel only"));
        }
        Ok(Channel {
            ends: [first, second],
            location: self.location(node),
        })
    }
}
