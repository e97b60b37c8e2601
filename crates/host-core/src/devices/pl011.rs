//! An Arm PrimeCell UART (PL011, revision 2 in its ID registers, so Linux's `amba-pl011`
//! driver reckons with 16-entry FIFOs) as that driver and our realm payload (`crates/realm`,
//! docs/realm-payload.md §4) use it.
//!
//! | offset | register | |
//! |---|---|---|
//! | 0x000 | `UARTDR` | write: transmits bits 0..7; read: pops the receive FIFO (bits 8..11 = `FE`, `PE`, `BE`, `OE` of that byte; 0 when empty) |
//! | 0x004 | `UARTRSR`/`UARTECR` | read: `OE` (bit 3) after an overrun; any write clears it |
//! | 0x018 | `UARTFR` | `TXFE` set, `TXFF` and `BUSY` clear; `RXFE`, `RXFF` from the receive FIFO; modem inputs |
//! | 0x020 | `UARTILPR` | storage, 8 bits |
//! | 0x024, 0x028 | `UARTIBRD`, `UARTFBRD` | storage, 16 and 6 bits |
//! | 0x02C | `UARTLCR_H` | storage, 8 bits; `FEN` (bit 4) selects FIFO mode |
//! | 0x030 | `UARTCR` | storage, 16 bits (reset 0x0300); `LBE` (bit 7) loops back |
//! | 0x034 | `UARTIFLS` | storage, 6 bits (reset 0x12); the receive trigger level |
//! | 0x038 | `UARTIMSC` | interrupt mask, 11 bits |
//! | 0x03C, 0x040 | `UARTRIS`, `UARTMIS` | raw and masked interrupt status |
//! | 0x044 | `UARTICR` | write 1 to clear raw status bits |
//! | 0x048 | `UARTDMACR` | storage, 3 bits (there is no DMA) |
//! | 0xFE0..0xFFC | `UARTPeriphID0..3`, `UARTPCellID0..3` | 0x00241011, 0xB105F00D, a byte each |
//!
//! Every other offset reads as zero and ignores writes. Accesses of 1, 2 and 4 bytes aligned
//! to their size are accepted (a narrow access sees the bytes of its lane); 8-byte and
//! unaligned accesses read as zero and are ignored.
//!
//! Transmission is instantaneous (the payload polls `TXFF` before each character, Linux's
//! console waits for `BUSY` to clear) and happens whatever `UARTCR`'s enable bits say, as in
//! QEMU; so does reception. The interrupt state, level-triggered on the line while
//! `UARTMIS` is non-zero:
//!
//! * `TXRIS` (bit 5) is raised by every `UARTDR` write (the FIFO drains at once, falling
//!   through its trigger level), cleared through `UARTICR`. Linux fills the FIFO, then
//!   unmasks `TXIM` and expects the interrupt.
//! * `RXRIS` (bit 4) is raised when the receive FIFO reaches the trigger level (`UARTIFLS`
//!   of a 16-entry FIFO: 2, 4, 8, 12 or 14 bytes; 1 byte without `FEN`) and cleared by reading
//!   below it or through `UARTICR`. `RTRIS` (bit 6, receive timeout) is raised by each byte
//!   received, since no more follow within the timeout in a model without time, and cleared
//!   when the FIFO becomes empty or through `UARTICR`.
//! * `OERIS` (bit 10) is raised when a byte arrives while the receive FIFO ([`RX_FIFO_SIZE`]
//!   bytes, deeper than the chip's so host input is not lost) is full; the byte is lost, the
//!   next byte received carries `OE` in `UARTDR`, and `UARTRSR.OE` is set.
//! * In loopback (`UARTCR.LBE`) transmitted bytes are received, console input is not, and the
//!   modem inputs follow the outputs (`DTR`→`DSR`, `RTS`→`CTS`, `Out1`→`DCD`, `Out2`→`RI`);
//!   each change raises its modem interrupt (bits 0..3). Outside loopback the modem inputs
//!   read 0.

