//! The hardware behind `rmm_core::Platform`: memory access through the RMM's two DRAM
//! aliases, granule transitions through EL3, and the CPU's features.

use crate::smc;
use cca_abi::el3::{El3Error, RMM_GTSI_DELEGATE, RMM_GTSI_UNDELEGATE};
use rmm_core::run::{RealmContext, RealmExit};
use rmm_core::{CpuFeatures, El3, IdReg, IdRegs, NsFault, Pa, PhysMem, Platform};

/// DRAM is mapped twice in the RMM's stage 1: at `REALM_ALIAS + PA` in the Realm PAS (for
/// granules the RMM owns) and at `NS_ALIAS + PA` in the Non-secure PAS (for the host's pages).
pub const REALM_ALIAS: u64 = 1 << 44;
/// See [`REALM_ALIAS`].
pub const NS_ALIAS: u64 = 1 << 45;

/// The firmware platform.
pub struct FwPlatform {
    /// Features read from the ID registers at cold boot.
    pub features: CpuFeatures,
    /// The ID registers read at cold boot ([`read_id_regs`]).
    pub id_regs: IdRegs,
}

/// Reads this CPU's ID registers: MIDR, REVIDR and every register the architecture
/// allocates in op0 3, op1 0, CRn 0, CRm 1..=7 (the reserved encodings are RAZ and left 0).
/// All CPUs of the machine are assumed to be alike, as TF-RMM assumes.
pub fn read_id_regs() -> IdRegs {
    use fw_support::read_sysreg as r;
    let mut ids = IdRegs::ZERO;
    ids.midr = r!(midr_el1);
    ids.revidr = r!(revidr_el1);
    let values: [(IdReg, u64); 42] = [
        (IdReg::ID_PFR0, r!(s3_0_c0_c1_0)),
        (IdReg::ID_PFR1, r!(s3_0_c0_c1_1)),
        (IdReg::ID_DFR0, r!(s3_0_c0_c1_2)),
        (IdReg::ID_AFR0, r!(s3_0_c0_c1_3)),
        (IdReg::ID_MMFR0, r!(s3_0_c0_c1_4)),
        (IdReg::ID_MMFR1, r!(s3_0_c0_c1_5)),
        (IdReg::ID_MMFR2, r!(s3_0_c0_c1_6)),
        (IdReg::ID_MMFR3, r!(s3_0_c0_c1_7)),
        (IdReg::ID_ISAR0, r!(s3_0_c0_c2_0)),
        (IdReg::ID_ISAR1, r!(s3_0_c0_c2_1)),
        (IdReg::ID_ISAR2, r!(s3_0_c0_c2_2)),
        (IdReg::ID_ISAR3, r!(s3_0_c0_c2_3)),
        (IdReg::ID_ISAR4, r!(s3_0_c0_c2_4)),
        (IdReg::ID_ISAR5, r!(s3_0_c0_c2_5)),
        (IdReg::ID_MMFR4, r!(s3_0_c0_c2_6)),
        (IdReg::ID_ISAR6, r!(s3_0_c0_c2_7)),
        (IdReg::MVFR0, r!(s3_0_c0_c3_0)),
        (IdReg::MVFR1, r!(s3_0_c0_c3_1)),
        (IdReg::MVFR2, r!(s3_0_c0_c3_2)),
        (IdReg::ID_PFR2, r!(s3_0_c0_c3_4)),
        (IdReg::ID_DFR1, r!(s3_0_c0_c3_5)),
        (IdReg::ID_MMFR5, r!(s3_0_c0_c3_6)),
        (IdReg::AA64PFR0, r!(s3_0_c0_c4_0)),
        (IdReg::AA64PFR1, r!(s3_0_c0_c4_1)),
        (IdReg::AA64PFR2, r!(s3_0_c0_c4_2)),
        (IdReg::AA64ZFR0, r!(s3_0_c0_c4_4)),
        (IdReg::AA64SMFR0, r!(s3_0_c0_c4_5)),
        (IdReg::AA64FPFR0, r!(s3_0_c0_c4_7)),
        (IdReg::AA64DFR0, r!(s3_0_c0_c5_0)),
        (IdReg::AA64DFR1, r!(s3_0_c0_c5_1)),
        (IdReg::AA64DFR2, r!(s3_0_c0_c5_2)),
        (IdReg::AA64AFR0, r!(s3_0_c0_c5_4)),
        (IdReg::AA64AFR1, r!(s3_0_c0_c5_5)),
        (IdReg::AA64ISAR0, r!(s3_0_c0_c6_0)),
        (IdReg::AA64ISAR1, r!(s3_0_c0_c6_1)),
        (IdReg::AA64ISAR2, r!(s3_0_c0_c6_2)),
        (IdReg::AA64ISAR3, r!(s3_0_c0_c6_3)),
        (IdReg::AA64MMFR0, r!(s3_0_c0_c7_0)),
        (IdReg::AA64MMFR1, r!(s3_0_c0_c7_1)),
        (IdReg::AA64MMFR2, r!(s3_0_c0_c7_2)),
        (IdReg::AA64MMFR3, r!(s3_0_c0_c7_3)),
        (IdReg::AA64MMFR4, r!(s3_0_c0_c7_4)),
    ];
    for (reg, v) in values {
        ids.set(reg, v);
    }
    ids
}

