//! virtio-console (virtio 1.x §5.3), one port without the multiport feature: queue 0
//! receives (host console input), queue 1 transmits (guest output). Linux names it `hvc0`.
//!
//! Output: every buffer of a transmit chain goes to the host console in one notification,
//! which is why a shell on `hvc0` costs about one exit per `write()` where the 16550 costs
//! two or more per byte. Input: the host's console bytes go to this device instead of the
//! 16550 once the guest has written to it since the last reset (the guest uses it as a
//! console); bytes wait (up to [`MAX_PENDING`]) until the driver posts receive buffers.

use super::queue::{QueueError, Virtqueue};
use super::{device_type, DeviceStats, VirtioDevice};
use crate::devices::{ConsoleOut, DeviceCtx};
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec::Vec;

/// The receive queue.
pub const RX: usize = 0;
/// The transmit queue.
pub const TX: usize = 1;
/// Most input bytes kept while the guest has no receive buffer (later ones are dropped).
pub const MAX_PENDING: usize = 4096;

/// The console device.
#[derive(Default)]
pub struct VirtioConsole {
    pending: VecDeque<u8>,
    active: bool,
    /// Where its output goes (the context's console if `None`).
    out: Option<Box<dyn ConsoleOut>>,
    /// Input bytes dropped because [`MAX_PENDING`] were waiting.
    pub dropped: u64,
}

impl VirtioConsole {
    /// A console in its reset state, its output on the context's console.
    pub fn new() -> Self {
        Self::default()
    }

    /// A console whose output goes to `out` (for example a console line labelled apart
    /// from the 16550's).
    pub fn with_output(out: Box<dyn ConsoleOut>) -> Self {
        Self {
            out: Some(out),
            ..Self::default()
        }
    }

    /// Whether the guest wrote to it since the last reset (it then takes console input).
    pub fn active(&self) -> bool {
        self.active
    }

    fn transmit(
        &mut self,
        queue: &mut Virtqueue,
        ctx: &mut DeviceCtx<'_>,
        stats: &mut DeviceStats,
    ) -> Result<(), QueueError> {
        let mut buf = [0u8; 256];
        while let Some(chain) = queue.pop(ctx.dma)? {
            let len = chain.readable_len();
            let mut off = 0u64;
            while off < len {
                let n = (len - off).min(buf.len() as u64) as usize;
                chain.read(ctx.dma, off, &mut buf[..n])?;
                let out: &mut dyn ConsoleOut = match &mut self.out {
                    Some(o) => o.as_mut(),
                    None => &mut *ctx.console,
                };
                for &b in &buf[..n] {
                    out.write_byte(b);
                }
                off += n as u64;
            }
            stats.console_bytes += len;
            stats.bytes_from_guest += len;
            stats.requests += 1;
            queue.push_used(ctx.dma, chain.head, 0)?;
            self.active = true;
        }
        Ok(())
    }

    fn deliver(
        &mut self,
        queue: &mut Virtqueue,
        ctx: &mut DeviceCtx<'_>,
        stats: &mut DeviceStats,
    ) -> Result<(), QueueError> {
        while !self.pending.is_empty() && queue.ready {
            let Some(chain) = queue.pop(ctx.dma)? else {
                break;
            };
            let n = (self.pending.len() as u64).min(chain.writable_len()) as usize;
            let bytes: Vec<u8> = self.pending.iter().take(n).copied().collect();
            chain.write(ctx.dma, 0, &bytes)?;
            self.pending.drain(..n);
            stats.bytes_to_guest += n as u64;
            queue.push_used(ctx.dma, chain.head, n as u32)?;
        }
        Ok(())
    }
}

