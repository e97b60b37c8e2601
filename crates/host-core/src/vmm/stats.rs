//! Counters of what a VM's run loop did, by exit class.

/// Kinds of REC exit the run loop counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitClass {
    /// An emulated MMIO access.
    Mmio,
    /// An access to a shared page the host mapped on that fault.
    SharedFault,
    /// A protected page or block the host mapped on that fault.
    ProtectedFault,
    /// A PSCI request.
    Psci,
    /// A RIPAS change request.
    RipasChange,
    /// `RSI_HOST_CALL`.
    HostCall,
    /// A trapped WFI.
    Wfi,
    /// A trapped WFE.
    Wfe,
    /// A trapped `ICC_SGI1R_EL1` write (an IPI).
    Sgi,
    /// Another trapped system register.
    SysReg,
    /// A physical interrupt (the host's timer, a device, a maintenance interrupt).
    Irq,
    /// Anything else.
    Other,
}

impl ExitClass {
    /// Every class, in table order.
    pub const ALL: [ExitClass; 12] = [
        Self::Mmio,
        Self::SharedFault,
        Self::ProtectedFault,
        Self::Psci,
        Self::RipasChange,
        Self::HostCall,
        Self::Wfi,
        Self::Wfe,
        Self::Sgi,
        Self::SysReg,
        Self::Irq,
        Self::Other,
    ];

    /// A short name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Mmio => "mmio",
            Self::SharedFault => "shared_fault",
            Self::ProtectedFault => "protected_fault",
            Self::Psci => "psci",
            Self::RipasChange => "ripas_change",
            Self::HostCall => "host_call",
            Self::Wfi => "wfi",
            Self::Wfe => "wfe",
            Self::Sgi => "sgi",
            Self::SysReg => "sysreg",
            Self::Irq => "irq",
            Self::Other => "other",
        }
    }
}

/// Exits per class and the counter ticks their `REC_ENTER` calls took.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitStats {
    /// Exits per class (indexed like [`ExitClass::ALL`]).
    pub count: [u64; 12],
    /// Ticks from just before each `REC_ENTER` to just after it returned.
    pub ticks: [u64; 12],
    /// The fewest ticks one `REC_ENTER` of the class took (meaningful once its count is
    /// non-zero): the round trip with the least realm work in it.
    pub fastest: [u64; 12],
}

impl ExitStats {
    /// Records one exit.
    pub fn record(&mut self, class: ExitClass, ticks: u64) {
        let i = class as usize;
        self.count[i] += 1;
        self.ticks[i] = self.ticks[i].wrapping_add(ticks);
        self.fastest[i] = if self.count[i] == 1 {
            ticks
        } else {
            self.fastest[i].min(ticks)
        };
    }

    /// The fewest ticks of one exit of any of `classes`, or `None` if none occurred.
    pub fn fastest_of(&self, classes: &[ExitClass]) -> Option<u64> {
        classes
            .iter()
            .filter(|&&c| self.count[c as usize] > 0)
            .map(|&c| self.fastest[c as usize])
            .min()
    }

    /// `(exits, ticks)` of one class.
    pub fn get(&self, class: ExitClass) -> (u64, u64) {
        (self.count[class as usize], self.ticks[class as usize])
    }

    /// Every exit.
    pub fn total(&self) -> u64 {
        self.count.iter().sum()
    }
}

impl core::fmt::Display for ExitStats {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} exits:", self.total())?;
        for c in ExitClass::ALL {
            let n = self.get(c).0;
            if n > 0 {
                write!(f, " {} {n}", c.name())?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fastest_exit_is_kept_per_class() {
        let mut s = ExitStats::default();
        assert_eq!(s.fastest_of(&[ExitClass::Mmio]), None);
        s.record(ExitClass::Mmio, 300);
        s.record(ExitClass::Mmio, 100);
        s.record(ExitClass::Mmio, 200);
        s.record(ExitClass::Wfe, 50);
        assert_eq!(s.get(ExitClass::Mmio), (3, 600));
        assert_eq!(s.fastest_of(&[ExitClass::Mmio]), Some(100));
        assert_eq!(s.fastest_of(&[ExitClass::Wfi, ExitClass::Wfe]), Some(50));
        assert_eq!(s.fastest_of(&[ExitClass::Wfi]), None);
    }
}