use super::{DeviceCtx, MmioAccess, MmioDevice};
use alloc::collections::VecDeque;

/// Bytes the receive FIFO holds before input overruns.
pub const RX_FIFO_SIZE: usize = 1024;

const DR: u64 = 0x000;
const RSR_ECR: u64 = 0x004;
const FR: u64 = 0x018;
const ILPR: u64 = 0x020;
const IBRD: u64 = 0x024;
const FBRD: u64 = 0x028;
const LCR_H: u64 = 0x02c;
const CR: u64 = 0x030;
const IFLS: u64 = 0x034;
const IMSC: u64 = 0x038;
const RIS: u64 = 0x03c;
const MIS: u64 = 0x040;
const ICR: u64 = 0x044;
const DMACR: u64 = 0x048;
const ID_BASE: u64 = 0xfe0;

/// `UARTPeriphID0..3` and `UARTPCellID0..3`, one byte per word.
const ID_BYTES: [u8; 8] = [0x11, 0x10, 0x24, 0x00, 0x0d, 0xf0, 0x05, 0xb1];

const DR_OE: u16 = 1 << 11;
const RSR_OE: u32 = 1 << 3;

const FR_CTS: u32 = 1 << 0;
const FR_DSR: u32 = 1 << 1;
const FR_DCD: u32 = 1 << 2;
const FR_RXFE: u32 = 1 << 4;
const FR_RXFF: u32 = 1 << 6;
const FR_TXFE: u32 = 1 << 7;
const FR_RI: u32 = 1 << 8;

const LCR_H_FEN: u32 = 1 << 4;

const CR_LBE: u32 = 1 << 7;
const CR_TXE: u32 = 1 << 8;
const CR_RXE: u32 = 1 << 9;
const CR_DTR: u32 = 1 << 10;
const CR_RTS: u32 = 1 << 11;
const CR_OUT1: u32 = 1 << 12;
const CR_OUT2: u32 = 1 << 13;

const INT_RI: u32 = 1 << 0;
const INT_CTS: u32 = 1 << 1;
const INT_DCD: u32 = 1 << 2;
const INT_DSR: u32 = 1 << 3;
const INT_RX: u32 = 1 << 4;
const INT_TX: u32 = 1 << 5;
const INT_RT: u32 = 1 << 6;
const INT_OE: u32 = 1 << 10;
const INT_MASK: u32 = 0x7ff;

const RESET_CR: u32 = CR_RXE | CR_TXE;
const RESET_IFLS: u32 = 0x12;

/// Depth of the FIFOs of a revision 2 chip, for the trigger levels.
const CHIP_FIFO_DEPTH: usize = 16;

/// A PL011 UART; see the [module documentation](self).
#[derive(Clone, Debug)]
pub struct Pl011 {
    intid: u32,
    /// Received bytes with their `UARTDR` error bits.
    rx: VecDeque<u16>,
    /// The next byte received carries `OE`.
    overrun_next: bool,
    rsr: u32,
    ilpr: u32,
    ibrd: u32,
    fbrd: u32,
    lcr_h: u32,
    cr: u32,
    ifls: u32,
    imsc: u32,
    ris: u32,
    dmacr: u32,
}

impl Pl011 {
    /// A UART after reset whose interrupt line is INTID `intid`.
    pub fn new(intid: u32) -> Self {
        Self {
            intid,
            rx: VecDeque::new(),
            overrun_next: false,
            rsr: 0,
            ilpr: 0,
            ibrd: 0,
            fbrd: 0,
            lcr_h: 0,
            cr: RESET_CR,
            ifls: RESET_IFLS,
            imsc: 0,
            ris: 0,
            dmacr: 0,
        }
    }

    fn loopback(&self) -> bool {
        self.cr & CR_LBE != 0
    }

    /// Receive FIFO level at which `RXRIS` rises.
    fn rx_trigger(&self) -> usize {
        if self.lcr_h & LCR_H_FEN == 0 {
            return 1;
        }
        let eighths = match (self.ifls >> 3) & 7 {
            0 => 1,
            1 => 2,
            2 => 4,
            3 => 6,
            _ => 7, // 7/8, and the reserved encodings
        };
        CHIP_FIFO_DEPTH * eighths / 8
    }

