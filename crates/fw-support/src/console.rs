//! The PL011 console shared by every world, with a per-image line label.
//!
//! All worlds write to UART0, as TF-A and TF-RMM do on QEMU. Each image sets a label
//! (`EL3`, `RMM`, `HOST`, ...) that starts every line it prints, so the demo can show which
//! world said what.

use arm_pl011_uart::{PL011Registers, Uart};
use core::fmt::{self, Write};
use core::ptr::NonNull;
use safe_mmio::UniqueMmioPointer;
use spin::Mutex;

struct Console {
    uart: Uart<'static>,
    label: &'static str,
    at_line_start: bool,
    /// The label of the line in progress.
    current: &'static str,
}

static CONSOLE: Mutex<Option<Console>> = Mutex::new(None);

/// Initialises the console on the PL011 at `base`, labelling lines with `label`.
///
/// # Safety
///
/// `base` must be the address (identity-mapped as device memory, or with the MMU off) of a
/// PL011 that nothing else in this image accesses.
pub unsafe fn init(base: usize, label: &'static str) {
    // SAFETY: the caller guarantees `base` is an exclusive, mapped PL011.
    let regs =
        unsafe { UniqueMmioPointer::new(NonNull::new_unchecked(base as *mut PL011Registers)) };
    *CONSOLE.lock() = Some(Console {
        uart: Uart::new(regs),
        label,
        at_line_start: true,
        current: label,
    });
}

impl Console {
    /// Starts a line for `label` if needed: a line another label left unfinished is ended
    /// first, so every line carries exactly one label.
    fn start(&mut self, label: &'static str) -> fmt::Result {
        if !self.at_line_start && self.current != label {
            self.uart.write_str("\n")?;
            self.at_line_start = true;
        }
        if self.at_line_start {
            self.uart.write_str("[")?;
            self.uart.write_str(label)?;
            self.uart.write_str("] ")?;
            self.at_line_start = false;
            self.current = label;
        }
        Ok(())
    }

    fn write_as(&mut self, label: &'static str, s: &str) -> fmt::Result {
        for line in s.split_inclusive('\n') {
            self.start(label)?;
            self.uart.write_str(line)?;
            self.at_line_start = line.ends_with('\n');
        }
        Ok(())
    }
}

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.write_as(self.label, s)
    }
}

/// Writes bytes another party produced (a guest's console) under `label`, byte by byte as
/// they come (an interactive prompt shows before its line ends). Carriage returns are
/// dropped: every line ends with a newline alone.
pub fn write_bytes_as(label: &'static str, bytes: &[u8]) {
    if let Some(c) = CONSOLE.lock().as_mut() {
        for &b in bytes {
            if b == b'\r' {
                continue;
            }
            if c.start(label).is_err() {
                return;
            }
            c.uart.write_word(b);
            c.at_line_start = b == b'\n';
        }
    }
}

/// A byte received on the console, if one is waiting.
pub fn read_byte() -> Option<u8> {
    let mut guard = CONSOLE.lock();
    let c = guard.as_mut()?;
    if c.uart.is_rx_fifo_empty() {
        return None;
    }
    c.uart.read_word().ok().flatten()
}

/// Prints formatted text (used by the `print!`/`println!` macros).
pub fn print(args: fmt::Arguments) {
    if let Some(c) = CONSOLE.lock().as_mut() {
        let _ = c.write_fmt(args);
    }
}

/// Prints a fatal message even if another CPU holds the console lock forever.
pub fn print_emergency(args: fmt::Arguments) {
    // SAFETY: a fatal error is being reported and this CPU will halt; breaking the lock can
    // at worst interleave characters with another CPU's output.
    unsafe { CONSOLE.force_unlock() };
    print(args);
}

/// Prints to the console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::print(format_args!($($arg)*)) };
}

/// Prints a line to the console.
#[macro_export]
macro_rules! println {
    () => { $crate::console::print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::console::print(format_args!("{}\n", format_args!($($arg)*))) };
}

struct ConsoleLogger;

impl log::Log for ConsoleLogger {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }

    fn log(&self, record: &log::Record) {
        print(format_args!("{:<5} {}\n", record.level(), record.args()));
    }

    fn flush(&self) {}
}

static LOGGER: ConsoleLogger = ConsoleLogger;

/// Routes the `log` crate to the console, at `level` and above.
pub fn init_logger(level: log::LevelFilter) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

/// A `core::fmt::Write` sink that prints to the console.
pub struct Writer;

impl Write for Writer {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        print(format_args!("{s}"));
        Ok(())
    }
}
