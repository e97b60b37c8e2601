//! The state of one interrupt.

/// One interrupt (an SGI or PPI of one vCPU, or an SPI).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Irq {
    /// Group 1 (`IGROUPR` bit set).
    pub group1: bool,
    /// Enabled (`ISENABLER`).
    pub enabled: bool,
    /// Edge-triggered (`ICFGR` bit 2n+1); false: level-sensitive.
    pub edge: bool,
    /// Pending not yet in a list register: an edge seen, or a software `ISPENDR` write (for a
    /// level-sensitive interrupt, cleared when the guest acknowledges it).
    pub latch: bool,
    /// The input line (level-sensitive sources).
    pub line: bool,
    /// Active (while it is in a list register: as of the last flush or sync).
    pub active: bool,
    /// Priority (masked to the implemented bits).
    pub priority: u8,
    /// The vCPU whose list registers hold it.
    pub owner: Option<usize>,
}

impl Irq {
    /// The reset state: Group 1, disabled, idle, priority 0.
    pub const fn reset(edge: bool) -> Self {
        Self {
            group1: true,
            enabled: false,
            edge,
            latch: false,
            line: false,
            active: false,
            priority: 0,
            owner: None,
        }
    }

    /// Whether something makes it pending outside a list register: its latch, or its line for
    /// a level-sensitive one.
    pub const fn pending_source(&self) -> bool {
        self.latch || (!self.edge && self.line)
    }

    /// Drives its input line: a rising edge sets the latch of an edge-triggered interrupt.
    pub fn drive(&mut self, level: bool) {
        if self.edge && level && !self.line {
            self.latch = true;
        }
        self.line = level;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_pending_follows_line_and_latch() {
        let mut i = Irq::reset(false);
        assert!(!i.pending_source());
        i.drive(true);
        assert!(i.pending_source() && !i.latch, "level: the line, no latch");
        i.drive(false);
        assert!(!i.pending_source());
        i.latch = true;
        assert!(i.pending_source(), "software pending");
    }

    #[test]
    fn edge_latches_rising_edges_only() {
        let mut i = Irq::reset(true);
        i.drive(true);
        assert!(i.latch && i.pending_source());
        i.latch = false;
        i.drive(true);
        assert!(!i.pending_source(), "a high line is not a new edge");
        i.drive(false);
        assert!(!i.pending_source(), "a falling edge is not an edge");
        i.drive(true);
        assert!(i.latch);
    }
}