    /// The modem inputs in `UARTFR` format.
    fn modem_inputs(&self) -> u32 {
        if !self.loopback() {
            return 0;
        }
        [
            (CR_DTR, FR_DSR),
            (CR_RTS, FR_CTS),
            (CR_OUT1, FR_DCD),
            (CR_OUT2, FR_RI),
        ]
        .iter()
        .filter(|(out, _)| self.cr & out != 0)
        .fold(0, |v, (_, inp)| v | inp)
    }

    fn fr(&self) -> u32 {
        let mut v = FR_TXFE | self.modem_inputs();
        if self.rx.is_empty() {
            v |= FR_RXFE;
        }
        let full = if self.lcr_h & LCR_H_FEN != 0 {
            self.rx.len() >= RX_FIFO_SIZE
        } else {
            !self.rx.is_empty()
        };
        if full {
            v |= FR_RXFF;
        }
        v
    }

    fn receive(&mut self, byte: u8) {
        if self.rx.len() >= RX_FIFO_SIZE {
            self.overrun_next = true;
            self.rsr |= RSR_OE;
            self.ris |= INT_OE;
            return;
        }
        let err = if self.overrun_next { DR_OE } else { 0 };
        self.overrun_next = false;
        self.rx.push_back(u16::from(byte) | err);
        if self.rx.len() == self.rx_trigger() {
            self.ris |= INT_RX;
        }
        self.ris |= INT_RT;
    }

    fn pop(&mut self) -> u32 {
        let v = self.rx.pop_front().map_or(0, u32::from);
        if self.rx.len() < self.rx_trigger() {
            self.ris &= !INT_RX;
        }
        if self.rx.is_empty() {
            self.ris &= !INT_RT;
        }
        v
    }

    /// The 32-bit register at the word-aligned `reg`; `pop` says whether a `UARTDR` read
    /// takes the byte.
    fn read_word(&mut self, reg: u64, pop: bool) -> u32 {
        match reg {
            DR if pop => self.pop(),
            DR => self.rx.front().map_or(0, |&v| u32::from(v)),
            RSR_ECR => self.rsr,
            FR => self.fr(),
            ILPR => self.ilpr,
            IBRD => self.ibrd,
            FBRD => self.fbrd,
            LCR_H => self.lcr_h,
            CR => self.cr,
            IFLS => self.ifls,
            IMSC => self.imsc,
            RIS => self.ris,
            MIS => self.ris & self.imsc,
            DMACR => self.dmacr,
            ID_BASE..=0xffc => {
                let i = ((reg - ID_BASE) / 4) as usize;
                ID_BYTES.get(i).map_or(0, |&b| u32::from(b))
            }
            _ => 0, // ICR is write-only
        }
    }

    /// A write of `bits` (already shifted into the lane) under `mask` to the word `reg`.
    fn write_word(&mut self, reg: u64, bits: u32, mask: u32, ctx: &mut DeviceCtx<'_>) {
        let merge = |old: u32, width: u32| (old & !mask | bits & mask) & width;
        match reg {
            // Only a write that covers the data byte transmits.
            DR if mask & 0xff != 0 => {
                let byte = bits.to_le_bytes()[0];
                if self.loopback() {
                    self.receive(byte);
                } else {
                    ctx.console.write_byte(byte);
                }
                self.ris |= INT_TX;
            }
            RSR_ECR => self.rsr = 0,
            ILPR => self.ilpr = merge(self.ilpr, 0xff),
            IBRD => self.ibrd = merge(self.ibrd, 0xffff),
            FBRD => self.fbrd = merge(self.fbrd, 0x3f),
            LCR_H => self.lcr_h = merge(self.lcr_h, 0xff),
            CR => {
                let before = self.modem_inputs();
                self.cr = merge(self.cr, 0xffff);
                let changed = before ^ self.modem_inputs();
                for (line, int) in [
                    (FR_RI, INT_RI),
                    (FR_CTS, INT_CTS),
                    (FR_DCD, INT_DCD),
                    (FR_DSR, INT_DSR),
                ] {
                    if changed & line != 0 {
                        self.ris |= int;
                    }
                }
            }
            IFLS => self.ifls = merge(self.ifls, 0x3f),
            IMSC => self.imsc = merge(self.imsc, INT_MASK),
            ICR => self.ris &= !(bits & mask & INT_MASK),
            DMACR => self.dmacr = merge(self.dmacr, 0x7),
            _ => {} // FR, RIS, MIS, the ID registers and unknown offsets
        }
    }

