//! `GRANULE_TRACKING_GET` and `GPT_L1_CREATE`: what the RMM tracks, and the GPT stub.

use cca_abi::rmi::{MemCategory, RmiStatus, TrackingState, TRACKING_REGION_BYTES};
use cca_abi::GRANULE_SIZE;

use crate::dispatch::Regs;
use crate::error::{Reason, RmiError};
use crate::pa::Pa;
use crate::platform::Platform;
use crate::rmm::Rmm;

impl<'a, P: Platform> Rmm<'a, P> {
    /// `GRANULE_TRACKING_GET(base, top)`, as TF-RMM: both inside the PA space, base below
    /// top by at least a granule, both aligned. Then x1 = CONVENTIONAL, x2 = FINE if `base`
    /// is tracked DRAM, NONE otherwise, and x3 = top (the whole range is answered at once;
    /// like TF-RMM, only `base` is looked up).
    pub(crate) fn cmd_tracking_get(&self, regs: &Regs, out: &mut Regs) -> Result<(), RmiError> {
        let (base, top) = (regs[1], regs[2]);
        let max_pa = self.cpu.max_pa();
        if base > max_pa || top > max_pa {
            return Err(RmiError::input("the range lies beyond the PA width"));
        }
        if base > top || top - base < GRANULE_SIZE {
            return Err(RmiError::input("top must be at least base + 4 KiB"));
        }
        if !cca_abi::granule_aligned(base) || !cca_abi::granule_aligned(top) {
            return Err(RmiError::input("base and top must be 4 KiB aligned"));
        }
        let state = if self.granules.is_tracked(Pa::new(base)) {
            TrackingState::Fine
        } else {
            TrackingState::None
        };
        out[1] = MemCategory::Conventional as u64;
        out[2] = state as u64;
        out[3] = top;
        Ok(())
    }

