//! The console: a PL011 the host emulates at the unprotected IPA `2^39 + 0x0900_0000`.
//!
//! Every access is one 32-bit `LDR`/`STR` with a plain base register, so the data abort the
//! RMM reports to the host is emulatable (ISV = 1). The payload writes whole lines ending
//! in `\n` (the host prefixes each with `[REALM]`) under a lock that it gives up waiting for
//! after two seconds, so a REC that stops while holding it cannot silence the others.

use crate::layout::UART_BASE;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

/// UARTDR: data register.
pub const UARTDR: u64 = 0x000;
/// UARTFR: flag register.
pub const UARTFR: u64 = 0x018;
/// UARTFR.TXFF: transmit FIFO full.
const TXFF: u32 = 1 << 5;

/// Reads the 32-bit UART register at `offset`.
pub fn read(offset: u64) -> u32 {
    let v: u32;
    // SAFETY: the UART's 4 KiB page is mapped as device memory and holds no Rust object; the
    // load only makes the host emulate a register read.
    unsafe {
        core::arch::asm!("ldr {v:w}, [{a}]", a = in(reg) UART_BASE + offset, v = out(reg) v,
            options(nostack, preserves_flags));
    }
    v
}

/// Writes the 32-bit UART register at `offset`.
pub fn write(offset: u64, v: u32) {
    // SAFETY: as for `read`; the store only makes the host emulate a register write.
    unsafe {
        core::arch::asm!("str {v:w}, [{a}]", a = in(reg) UART_BASE + offset, v = in(reg) v,
            options(nostack, preserves_flags));
    }
}

fn put_byte(b: u8) {
    // The host's UART is never full; a real one drains in far less than this.
    for _ in 0..100_000 {
        if read(UARTFR) & TXFF == 0 {
            break;
        }
        core::hint::spin_loop();
    }
    write(UARTDR, u32::from(b));
}

struct Uart;

impl Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        s.bytes().for_each(put_byte);
        Ok(())
    }
}

static LOCK: AtomicBool = AtomicBool::new(false);
/// How long, in seconds of the virtual counter, a line waits for the lock.
const LOCK_WAIT_S: u64 = 2;

/// Prints formatted text as one piece (used by `println!`).
pub fn print(args: fmt::Arguments) {
    // The bound is time, not iterations: a REC whose host thread is descheduled for a while
    // (a loaded build machine) still gets its line out whole before the other gives up.
    let start = crate::gic::counter();
    let limit = fw_support::read_sysreg!(cntfrq_el0).saturating_mul(LOCK_WAIT_S);
    let mut locked = false;
    loop {
        if LOCK
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            locked = true;
            break;
        }
        if crate::gic::counter().wrapping_sub(start) > limit {
            break;
        }
        core::hint::spin_loop();
    }
    let _ = Uart.write_fmt(args);
    if locked {
        LOCK.store(false, Ordering::Release);
    }
}

/// Prints without taking the lock or any atomic operation (fatal reports, which may run
/// with the lock held or before the real stage 1 map exists).
pub fn print_emergency(args: fmt::Arguments) {
    let _ = Uart.write_fmt(args);
}

/// Prints a line to the console.
#[macro_export]
macro_rules! println {
    () => { $crate::console::print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::console::print(format_args!("{}\n", format_args!($($arg)*))) };
}
