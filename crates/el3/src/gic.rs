//! The Secure-only part of GICv3 set-up that lower worlds cannot do themselves: affinity
//! routing for both security states, every interrupt in Non-secure Group 1, and waking each
//! CPU's redistributor. The host and the RMM then program their own CPU interfaces.

use crate::platform::{GICD_BASE, GICR_BASE, GICR_STRIDE};

const GICD_CTLR: u64 = 0x0;
const GICD_TYPER: u64 = 0x4;
const GICD_IGROUPR: u64 = 0x80;
const GICD_IGRPMODR: u64 = 0xD00;
const CTLR_ENABLE_G1NS: u32 = 1 << 1;
const CTLR_ARE_S: u32 = 1 << 4;
const CTLR_ARE_NS: u32 = 1 << 5;
const CTLR_RWP: u32 = 1 << 31;

const GICR_WAKER: u64 = 0x14;
const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
const GICR_SGI_BASE: u64 = 0x1_0000;
const GICR_IGROUPR0: u64 = GICR_SGI_BASE + 0x80;
const GICR_IGRPMODR0: u64 = GICR_SGI_BASE + 0xD00;

fn read(addr: u64) -> u32 {
    // SAFETY: the GIC is mapped as device memory in EL3's map; reads have no side effects
    // on the registers used here.
    unsafe { (addr as *const u32).read_volatile() }
}

fn write(addr: u64, v: u32) {
    // SAFETY: the GIC is mapped as device memory; EL3 owns the Secure configuration.
    unsafe { (addr as *mut u32).write_volatile(v) }
}

/// Distributor set-up, once, on the boot CPU.
pub fn init_distributor() {
    write(GICD_BASE + GICD_CTLR, 0);
    while read(GICD_BASE + GICD_CTLR) & CTLR_RWP != 0 {}
    write(GICD_BASE + GICD_CTLR, CTLR_ARE_S | CTLR_ARE_NS);
    while read(GICD_BASE + GICD_CTLR) & CTLR_RWP != 0 {}
    let lines = (read(GICD_BASE + GICD_TYPER) & 0x1f) as u64 + 1;
    for n in 1..lines {
        write(GICD_BASE + GICD_IGROUPR + 4 * n, u32::MAX);
        write(GICD_BASE + GICD_IGRPMODR + 4 * n, 0);
    }
    write(
        GICD_BASE + GICD_CTLR,
        CTLR_ARE_S | CTLR_ARE_NS | CTLR_ENABLE_G1NS,
    );
    while read(GICD_BASE + GICD_CTLR) & CTLR_RWP != 0 {}
}

/// Redistributor set-up for CPU `cpu`: wake it and put its SGIs and PPIs in Group 1 NS.
pub fn init_redistributor(cpu: usize) {
    let base = GICR_BASE + cpu as u64 * GICR_STRIDE;
    write(
        base + GICR_WAKER,
        read(base + GICR_WAKER) & !WAKER_PROCESSOR_SLEEP,
    );
    while read(base + GICR_WAKER) & WAKER_CHILDREN_ASLEEP != 0 {}
    write(base + GICR_IGROUPR0, u32::MAX);
    write(base + GICR_IGRPMODR0, 0);
}