    /// `GPT_L1_CREATE(addr)`: `addr` must be aligned to a level 0 GPT entry (1 GiB); then
    /// ERROR_GPT, because EL3 builds every level 1 table statically at boot.
    pub(crate) fn cmd_gpt_l1_create(&self, regs: &Regs, _out: &mut Regs) -> Result<(), RmiError> {
        let pa = Pa::new(regs[1]);
        if !pa.is_aligned_to(TRACKING_REGION_BYTES) {
            return Err(RmiError::new(
                RmiStatus::ErrorInput,
                Reason::AtAddr("the address is not 1 GiB aligned", pa),
            ));
        }
        Err(RmiError::new(
            RmiStatus::ErrorGpt,
            Reason::Text("EL3 builds static level 1 GPTs; there is nothing to create"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::*;
    use cca_abi::rmi::{RmiFid, RmiStatus};

    const INPUT: u64 = RmiStatus::ErrorInput as u64;
    const MAX_PA: u64 = (1 << 48) - 1;

    #[test]
    fn tracking_get_reports_fine_for_dram() {
        let f = Fixture::new();
        let rmm = f.rmm();
        assert_eq!(
            call(&rmm, RmiFid::GRANULE_TRACKING_GET, &[B0, B0 + G])[..4],
            [0, 0, 2, B0 + G]
        );
        // Only base is looked up; top is echoed.
        assert_eq!(
            call(&rmm, RmiFid::GRANULE_TRACKING_GET, &[b1(599), 1 << 40])[..4],
            [0, 0, 2, 1 << 40]
        );
    }

    #[test]
    fn tracking_get_reports_none_outside_dram() {
        let f = Fixture::new();
        let rmm = f.active_rmm();
        assert_eq!(
            call(&rmm, RmiFid::GRANULE_TRACKING_GET, &[G, 2 * G])[..4],
            [0, 0, 1, 2 * G]
        );
        let end = b0(B0_GRANULES);
        assert_eq!(
            call(&rmm, RmiFid::GRANULE_TRACKING_GET, &[end, B1 + G])[..4],
            [0, 0, 1, B1 + G]
        );
    }

    #[test]
    fn tracking_get_rejects_base_beyond_pa_width() {
        let f = Fixture::new();
        let out = call(
            &f.rmm(),
            RmiFid::GRANULE_TRACKING_GET,
            &[1 << 48, (1 << 48) + G],
        );
        assert_eq!(out[..4], [INPUT, 0, 0, 0]);
    }

    #[test]
    fn tracking_get_rejects_top_beyond_pa_width() {
        let f = Fixture::new();
        assert_eq!(
            call(&f.rmm(), RmiFid::GRANULE_TRACKING_GET, &[B0, 1 << 48])[0],
            INPUT
        );
        assert_eq!(
            call(&f.rmm(), RmiFid::GRANULE_TRACKING_GET, &[B0, u64::MAX])[0],
            INPUT
        );
        // The last granule below the PA limit can be named.
        assert_eq!(
            call(
                &f.rmm(),
                RmiFid::GRANULE_TRACKING_GET,
                &[MAX_PA + 1 - 2 * G, MAX_PA + 1 - G]
            )[0],
            0
        );
    }

    #[test]
    fn tracking_get_rejects_base_above_top() {
        let f = Fixture::new();
        assert_eq!(
            call(&f.rmm(), RmiFid::GRANULE_TRACKING_GET, &[B0 + G, B0])[0],
            INPUT
        );
    }

    #[test]
    fn tracking_get_rejects_range_smaller_than_a_granule() {
        let f = Fixture::new();
        assert_eq!(
            call(&f.rmm(), RmiFid::GRANULE_TRACKING_GET, &[B0, B0])[0],
            INPUT
        );
        assert_eq!(
            call(
                &f.rmm(),
                RmiFid::GRANULE_TRACKING_GET,
                &[B0 + 0x800, B0 + 0x900]
            )[0],
            INPUT
        );
    }

    #[test]
    fn tracking_get_rejects_unaligned_base() {
        let f = Fixture::new();
        assert_eq!(
            call(
                &f.rmm(),
                RmiFid::GRANULE_TRACKING_GET,
                &[B0 + 8, B0 + 2 * G]
            )[0],
            INPUT
        );
    }

    #[test]
    fn tracking_get_rejects_unaligned_top() {
        let f = Fixture::new();
        assert_eq!(
            call(&f.rmm(), RmiFid::GRANULE_TRACKING_GET, &[B0, B0 + G + 8])[0],
            INPUT
        );
    }

    #[test]
    fn tracking_get_uses_the_cpu_pa_width() {
        let cpu = crate::CpuFeatures {
            pa_width: 40,
            ..crate::sim::SIM_CPU
        };
        let f = Fixture::with(banks(), cpu);
        assert_eq!(
            call(
                &f.rmm(),
                RmiFid::GRANULE_TRACKING_GET,
                &[1 << 40, (1 << 40) + G]
            )[0],
            INPUT
        );
        assert_eq!(
            call(
                &f.rmm(),
                RmiFid::GRANULE_TRACKING_GET,
                &[(1 << 40) - 2 * G, (1 << 40) - G]
            )[0],
            0
        );
    }

    #[test]
    fn gpt_l1_create_rejects_unaligned_address() {
        let f = Fixture::new();
        let rmm = f.active_rmm();
        for a in [B0 + G, 0x4000_0010, (1 << 30) - G] {
            assert_eq!(
                call(&rmm, RmiFid::GPT_L1_CREATE, &[a])[..2],
                [INPUT, 0],
                "{a:#x}"
            );
        }
    }

    #[test]
    fn gpt_l1_create_is_error_gpt() {
        let f = Fixture::new();
        let rmm = f.active_rmm();
        for a in [0, 1 << 30, B0, 0xFFFF_FFFF_C000_0000] {
            assert_eq!(
                call(&rmm, RmiFid::GPT_L1_CREATE, &[a])[..2],
                [RmiStatus::ErrorGpt as u64, 0],
                "{a:#x}"
            );
        }
    }

    #[test]
    fn gpt_l1_create_before_activation_is_error_global() {
        let f = Fixture::new();
        assert_eq!(
            call(&f.rmm(), RmiFid::GPT_L1_CREATE, &[B0])[0],
            RmiStatus::ErrorGlobal as u64
        );
    }
}
