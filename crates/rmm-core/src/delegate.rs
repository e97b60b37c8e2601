//! `GRANULE_RANGE_DELEGATE` and `GRANULE_RANGE_UNDELEGATE`: moving granules between the host
//! and the Realm world.
//!
//! Unlike TF-RMM, which moves exactly one granule per call, these commands process up to
//! [`MAX_GRANULES_PER_CALL`] granules and return x1 = the first address not processed; the
//! host calls again from there. Input checks and the per-granule rules follow TF-RMM:
//!
//! * base and top 4 KiB aligned and top >= base + 4 KiB, else ERROR_INPUT with x1 = base;
//! * a failure on the first granule (untracked, wrong state, EL3 refusal) is ERROR_INPUT with
//!   x1 = base;
//! * a failure on a later granule ends the call with SUCCESS and x1 = that granule, so the
//!   host's next call reports the error.
//!
//! No granule lock is held across an EL3 call: the granule goes to a transient state under
//! its lock, is unlocked, EL3 is called, and the lock is taken again to set the final state.
//!
//! Both directions zero the granule through the Realm PAS, so a DELEGATED granule holds only
//! zeroes whether it came from the host (host data never reaches a realm object) or is on its
//! way back (realm data never reaches the host). TF-RMM zeroes only on undelegate; zeroing
//! on delegate too costs one 4 KiB clear per granule and makes the invariant unconditional.

use cca_abi::rmi::RmiStatus;
use cca_abi::GRANULE_SIZE;

use crate::dispatch::Regs;
use crate::error::{Reason, RmiError};
use crate::granule::{Granule, GranuleState};
use crate::pa::Pa;
use crate::platform::Platform;
use crate::rmm::Rmm;

/// The most granules one range delegate or undelegate call processes: 512 (2 MiB), the same
/// bound TF-RMM uses for its other range commands (one leaf RTT). Each granule costs one EL3
/// call and one 4 KiB clear.
pub const MAX_GRANULES_PER_CALL: u64 = 512;

/// Locks `g` (which this CPU moved to the transient state `from`) and sets state `to`.
///
/// # Panics
///
/// If the granule is not in `from`: only the CPU that set a transient state may leave it, so
/// anything else is an RMM bug.
fn finish_transition(g: Granule<'_>, from: GranuleState, to: GranuleState) {
    // Nobody else may change a transient granule, so the descriptor is `from`, unlocked,
    // unless another CPU holds the lock for a moment to look at it.
    if g.try_finish_transient(from, to) {
        return;
    }
    let mut l = g.lock();
    assert!(
        l.is_in(from),
        "granule {} left state {from} behind this CPU's back (now {})",
        g.pa(),
        l.state()
    );
    l.set_state(to);
}

impl<'a, P: Platform> Rmm<'a, P> {
    /// `GRANULE_RANGE_DELEGATE(base, top)`.
    pub(crate) fn cmd_range_delegate(&self, regs: &Regs, out: &mut Regs) -> Result<(), RmiError> {
        self.range_op(regs, out, Self::delegate_granule)
    }

    /// `GRANULE_RANGE_UNDELEGATE(base, top)`.
    pub(crate) fn cmd_range_undelegate(&self, regs: &Regs, out: &mut Regs) -> Result<(), RmiError> {
        self.range_op(regs, out, Self::undelegate_granule)
    }

    /// The loop of both range commands: `op` on each granule of `[base, top)`, at most
    /// [`MAX_GRANULES_PER_CALL`], x1 = where it stopped. `op` is generic, not a function
    /// pointer, so that each command's granule step is inlined into its loop.
    fn range_op<F>(&self, regs: &Regs, out: &mut Regs, op: F) -> Result<(), RmiError>
    where
        F: Fn(&Self, Pa) -> Result<(), RmiError>,
    {
        let (base, top) = (regs[1], regs[2]);
        out[1] = base;
        if !cca_abi::granule_aligned(base) {
            return Err(RmiError::input("base is not 4 KiB aligned"));
        }
        if !cca_abi::granule_aligned(top) {
            return Err(RmiError::input("top is not 4 KiB aligned"));
        }
        if base
            .checked_add(GRANULE_SIZE)
            .is_none_or(|min_top| top < min_top)
        {
            return Err(RmiError::input("top must be at least base + 4 KiB"));
        }
        let mut pa = Pa::new(base);
        for n in 0..MAX_GRANULES_PER_CALL {
            if pa.get() >= top {
                break;
            }
            if let Err(e) = op(self, pa) {
                if n == 0 {
                    return Err(e);
                }
                log::trace!("range stopped at {pa} after {n} granules: {e}");
                break;
            }
            match pa.next_granule() {
                Some(next) => pa = next,
                // A tracked granule ends at or below a bank top, which fits in a u64.
                None => break,
            }
        }
        out[1] = pa.get();
        Ok(())
    }

