//! The fuzz mode's second stage 1 half: `TTBR1_EL1` maps the fuzzer's windows
//! ([`super::gen::WINDOWS`]) at `0xFFFF_0000_0000_0000 + w * 2 MiB`, and nothing else. The
//! payload's own map (`TTBR0_EL1`, `crate::mmu`) is not changed; `TCR_EL1` gains the TTBR1
//! walk (T1SZ 16, 4 KiB, write-back, inner shareable) and an IPS of 48 bits, so that output
//! addresses beyond the realm's 40-bit IPA space reach stage 2.

use super::gen::{win, Kind, PAGE, WINDOWS};
use core::sync::atomic::{AtomicU64, Ordering};
use fw_support::{read_sysreg, write_sysreg};

/// Level 0, 1, 2 tables and one level 3 table per window.
const TABLES: usize = 3 + win::COUNT;

#[repr(C, align(4096))]
struct Tables([[AtomicU64; 512]; TABLES]);

static FUZZ_TABLES: Tables = Tables([const { [const { AtomicU64::new(0) }; 512] }; TABLES]);

/// `TTBR1_EL1` and `TCR_EL1` for every REC, set by [`build`].
static REGS: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

const VALID_TABLE: u64 = 0b11;
const PAGE_DESC: u64 = 0b11;
const ATTR_DEVICE: u64 = 0 << 2;
const ATTR_NORMAL: u64 = 1 << 2;
const AP_EL0: u64 = 1 << 6;
const AP_RO: u64 = 1 << 7;
const SH_INNER: u64 = 0b11 << 8;
const AF: u64 = 1 << 10;
const PXN: u64 = 1 << 53;
const UXN: u64 = 1 << 54;

fn table_pa(i: usize) -> u64 {
    FUZZ_TABLES.0[i].as_ptr() as u64
}

/// The descriptor flags of window `w`.
fn flags(w: usize) -> u64 {
    let x = &WINDOWS[w];
    let mut f = PAGE_DESC | AF;
    f |= if x.device {
        ATTR_DEVICE
    } else {
        ATTR_NORMAL | SH_INNER
    };
    if !x.writable {
        f |= AP_RO;
    }
    if x.el0 {
        f |= AP_EL0;
    }
    if w == win::EL0_CODE {
        // EL0 runs it; EL1 never does.
        f |= PXN;
    } else {
        f |= UXN;
        if !x.executable || x.kind == Kind::Device {
            f |= PXN;
        }
    }
    f
}

/// Builds the tables (REC 0, once): `runtime` gives the IPA of the windows whose IPA is
/// only known at run time (the payload's image, its scratch buffer, its EL0 code page).
pub fn build(runtime: impl Fn(usize) -> u64) {
    let t = &FUZZ_TABLES.0;
    t[0][0].store(table_pa(1) | VALID_TABLE, Ordering::Relaxed);
    t[1][0].store(table_pa(2) | VALID_TABLE, Ordering::Relaxed);
    for (w, x) in WINDOWS.iter().enumerate() {
        if x.pages == 0 {
            continue;
        }
        let l3 = 3 + w;
        t[2][w].store(table_pa(l3) | VALID_TABLE, Ordering::Relaxed);
        let base = x.ipa.unwrap_or_else(|| runtime(w));
        for p in 0..x.pages.min(512) {
            t[l3][p as usize].store((base + p * PAGE) | flags(w), Ordering::Relaxed);
        }
    }
    let tcr = read_sysreg!(tcr_el1);
    let tcr = (tcr & !((0x3f << 16) | (1 << 23) | (0xff << 24) | (0x7 << 32) | (1 << 22)))
        | (16 << 16)
        | (0b01 << 24)
        | (0b01 << 26)
        | (0b11 << 28)
        | (0b10 << 30)
        | (0b101 << 32);
    REGS[0].store(table_pa(0), Ordering::Relaxed);
    REGS[1].store(tcr, Ordering::Relaxed);
    // SAFETY: the tables were written through the payload's cacheable mapping and the walks
    // are cacheable; the barrier orders the writes before the walks.
    unsafe { core::arch::asm!("dsb ish", options(nostack)) };
}

/// Switches this REC to the fuzzer's `TTBR1_EL1` and `TCR_EL1` (after [`build`]).
pub fn enable() {
    let ttbr = REGS[0].load(Ordering::Relaxed);
    let tcr = REGS[1].load(Ordering::Relaxed);
    if ttbr == 0 {
        return;
    }
    // SAFETY: the TTBR0 half (the payload's code, data and stack) is unchanged by the new
    // TCR (same T0SZ, granule, cacheability; IPS only grows), and the TTBR1 half maps only
    // the fuzzer's windows, none of which the payload's own code uses.
    unsafe {
        write_sysreg!(ttbr1_el1, ttbr);
        core::arch::asm!("isb", options(nostack));
        write_sysreg!(tcr_el1, tcr);
        core::arch::asm!("isb", "tlbi vmalle1", "dsb nsh", "isb", options(nostack));
    }
}
