//! How calls reach the RMM: the [`Conduit`] trait and, on `aarch64`, the `Smc` conduit.

/// Registers of an SMC Calling Convention 1.2 call: x0..x17.
pub const NUM_REGS: usize = 18;

/// The register file of one call: `regs[0]` is x0 (the function identifier on the way in,
/// the status on the way out), `regs[n]` is xn.
pub type Regs = [u64; NUM_REGS];

/// A way to make SMCCC calls to the RMM.
///
/// SMCCC 1.2 passes arguments in x1..x17 and results in x0..x17; RSI uses up to x10 in
/// (`RSI_MEASUREMENT_EXTEND`) and x8 out (`RSI_MEASUREMENT_READ`).
pub trait Conduit {
    /// Makes one call: `regs[0]` holds the 32-bit function identifier (zero-extended),
    /// `regs[1..]` the arguments x1..x17. Returns x0..x17 as the callee left them.
    fn smc(&mut self, regs: Regs) -> Regs;

    /// Makes a call whose arguments name `shared`, memory of the caller that the callee
    /// reads or writes through its IPA (`RsiRealmConfig`, `RsiHostCall`, an attestation
    /// token granule).
    ///
    /// `shared` is exclusively borrowed for the duration of the call. A real conduit makes
    /// the same call as [`Conduit::smc`] (the RMM reaches the memory by the IPA in the
    /// arguments); a test double or a simulation can emulate the callee's accesses on it.
    fn smc_shared(&mut self, regs: Regs, shared: &mut [u8]) -> Regs {
        let _ = shared;
        self.smc(regs)
    }

    /// Returns the IPA of the caller's memory at address `addr`.
    ///
    /// The default is the identity: the realm maps its memory at VA = IPA.
    fn ipa_of(&self, addr: usize) -> u64 {
        addr as u64
    }
}

impl<C: Conduit + ?Sized> Conduit for &mut C {
    fn smc(&mut self, regs: Regs) -> Regs {
        (**self).smc(regs)
    }

    fn smc_shared(&mut self, regs: Regs, shared: &mut [u8]) -> Regs {
        (**self).smc_shared(regs, shared)
    }

    fn ipa_of(&self, addr: usize) -> u64 {
        (**self).ipa_of(addr)
    }
}

/// The `SMC #0` conduit of software running at Realm EL1 (plane 0), with VA = IPA.
///
/// Calls go through `smccc::smc64`, whose inline assembly passes x0..x17 in and out and is
/// a compiler memory barrier, so memory the RMM writes (named by an IPA among the
/// arguments) is read afresh after the call.
#[cfg(target_arch = "aarch64")]
#[derive(Clone, Copy, Debug, Default)]
pub struct Smc;

#[cfg(target_arch = "aarch64")]
impl Conduit for Smc {
    fn smc(&mut self, regs: Regs) -> Regs {
        let mut args = [0u64; NUM_REGS - 1];
        args.copy_from_slice(&regs[1..]);
        smccc::smc64(regs[0] as u32, args)
    }
}
