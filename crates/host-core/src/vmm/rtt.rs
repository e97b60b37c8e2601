//! The realm's translation tables as the host keeps track of them: which RTT granule backs the
//! table at each `(level, IPA)`, created on demand when the RMM's walk reports a missing
//! level, folded when a table's entries became uniform, destroyed deepest first at teardown.

use super::error::{VmError, VmResult};
use super::granules::GranulePool;
use crate::rmi::{Conduit, Rmi};
use alloc::collections::BTreeMap;
use cca_abi::GRANULE_SIZE as G;

/// Size in bytes of what one RTT entry at `level` (0..=3) maps.
pub const fn entry_size(level: i64) -> u64 {
    1 << (12 + 9 * (3 - level))
}

/// Size of the IPA range one table at `level` (1..=3) covers.
pub const fn table_span(level: i64) -> u64 {
    entry_size(level - 1)
}

/// The first IPA of the table at `level` that covers `ipa`.
pub const fn table_base(ipa: u64, level: i64) -> u64 {
    ipa & !(table_span(level) - 1)
}

/// The starting level and the number of concatenated starting tables for `ipa_bits`
/// (4 KiB granules, no LPA2).
pub const fn start_level(ipa_bits: u32) -> (i64, u32) {
    if ipa_bits <= 39 {
        (1, 1)
    } else if ipa_bits <= 43 {
        (1, 1 << (ipa_bits - 39))
    } else {
        (0, 1)
    }
}

/// The RTTs of one realm.
#[derive(Clone, Debug)]
pub struct Rtts {
    start: i64,
    /// `(level, table base IPA) -> RTT granule`.
    tables: BTreeMap<(i64, u64), u64>,
    /// RTTs created (for statistics).
    pub created: u64,
    /// RTTs folded.
    pub folded: u64,
}

impl Rtts {
    /// No tables below the starting level yet.
    pub fn new(start_level: i64) -> Self {
        Self {
            start: start_level,
            tables: BTreeMap::new(),
            created: 0,
            folded: 0,
        }
    }

    /// The RTT granule of the table at `level` covering `ipa`, if the host created one.
    pub fn get(&self, ipa: u64, level: i64) -> Option<u64> {
        self.tables.get(&(level, table_base(ipa, level))).copied()
    }

    /// Number of tables the host created (starting tables excluded).
    pub fn len(&self) -> usize {
        self.tables.len()
    }

    /// True when no table was created.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    /// Creates the tables from `from_level` down to `to_level` covering `ipa` that do not
    /// exist yet.
    pub fn create_levels<C: Conduit>(
        &mut self,
        rmi: &mut Rmi<'_, C>,
        pool: &mut GranulePool,
        rd: u64,
        ipa: u64,
        from_level: i64,
        to_level: i64,
    ) -> VmResult<()> {
        let from = from_level.max(self.start + 1);
        if to_level > 3 || from > to_level {
            return Err(VmError::Config("an RTT level outside 1..=3 is needed"));
        }
        for level in from..=to_level {
            let base = table_base(ipa, level);
            if self.tables.contains_key(&(level, base)) {
                continue;
            }
            let rtt = pool.alloc_delegated(rmi, 1, G, "an RTT")?;
            if let Err(e) = rmi.rtt_create(rd, rtt, base, level) {
                pool.free_delegated(rmi, rtt, 1)?;
                return Err(VmError::Rmi {
                    doing: "creating an RTT",
                    err: e,
                });
            }
            self.tables.insert((level, base), rtt);
            self.created += 1;
        }
        Ok(())
    }

    /// Runs `op` (an RMI command on `ipa` that walks the RTTs down to `leaf_level`) and, each
    /// time it fails with `ERROR_RTT` at a level above `leaf_level`, creates the missing tables and runs it again.
    pub fn with_tables<C: Conduit, T>(
        &mut self,
        rmi: &mut Rmi<'_, C>,
        pool: &mut GranulePool,
        rd: u64,
        (ipa, leaf_level): (u64, i64),
        doing: &'static str,
        mut op: impl FnMut(&mut Rmi<'_, C>) -> Result<T, crate::client::RmiError>,
    ) -> VmResult<T> {
        for _ in 0..4 {
            match op(rmi) {
                Ok(v) => return Ok(v),
                Err(e) => match e.rtt_level() {
                    Some(reached) if i64::from(reached) < leaf_level => {
                        self.create_levels(rmi, pool, rd, ipa, i64::from(reached) + 1, leaf_level)?
                    }
                    _ => return Err(VmError::Rmi { doing, err: e }),
                },
            }
        }
        Err(VmError::Config("the RMM kept asking for RTTs"))
    }

    /// Folds the table at `level` covering `ipa` into its parent entry (`RTT_FOLD`), returning
    /// its granule to the pool. False (and nothing changes) when the RMM refuses because the
    /// entries are not uniform.
    pub fn fold<C: Conduit>(
        &mut self,
        rmi: &mut Rmi<'_, C>,
        pool: &mut GranulePool,
        rd: u64,
        ipa: u64,
        level: i64,
    ) -> VmResult<bool> {
        let base = table_base(ipa, level);
        let Some(&rtt) = self.tables.get(&(level, base)) else {
            return Ok(false);
        };
        match rmi.rtt_fold(rd, base, level) {
            Ok(pa) if pa == rtt => {
                self.tables.remove(&(level, base));
                pool.free_delegated(rmi, rtt, 1)?;
                self.folded += 1;
                Ok(true)
            }
            Ok(_) => Err(VmError::Config(
                "RTT_FOLD returned another RTT than the host's",
            )),
            Err(e) if e.status() == Some(cca_abi::rmi::RmiStatus::ErrorRtt) => Ok(false),
            Err(e) => Err(VmError::Rmi {
                doing: "folding an RTT",
                err: e,
            }),
        }
    }

    /// Destroys every table, deepest level first, and frees their granules. The realm's data
    /// must be unmapped already.
    pub fn destroy_all<C: Conduit>(
        &mut self,
        rmi: &mut Rmi<'_, C>,
        pool: &mut GranulePool,
        rd: u64,
    ) -> VmResult<u64> {
        let mut destroyed = 0;
        for level in (self.start + 1..=3).rev() {
            let at: alloc::vec::Vec<(u64, u64)> = self
                .tables
                .range((level, 0)..=(level, u64::MAX))
                .map(|(&(_, ipa), &pa)| (ipa, pa))
                .collect();
            for (ipa, pa) in at {
                let got = rmi
                    .rtt_destroy(rd, ipa, level)
                    .map_err(VmError::rmi("destroying an RTT"))?;
                if got != pa {
                    return Err(VmError::Config(
                        "RTT_DESTROY returned another RTT than the host's",
                    ));
                }
                self.tables.remove(&(level, ipa));
                pool.free_delegated(rmi, pa, 1)?;
                destroyed += 1;
            }
        }
        Ok(destroyed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry() {
        assert_eq!(entry_size(3), 0x1000);
        assert_eq!(entry_size(2), 0x20_0000);
        assert_eq!(entry_size(1), 0x4000_0000);
        assert_eq!(table_span(3), 0x20_0000);
        assert_eq!(table_base(0x8123_4567, 3), 0x8120_0000);
        assert_eq!(table_base(0x8123_4567, 2), 0x8000_0000);
        assert_eq!(start_level(33), (1, 1));
        assert_eq!(start_level(40), (1, 2));
        assert_eq!(start_level(43), (1, 16));
        assert_eq!(start_level(44), (0, 1));
    }
}
