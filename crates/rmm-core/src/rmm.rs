//! The RMM core object: the platform, the granule table and the global state.

use core::fmt;
use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use cca_abi::el3::BootError;
use cca_abi::rmi::RmmState;

use crate::features::{feature_registers, CpuFeatures, NUM_FEATURE_REGISTERS};
use crate::granule::{GranuleTable, TableError};
use crate::idregs::IdRegs;
use crate::pa::Pa;
use crate::platform::Platform;
use crate::realm::{new_vmid_bitmap, VMID_WORDS};
use crate::sro::SroStorage;

const STATE_INIT: u8 = 0;
const STATE_ACTIVE: u8 = 1;

/// Why the core could not be built at boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitError {
    /// The DRAM bank list or the descriptor storage was rejected.
    Table(TableError),
    /// The platform reported impossible CPU features.
    CpuFeatures(&'static str),
    /// A DRAM bank ends above the CPU's PA width.
    DramBeyondPaWidth {
        /// End of the highest bank.
        top: Pa,
        /// The PA width in bits.
        pa_width: u8,
    },
}

impl InitError {
    /// The status to report to EL3 in `RMM_BOOT_COMPLETE`.
    pub fn boot_error(&self) -> BootError {
        match self {
            Self::Table(TableError::StorageTooSmall { .. }) => BootError::NoMemory,
            Self::Table(_) | Self::DramBeyondPaWidth { .. } => BootError::ManifestDataError,
            Self::CpuFeatures(_) => BootError::Unknown,
        }
    }
}

impl From<TableError> for InitError {
    fn from(e: TableError) -> Self {
        Self::Table(e)
    }
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Table(e) => e.fmt(f),
            Self::CpuFeatures(s) => write!(f, "invalid CPU features: {s}"),
            Self::DramBeyondPaWidth { top, pa_width } => {
                write!(f, "DRAM ends at {top}, beyond the {pa_width}-bit PA space")
            }
        }
    }
}

/// The hardware-independent RMM.
///
/// One instance serves every CPU: [`Rmm::handle_rmi`] takes `&self` and may run on several
/// CPUs at once. Commands synchronise only through granule locks and atomics; there is no
/// global lock and no global mutable state outside this object.
pub struct Rmm<'a, P> {
    pub(crate) platform: P,
    pub(crate) granules: GranuleTable<'a>,
    pub(crate) cpu: CpuFeatures,
    pub(crate) features: [u64; NUM_FEATURE_REGISTERS],
    /// The CPU's ID registers, read at boot.
    pub(crate) id_regs: IdRegs,
    state: AtomicU8,
    /// The VMID bitmap.
    pub(crate) vmids: [AtomicU64; VMID_WORDS],
    /// The SRO context pool.
    pub(crate) sro: &'a SroStorage,
}

impl<'a, P: Platform> Rmm<'a, P> {
    /// Builds the core at cold boot, in the `INIT` state (before `RMM_ACTIVATE`).
    ///
    /// `granules` is the table built from the boot manifest's DRAM banks, `sro` the memory
    /// for stateful operations. The CPU features are read from the platform once, here.
    pub fn new(
        platform: P,
        granules: GranuleTable<'a>,
        sro: &'a SroStorage,
    ) -> Result<Self, InitError> {
        let cpu = platform.cpu_features();
        let id_regs = platform.id_regs();
        cpu.validate().map_err(InitError::CpuFeatures)?;
        let top = granules.top();
        // The highest tracked byte is top - 1; it must be a valid PA.
        if top.get() - 1 > cpu.max_pa() {
            return Err(InitError::DramBeyondPaWidth {
                top,
                pa_width: cpu.pa_width,
            });
        }
        Ok(Self {
            platform,
            granules,
            cpu,
            features: feature_registers(&cpu),
            id_regs,
            state: AtomicU8::new(STATE_INIT),
            vmids: new_vmid_bitmap(),
            sro,
        })
    }
}