    fn update_irq(&self, ctx: &mut DeviceCtx<'_>) {
        ctx.gic.set_spi_level(self.intid, self.ris & self.imsc != 0);
    }
}

/// The lane shift and the mask of an accepted access, or `None` for one that is ignored.
fn lane(access: &MmioAccess) -> Option<(u32, u32)> {
    let mask = match access.size {
        1 => 0xff,
        2 => 0xffff,
        4 => 0xffff_ffff,
        _ => return None,
    };
    let offset_in_word = (access.offset & 3) as u32;
    (offset_in_word % u32::from(access.size) == 0).then_some((offset_in_word * 8, mask))
}

impl MmioDevice for Pl011 {
    fn name(&self) -> &'static str {
        "pl011"
    }

    fn read(&mut self, access: MmioAccess, ctx: &mut DeviceCtx<'_>) -> u64 {
        let v = match lane(&access) {
            Some((shift, mask)) => {
                let word = self.read_word(access.offset & !3, shift == 0);
                (word >> shift) & mask
            }
            None => 0,
        };
        self.update_irq(ctx);
        u64::from(v)
    }

    fn write(&mut self, access: MmioAccess, value: u64, ctx: &mut DeviceCtx<'_>) {
        if let Some((shift, mask)) = lane(&access) {
            let bits = ((value as u32) & mask) << shift;
            self.write_word(access.offset & !3, bits, mask << shift, ctx);
        }
        self.update_irq(ctx);
    }

    fn console_input(&mut self, byte: u8, ctx: &mut DeviceCtx<'_>) -> bool {
        if !self.loopback() {
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

    const INTID: u32 = 33;
    const FR_TXFF: u32 = 1 << 5;
    const FR_BUSY: u32 = 1 << 3;

    struct Env {
        gic: Vgic,
        out: Captured,
        uart: Pl011,
    }

    impl Env {
        fn new() -> Self {
            Self {
                gic: Vgic::new(&[0], 32),
                out: Captured::default(),
                uart: Pl011::new(INTID),
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

        fn rd(&mut self, offset: u64) -> u32 {
            let v = self.read_sized(offset, 4);
            assert!(v <= u64::from(u32::MAX));
            v as u32
        }

        fn wr(&mut self, offset: u64, value: u32) {
            self.write_sized(offset, 4, u64::from(value));
        }

        fn line(&self) -> bool {
            self.gic.spi_level(INTID)
        }
    }

    #[test]
    fn reset_values() {
        let mut e = Env::new();
        assert_eq!(e.rd(FR), FR_TXFE | FR_RXFE);
        assert_eq!(e.rd(CR), 0x0300);
        assert_eq!(e.rd(IFLS), 0x12);
        for reg in [
            DR, RSR_ECR, ILPR, IBRD, FBRD, LCR_H, IMSC, RIS, MIS, ICR, DMACR,
        ] {
            assert_eq!(e.rd(reg), 0, "{reg:#x}");
        }
        assert!(!e.line());
        assert_eq!(e.uart.name(), "pl011");
    }

    #[test]
    fn id_registers() {
        let mut e = Env::new();
        let word = |e: &mut Env, base: u64| {
            (0..4).fold(0u32, |v, i| v | (e.rd(base + 4 * i) & 0xff) << (8 * i))
        };
        assert_eq!(word(&mut e, 0xfe0), 0x0024_1011);
        assert_eq!(word(&mut e, 0xff0), 0xb105_f00d);
        for off in (0xfe0..0x1000).step_by(4) {
            assert!(e.rd(off) <= 0xff, "one byte per word");
            e.wr(off, 0);
        }
        assert_eq!(word(&mut e, 0xfe0), 0x0024_1011, "read-only");
        assert_eq!(e.read_sized(0xfe8, 1), 0x24);
        assert_eq!(e.read_sized(0xfd0, 4), 0, "below the ID block");
    }

    #[test]
    fn realm_payload_console() {
        let mut e = Env::new();
        // docs/realm-payload.md §4: FR with TXFF clear before each character, 32-bit DR stores.
        for &b in b"[ok] check\n" {
            assert_eq!(e.rd(FR) & FR_TXFF, 0);
            e.wr(DR, u32::from(b));
        }
        assert_eq!(e.out.0, b"[ok] check\n");
        assert_eq!(e.rd(FR) & (FR_TXFF | FR_BUSY), 0);
        e.rd(DR); // the MMIO check reads DR: any value
        assert!(!e.line(), "nothing unmasked");
    }

    #[test]
    fn transmit_sends_the_low_byte_whatever_cr_says() {
        let mut e = Env::new();
        e.wr(CR, 0);
        e.wr(DR, 0xffff_ff41);
        e.write_sized(DR, 1, 0x42);
        e.write_sized(DR, 2, 0x0143);
        assert_eq!(e.out.0, b"ABC");
        e.write_sized(DR + 1, 1, 0x44);
        assert_eq!(e.out.0, b"ABC", "a write to DR's second byte sends nothing");
    }

    #[test]
    fn receive_fifo_and_flags() {
        let mut e = Env::new();
        assert!(e.input(b'x'));
        assert_eq!(
            e.rd(FR),
            FR_TXFE | FR_RXFF,
            "character mode: one byte fills it"
        );
        e.wr(LCR_H, 0x70); // 8 bits, FIFOs
        assert_eq!(e.rd(FR), FR_TXFE);
        e.input(b'y');
        assert_eq!(
            e.read_sized(DR + 1, 1),
            0,
            "error byte of the head, not popped"
        );
        assert_eq!(e.rd(DR), u32::from(b'x'));
        assert_eq!(e.rd(DR), u32::from(b'y'));
        assert_eq!(e.rd(FR), FR_TXFE | FR_RXFE);
        assert_eq!(e.rd(DR), 0, "empty FIFO reads 0");
        e.wr(CR, 0);
        e.input(b'z');
        assert_eq!(
            e.read_sized(DR, 1),
            u64::from(b'z'),
            "received whatever CR says"
        );
    }

    #[test]
    fn rx_interrupts_and_trigger_levels() {
        let mut e = Env::new();
        e.wr(IMSC, INT_RX);
        // Character mode: one byte is the trigger.
        e.input(1);
        assert!(e.line());
        assert_eq!(e.rd(RIS), INT_RX | INT_RT);
        assert_eq!(e.rd(MIS), INT_RX);
        e.rd(DR);
        assert!(!e.line());
        assert_eq!(e.rd(RIS), 0);
        // FIFO mode, IFLS = 0x12: half of 16 = 8 bytes.
        e.wr(LCR_H, LCR_H_FEN);
        for i in 0..7 {
            e.input(i);
            assert!(!e.line(), "{} bytes", i + 1);
        }
        assert_eq!(
            e.rd(RIS),
            INT_RT,
            "the timeout covers bytes below the level"
        );
        e.input(7);
        assert!(e.line());
        e.rd(DR);
        assert!(!e.line(), "read below the trigger");
        assert_eq!(e.rd(RIS), INT_RT);
        e.wr(IMSC, INT_RT);
        assert!(e.line());
        e.wr(ICR, INT_RT);
        assert!(!e.line(), "cleared through ICR");
        while e.rd(FR) & FR_RXFE == 0 {
            e.rd(DR);
        }
        for (ifls, level) in [
            (0x00, 2),
            (0x08, 4),
            (0x10, 8),
            (0x18, 12),
            (0x20, 14),
            (0x38, 14),
        ] {
            e.wr(IFLS, ifls);
            e.wr(IMSC, INT_RX);
            for i in 0..level {
                assert!(!e.line(), "IFLS {ifls:#x}: {i} bytes");
                e.input(0);
            }
            assert!(e.line(), "IFLS {ifls:#x}: {level} bytes");
            e.wr(ICR, INT_RX);
            assert!(!e.line(), "RXIS cleared through ICR");
            e.input(0);
            assert!(!e.line(), "raised on reaching the level, not above it");
            while e.rd(FR) & FR_RXFE == 0 {
                e.rd(DR);
            }
            assert_eq!(e.rd(RIS), 0);
        }
    }

    #[test]
    fn linux_enable_interrupts_and_rx() {
        let mut e = Env::new();
        e.input(b'a');
        // pl011_hwinit and pl011_enable_interrupts: clear, drain, unmask RT and RX.
        e.wr(ICR, INT_OE | 0x380 | INT_RT | INT_RX);
        while e.rd(FR) & FR_RXFE == 0 {
            e.rd(DR);
        }
        e.wr(IMSC, INT_RT | INT_RX);
        assert!(!e.line());
        e.wr(LCR_H, 0x70);
        e.input(b'h');
        e.input(b'i');
        assert!(e.line(), "two bytes: the receive timeout");
        // pl011_int: ICR without TX/RT/RX, then read until RXFE.
        let status = e.rd(RIS) & e.uart.imsc;
        e.wr(ICR, status & !(INT_TX | INT_RT | INT_RX));
        let mut got = Vec::new();
        while e.rd(FR) & FR_RXFE == 0 {
            got.push(e.rd(DR) as u8);
        }
        assert_eq!(got, b"hi");
        assert!(!e.line());
    }

    #[test]
    fn tx_interrupt_as_linux_uses_it() {
        let mut e = Env::new();
        e.wr(IMSC, INT_TX);
        assert!(!e.line(), "no TX interrupt before anything was sent");
        // start_tx_pio: write while TXFF is clear, then unmask TXIM if more remains.
        for &b in b"abcd" {
            assert_eq!(e.rd(FR) & FR_TXFF, 0);
            e.wr(DR, u32::from(b));
        }
        assert!(e.line());
        assert_eq!(e.rd(MIS), INT_TX);
        e.wr(ICR, INT_TX);
        assert!(!e.line());
        e.wr(DR, u32::from(b'e'));
        assert!(e.line());
        // stop_tx masks TXIM.
        e.wr(IMSC, 0);
        assert!(!e.line());
        assert_eq!(e.rd(RIS), INT_TX, "raw status stays until cleared");
        assert_eq!(e.out.0, b"abcde");
    }

    #[test]
    fn overrun() {
        let mut e = Env::new();
        e.wr(LCR_H, LCR_H_FEN);
        for i in 0..RX_FIFO_SIZE {
            e.input(i as u8);
        }
        assert_eq!(e.rd(FR) & FR_RXFF, FR_RXFF);
        assert_eq!(e.rd(RSR_ECR), 0);
        assert!(e.input(0xee), "taken and lost");
        assert_eq!(e.rd(RSR_ECR), RSR_OE);
        assert_eq!(e.rd(RIS) & INT_OE, INT_OE);
        e.wr(IMSC, INT_OE);
        assert!(e.line());
        e.wr(ICR, INT_OE);
        assert!(!e.line());
        assert_eq!(e.rd(RSR_ECR), RSR_OE, "RSR is cleared through ECR only");
        e.write_sized(RSR_ECR, 1, 0);
        assert_eq!(e.rd(RSR_ECR), 0);
        assert_eq!(e.rd(DR), 0, "contents kept");
        e.input(0x55);
        for i in 1..RX_FIFO_SIZE {
            assert_eq!(e.rd(DR), i as u32 & 0xff);
        }
        assert_eq!(
            e.rd(DR),
            0x55 | u32::from(DR_OE),
            "the byte after the loss carries OE"
        );
        e.input(0x56);
        assert_eq!(e.rd(DR), 0x56);
    }

    #[test]
    fn loopback() {
        let mut e = Env::new();
        e.wr(IMSC, INT_RI | INT_CTS | INT_DCD | INT_DSR);
        e.wr(CR, CR_RXE | CR_TXE | CR_DTR | CR_RTS);
        assert_eq!(
            e.rd(FR) & 0x107,
            0,
            "outside loopback the modem inputs read 0"
        );
        assert!(!e.line());
        e.wr(CR, CR_RXE | CR_TXE | CR_DTR | CR_RTS | CR_LBE);
        assert_eq!(e.rd(FR) & 0x107, FR_DSR | FR_CTS);
        assert_eq!(e.rd(RIS), INT_DSR | INT_CTS);
        assert!(e.line());
        e.wr(ICR, 0xf);
        e.wr(CR, CR_LBE | CR_OUT1 | CR_OUT2);
        assert_eq!(e.rd(FR) & 0x107, FR_DCD | FR_RI);
        assert_eq!(e.rd(RIS), INT_RI | INT_CTS | INT_DCD | INT_DSR);
        e.wr(ICR, 0xf);
        e.write_sized(CR + 1, 1, u64::from((CR_OUT1 | CR_OUT2) >> 8));
        assert_eq!(e.rd(CR), CR_LBE | CR_OUT1 | CR_OUT2, "byte write merges");
        assert_eq!(e.rd(RIS), 0, "no change, no interrupt");
        // Data loops back; console input is not received.
        e.wr(DR, u32::from(b'L'));
        assert!(e.input(b'X'));
        assert!(e.out.0.is_empty());
        assert_eq!(e.rd(DR), u32::from(b'L'));
        assert_eq!(e.rd(FR) & FR_RXFE, FR_RXFE);
        e.wr(CR, RESET_CR);
        e.wr(DR, u32::from(b'o'));
        assert_eq!(e.out.0, b"o");
    }

    #[test]
    fn storage_register_widths() {
        let mut e = Env::new();
        for (reg, width) in [
            (ILPR, 0xff),
            (IBRD, 0xffff),
            (FBRD, 0x3f),
            (LCR_H, 0xff),
            (CR, 0xffff),
            (IFLS, 0x3f),
            (IMSC, 0x7ff),
            (DMACR, 0x7),
        ] {
            e.wr(reg, u32::MAX);
            assert_eq!(e.rd(reg), width, "{reg:#x}");
            e.wr(reg, 0);
            assert_eq!(e.rd(reg), 0, "{reg:#x}");
        }
        assert_eq!(
            e.rd(RIS),
            0xf,
            "CR's loopback went on and off: every modem input moved"
        );
        e.wr(ICR, INT_MASK);
        e.wr(FR, 0);
        e.wr(RIS, INT_MASK);
        e.wr(MIS, INT_MASK);
        assert_eq!(e.rd(FR), FR_TXFE | FR_RXFE);
        assert_eq!(e.rd(RIS), 0);
    }

    #[test]
    fn narrow_accesses() {
        let mut e = Env::new();
        e.write_sized(IBRD, 2, 0x1234);
        assert_eq!(e.read_sized(IBRD, 2), 0x1234);
        assert_eq!(e.read_sized(IBRD, 1), 0x34);
        assert_eq!(e.read_sized(IBRD + 1, 1), 0x12);
        assert_eq!(e.read_sized(IBRD + 2, 2), 0);
        e.write_sized(IBRD + 1, 1, 0xab);
        assert_eq!(e.rd(IBRD), 0xab34);
        e.write_sized(IBRD + 2, 2, 0xffff);
        assert_eq!(e.rd(IBRD), 0xab34, "bits above the register's width");
        assert_eq!(e.read_sized(FR, 2), u64::from(FR_TXFE | FR_RXFE));
        e.write_sized(ICR, 1, 0);
        e.wr(DR, 0);
        assert_eq!(e.rd(RIS), INT_TX);
        e.write_sized(ICR + 1, 1, 0);
        assert_eq!(e.rd(RIS), INT_TX, "ICR clears only the bits written as 1");
        e.write_sized(ICR, 1, u64::from(INT_TX));
        assert_eq!(e.rd(RIS), 0);
    }

    #[test]
    fn rejected_sizes_and_offsets() {
        let mut e = Env::new();
        e.input(b'q');
        for (off, size) in [
            (DR, 8),
            (DR + 1, 2),
            (DR + 2, 4),
            (DR, 3),
            (DR, 0),
            (FR + 3, 4),
        ] {
            assert_eq!(e.read_sized(off, size), 0, "{off:#x}/{size}");
            e.write_sized(off, size, 0x41);
        }
        assert!(e.out.0.is_empty());
        assert_eq!(e.rd(FR) & FR_RXFE, 0, "the byte is still there");
        for off in [0x04c, 0x100, 0xfdc, 0x1000, u64::MAX - 3, u64::MAX] {
            e.write_sized(off, 4, u64::MAX);
            assert_eq!(e.read_sized(off, 4), 0, "{off:#x}");
            assert_eq!(e.read_sized(off, 1), 0, "{off:#x}");
        }
        assert_eq!(e.rd(DR), u32::from(b'q'));
        assert_eq!(e.rd(IMSC), 0);
        assert!(!e.line());
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
        let mut u = Pl011::new(5000);
        let a = MmioAccess {
            vcpu: 0,
            offset: IMSC,
            size: 4,
        };
        u.write(a, u64::from(INT_MASK), &mut ctx);
        assert!(u.console_input(1, &mut ctx));
        assert_eq!(u.read(a, &mut ctx), u64::from(INT_MASK));
    }

    #[derive(Clone, Debug)]
    enum Op {
        Read(u64, u8),
        Write(u64, u8, u64),
        Input(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        let offset = prop_oneof![
            6 => (0u64..0x13).prop_map(|w| w * 4),
            2 => 0u64..0x50,
            1 => 0xfe0u64..0x1000,
            1 => any::<u64>(),
        ];
        let size = prop_oneof![1 => Just(1u8), 1 => Just(2u8), 4 => Just(4u8), 1 => Just(8u8), 1 => any::<u8>()];
        prop_oneof![
            3 => (offset.clone(), size.clone()).prop_map(|(o, s)| Op::Read(o, s)),
            3 => (offset, size, any::<u64>()).prop_map(|(o, s, v)| Op::Write(o, s, v)),
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
                    Op::Read(o, s) => {
                        let v = e.read_sized(o, s);
                        prop_assert!(v <= u64::from(u32::MAX));
                    }
                    Op::Write(o, s, v) => {
                        let to_console = !e.uart.loopback() && o == DR && matches!(s, 1 | 2 | 4);
                        e.write_sized(o, s, v);
                        if to_console {
                            sent.push(v as u8);
                        }
                    }
                    Op::Input(b) => prop_assert!(e.input(b)),
                }
                let u = &e.uart;
                prop_assert!(u.rx.len() <= RX_FIFO_SIZE);
                prop_assert_eq!(u.ris & !INT_MASK, 0);
                prop_assert_eq!(u.imsc & !INT_MASK, 0);
                prop_assert_eq!(e.line(), u.ris & u.imsc != 0);
                prop_assert_eq!(u.fr() & (FR_TXFF | FR_BUSY), 0);
                prop_assert_eq!(u.rx.is_empty(), u.fr() & FR_RXFE != 0);
                if u.rx.is_empty() {
                    prop_assert_eq!(u.ris & (INT_RX | INT_RT), 0);
                }
            }
            prop_assert_eq!(&e.out.0, &sent);
        }
    }
}
