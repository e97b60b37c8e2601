//! Ending a run: semihosting exit (with a status QEMU reports as its own exit code) and the
//! secure GPIO power lines as TF-A's QEMU port uses them.

use crate::platform::SECURE_GPIO;
use core::fmt;

const SYS_EXIT: u64 = 0x18;
const ADP_STOPPED_APPLICATION_EXIT: u64 = 0x20026;

/// Powers the platform off, reporting `status` as QEMU's exit status.
pub fn exit(status: u64) -> ! {
    let block = [ADP_STOPPED_APPLICATION_EXIT, status];
    // SAFETY: the semihosting call reads the two-word block and, when semihosting is enabled,
    // ends the emulation; when it is not, it traps or returns and the GPIO path below runs.
    unsafe {
        core::arch::asm!("hlt #0xf000", in("x0") SYS_EXIT, in("x1") block.as_ptr(), options(nostack));
    }
    gpio_pulse(0);
    fw_support::halt()
}

/// Resets the platform through the secure GPIO reset line.
pub fn reset() -> ! {
    gpio_pulse(1);
    fw_support::halt()
}

fn gpio_pulse(pin: u64) {
    let dir = (SECURE_GPIO + 0x400) as *mut u8;
    let data = (SECURE_GPIO + (1 << (pin + 2))) as *mut u8;
    // SAFETY: the secure PL061 is mapped as device memory and only used here; writing the
    // direction and then a rising edge on the pin is how QEMU powers off or resets.
    unsafe {
        dir.write_volatile(dir.read_volatile() | (1 << pin));
        data.write_volatile(0);
        data.write_volatile(1 << pin);
    }
}

/// Reports a fatal exception and ends the run with a failure status.
pub fn fatal_exit(what: fmt::Arguments, esr: u64, elr: u64, far: u64) -> ! {
    fw_support::exception::report_fatal(what, "EL3", esr, elr, far);
    exit(0xE3)
}
