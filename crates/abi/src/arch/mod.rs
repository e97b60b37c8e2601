//! Architectural register fields that more than one world decodes: exception syndromes
//! (`ESR_ELx`, `HPFAR_EL2`), the GICv3 virtual CPU interface (`ICH_*_EL2`), `ICC_SGI1R_EL1`
//! and `MPIDR_EL1` affinities. Every decoder lives here once; the RMM, the host and the tools
//! use these functions instead of shifting bits themselves.

pub mod esr;
pub mod ich;
pub mod mpidr;
pub mod sgi;