impl<'a, P> Rmm<'a, P> {
    /// Returns the global RMM state.
    pub fn state(&self) -> RmmState {
        match self.state.load(Ordering::Acquire) {
            STATE_INIT => RmmState::Init,
            _ => RmmState::Active,
        }
    }

    /// Moves the RMM from `INIT` to `ACTIVE`; returns false if it was already active.
    pub(crate) fn activate(&self) -> bool {
        self.state
            .compare_exchange(
                STATE_INIT,
                STATE_ACTIVE,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// Returns the granule table.
    pub fn granules(&self) -> &GranuleTable<'a> {
        &self.granules
    }

    /// Returns the platform.
    pub fn platform(&self) -> &P {
        &self.platform
    }

    /// Returns the CPU features read at boot.
    pub fn cpu_features(&self) -> &CpuFeatures {
        &self.cpu
    }

    /// Returns the CPU's ID registers read at boot.
    pub fn id_regs(&self) -> &IdRegs {
        &self.id_regs
    }
}

impl<P> fmt::Debug for Rmm<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rmm")
            .field("state", &self.state())
            .field("granules", &self.granules.len())
            .field("cpu", &self.cpu)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{granule_storage, SimPlatform, SIM_CPU};
    use crate::test_util::*;
    use cca_abi::el3::MemoryBank;

    #[test]
    fn new_starts_in_init_state() {
        let f = Fixture::new();
        let rmm = f.rmm();
        assert_eq!(rmm.state(), RmmState::Init);
        assert_eq!(rmm.granules().len() as u64, B0_GRANULES + B1_GRANULES);
        assert_eq!(*rmm.cpu_features(), SIM_CPU);
    }

    #[test]
    fn new_rejects_dram_beyond_pa_width() {
        let banks = [MemoryBank {
            base: (1 << 40) - G,
            size: 2 * G,
        }];
        let cpu = CpuFeatures {
            pa_width: 40,
            ..SIM_CPU
        };
        let sim = SimPlatform::with_cpu(&banks, cpu);
        let storage = granule_storage(&banks);
        let e = Rmm::new(
            &sim,
            GranuleTable::new(&banks, &storage).unwrap(),
            &crate::SroStorage::new(),
        )
        .unwrap_err();
        assert_eq!(
            e,
            InitError::DramBeyondPaWidth {
                top: Pa::new((1 << 40) + G),
                pa_width: 40
            }
        );
        assert_eq!(e.boot_error(), BootError::ManifestDataError);
        // Ending exactly at the limit is fine.
        let banks = [MemoryBank {
            base: (1 << 40) - G,
            size: G,
        }];
        let storage = granule_storage(&banks);
        assert!(Rmm::new(
            &sim,
            GranuleTable::new(&banks, &storage).unwrap(),
            &crate::SroStorage::new()
        )
        .is_ok());
    }

    #[test]
    fn new_rejects_invalid_cpu_features() {
        let banks = banks();
        let sim = SimPlatform::with_cpu(
            &banks,
            CpuFeatures {
                pa_width: 47,
                ..SIM_CPU
            },
        );
        let storage = granule_storage(&banks);
        let e = Rmm::new(
            &sim,
            GranuleTable::new(&banks, &storage).unwrap(),
            &crate::SroStorage::new(),
        )
        .unwrap_err();
        assert!(matches!(e, InitError::CpuFeatures(_)));
        assert_eq!(e.boot_error(), BootError::Unknown);
    }

    #[test]
    fn table_errors_map_to_boot_errors() {
        let e = InitError::from(TableError::StorageTooSmall {
            needed: 2,
            provided: 1,
        });
        assert_eq!(e.boot_error(), BootError::NoMemory);
        assert_eq!(
            InitError::from(TableError::NoBanks).boot_error(),
            BootError::ManifestDataError
        );
    }
}
