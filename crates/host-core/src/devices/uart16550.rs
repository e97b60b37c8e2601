//! A 16550A UART as kvmtool and QEMU present it to a guest: eight byte-wide registers with a
//! stride of one byte, instantaneous transmission, and a receive FIFO the host's console fills.
//!
//! | offset | read | write |
//! |---|---|---|
//! | 0 | `RBR` (pops the receive FIFO; 0 when empty) / `DLL` when `LCR.DLAB` | `THR` / `DLL` |
//! | 1 | `IER` (bits 0..3) / `DLM` when `LCR.DLAB` | `IER` / `DLM` |
//! | 2 | `IIR` | `FCR` (with or without DLAB) |
//! | 3 | `LCR` | `LCR` |
//! | 4 | `MCR` (bits 0..4) | `MCR` |
//! | 5 | `LSR` (clears `OE`) | ignored |
//! | 6 | `MSR` (clears the delta bits) | ignored |
//! | 7 | `SCR` | `SCR` |
//!
//! Offsets 8 and above read as zero and ignore writes. An access wider than a byte acts on
//! the byte at its offset (the low byte of the value); the read is zero-extended.
//!
//! What guests rely on:
//!
//! * Output is instantaneous: `LSR.THRE` and `LSR.TEMT` are always set (edk2's serial library
//!   and Linux's console write poll them before each byte).
//! * `IIR` reports the 16550's highest-priority pending interrupt among those `IER` enables:
//!   receiver line status (`0x06`, an overrun), received data available (`0x04`, whenever the
//!   FIFO holds data), transmitter holding register empty (`0x02`), modem status (`0x00`), or
//!   none (`0x01`); bits 6..7 are set while `FCR` enables the FIFOs. Linux's autoconfig reads
//!   them to tell a 16550A.
//! * The THR-empty interrupt is an event, as on the chip: it becomes pending when `IER.ETBEI`
//!   goes from 0 to 1 (the holding register is always empty) and after each `THR` write, and
//!   stops being pending when `IIR` is read while it reports it, when `THR` is written, or
//!   when `ETBEI` is cleared. Linux's startup test toggles `ETBEI` and expects `IIR` to report
//!   it each time; its transmit path writes `THR` from the interrupt until it has nothing
//!   left and then clears `ETBEI`.
//! * Loopback (`MCR.LOOP`): the modem outputs drive the modem inputs (`DTR`→`DSR`,
//!   `RTS`→`CTS`, `OUT1`→`RI`, `OUT2`→`DCD`), transmitted bytes go to the receive FIFO and
//!   console input is not received. Outside loopback `MSR` reports `DCD`, `DSR` and `CTS`.
//! * The receive FIFO holds [`RX_FIFO_SIZE`] bytes in FIFO and non-FIFO mode alike (as
//!   kvmtool's does); a byte that arrives when it is full is lost and sets `LSR.OE`.
//!   `FCR.RFR`, and any change of `FCR.FE`, empties it.
//!
//! The interrupt line (level-triggered) is high exactly while `IIR` would report an
//! interrupt; it is driven after every access and every byte of console input.

use super::{DeviceCtx, MmioAccess, MmioDevice};
use alloc::collections::VecDeque;

/// Bytes the receive FIFO holds before input overruns.
pub const RX_FIFO_SIZE: usize = 1024;

const RBR_THR_DLL: u64 = 0;
const IER_DLM: u64 = 1;
const IIR_FCR: u64 = 2;
const LCR: u64 = 3;
const MCR: u64 = 4;
const LSR: u64 = 5;
const MSR: u64 = 6;
const SCR: u64 = 7;

const IER_ERBFI: u8 = 1 << 0;
const IER_ETBEI: u8 = 1 << 1;
const IER_ELSI: u8 = 1 << 2;
const IER_EDSSI: u8 = 1 << 3;
const IER_MASK: u8 = 0x0f;

const IIR_NONE: u8 = 0x01;
const IIR_MSI: u8 = 0x00;
const IIR_THRI: u8 = 0x02;
const IIR_RDI: u8 = 0x04;
const IIR_RLSI: u8 = 0x06;
const IIR_FIFO: u8 = 0xc0;

const FCR_FE: u8 = 1 << 0;
const FCR_RFR: u8 = 1 << 1;

const LCR_DLAB: u8 = 1 << 7;