/// The `DC ZVA` block size in bytes, or 0 when the instruction is prohibited.
fn zva_block() -> u64 {
    let dczid = fw_support::read_sysreg!(dczid_el0);
    if dczid & (1 << 4) != 0 {
        0
    } else {
        4 << (dczid & 0xf)
    }
}

fn realm_ptr(pa: Pa) -> *mut u8 {
    (REALM_ALIAS + pa.get()) as *mut u8
}

/// Stores `count` words `first + i * step` at `p`, eight per iteration where it can.
///
/// # Safety
///
/// `p` must be valid for `count` 8-byte writes and 8-byte aligned.
unsafe fn fill_words(p: *mut u64, count: usize, first: u64, step: u64) {
    if step == 0 && count != 0 && count % 16 == 0 {
        // SAFETY: as guaranteed by the caller; a whole multiple of 16 words.
        unsafe { crate::mem::rmm_fill_words16(p, first, count) };
        return;
    }
    let mut v = first;
    let mut i = 0;
    while i + 8 <= count {
        let s2 = step.wrapping_add(step);
        let s4 = s2.wrapping_add(s2);
        let (v1, v2) = (v.wrapping_add(step), v.wrapping_add(s2));
        let v3 = v2.wrapping_add(step);
        let (v4, v5) = (v.wrapping_add(s4), v1.wrapping_add(s4));
        let (v6, v7) = (v2.wrapping_add(s4), v3.wrapping_add(s4));
        // SAFETY: i + 8 <= count, inside the region the caller gave.
        unsafe {
            p.add(i).write(v);
            p.add(i + 1).write(v1);
            p.add(i + 2).write(v2);
            p.add(i + 3).write(v3);
            p.add(i + 4).write(v4);
            p.add(i + 5).write(v5);
            p.add(i + 6).write(v6);
            p.add(i + 7).write(v7);
        }
        v = v4.wrapping_add(s4);
        i += 8;
    }
    while i < count {
        // SAFETY: i < count.
        unsafe { p.add(i).write(v) };
        v = v.wrapping_add(step);
        i += 1;
    }
}

impl PhysMem for FwPlatform {
    fn ns_read(&self, pa: Pa, buf: &mut [u8]) -> Result<(), NsFault> {
        // SAFETY: the NS alias maps every DRAM bank and `buf` is RMM memory; a fault (the
        // granule is not NS, or not DRAM) is recovered and reported.
        let ok = unsafe {
            crate::entry::ns_copy(
                buf.as_mut_ptr(),
                (NS_ALIAS + pa.get()) as *const u8,
                buf.len(),
            )
        };
        if ok {
            Ok(())
        } else {
            Err(NsFault)
        }
    }

    fn ns_write(&self, pa: Pa, data: &[u8]) -> Result<(), NsFault> {
        // SAFETY: as for `ns_read`, in the other direction.
        let ok = unsafe {
            crate::entry::ns_copy((NS_ALIAS + pa.get()) as *mut u8, data.as_ptr(), data.len())
        };
        if ok {
            Ok(())
        } else {
            Err(NsFault)
        }
    }

    fn realm_read(&self, pa: Pa, buf: &mut [u8]) {
        // SAFETY: the core only reads granules it owns (locked, in a Realm state), which are
        // mapped by the Realm alias and cannot change PAS while it holds them.
        unsafe { core::ptr::copy_nonoverlapping(realm_ptr(pa), buf.as_mut_ptr(), buf.len()) };
    }

