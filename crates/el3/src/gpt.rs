//! The granule protection tables in memory, GPC enablement, and granule transitions with
//! the cache and TLB maintenance RME requires.

use crate::platform::GPT_MAX_L1;
use el3_core::gpt::{Gpi, Gpt, GptError, GptGeometry};
use fw_support::once::TakeOnce;
use fw_support::{read_sysreg, write_sysreg};
use spin::Mutex;

#[repr(C, align(8192))]
struct L0Table([u64; 1024]);

#[repr(C, align(131072))]
struct L1Tables([u64; 16384 * GPT_MAX_L1]);

static L0: TakeOnce<L0Table> = TakeOnce::new(L0Table([0; 1024]));
static L1: TakeOnce<L1Tables> = TakeOnce::new(L1Tables([0; 16384 * GPT_MAX_L1]));

/// The system's GPT, shared by all CPUs.
pub static GPT: Mutex<Option<Gpt<'static>>> = Mutex::new(None);

/// PAS selectors for `DC CIPAPA` (operand bits [63:62] = {NS, NSE}).
const PAS_NS: u64 = 1 << 63;
const PAS_REALM: u64 = 3 << 62;

/// Creates the tables with every region `Any`.
pub fn create(geo: GptGeometry) -> Gpt<'static> {
    let l0 = &mut L0.take().expect("GPT level 0 taken twice").0;
    let l1_pa = L1.addr() as u64;
    let l1 = &mut L1.take().expect("GPT level 1 taken twice").0;
    Gpt::new(geo, &mut l0[..geo.l0_entries()], l1, l1_pa, Gpi::Any)
}

/// Programs GPTBR_EL3/GPCCR_EL3 on this CPU and turns granule protection checks on.
pub fn enable_on_this_cpu(geo: GptGeometry) {
    let l0_pa = L0.addr() as u64;
    // SAFETY: the tables at `l0_pa` are complete (built before any CPU enables the checks)
    // and map EL3's own memory as Root, so EL3 keeps running once checks are on.
    unsafe {
        write_sysreg!(s3_6_c2_c1_4, l0_pa >> 12);
        write_sysreg!(s3_6_c2_c1_6, geo.gpccr(false));
        core::arch::asm!(
            "isb",
            "sys #6, c8, c1, #4",
            "dsb sy",
            "isb",
            options(nostack)
        );
        write_sysreg!(s3_6_c2_c1_6, geo.gpccr(true));
        core::arch::asm!(
            "isb",
            "sys #6, c8, c1, #4",
            "dsb sy",
            "isb",
            options(nostack)
        );
    }
}

/// Returns GPCCR_EL3.L0GPTSZ + 30, the level 0 entry size this CPU implements.
pub fn l0gptsz_bits() -> u32 {
    30 + ((read_sysreg!(s3_6_c2_c1_6) >> 20) & 0xf) as u32
}

fn dcache_line() -> u64 {
    4 << ((read_sysreg!(ctr_el0) >> 16) & 0xf)
}

/// The smallest data cache line, read once (every CPU of the machine has the same).
static LINE: spin::Once<u64> = spin::Once::new();

/// Cleans and invalidates one granule to the point of physical aliasing in one PAS, four
/// lines per iteration.
fn flush_to_popa(pa: u64, pas: u64) {
    let line = *LINE.call_once(dcache_line);
    // SAFETY: DC CIPAPA only performs cache maintenance by physical address; four lines of at
    // least 16 bytes per iteration divide the 4 KiB granule. The barrier orders it.
    unsafe {
        core::arch::asm!(
            "add {end}, {a}, #4096",
            "2:",
            "sys #6, c7, c14, #1, {a}",
            "add {a}, {a}, {line}",
            "sys #6, c7, c14, #1, {a}",
            "add {a}, {a}, {line}",
            "sys #6, c7, c14, #1, {a}",
            "add {a}, {a}, {line}",
            "sys #6, c7, c14, #1, {a}",
            "add {a}, {a}, {line}",
            "cmp {a}, {end}",
            "b.lo 2b",
            "dsb osh",
            a = inout(reg) pa | pas => _,
            line = in(reg) line,
            end = out(reg) _,
            options(nostack)
        )
    };
}

/// Invalidates cached GPT information for one 4 KiB granule on all PEs.
fn tlbi_granule(pa: u64) {
    // SAFETY: TLBI RPALOS only invalidates GPT information; the barriers order it.
    unsafe {
        core::arch::asm!("dsb oshst", "sys #6, c8, c4, #7, {}", "dsb osh", in(reg) pa >> 12, options(nostack));
    }
}

fn write(gpt: &mut Gpt<'static>, pa: u64, gpi: Gpi) {
    gpt.write_granule(pa, gpi)
        .expect("granule checked before writing");
    tlbi_granule(pa);
}

/// Moves one granule from the Non-secure to the Realm PAS.
pub fn delegate(pa: u64) -> Result<(), GptError> {
    let mut guard = GPT.lock();
    let gpt = guard.as_mut().ok_or(GptError::BadAddr)?;
    gpt.check_transition(pa, Gpi::NonSecure)?;
    flush_to_popa(pa, PAS_REALM);
    write(gpt, pa, Gpi::Realm);
    flush_to_popa(pa, PAS_NS);
    Ok(())
}

/// Moves one granule from the Realm to the Non-secure PAS.
pub fn undelegate(pa: u64) -> Result<(), GptError> {
    let mut guard = GPT.lock();
    let gpt = guard.as_mut().ok_or(GptError::BadAddr)?;
    gpt.check_transition(pa, Gpi::Realm)?;
    write(gpt, pa, Gpi::NoAccess);
    flush_to_popa(pa, PAS_REALM);
    flush_to_popa(pa, PAS_NS);
    write(gpt, pa, Gpi::NonSecure);
    Ok(())
}