const MCR_DTR: u8 = 1 << 0;
const MCR_RTS: u8 = 1 << 1;
const MCR_OUT1: u8 = 1 << 2;
const MCR_OUT2: u8 = 1 << 3;
const MCR_LOOP: u8 = 1 << 4;
const MCR_MASK: u8 = 0x1f;

const LSR_DR: u8 = 1 << 0;
const LSR_OE: u8 = 1 << 1;
const LSR_THRE: u8 = 1 << 5;
const LSR_TEMT: u8 = 1 << 6;
/// OE, PE, FE, BI: the conditions of the receiver line status interrupt.
const LSR_ERRORS: u8 = 0x1e;

const MSR_DCTS: u8 = 1 << 0;
const MSR_DDSR: u8 = 1 << 1;
const MSR_TERI: u8 = 1 << 2;
const MSR_DDCD: u8 = 1 << 3;
const MSR_DELTAS: u8 = 0x0f;
const MSR_CTS: u8 = 1 << 4;
const MSR_DSR: u8 = 1 << 5;
const MSR_RI: u8 = 1 << 6;
const MSR_DCD: u8 = 1 << 7;

/// The divisor latch after reset: 9600 baud from the 1.8432 MHz clock.
const RESET_DIVISOR: u16 = 12;

/// A 16550A UART; see the [module documentation](self).
#[derive(Clone, Debug)]
pub struct Uart16550 {
    intid: u32,
    rx: VecDeque<u8>,
    ier: u8,
    /// `FCR` as last written (only `FE` is visible, through `IIR`).
    fcr: u8,
    lcr: u8,
    mcr: u8,
    scr: u8,
    divisor: u16,
    /// The sticky `LSR` error bits (only `OE` is ever set).
    lsr_errors: u8,
    /// `MSR` bits 0..3.
    msr_deltas: u8,
    /// The THR-empty interrupt event is pending.
    thr_pending: bool,
}

impl Uart16550 {
    /// A UART after reset whose interrupt line is INTID `intid` (an SPI: 32 + the SPI number).
    pub fn new(intid: u32) -> Self {
        Self {
            intid,
            rx: VecDeque::new(),
            ier: 0,
            fcr: 0,
            lcr: 0,
            mcr: MCR_OUT2,
            scr: 0,
            divisor: RESET_DIVISOR,
            lsr_errors: 0,
            msr_deltas: 0,
            thr_pending: false,
        }
    }

    fn dlab(&self) -> bool {
        self.lcr & LCR_DLAB != 0
    }

    /// The modem inputs (`MSR` bits 4..7).
    fn modem_inputs(&self) -> u8 {
        if self.mcr & MCR_LOOP == 0 {
            return MSR_DCD | MSR_DSR | MSR_CTS;
        }
        let mut v = 0;
        for (out, inp) in [
            (MCR_DTR, MSR_DSR),
            (MCR_RTS, MSR_CTS),
            (MCR_OUT1, MSR_RI),
            (MCR_OUT2, MSR_DCD),
        ] {
            if self.mcr & out != 0 {
                v |= inp;
            }
        }
        v
    }

    fn lsr(&self) -> u8 {
        let dr = if self.rx.is_empty() { 0 } else { LSR_DR };
        dr | self.lsr_errors | LSR_THRE | LSR_TEMT
    }

    /// The interrupt identification (`IIR` bits 0..3) of the highest-priority enabled
    /// pending condition.
    fn pending(&self) -> u8 {
        if self.ier & IER_ELSI != 0 && self.lsr_errors & LSR_ERRORS != 0 {
            IIR_RLSI
        } else if self.ier & IER_ERBFI != 0 && !self.rx.is_empty() {
            IIR_RDI
        } else if self.ier & IER_ETBEI != 0 && self.thr_pending {
            IIR_THRI
        } else if self.ier & IER_EDSSI != 0 && self.msr_deltas & MSR_DELTAS != 0 {
            IIR_MSI
        } else {
            IIR_NONE
        }
    }

    fn update_irq(&self, ctx: &mut DeviceCtx<'_>) {
        ctx.gic
            .set_spi_level(self.intid, self.pending() != IIR_NONE);
    }

    /// A byte into the receive FIFO; sets `OE` and drops it when the FIFO is full.
    fn receive(&mut self, byte: u8) {
        if self.rx.len() >= RX_FIFO_SIZE {
            self.lsr_errors |= LSR_OE;
        } else {
            self.rx.push_back(byte);
        }
    }