    fn realm_write(&self, pa: Pa, data: &[u8]) {
        // SAFETY: as for `realm_read`.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), realm_ptr(pa), data.len()) };
    }

    fn realm_fill_words(&self, pa: Pa, count: usize, first: u64, step: u64) {
        debug_assert!(pa.get() % 8 == 0 && (pa.get() % 4096) as usize + 8 * count <= 4096);
        // SAFETY: the core only writes granules it owns (locked, in a Realm state), mapped by
        // the Realm alias; the words stay inside the granule and are aligned.
        unsafe { fill_words(realm_ptr(pa).cast(), count, first, step) };
    }

    fn ns_to_realm(&self, dst: Pa, src: Pa) -> Result<(), NsFault> {
        // SAFETY: the destination is a granule the core owns, mapped by the Realm alias; the
        // source goes through the NS alias and a fault there is recovered and reported.
        let ok = unsafe {
            crate::entry::ns_copy(realm_ptr(dst), (NS_ALIAS + src.get()) as *const u8, 4096)
        };
        if ok {
            Ok(())
        } else {
            Err(NsFault)
        }
    }

    fn realm_inspect(&self, pa: Pa, len: usize, f: &mut dyn FnMut(&[u8])) {
        let len = len.min(4096 - (pa.get() % 4096) as usize);
        // SAFETY: the core holds the granule (locked, in a Realm state) while `f` runs, so
        // the bytes, mapped by the Realm alias, do not change or go away meanwhile.
        let bytes = unsafe { core::slice::from_raw_parts(realm_ptr(pa), len) };
        f(bytes);
    }

    fn realm_zero(&self, pa: Pa) {
        let base = realm_ptr(pa);
        let block = zva_block();
        if !(16..=1024).contains(&block) {
            // No DC ZVA (or a block size the loop below does not handle): stores.
            // SAFETY: the granule is owned by the core and mapped by the Realm alias.
            unsafe { crate::mem::rmm_fill_words16(base.cast(), 0, 512) };
            return;
        }
        // SAFETY: DC ZVA zeroes naturally aligned blocks of the granule, which the core owns
        // and the Realm alias maps as normal memory; four blocks of at least 16 bytes per
        // iteration divide 4 KiB.
        unsafe { crate::mem::rmm_zva_4k(base, block) };
    }
}

fn el3_result(r: u64) -> Result<(), El3Error> {
    if r == 0 {
        Ok(())
    } else {
        Err(El3Error::from_reg(r).unwrap_or(El3Error::Unknown))
    }
}

impl El3 for FwPlatform {
    fn gtsi_delegate(&self, pa: Pa) -> Result<(), El3Error> {
        el3_result(smc(RMM_GTSI_DELEGATE, &[pa.get()])[0])
    }

    fn gtsi_undelegate(&self, pa: Pa) -> Result<(), El3Error> {
        // The scrub's stores complete before EL3 changes the PAS. EL3 cleans and invalidates
        // the granule by PA to the point of physical aliasing (DC CIPAPA, for the Realm and
        // NS PAS), which covers the lines written here, so no maintenance by VA is needed.
        // SAFETY: barrier only.
        unsafe { core::arch::asm!("dsb ish", options(nostack)) };
        el3_result(smc(RMM_GTSI_UNDELEGATE, &[pa.get()])[0])
    }
}

/// The test hook word: the marker, then a word that is 0 in every image `cargo build` makes.
/// `cargo xtask fuzz fault --kind rmm-panic` enables the hook in a copy of the image by
/// writing [`HOOKS_ON`] over that word; only then does [`cca_abi::rmi::TEST_HOOK_PANIC`]
/// make this RMM panic (the deliberate panic of the fatal-fault tests).
#[used]
#[unsafe(no_mangle)]
static CCA_RMM_TEST_HOOKS: [u64; 3] = [
    u64::from_le_bytes(*b"CCA-RMM-"),
    u64::from_le_bytes(*b"TESTHOOK"),
    0,
];
/// The value that enables the hook.
const HOOKS_ON: u64 = u64::from_le_bytes(*b"HOOKS-ON");