impl VirtioDevice for VirtioConsole {
    fn name(&self) -> &'static str {
        "virtio-console"
    }
    fn device_type(&self) -> u16 {
        device_type::CONSOLE
    }
    fn class_code(&self) -> u32 {
        // Simple communication controller, other.
        0x07_80_00
    }
    fn device_features(&self) -> u64 {
        0
    }
    fn num_queues(&self) -> u16 {
        2
    }
    fn config_len(&self) -> u64 {
        // cols, rows, max_nr_ports, emerg_wr: meaningful only with features not offered.
        12
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        super::read_bytes(&[0; 12], offset, data);
    }
    fn reset(&mut self) {
        self.pending.clear();
        self.active = false;
    }
    fn process(
        &mut self,
        q: usize,
        queues: &mut [Virtqueue],
        ctx: &mut DeviceCtx<'_>,
        stats: &mut DeviceStats,
    ) -> Result<(), QueueError> {
        match (q, queues.get_mut(q)) {
            (TX, Some(queue)) if queue.ready => self.transmit(queue, ctx, stats),
            (RX, Some(queue)) if queue.ready => self.deliver(queue, ctx, stats),
            _ => Ok(()),
        }
    }
    fn console_input(
        &mut self,
        byte: u8,
        queues: &mut [Virtqueue],
        ctx: &mut DeviceCtx<'_>,
        stats: &mut DeviceStats,
    ) -> Result<bool, QueueError> {
        let Some(rx) = queues.get_mut(RX).filter(|q| q.ready) else {
            return Ok(false);
        };
        if !self.active {
            return Ok(false);
        }
        if self.pending.len() < MAX_PENDING {
            self.pending.push_back(byte);
        } else {
            self.dropped += 1;
        }
        self.deliver(rx, ctx, stats)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::super::queue::tests::{Driver, FakeDma, RAM};
    use super::super::queue::{DESC_F_NEXT, DESC_F_WRITE};
    use super::*;
    use crate::devices::test_util::Captured;
    use crate::vgic::Vgic;

    struct Env {
        m: FakeDma,
        rx: Driver,
        tx: Driver,
        queues: [Virtqueue; 2],
        con: VirtioConsole,
        stats: DeviceStats,
        gic: Vgic,
        out: Captured,
    }

    const TXBUF: u64 = RAM + 0x10000;
    const RXBUF: u64 = RAM + 0x12000;

    impl Env {
        fn new() -> Self {
            let m = FakeDma::new(RAM, 32);
            let rx = Driver::new(4, RAM);
            let tx = Driver::new(4, RAM + 0x4000);
            let mut queues = [Virtqueue::new(128), Virtqueue::new(128)];
            rx.queue(&mut queues[RX]);
            tx.queue(&mut queues[TX]);
            Self {
                m,
                rx,
                tx,
                queues,
                con: VirtioConsole::new(),
                stats: DeviceStats::default(),
                gic: Vgic::new(&[0], 32),
                out: Captured::default(),
            }
        }

        fn ctx_run<T>(
            &mut self,
            f: impl FnOnce(
                &mut VirtioConsole,
                &mut [Virtqueue],
                &mut DeviceCtx<'_>,
                &mut DeviceStats,
            ) -> T,
        ) -> T {
            let mut ctx = DeviceCtx {
                gic: &mut self.gic,
                console: &mut self.out,
                unix_time: 0,
                dma: &mut self.m,
            };
            f(&mut self.con, &mut self.queues, &mut ctx, &mut self.stats)
        }

        fn send(&mut self, text: &[u8]) {
            // Two buffers in one chain.
            let (a, b) = text.split_at(text.len() / 2);
            self.m.put(TXBUF, a);
            self.m.put(TXBUF + 0x100, b);
            self.tx
                .set_desc(&mut self.m, 0, TXBUF, a.len() as u32, DESC_F_NEXT, 1);
            self.tx
                .set_desc(&mut self.m, 1, TXBUF + 0x100, b.len() as u32, 0, 0);
            self.tx.offer(&mut self.m, 0);
            self.ctx_run(|c, q, ctx, s| c.process(TX, q, ctx, s))
                .unwrap();
        }

        fn post_rx(&mut self, i: u16, len: u32) {
            self.rx.set_desc(
                &mut self.m,
                i,
                RXBUF + u64::from(i) * 0x100,
                len,
                DESC_F_WRITE,
                0,
            );
            self.rx.offer(&mut self.m, i);
        }

        fn input(&mut self, b: u8) -> bool {
            self.ctx_run(|c, q, ctx, s| c.console_input(b, q, ctx, s))
                .unwrap()
        }
    }

    #[test]
    fn output_reaches_the_host_console_one_notification_per_chain() {
        let mut e = Env::new();
        assert!(!e.con.active());
        e.send(b"hello, hvc0\n");
        assert_eq!(e.out.0, b"hello, hvc0\n");
        assert_eq!(e.tx.used_idx(&e.m), 1);
        assert_eq!(e.tx.used_elem(&e.m, 0), (0, 0));
        assert_eq!((e.stats.console_bytes, e.stats.requests), (12, 1));
        assert!(e.con.active());
        assert_eq!(e.con.device_type(), 3);
        assert_eq!(e.con.num_queues(), 2);
    }

    #[test]
    fn input_waits_for_the_guest_to_use_the_console_and_for_buffers() {
        let mut e = Env::new();
        e.post_rx(0, 2);
        assert!(
            !e.input(b'a'),
            "not used as a console yet: the 16550 gets input"
        );
        e.send(b"$ ");
        assert!(e.input(b'l'));
        assert_eq!(e.rx.used_idx(&e.m), 1);
        assert_eq!(e.rx.used_elem(&e.m, 0), (0, 1));
        assert_eq!(e.m.get(RXBUF, 1), b"l");
        // No buffer: kept until the driver posts one, then delivered as far as it fits.
        assert!(e.input(b's'));
        assert!(e.input(b'\n'));
        assert!(e.input(b'x'));
        assert_eq!(e.rx.used_idx(&e.m), 1);
        e.post_rx(1, 2);
        e.ctx_run(|c, q, ctx, s| c.process(RX, q, ctx, s)).unwrap();
        assert_eq!(e.rx.used_elem(&e.m, 1), (1, 2));
        assert_eq!(e.m.get(RXBUF + 0x100, 2), b"s\n");
        e.post_rx(2, 8);
        e.ctx_run(|c, q, ctx, s| c.process(RX, q, ctx, s)).unwrap();
        assert_eq!(e.rx.used_elem(&e.m, 2), (2, 1));
        assert_eq!(e.stats.bytes_to_guest, 4);
        // Reset: inactive again, nothing pending.
        e.input(b'q');
        e.con.reset();
        assert!(!e.con.active());
        assert!(!e.input(b'z'));
    }

    #[test]
    fn output_can_go_to_its_own_console() {
        struct Shared(alloc::rc::Rc<core::cell::RefCell<Vec<u8>>>);
        impl ConsoleOut for Shared {
            fn write_byte(&mut self, b: u8) {
                self.0.borrow_mut().push(b);
            }
        }
        let mut e = Env::new();
        let seen = alloc::rc::Rc::default();
        e.con = VirtioConsole::with_output(Box::new(Shared(alloc::rc::Rc::clone(&seen))));
        e.send(b"on hvc0");
        assert_eq!(&*seen.borrow(), b"on hvc0");
        assert!(e.out.0.is_empty(), "not on the context's console");
    }

    #[test]
    fn pending_input_is_bounded() {
        let mut e = Env::new();
        e.send(b"> ");
        for _ in 0..MAX_PENDING + 10 {
            assert!(e.input(b'y'));
        }
        assert_eq!(e.con.dropped, 10);
    }

    #[test]
    fn disabled_queues_are_left_alone() {
        let mut e = Env::new();
        e.queues[TX].ready = false;
        e.queues[RX].ready = false;
        e.ctx_run(|c, q, ctx, s| c.process(TX, q, ctx, s)).unwrap();
        e.ctx_run(|c, q, ctx, s| c.process(7, q, ctx, s)).unwrap();
        assert!(!e.input(b'a'));
        let mut cfg = [1u8; 12];
        e.con.read_config(0, &mut cfg);
        assert_eq!(cfg, [0; 12]);
    }
}
