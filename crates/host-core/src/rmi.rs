//! Making RMI calls and printing them decoded.

use cca_abi::rmi::{RmiFid, RmiReturn, RmiStatus};
use cca_abi::smccc::SMC_UNKNOWN;
use core::fmt::Write;

/// The SMC conduit to EL3 (and through it to the RMM).
pub trait Conduit {
    /// Issues an SMC with x0..x7 = `regs` and returns x0..x7.
    fn smc(&mut self, regs: [u64; 8]) -> [u64; 8];
}

/// The host's view of its own (Non-secure) memory.
pub trait HostMem {
    /// Writes bytes at a physical address.
    fn write(&mut self, pa: u64, data: &[u8]);
    /// Reads bytes at a physical address.
    fn read(&mut self, pa: u64, buf: &mut [u8]);
    /// Reads one 64-bit word, returning `None` if the access faulted (for example a granule
    /// protection fault on memory delegated to the Realm world).
    fn probe_read(&mut self, pa: u64) -> Option<u64>;
}

/// The outcome of one RMI call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// x0..x7 as returned.
    pub regs: [u64; 8],
}

impl Outcome {
    /// The decoded status, or `None` for `SMC_UNKNOWN` or an undecodable x0.
    pub fn status(&self) -> Option<RmiStatus> {
        RmiReturn::from_reg(self.regs[0]).map(|r| r.status)
    }

    /// True when x0 is `SMC_UNKNOWN`.
    pub fn is_unknown(&self) -> bool {
        self.regs[0] == SMC_UNKNOWN
    }
}

/// Returns a printable name for x0 of an RMI result.
pub fn status_name(x0: u64) -> &'static str {
    if x0 == SMC_UNKNOWN {
        return "SMC_UNKNOWN";
    }
    match RmiReturn::from_reg(x0) {
        Some(r) => r.status.name(),
        None => "<invalid status>",
    }
}

/// An RMI client that prints every call it makes.
pub struct Rmi<'a, C: Conduit> {
    conduit: C,
    out: &'a mut dyn Write,
    /// Number of calls made.
    pub calls: u64,
    /// Print each call (off for bulk loops, which print a summary instead).
    pub verbose: bool,
}

impl<'a, C: Conduit> Rmi<'a, C> {
    /// Wraps a conduit, printing to `out`.
    pub fn new(conduit: C, out: &'a mut dyn Write) -> Self {
        Self {
            conduit,
            out,
            calls: 0,
            verbose: true,
        }
    }

    /// The output sink.
    pub fn out(&mut self) -> &mut dyn Write {
        self.out
    }

    /// Calls a raw function identifier (which may be unknown to the RMM).
    pub fn call_raw(&mut self, fid: u32, args: &[u64]) -> Outcome {
        let mut regs = [0u64; 8];
        regs[0] = u64::from(fid);
        regs[1..=args.len()].copy_from_slice(args);
        let r = self.conduit.smc(regs);
        self.calls += 1;
        if self.verbose {
            let decoded = RmiFid::from_fid(cca_abi::smccc::normalize(u64::from(fid)));
            let nrets = decoded.map_or(1, RmiFid::num_rets);
            match decoded {
                Some(f) if f.fid() == fid => {
                    let _ = write!(self.out, "RMI {}(", f.name());
                }
                Some(f) => {
                    let _ = write!(self.out, "RMI {} [FID {fid:#x}](", f.name());
                }
                None => {
                    let _ = write!(self.out, "RMI [unknown FID {fid:#x}](");
                }
            }
            for (i, a) in args.iter().enumerate() {
                let sep = if i == 0 { "" } else { ", " };
                let _ = write!(self.out, "{sep}{a:#x}");
            }
            let _ = write!(self.out, ") -> {}", status_name(r[0]));
            if RmiReturn::from_reg(r[0]).is_some_and(|x| x.index != 0) {
                let _ = write!(self.out, " (index {})", (r[0] >> 8) & 0xff);
            }
            for (i, v) in r.iter().enumerate().take(nrets).skip(1) {
                let _ = write!(self.out, " x{i}={v:#x}");
            }
            let _ = writeln!(self.out);
        }
        Outcome { regs: r }
    }

    /// Calls an RMI command.
    pub fn call(&mut self, fid: RmiFid, args: &[u64]) -> Outcome {
        self.call_raw(fid.fid(), args)
    }
}