fn hooks_enabled() -> bool {
    // SAFETY: a read of a static; volatile, so that the image's own contents are read
    // rather than the value the compiler saw.
    unsafe { core::ptr::read_volatile(&raw const CCA_RMM_TEST_HOOKS[2]) == HOOKS_ON }
}

impl Platform for FwPlatform {
    fn cpu_features(&self) -> CpuFeatures {
        self.features
    }

    fn unknown_rmi(&self, x0: u64) {
        if x0 as u32 == cca_abi::rmi::TEST_HOOK_PANIC && hooks_enabled() {
            panic!("deliberate panic requested through the RMM's test hook");
        }
    }

    fn id_regs(&self) -> IdRegs {
        self.id_regs
    }

    fn tlbi_ipa(&self, vmid: u16, ipa: u64, _level: i8) {
        tlbi_ipa(vmid, ipa);
    }

    fn tlbi_ipa_range(&self, vmid: u16, base: u64, size: u64) {
        // Beyond one level 3 table's worth, invalidating the whole VMID is cheaper.
        if size > 512 * 4096 {
            tlbi_vmid(vmid);
            return;
        }
        with_vmid(vmid, || {
            let mut ipa = base;
            while ipa < base + size {
                // SAFETY: TLB maintenance only.
                unsafe {
                    core::arch::asm!("tlbi ipas2e1is, {}", in(reg) (ipa >> 12) & 0xF_FFFF_FFFF, options(nostack))
                };
                ipa += 4096;
            }
            // SAFETY: barriers and a stage 1 flush for combined entries.
            unsafe {
                core::arch::asm!(
                    "dsb ish",
                    "tlbi vmalle1is",
                    "dsb ish",
                    "isb",
                    options(nostack)
                )
            };
        });
    }

    fn tlbi_vmid(&self, vmid: u16) {
        tlbi_vmid(vmid);
    }

    fn reset_arch_state(&self, ctx: &mut RealmContext) {
        crate::realm::reset(ctx);
    }

    fn gic_host_state_valid(&self) -> bool {
        crate::realm::gic_lrs_valid()
    }

    fn run_realm(&self, ctx: &mut RealmContext) -> RealmExit {
        crate::realm::run(ctx)
    }

    fn park_realm(&self, ctx: &mut RealmContext) {
        crate::realm::park(ctx);
    }

    fn inject_sync_exception(&self, ctx: &mut RealmContext, esr: u64, far: u64) {
        crate::realm::inject_sync_exception(ctx, esr, far);
    }

    fn gic_vtr(&self) -> u64 {
        crate::realm::gic_vtr()
    }
}

/// Runs `f` with VTTBR_EL2 naming `vmid`, so that stage 2 TLB maintenance targets that realm.
fn with_vmid(vmid: u16, f: impl FnOnce()) {
    let saved = fw_support::read_sysreg!(vttbr_el2);
    // SAFETY: VTTBR_EL2 only affects stage 2 translation of EL1&0, which is not running on
    // this CPU while the RMM executes; it is restored before returning.
    unsafe {
        fw_support::write_sysreg!(vttbr_el2, u64::from(vmid) << 48);
        core::arch::asm!("isb", options(nostack));
    }
    f();
    // SAFETY: restores the value read above.
    unsafe {
        fw_support::write_sysreg!(vttbr_el2, saved);
        core::arch::asm!("isb", options(nostack));
    }
}

/// Invalidates the stage 2 translations of one IPA for a realm, on every PE of the
/// Inner Shareable domain, and the combined stage 1+2 entries that may cache it.
pub fn tlbi_ipa(vmid: u16, ipa: u64) {
    with_vmid(vmid, || {
        // SAFETY: TLB maintenance and barriers only.
        unsafe {
            core::arch::asm!(
                "dsb ish",
                "tlbi ipas2e1is, {}",
                "dsb ish",
                "tlbi vmalle1is",
                "dsb ish",
                "isb",
                in(reg) (ipa >> 12) & 0xF_FFFF_FFFF,
                options(nostack)
            )
        };
    });
}

/// Invalidates every stage 1 and stage 2 translation of a realm's VMID on every PE.
pub fn tlbi_vmid(vmid: u16) {
    with_vmid(vmid, || {
        // SAFETY: TLB maintenance and barriers only.
        unsafe {
            core::arch::asm!(
                "dsb ishst",
                "tlbi vmalls12e1is",
                "dsb ish",
                "isb",
                options(nostack)
            )
        };
    });
}