    fn read_reg(&mut self, offset: u64) -> u8 {
        match offset {
            RBR_THR_DLL if self.dlab() => self.divisor.to_le_bytes()[0],
            RBR_THR_DLL => self.rx.pop_front().unwrap_or(0),
            IER_DLM if self.dlab() => self.divisor.to_le_bytes()[1],
            IER_DLM => self.ier,
            IIR_FCR => {
                let id = self.pending();
                if id == IIR_THRI {
                    self.thr_pending = false;
                }
                let fifo = if self.fcr & FCR_FE != 0 { IIR_FIFO } else { 0 };
                id | fifo
            }
            LCR => self.lcr,
            MCR => self.mcr,
            LSR => {
                let v = self.lsr();
                self.lsr_errors = 0;
                v
            }
            MSR => {
                let v = self.modem_inputs() | self.msr_deltas;
                self.msr_deltas = 0;
                v
            }
            SCR => self.scr,
            _ => 0,
        }
    }

    fn write_reg(&mut self, offset: u64, v: u8, ctx: &mut DeviceCtx<'_>) {
        match offset {
            RBR_THR_DLL if self.dlab() => {
                self.divisor = u16::from_le_bytes([v, self.divisor.to_le_bytes()[1]]);
            }
            RBR_THR_DLL => {
                if self.mcr & MCR_LOOP != 0 {
                    self.receive(v);
                } else {
                    ctx.console.write_byte(v);
                }
                // Sent at once: the holding register is empty again (an event only while
                // ETBEI is set; a later rising ETBEI raises it anyway).
                self.thr_pending = self.ier & IER_ETBEI != 0;
            }
            IER_DLM if self.dlab() => {
                self.divisor = u16::from_le_bytes([self.divisor.to_le_bytes()[0], v]);
            }
            IER_DLM => {
                let new = v & IER_MASK;
                if (self.ier ^ new) & IER_ETBEI != 0 {
                    // A rising ETBEI with THR empty raises the event; a falling one drops it.
                    self.thr_pending = new & IER_ETBEI != 0;
                }
                self.ier = new;
            }
            IIR_FCR => {
                if (self.fcr ^ v) & FCR_FE != 0 || v & FCR_RFR != 0 {
                    self.rx.clear();
                }
                self.fcr = v;
            }
            LCR => self.lcr = v,
            MCR => {
                let before = self.modem_inputs();
                self.mcr = v & MCR_MASK;
                let after = self.modem_inputs();
                let changed = before ^ after;
                for (line, delta) in [
                    (MSR_CTS, MSR_DCTS),
                    (MSR_DSR, MSR_DDSR),
                    (MSR_DCD, MSR_DDCD),
                ] {
                    if changed & line != 0 {
                        self.msr_deltas |= delta;
                    }
                }
                // TERI: the trailing edge of RI only.
                if before & MSR_RI != 0 && after & MSR_RI == 0 {
                    self.msr_deltas |= MSR_TERI;
                }
            }
            SCR => self.scr = v,
            _ => {} // LSR, MSR (factory test writes) and unknown offsets.
        }
    }
}