    /// Moves a tracked granule from `from` to the transient state `transient` (one
    /// compare-and-swap when nobody holds its lock, else under its lock) and releases the
    /// lock, so that no lock is held while EL3 is called; the caller finishes the transition
    /// with `finish_transition`.
    fn claim(
        &self,
        pa: Pa,
        from: GranuleState,
        transient: GranuleState,
    ) -> Result<Granule<'_>, RmiError> {
        let input = |reason| RmiError::new(RmiStatus::ErrorInput, reason);
        let g = self
            .granules
            .granule(pa)
            .ok_or_else(|| input(Reason::Untracked(pa)))?;
        if g.try_start_transient(from, transient) {
            return Ok(g);
        }
        let mut l = g
            .lock_if(from)
            .map_err(|e| input(Reason::from_lock(pa, from, e)))?;
        l.set_state(transient);
        Ok(g)
    }

    /// Delegates one granule: NS -> DELEGATING -> (EL3) -> zeroed -> DELEGATED, or back to NS
    /// if EL3 refuses (ERROR_INPUT, as TF-RMM: EL3 may have given the granule to another
    /// world).
    fn delegate_granule(&self, pa: Pa) -> Result<(), RmiError> {
        let g = self.claim(pa, GranuleState::Ns, GranuleState::Delegating)?;
        if let Err(error) = self.platform.gtsi_delegate(pa) {
            finish_transition(g, GranuleState::Delegating, GranuleState::Ns);
            return Err(RmiError::new(
                RmiStatus::ErrorInput,
                Reason::El3Refused {
                    call: "GTSI_DELEGATE",
                    pa,
                    error,
                },
            ));
        }
        // The granule is Realm PAS and still holds whatever the host left in it, as in
        // TF-RMM: a DELEGATED granule's contents mean nothing. Every command that takes one
        // writes or zeroes all of it before anything reads it (RTT_CREATE and REALM_CREATE
        // fill whole tables, the RD, the REC and the auxiliary granules it uses are zeroed, data granules are
        // copied into or zeroed), and undelegation scrubs it before the host sees it again.
        finish_transition(g, GranuleState::Delegating, GranuleState::Delegated);
        Ok(())
    }

    /// Undelegates one granule: DELEGATED -> UNDELEGATING -> zeroed -> (EL3) -> NS.
    ///
    /// # Panics
    ///
    /// If EL3 refuses: the RMM tracks the granule as Realm-owned, so EL3 disagreeing means the
    /// GPT and the RMM's tracking have diverged, and the firmware must halt.
    fn undelegate_granule(&self, pa: Pa) -> Result<(), RmiError> {
        let g = self.claim(pa, GranuleState::Delegated, GranuleState::Undelegating)?;
        // Scrub before the host can see the granule again.
        self.platform.realm_zero(pa);
        if let Err(e) = self.platform.gtsi_undelegate(pa) {
            panic!("EL3 refused GTSI_UNDELEGATE of delegated granule {pa} ({e:?}): GPT and RMM granule tracking disagree");
        }
        finish_transition(g, GranuleState::Undelegating, GranuleState::Ns);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::sim::{granule_storage, Pas, SimPlatform};
    use crate::test_util::*;
    use cca_abi::el3::El3Error;
    use cca_abi::rmi::RmiFid;
    use std::boxed::Box;
    use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::vec::Vec;

    const INPUT: u64 = RmiStatus::ErrorInput as u64;
    const DELEGATE: RmiFid = RmiFid::GRANULE_RANGE_DELEGATE;
    const UNDELEGATE: RmiFid = RmiFid::GRANULE_RANGE_UNDELEGATE;

    fn state(f: &crate::Rmm<'_, &SimPlatform>, a: u64) -> GranuleState {
        f.granules().granule(pa(a)).unwrap().state_unlocked()
    }

    #[test]
    fn delegate_one_granule() {
        let f = Fixture::new();
        let rmm = f.active_rmm();
        assert_eq!(call(&rmm, DELEGATE, &[b0(1), b0(2)])[..4], [0, b0(2), 0, 0]);
        assert_eq!(state(&rmm, b0(1)), GranuleState::Delegated);
        assert_eq!(f.sim.pas(pa(b0(1))), Pas::Realm);
        assert_eq!(state(&rmm, b0(0)), GranuleState::Ns);
        assert_eq!(state(&rmm, b0(2)), GranuleState::Ns);
        assert_eq!(f.sim.delegate_calls(), 1);
    }

    #[test]
    fn delegate_whole_bank_in_one_call() {
        let f = Fixture::new();
        let rmm = f.active_rmm();
        let top = b0(B0_GRANULES);
        assert_eq!(call(&rmm, DELEGATE, &[B0, top])[..2], [0, top]);
        assert!((0..B0_GRANULES).all(|i| state(&rmm, b0(i)) == GranuleState::Delegated));
    }

    fn rejects(fid: RmiFid, base: u64, top: u64) {
        let f = Fixture::new();
        let rmm = f.active_rmm();
        let out = call(&rmm, fid, &[base, top]);
        assert_eq!(
            out[..4],
            [INPUT, base, 0, 0],
            "{}({base:#x}, {top:#x})",
            fid.name()
        );
        assert_eq!(f.sim.delegate_calls() + f.sim.undelegate_calls(), 0);
    }

    #[test]
    fn delegate_rejects_unaligned_base() {
        rejects(DELEGATE, B0 + 0x10, B0 + 2 * G);
    }

    #[test]
    fn delegate_rejects_unaligned_top() {
        rejects(DELEGATE, B0, B0 + G + 1);
    }

    #[test]
    fn delegate_rejects_top_below_base_plus_granule() {
        rejects(DELEGATE, B0 + G, B0 + G);
        rejects(DELEGATE, B0 + G, B0);
        rejects(DELEGATE, B0, 0);
    }

    #[test]
    fn delegate_rejects_base_plus_granule_overflow() {
        rejects(DELEGATE, 0xFFFF_FFFF_FFFF_F000, 0xFFFF_FFFF_FFFF_F000);
    }

    #[test]
    fn delegate_rejects_untracked_first_granule() {
        rejects(DELEGATE, B0 - G, B0 + G);
        rejects(DELEGATE, 0xFFFF_FFFF_FFFF_E000, 0xFFFF_FFFF_FFFF_F000);
    }

    #[test]
    fn delegate_rejects_delegated_first_granule() {
        let f = Fixture::new();
        let rmm = f.active_rmm();
        call(&rmm, DELEGATE, &[b0(3), b0(4)]);
        let calls = f.sim.delegate_calls();
        assert_eq!(call(&rmm, DELEGATE, &[b0(3), b0(6)])[..2], [INPUT, b0(3)]);
        assert_eq!(
            f.sim.delegate_calls(),
            calls,
            "no EL3 call for a granule in the wrong state"
        );
        assert_eq!(
            state(&rmm, b0(4)),
            GranuleState::Ns,
            "nothing after the first granule was touched"
        );
    }

    #[test]
    fn delegate_rejects_granule_in_realm_state() {
        let f = Fixture::new();
        let rmm = f.active_rmm();
        rmm.granules()
            .granule(pa(b0(2)))
            .unwrap()
            .lock()
            .set_state(GranuleState::Rtt);
        assert_eq!(call(&rmm, DELEGATE, &[b0(2), b0(3)])[..2], [INPUT, b0(2)]);
        assert!(take_debug_logs()
            .last()
            .unwrap()
            .ends_with("granule 0x80002000 is RTT, expected NS"));
    }

    #[test]
    fn delegate_stops_at_later_untracked_granule() {
        let f = Fixture::new();
        let rmm = f.active_rmm();
        let end = b0(B0_GRANULES);
        assert_eq!(call(&rmm, DELEGATE, &[b0(10), end + 4 * G])[..2], [0, end]);
        assert_eq!(call(&rmm, DELEGATE, &[end, end + 4 * G])[..2], [INPUT, end]);
    }

    #[test]
    fn delegate_stops_at_later_granule_in_wrong_state() {
        let f = Fixture::new();
        let rmm = f.active_rmm();
        call(&rmm, DELEGATE, &[b0(5), b0(6)]);
        assert_eq!(call(&rmm, DELEGATE, &[b0(2), b0(8)])[..2], [0, b0(5)]);
        assert!(
            take_debug_logs().is_empty(),
            "a partial success is not a rejection"
        );
        // The host's next call starts at x1 and sees the error.
        assert_eq!(call(&rmm, DELEGATE, &[b0(5), b0(8)])[..2], [INPUT, b0(5)]);
        assert_eq!(call(&rmm, DELEGATE, &[b0(6), b0(8)])[..2], [0, b0(8)]);
    }

    #[test]
    fn delegate_is_bounded_per_call() {
        let f = Fixture::new();
        let rmm = f.active_rmm();
        let top = b1(B1_GRANULES);
        let out = call(&rmm, DELEGATE, &[B1, top]);
        assert_eq!(out[..2], [0, B1 + MAX_GRANULES_PER_CALL * G]);
        assert_eq!(f.sim.delegate_calls() as u64, MAX_GRANULES_PER_CALL);
        assert_eq!(state(&rmm, out[1]), GranuleState::Ns);
        assert_eq!(call(&rmm, DELEGATE, &[out[1], top])[..2], [0, top]);
        assert!((0..B1_GRANULES).all(|i| state(&rmm, b1(i)) == GranuleState::Delegated));
        // An enormous top is bounded too (and stops at the end of the bank here).
        let out = call(&rmm, UNDELEGATE, &[B1, 0xFFFF_FFFF_FFFF_F000]);
        assert_eq!(out[..2], [0, B1 + MAX_GRANULES_PER_CALL * G]);
    }

    #[test]
    fn delegate_el3_refusal_on_first_granule_is_error_input() {
        let f = Fixture::new();
        let rmm = f.active_rmm();
        f.sim.refuse_delegate(pa(b0(7)), El3Error::Again);
        assert_eq!(call(&rmm, DELEGATE, &[b0(7), b0(9)])[..2], [INPUT, b0(7)]);
        assert_eq!(
            state(&rmm, b0(7)),
            GranuleState::Ns,
            "a refused granule goes back to NS"
        );
        assert_eq!(f.sim.pas(pa(b0(7))), Pas::NonSecure);
        assert!(take_debug_logs()
            .last()
            .unwrap()
            .ends_with("EL3 refused GTSI_DELEGATE of granule 0x80007000 (Again)"));
    }

    #[test]
    fn delegate_el3_refusal_on_secure_granule() {
        let f = Fixture::new();
        let rmm = f.active_rmm();
        f.sim.set_pas(pa(b0(7)), Pas::Secure);
        assert_eq!(call(&rmm, DELEGATE, &[b0(7), b0(8)])[..2], [INPUT, b0(7)]);
        assert_eq!(state(&rmm, b0(7)), GranuleState::Ns);
        assert_eq!(f.sim.pas(pa(b0(7))), Pas::Secure);
    }

    #[test]
    fn delegate_el3_refusal_on_later_granule_stops_with_success() {
        let f = Fixture::new();
        let rmm = f.active_rmm();
        f.sim.refuse_delegate(pa(b0(9)), El3Error::BadPas);
        assert_eq!(call(&rmm, DELEGATE, &[b0(7), b0(12)])[..2], [0, b0(9)]);
        assert_eq!(state(&rmm, b0(8)), GranuleState::Delegated);
        assert_eq!(state(&rmm, b0(9)), GranuleState::Ns);
        assert_eq!(call(&rmm, DELEGATE, &[b0(9), b0(12)])[..2], [INPUT, b0(9)]);
    }

    #[test]
    fn host_data_in_a_delegated_granule_stays_hidden_and_undelegation_scrubs_it() {
        let f = Fixture::new();
        let rmm = f.active_rmm();
        f.sim.host_write(pa(b0(1)), &[0x5a; 4096]).unwrap();
        assert_eq!(call(&rmm, DELEGATE, &[b0(1), b0(2)])[0], 0);
        // As TF-RMM: delegation does not zero; whatever takes the granule initialises it.
        assert!(f.sim.holds_no_realm_data(pa(b0(1))));
        assert!(
            f.sim.host_read(pa(b0(1)), &mut [0u8; 8]).is_err(),
            "the host can read a delegated granule"
        );
        assert_eq!(call(&rmm, UNDELEGATE, &[b0(1), b0(2)])[0], 0);
        let mut back = [0xffu8; 4096];
        f.sim.host_read(pa(b0(1)), &mut back).unwrap();
        assert!(back.iter().all(|&b| b == 0), "undelegation did not scrub");
    }

    #[test]
    fn undelegate_one_granule() {
        let f = Fixture::new();
        let rmm = f.active_rmm();
        call(&rmm, DELEGATE, &[b0(0), b0(4)]);
        assert_eq!(
            call(&rmm, UNDELEGATE, &[b0(1), b0(2)])[..4],
            [0, b0(2), 0, 0]
        );
        assert_eq!(state(&rmm, b0(1)), GranuleState::Ns);
        assert_eq!(f.sim.pas(pa(b0(1))), Pas::NonSecure);
        assert_eq!(state(&rmm, b0(2)), GranuleState::Delegated);
    }

    #[test]
    fn undelegate_scrubs_realm_data() {
        let f = Fixture::new();
        let rmm = f.active_rmm();
        call(&rmm, DELEGATE, &[b0(3), b0(4)]);
        // Realm data, written through the Realm PAS as a realm object would be.
        crate::PhysMem::realm_write(&f.sim, pa(b0(3)), &[0xc3; 4096]);
        assert_eq!(call(&rmm, UNDELEGATE, &[b0(3), b0(4)])[0], 0);
        let mut buf = [0xffu8; 4096];
        f.sim.host_read(pa(b0(3)), &mut buf).unwrap();
        assert!(buf.iter().all(|&b| b == 0), "realm data reached the host");
    }

    #[test]
    fn undelegate_rejects_unaligned_base() {
        rejects(UNDELEGATE, B0 + 0x10, B0 + 2 * G);
    }

    #[test]
    fn undelegate_rejects_unaligned_top() {
        rejects(UNDELEGATE, B0, B0 + G + 1);
    }

    #[test]
    fn undelegate_rejects_top_below_base_plus_granule() {
        rejects(UNDELEGATE, B0, B0);
        rejects(UNDELEGATE, B0 + G, B0);
    }

    #[test]
    fn undelegate_rejects_base_plus_granule_overflow() {
        rejects(UNDELEGATE, 0xFFFF_FFFF_FFFF_F000, 0);
    }

    #[test]
    fn undelegate_rejects_untracked_first_granule() {
        rejects(UNDELEGATE, B1 - G, B1 + G);
    }

    #[test]
    fn undelegate_rejects_ns_first_granule() {
        rejects(UNDELEGATE, B0, B0 + G);
        let f = Fixture::new();
        let rmm = f.active_rmm();
        call(&rmm, UNDELEGATE, &[B0, B0 + G]);
        assert!(take_debug_logs()
            .last()
            .unwrap()
            .ends_with("granule 0x80000000 is NS, expected DELEGATED"));
    }

    #[test]
    fn undelegate_rejects_granule_in_realm_state() {
        let f = Fixture::new();
        let rmm = f.active_rmm();
        call(&rmm, DELEGATE, &[b0(2), b0(3)]);
        rmm.granules()
            .granule(pa(b0(2)))
            .unwrap()
            .lock()
            .set_state(GranuleState::Rd);
        assert_eq!(call(&rmm, UNDELEGATE, &[b0(2), b0(3)])[..2], [INPUT, b0(2)]);
        assert_eq!(
            f.sim.pas(pa(b0(2))),
            Pas::Realm,
            "an RD must stay in the Realm PAS"
        );
    }

    #[test]
    fn undelegate_stops_at_later_ns_granule() {
        let f = Fixture::new();
        let rmm = f.active_rmm();
        call(&rmm, DELEGATE, &[b0(0), b0(3)]);
        assert_eq!(call(&rmm, UNDELEGATE, &[b0(0), b0(6)])[..2], [0, b0(3)]);
        assert_eq!(call(&rmm, UNDELEGATE, &[b0(3), b0(6)])[..2], [INPUT, b0(3)]);
    }

    #[test]
    fn undelegate_stops_at_later_untracked_granule() {
        let f = Fixture::new();
        let rmm = f.active_rmm();
        let end = b0(B0_GRANULES);
        call(&rmm, DELEGATE, &[b0(14), end]);
        assert_eq!(call(&rmm, UNDELEGATE, &[b0(14), B1])[..2], [0, end]);
    }

    #[test]
    fn undelegate_is_bounded_per_call() {
        let f = Fixture::new();
        let rmm = f.active_rmm();
        let top = b1(B1_GRANULES);
        call(&rmm, DELEGATE, &[B1, top]);
        call(&rmm, DELEGATE, &[B1 + MAX_GRANULES_PER_CALL * G, top]);
        let out = call(&rmm, UNDELEGATE, &[B1, top]);
        assert_eq!(out[..2], [0, B1 + MAX_GRANULES_PER_CALL * G]);
        assert_eq!(f.sim.undelegate_calls() as u64, MAX_GRANULES_PER_CALL);
        assert_eq!(call(&rmm, UNDELEGATE, &[out[1], top])[..2], [0, top]);
    }

    #[test]
    #[should_panic(expected = "EL3 refused GTSI_UNDELEGATE of delegated granule 0x80002000")]
    fn undelegate_el3_failure_panics() {
        let f = Fixture::new();
        let rmm = f.active_rmm();
        call(&rmm, DELEGATE, &[b0(2), b0(3)]);
        f.sim.fail_undelegate(pa(b0(2)), El3Error::BadPas);
        call(&rmm, UNDELEGATE, &[b0(2), b0(3)]);
    }

    #[test]
    fn no_granule_lock_is_held_across_el3_calls() {
        let banks = banks();
        let storage: Arc<Vec<AtomicU16>> = Arc::new(granule_storage(&banks));
        let sim = SimPlatform::new(&banks);
        let seen = Arc::new(AtomicUsize::new(0));
        let (s, n) = (Arc::clone(&storage), Arc::clone(&seen));
        let base_index = |a: u64| ((a - B0) / G) as usize;
        sim.set_el3_hook(Box::new(move |call, at| {
            for (i, e) in s.iter().enumerate() {
                assert_eq!(
                    e.load(Ordering::SeqCst) & 0x8000,
                    0,
                    "granule {i} locked during {call}({at})"
                );
            }
            // The granule EL3 works on is in its transient state, so other CPUs keep away.
            let st = (s[base_index(at.get())].load(Ordering::SeqCst) >> 10) & 0x1f;
            let expected = if call == "GTSI_DELEGATE" {
                GranuleState::Delegating
            } else {
                GranuleState::Undelegating
            };
            assert_eq!(st, expected as u16, "{call}({at})");
            n.fetch_add(1, Ordering::SeqCst);
        }));
        let sro = crate::SroStorage::new();
        let rmm = crate::Rmm::new(
            &sim,
            crate::GranuleTable::new(&banks, &storage).unwrap(),
            &sro,
        )
        .unwrap();
        assert_eq!(call(&rmm, RmiFid::RMM_ACTIVATE, &[])[0], 0);
        sim.refuse_delegate(pa(b0(6)), El3Error::Again);
        assert_eq!(call(&rmm, DELEGATE, &[B0, b0(8)])[..2], [0, b0(6)]);
        assert_eq!(call(&rmm, UNDELEGATE, &[B0, b0(8)])[..2], [0, b0(6)]);
        // Six delegations, the refused one, six undelegations.
        assert_eq!(seen.load(Ordering::SeqCst), 6 + 1 + 6);
    }
}