impl MmioDevice for Uart16550 {
    fn name(&self) -> &'static str {
        "uart16550"
    }

    fn read(&mut self, access: MmioAccess, ctx: &mut DeviceCtx<'_>) -> u64 {
        let v = self.read_reg(access.offset);
        self.update_irq(ctx);
        u64::from(v)
    }

    fn write(&mut self, access: MmioAccess, value: u64, ctx: &mut DeviceCtx<'_>) {
        self.write_reg(access.offset, value.to_le_bytes()[0], ctx);
        self.update_irq(ctx);
    }

    fn console_input(&mut self, byte: u8, ctx: &mut DeviceCtx<'_>) -> bool {
        // In loopback the receiver is disconnected from the serial input.
        if self.mcr & MCR_LOOP == 0 {
            self.receive(byte);
        }
        self.update_irq(ctx);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::test_util::{Captured, Ctx};
    use crate::vgic::Vgic;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    const INTID: u32 = 32;

    struct Env {
        gic: Vgic,
        out: Captured,
        uart: Uart16550,
    }

    impl Env {
        fn new() -> Self {
            Self {
                gic: Vgic::new(&[0], 32),
                out: Captured::default(),
                uart: Uart16550::new(INTID),
            }
        }

        fn read_sized(&mut self, offset: u64, size: u8) -> u64 {
            let a = MmioAccess {
                vcpu: 0,
                offset,
                size,
            };
            Ctx {
                gic: &mut self.gic,
                out: &mut self.out,
                unix_time: 0,
            }
            .read(&mut self.uart, a)
        }

        fn write_sized(&mut self, offset: u64, size: u8, value: u64) {
            let a = MmioAccess {
                vcpu: 0,
                offset,
                size,
            };
            Ctx {
                gic: &mut self.gic,
                out: &mut self.out,
                unix_time: 0,
            }
            .write(&mut self.uart, a, value);
        }

        fn input(&mut self, byte: u8) -> bool {
            Ctx {
                gic: &mut self.gic,
                out: &mut self.out,
                unix_time: 0,
            }
            .input(&mut self.uart, byte)
        }

        fn rd(&mut self, offset: u64) -> u8 {
            let v = self.read_sized(offset, 1);
            assert!(v <= 0xff, "byte register read {v:#x}");
            v as u8
        }

        fn wr(&mut self, offset: u64, value: u8) {
            self.write_sized(offset, 1, u64::from(value));
        }

        fn line(&self) -> bool {
            self.gic.spi_level(INTID)
        }
    }

    #[test]
    fn reset_state() {
        let mut e = Env::new();
        assert_eq!(e.rd(IER_DLM), 0);
        assert_eq!(e.rd(IIR_FCR), IIR_NONE);
        assert_eq!(e.rd(LCR), 0);
        assert_eq!(e.rd(MCR), MCR_OUT2);
        assert_eq!(e.rd(LSR), 0x60);
        assert_eq!(e.rd(MSR), 0xb0, "DCD | DSR | CTS, no deltas");
        assert_eq!(e.rd(SCR), 0);
        assert_eq!(e.rd(RBR_THR_DLL), 0, "empty FIFO reads 0");
        e.wr(LCR, LCR_DLAB);
        assert_eq!(e.rd(RBR_THR_DLL), 12);
        assert_eq!(e.rd(IER_DLM), 0);
        assert!(!e.line());
        assert_eq!(e.uart.name(), "uart16550");
    }

    #[test]
    fn thr_write_goes_to_console_and_lsr_stays_empty() {
        let mut e = Env::new();
        for &b in b"hello\n" {
            assert_eq!(e.rd(LSR) & 0x60, 0x60);
            e.wr(RBR_THR_DLL, b);
        }
        assert_eq!(e.out.0, b"hello\n");
        assert_eq!(e.rd(LSR), 0x60);
        assert!(!e.line(), "no interrupt enabled");
    }

    #[test]
    fn dlab_selects_divisor_latch() {
        let mut e = Env::new();
        e.wr(IER_DLM, 0x05);
        e.wr(LCR, 0x83);
        e.wr(RBR_THR_DLL, 0x01);
        e.wr(IER_DLM, 0x02);
        assert_eq!(e.uart.divisor, 0x0201);
        assert_eq!(e.rd(RBR_THR_DLL), 0x01);
        assert_eq!(e.rd(IER_DLM), 0x02);
        assert!(e.out.0.is_empty(), "a DLL write is not transmitted");
        e.input(b'x');
        assert_eq!(e.rd(RBR_THR_DLL), 0x01, "DLL, not the FIFO");
        assert_eq!(e.rd(LCR), 0x83);
        e.wr(LCR, 0x03);
        assert_eq!(e.rd(IER_DLM), 0x05, "IER kept apart from DLM");
        assert_eq!(e.rd(RBR_THR_DLL), b'x');
        e.wr(RBR_THR_DLL, b'y');
        assert_eq!(e.out.0, b"y");
        e.wr(LCR, 0x80);
        assert_eq!(e.rd(RBR_THR_DLL), 0x01, "divisor unchanged by THR");
    }

    #[test]
    fn ier_keeps_low_four_bits() {
        let mut e = Env::new();
        e.wr(IER_DLM, 0xff);
        assert_eq!(
            e.rd(IER_DLM),
            0x0f,
            "UUE (bit 6) and the rest read 0: not an XScale"
        );
        e.wr(IER_DLM, 0);
        assert_eq!(e.rd(IER_DLM), 0);
    }

    #[test]
    fn scr_lcr_mcr_storage() {
        let mut e = Env::new();
        for v in [0x00, 0x55, 0xaa, 0xff] {
            e.wr(SCR, v);
            assert_eq!(e.rd(SCR), v);
        }
        e.wr(LCR, 0x1b);
        assert_eq!(e.rd(LCR), 0x1b);
        e.wr(MCR, 0xef);
        assert_eq!(e.rd(MCR), 0x0f, "AFE and bits 5..7 not implemented");
        e.wr(LSR, 0);
        e.wr(MSR, 0);
        assert_eq!(e.rd(LSR), 0x60, "LSR writes ignored");
        assert_eq!(e.rd(MSR) & 0xf0, 0xb0, "MSR writes ignored");
    }

    #[test]
    fn receive_sets_dr_and_rdi() {
        let mut e = Env::new();
        assert!(e.input(b'a'));
        assert_eq!(e.rd(LSR), 0x61);
        assert!(!e.line(), "ERBFI clear");
        assert_eq!(e.rd(IIR_FCR), IIR_NONE);
        e.wr(IER_DLM, IER_ERBFI);
        assert!(e.line());
        assert_eq!(e.rd(IIR_FCR), IIR_RDI);
        assert_eq!(e.rd(IIR_FCR), IIR_RDI, "reading IIR does not clear RDI");
        e.input(b'b');
        assert_eq!(e.rd(RBR_THR_DLL), b'a');
        assert!(e.line(), "one byte left");
        assert_eq!(e.rd(RBR_THR_DLL), b'b');
        assert!(!e.line());
        assert_eq!(e.rd(LSR), 0x60);
        assert_eq!(e.rd(IIR_FCR), IIR_NONE);
    }

    #[test]
    fn overrun_sets_oe_and_rls_interrupt() {
        let mut e = Env::new();
        for i in 0..RX_FIFO_SIZE {
            e.input(i as u8);
        }
        assert_eq!(e.rd(LSR), 0x61, "full but no overrun yet");
        assert!(e.input(0xee), "still taken (and lost)");
        e.wr(IER_DLM, IER_ELSI | IER_ERBFI);
        assert!(e.line());
        assert_eq!(e.rd(IIR_FCR), IIR_RLSI, "line status outranks data");
        assert_eq!(e.rd(LSR), 0x63);
        assert_eq!(e.rd(LSR), 0x61, "OE cleared by the read");
        assert_eq!(e.rd(IIR_FCR), IIR_RDI);
        for i in 0..RX_FIFO_SIZE {
            assert_eq!(e.rd(RBR_THR_DLL), i as u8, "FIFO contents kept on overrun");
        }
        assert_eq!(e.rd(LSR), 0x60);
        assert!(!e.line());
    }

    #[test]
    fn oe_without_elsi_does_not_interrupt() {
        let mut e = Env::new();
        for _ in 0..=RX_FIFO_SIZE {
            e.input(0);
        }
        e.wr(IER_DLM, IER_ETBEI | IER_EDSSI);
        assert_eq!(e.rd(IIR_FCR), IIR_THRI);
        assert!(!e.line(), "THRI consumed; OE and data not enabled");
        assert_eq!(e.rd(LSR) & LSR_OE, LSR_OE);
    }

    #[test]
    fn fcr_fifo_bits_and_rx_clear() {
        let mut e = Env::new();
        e.input(1);
        e.wr(IIR_FCR, 0x01);
        assert_eq!(e.rd(IIR_FCR), 0xc1);
        assert_eq!(e.rd(LSR), 0x60, "enabling the FIFOs empties them");
        e.input(2);
        e.input(3);
        e.wr(IIR_FCR, 0xc1);
        assert_eq!(e.rd(LSR), 0x61, "same FE, no RFR: kept");
        assert_eq!(e.rd(IIR_FCR), 0xc1, "trigger bits do not show");
        e.wr(IIR_FCR, 0x03);
        assert_eq!(e.rd(LSR), 0x60, "RFR clears the receive FIFO");
        e.input(4);
        e.wr(IIR_FCR, 0x04);
        assert_eq!(e.rd(LSR), 0x60, "disabling the FIFOs empties them");
        assert_eq!(e.rd(IIR_FCR), 0x01);
        e.wr(LCR, LCR_DLAB);
        e.wr(IIR_FCR, 0x21);
        assert_eq!(
            e.rd(IIR_FCR),
            0xc1,
            "FCR written under DLAB; no 64-byte bit (not a 16750)"
        );
        e.wr(LCR, 0);
        assert_eq!(e.rd(IIR_FCR), 0xc1);
    }

    #[test]
    fn rfr_keeps_overrun() {
        let mut e = Env::new();
        for _ in 0..=RX_FIFO_SIZE {
            e.input(0);
        }
        e.wr(IIR_FCR, 0x02);
        assert_eq!(e.rd(LSR), 0x62);
    }

    #[test]
    fn thre_interrupt_follows_linux_startup_test() {
        let mut e = Env::new();
        // serial8250_do_startup's THRE test: ETBEI on, IIR, IER off, ETBEI on, IIR.
        e.wr(IER_DLM, IER_ETBEI);
        assert!(e.line(), "ETBEI rising with THR empty");
        assert_eq!(e.rd(IIR_FCR), IIR_THRI);
        assert!(!e.line(), "reading IIR cleared it");
        assert_eq!(e.rd(IIR_FCR), IIR_NONE);
        e.wr(IER_DLM, 0);
        e.wr(IER_DLM, IER_ETBEI);
        assert_eq!(
            e.rd(IIR_FCR),
            IIR_THRI,
            "raised again on the next rising edge"
        );
        e.wr(IER_DLM, 0);
        assert!(!e.line());
        // Rewriting IER with ETBEI already set is no rising edge.
        e.wr(IER_DLM, IER_ETBEI);
        assert_eq!(e.rd(IIR_FCR), IIR_THRI);
        e.wr(IER_DLM, IER_ETBEI | IER_ERBFI);
        assert_eq!(e.rd(IIR_FCR), IIR_NONE);
        assert!(!e.line());
    }

    #[test]
    fn thre_interrupt_follows_linux_tx_path() {
        let mut e = Env::new();
        // start_tx: set ETBEI; the interrupt fires; the handler writes THR, interrupt again.
        e.wr(IER_DLM, IER_ERBFI | IER_ETBEI);
        assert!(e.line());
        for &b in b"abc" {
            assert_eq!(e.rd(IIR_FCR), IIR_THRI);
            assert!(!e.line());
            assert_eq!(e.rd(LSR) & LSR_THRE, LSR_THRE);
            e.wr(RBR_THR_DLL, b);
            assert!(e.line(), "THR empty again after the byte went out");
        }
        // Nothing left: stop_tx clears ETBEI and the line drops.
        e.wr(IER_DLM, IER_ERBFI);
        assert!(!e.line());
        e.wr(IER_DLM, IER_ERBFI | IER_ETBEI);
        assert!(e.line());
        e.wr(RBR_THR_DLL, b'd');
        assert!(
            e.line(),
            "a THR write clears the event and the instant send raises it"
        );
        assert_eq!(e.out.0, b"abcd");
    }

    #[test]
    fn thr_event_survives_masking_only_while_etbei_set() {
        let mut e = Env::new();
        e.wr(RBR_THR_DLL, b'z');
        assert!(!e.line(), "pending but not enabled");
        e.wr(IER_DLM, IER_ETBEI);
        assert_eq!(e.rd(IIR_FCR), IIR_THRI);
        e.wr(RBR_THR_DLL, b'z');
        assert!(e.line());
        e.wr(IER_DLM, 0);
        assert!(!e.line());
        e.wr(IER_DLM, IER_ERBFI);
        assert!(!e.line(), "the falling edge dropped the event");
    }

    #[test]
    fn console_write_save_restore_ier() {
        let mut e = Env::new();
        e.wr(IER_DLM, IER_ERBFI | IER_ETBEI);
        assert_eq!(e.rd(IIR_FCR), IIR_THRI);
        // serial8250_console_write: save IER, clear it, poll LSR and write, restore IER.
        let ier = e.rd(IER_DLM);
        e.wr(IER_DLM, 0);
        for &b in b"log\n" {
            while e.rd(LSR) & 0x60 != 0x60 {}
            e.wr(RBR_THR_DLL, b);
            assert!(!e.line());
        }
        e.wr(IER_DLM, ier);
        assert_eq!(e.rd(IIR_FCR), IIR_THRI, "restoring ETBEI raises THRE");
        assert_eq!(e.out.0, b"log\n");
    }

    #[test]
    fn interrupt_priority_order() {
        let mut e = Env::new();
        e.wr(MCR, MCR_LOOP | MCR_OUT2); // CTS and DSR fall
        e.wr(MCR, MCR_OUT2);
        // Now a modem delta, an event, data and an overrun are all possible.
        e.wr(IER_DLM, 0x0f);
        e.wr(RBR_THR_DLL, 0); // THR event (and out to the console: not in loopback)
        for _ in 0..=RX_FIFO_SIZE {
            e.input(7);
        }
        assert_eq!(e.rd(IIR_FCR), IIR_RLSI);
        e.rd(LSR);
        assert_eq!(e.rd(IIR_FCR), IIR_RDI);
        e.wr(IIR_FCR, FCR_RFR);
        assert_eq!(e.rd(IIR_FCR), IIR_THRI);
        assert_eq!(e.rd(IIR_FCR), IIR_MSI);
        assert!(e.line());
        assert_ne!(e.rd(MSR) & MSR_DELTAS, 0);
        assert_eq!(e.rd(IIR_FCR), IIR_NONE);
        assert!(!e.line());
    }

    #[test]
    fn loopback_modem_lines_and_data() {
        let mut e = Env::new();
        // Linux autoconfig: MCR = LOOP | OUT2 | RTS must read MSR & 0xF0 = DCD | CTS.
        e.wr(MCR, MCR_LOOP | MCR_OUT2 | MCR_RTS);
        let msr = e.rd(MSR);
        assert_eq!(msr & 0xf0, 0x90);
        assert_eq!(msr & MSR_DELTAS, MSR_DDSR, "DSR fell");
        assert_eq!(e.rd(MSR), 0x90, "deltas cleared by the read");
        e.wr(MCR, MCR_LOOP | MCR_DTR | MCR_OUT1);
        assert_eq!(e.rd(MSR), 0x60 | MSR_DCTS | MSR_DDSR | MSR_DDCD);
        e.wr(MCR, MCR_LOOP);
        assert_eq!(e.rd(MSR), MSR_DDSR | MSR_TERI, "RI fell: trailing edge");
        e.wr(MCR, MCR_LOOP | MCR_OUT1);
        assert_eq!(e.rd(MSR), MSR_RI, "a rising RI is no TERI");
        // Data loops back instead of going out; outside input is not received.
        e.wr(RBR_THR_DLL, b'L');
        assert!(e.input(b'X'));
        assert!(e.out.0.is_empty());
        assert_eq!(e.rd(LSR), 0x61);
        assert_eq!(e.rd(RBR_THR_DLL), b'L');
        assert_eq!(e.rd(LSR), 0x60);
        e.wr(MCR, MCR_OUT2);
        assert_eq!(e.rd(MSR), 0xb0 | MSR_DCTS | MSR_DDSR | MSR_DDCD | MSR_TERI);
        e.wr(RBR_THR_DLL, b'o');
        assert_eq!(e.out.0, b"o");
    }

    #[test]
    fn loopback_overrun() {
        let mut e = Env::new();
        e.wr(MCR, MCR_LOOP);
        for _ in 0..=RX_FIFO_SIZE {
            e.wr(RBR_THR_DLL, 1);
        }
        assert_eq!(e.rd(LSR), 0x63);
    }

    #[test]
    fn modem_status_interrupt() {
        let mut e = Env::new();
        e.wr(IER_DLM, IER_EDSSI);
        assert!(!e.line(), "no delta yet");
        e.wr(MCR, MCR_LOOP | MCR_OUT2 | MCR_RTS | MCR_DTR);
        assert!(!e.line(), "DCD, DSR and CTS unchanged");
        e.wr(MCR, MCR_LOOP | MCR_OUT2 | MCR_RTS);
        assert!(e.line());
        assert_eq!(e.rd(IIR_FCR), IIR_MSI);
        assert_eq!(e.rd(IIR_FCR), IIR_MSI, "IIR read does not clear MSI");
        e.rd(MSR);
        assert!(!e.line());
    }

    #[test]
    fn wide_accesses_use_the_low_byte() {
        let mut e = Env::new();
        e.write_sized(SCR, 4, 0x1234_5678);
        assert_eq!(e.read_sized(SCR, 4), 0x78);
        e.write_sized(RBR_THR_DLL, 8, 0xffff_ffff_ffff_ff41);
        e.write_sized(RBR_THR_DLL, 2, 0x0a42);
        assert_eq!(e.out.0, b"AB");
        assert_eq!(e.read_sized(LSR, 8), 0x60);
        e.write_sized(SCR, 3, 0x99);
        assert_eq!(e.read_sized(SCR, 0), 0x99, "odd sizes too");
    }

    #[test]
    fn unknown_offsets_raz_wi() {
        let mut e = Env::new();
        for off in [8, 9, 0x100, u64::MAX, 1 << 63] {
            e.write_sized(off, 1, 0xff);
            e.write_sized(off, 8, u64::MAX);
            assert_eq!(e.read_sized(off, 1), 0);
            assert_eq!(e.read_sized(off, 8), 0);
        }
        assert!(e.out.0.is_empty());
        assert_eq!(e.rd(SCR), 0);
        assert_eq!(e.rd(IER_DLM), 0);
        assert!(!e.line());
    }

    #[test]
    fn edk2_init_and_poll() {
        let mut e = Env::new();
        // BaseSerialPortLib16550: wait for TEMT | THRE, program 115200 8N1, FIFOs, then
        // poll LSR before each byte and LSR.DR before reading.
        assert_eq!(e.rd(LSR) & 0x60, 0x60);
        e.wr(LCR, 0x83);
        e.wr(RBR_THR_DLL, 1);
        e.wr(IER_DLM, 0);
        e.wr(LCR, 0x03);
        e.wr(IIR_FCR, 0x07);
        e.wr(MCR, 0);
        assert_eq!(e.rd(MSR) & 0x30, 0x30, "DSR and CTS for flow control");
        for &b in b"UEFI" {
            assert_eq!(e.rd(LSR) & LSR_THRE, LSR_THRE);
            e.wr(RBR_THR_DLL, b);
        }
        assert_eq!(e.out.0, b"UEFI");
        assert_eq!(e.rd(LSR) & LSR_DR, 0);
        e.input(b'\r');
        assert_eq!(e.rd(LSR) & LSR_DR, LSR_DR);
        assert_eq!(e.rd(RBR_THR_DLL), b'\r');
        assert!(!e.line(), "edk2 polls: no interrupt enabled");
    }

    #[test]
    fn bad_intid_is_harmless() {
        let mut gic = Vgic::new(&[0], 32);
        let mut out = Captured::default();
        let mut ctx = DeviceCtx {
            gic: &mut gic,
            console: &mut out,
            unix_time: 0,
            dma: &mut crate::devices::NoDma,
        };
        let mut u = Uart16550::new(u32::MAX);
        let a = MmioAccess {
            vcpu: 0,
            offset: IER_DLM,
            size: 1,
        };
        u.write(a, 0x0f, &mut ctx);
        assert!(u.console_input(1, &mut ctx));
        assert_eq!(u.read(a, &mut ctx), 0x0f);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Read(u64, u8),
        Write(u64, u8, u64),
        Input(u8),
    }

    fn offset() -> impl Strategy<Value = u64> {
        prop_oneof![8 => 0u64..8, 1 => 8u64..16, 1 => any::<u64>()]
    }

    fn size() -> impl Strategy<Value = u8> {
        prop_oneof![4 => Just(1u8), 1 => Just(2u8), 1 => Just(4u8), 1 => Just(8u8), 1 => any::<u8>()]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (offset(), size()).prop_map(|(o, s)| Op::Read(o, s)),
            3 => (offset(), size(), any::<u64>()).prop_map(|(o, s, v)| Op::Write(o, s, v)),
            2 => any::<u8>().prop_map(Op::Input),
        ]
    }

    proptest! {
        #[test]
        fn random_access_streams_keep_invariants(ops in proptest::collection::vec(op(), 0..400)) {
            let mut e = Env::new();
            let mut sent = Vec::new();
            for op in ops {
                match op {
                    Op::Read(o, s) => prop_assert!(e.read_sized(o, s) <= 0xff),
                    Op::Write(o, s, v) => {
                        let to_console = e.uart.mcr & MCR_LOOP == 0 && o == 0 && !e.uart.dlab();
                        e.write_sized(o, s, v);
                        if to_console {
                            sent.push(v as u8);
                        }
                    }
                    Op::Input(b) => prop_assert!(e.input(b)),
                }
                prop_assert!(e.uart.rx.len() <= RX_FIFO_SIZE);
                prop_assert_eq!(e.uart.lsr() & 0x60, 0x60);
                prop_assert_eq!(e.uart.ier & !IER_MASK, 0);
                prop_assert_eq!(e.uart.mcr & !MCR_MASK, 0);
                prop_assert_eq!(e.line(), e.uart.pending() != IIR_NONE);
                if e.uart.ier & IER_ETBEI == 0 {
                    prop_assert!(!e.uart.thr_pending, "the event dies with ETBEI");
                }
            }
            prop_assert_eq!(&e.out.0, &sent);
        }
    }
}
