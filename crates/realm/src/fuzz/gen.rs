//! The hostile realm's generator: pure code (no registers, no memory but its own), so that it
//! can be tested on the build machine (`crates/e2e/tests/fuzz_realm.rs` includes this file).
//!
//! It draws one [`Op`] per iteration from a seeded [`Rng`]. Everything that could corrupt the
//! payload itself is excluded here, by construction, and the tests below check each rule:
//!
//! * stores, atomics, cache invalidation and every address the RMM writes into (RSI buffers)
//!   go only to the fuzzer's windows ([`Window`]), never to the payload's image, data or
//!   stacks except its scratch buffer ([`Ctx::scratch_ipa`]);
//! * instruction fetches go only to windows whose contents can never run (memory the RMM
//!   answers with an SEA, zero pages that decode as `UDF`, or stage 1 faults);
//! * `RSI_IPA_STATE_SET` changes only `[2 MiB, 4 MiB + 1 MiB)`, never the payload's RAM;
//! * SMC function IDs that end the realm (`CPU_OFF`, `SYSTEM_OFF`, `SYSTEM_RESET(2)`,
//!   `SYSTEM_SUSPEND`), block it (`CPU_SUSPEND` without a timer, `CPU_DEFAULT_SUSPEND`), start
//!   REC 1 at an address of the fuzzer's choosing (`CPU_ON`), or name realm memory (every RSI
//!   function) are never drawn at random: the structured RSI and PSCI classes make them
//!   with safe arguments;
//! * `ERET` never returns to EL1 with `SP_EL0` or with exceptions unmasked.

/// The fuzzer's windows live in the `TTBR1_EL1` half: window `w` starts at
/// `WINDOW_VA + w * WINDOW_STRIDE`.
pub const WINDOW_VA: u64 = 0xFFFF_0000_0000_0000;
/// Distance between windows (one level 2 entry each).
pub const WINDOW_STRIDE: u64 = 0x20_0000;
/// Granule size.
pub const PAGE: u64 = 0x1000;
/// The realm's unprotected half starts here (`2^39`, IPA width 40).
pub const UNPROTECTED: u64 = 1 << 39;
/// Protected memory the fuzzer may change the RIPAS of: `[2 MiB, 5 MiB)` (the guest RAM the
/// host has ends at 4 MiB).
pub const RIPAS_RANGE: (u64, u64) = (0x20_0000, 0x50_0000);
/// The payload's own memory: RIPAS changes and RMM writes never touch it (but for the
/// scratch buffer).
pub const PAYLOAD_RAM: (u64, u64) = (0, 0x20_0000);
/// IPA of the fuzz RAM window (RIPAS changed at random; the realm stores there).
pub const FUZZ_RAM_IPA: u64 = 0x20_0000;
/// IPA of the execute window (never stored to by anyone: its pages are EMPTY, or zero).
pub const XRAM_IPA: u64 = 0x30_0000;
/// Bytes of the scratch buffer in the payload's `.bss`.
pub const SCRATCH_SIZE: u64 = 4 * PAGE;
/// The `CPU_ON` context that makes REC 1 run the fuzzer's secondary part (low byte: its
/// stack).
pub const REC1_FUZZ_CONTEXT: u64 = 0xF022_0000_0000_0001;

/// What a window is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Memory: loads anywhere; stores only where [`Window::store`] says.
    Memory,
    /// An emulated device (only the MMIO class touches it).
    Device,
}

/// One window of the fuzzer's stage 1 (`TTBR1_EL1`).
#[derive(Clone, Copy, Debug)]
pub struct Window {
    /// Name in reports.
    pub name: &'static str,
    /// Output address (IPA) of its first page; `None`: the payload fills it in at run time
    /// (its own image, scratch buffer or EL0 code page).
    pub ipa: Option<u64>,
    /// Pages mapped (0: nothing is mapped, every access faults at stage 1).
    pub pages: u64,
    /// Memory or device.
    pub kind: Kind,
    /// Stage 1 lets EL1 write it.
    pub writable: bool,
    /// Stage 1 lets EL1 execute it.
    pub executable: bool,
    /// EL0 may access it (read, and write if writable).
    pub el0: bool,
    /// Stores may be drawn for it (only where they cannot reach the payload or the execute
    /// window).
    pub store: bool,
    /// Instruction fetches may be drawn for it.
    pub fetch: bool,
    /// Device memory attributes.
    pub device: bool,
    /// Loads from it must see an SEA (protected memory that is never RAM) or zero.
    pub sea_or_zero: bool,
}

const fn w(name: &'static str, ipa: Option<u64>, pages: u64) -> Window {
    Window {
        name,
        ipa,
        pages,
        kind: Kind::Memory,
        writable: false,
        executable: false,
        el0: false,
        store: false,
        fetch: false,
        device: false,
        sea_or_zero: false,
    }
}

const fn dev(name: &'static str, ipa: u64, pages: u64) -> Window {
    let mut x = w(name, Some(UNPROTECTED | ipa), pages);
    x.kind = Kind::Device;
    x.writable = true;
    x.device = true;
    x
}

const fn rw(mut x: Window) -> Window {
    x.writable = true;
    x.store = true;
    x
}

const fn exec(mut x: Window) -> Window {
    x.executable = true;
    x.fetch = true;
    x
}

const fn sea(mut x: Window) -> Window {
    x.sea_or_zero = true;
    x
}

/// Window indices.
pub mod win {
    /// The payload's image, read-only.
    pub const RO: usize = 0;
    /// The scratch buffer.
    pub const SCRATCH: usize = 1;
    /// The scratch buffer, EL0 read-write.
    pub const SCRATCH_EL0: usize = 2;
    /// Fuzz RAM at 2 MiB.
    pub const FUZZ_RAM: usize = 3;
    /// Fuzz RAM at 2 MiB with Device attributes.
    pub const FUZZ_RAM_DEV: usize = 4;
    /// The execute window at 3 MiB.
    pub const XRAM: usize = 5;
    /// The unprotected alias of fuzz RAM.
    pub const UNPROT_RAM: usize = 6;
    /// An unprotected IPA with nothing there (Device).
    pub const UNPROT_NONE: usize = 7;
    /// The same, Normal and executable.
    pub const UNPROT_EXEC: usize = 8;
    /// Protected IPA beyond guest RAM (never RAM).
    pub const PROT_UNBACKED: usize = 9;
    /// The top of the protected half.
    pub const PROT_TOP: usize = 10;
    /// IPA 2^40: beyond the realm's IPA space.
    pub const BEYOND_40: usize = 11;
    /// IPA 2^47.
    pub const BEYOND_47: usize = 12;
    /// The top of the 48-bit output range (`TCR_EL1.IPS`).
    pub const BEYOND_IPS: usize = 13;
    /// Nothing mapped.
    pub const UNMAPPED: usize = 14;
    /// The PL011.
    pub const PL011: usize = 15;
    /// The 16550.
    pub const UART16550: usize = 16;
    /// The RTC.
    pub const RTC: usize = 17;
    /// The GIC distributor.
    pub const GICD: usize = 18;
    /// REC 0's redistributor, RD_base frame.
    pub const GICR0: usize = 19;
    /// REC 0's redistributor, SGI_base frame.
    pub const GICR0_SGI: usize = 20;
    /// REC 1's redistributor, RD_base frame.
    pub const GICR1: usize = 21;
    /// REC 1's redistributor, SGI_base frame.
    pub const GICR1_SGI: usize = 22;
    /// The EL0 code page (EL0 executable, read-only).
    pub const EL0_CODE: usize = 23;
    /// Number of windows.
    pub const COUNT: usize = 24;
}

/// The windows, by index ([`win`]).
pub const WINDOWS: [Window; win::COUNT] = {
    let mut scratch_el0 = rw(w("scratch-el0", None, 4));
    scratch_el0.el0 = true;
    let mut fuzz_dev = rw(w("fuzz-ram-device", Some(FUZZ_RAM_IPA), 16));
    fuzz_dev.device = true;
    let mut el0 = w("el0-code", None, 1);
    el0.el0 = true;
    [
        w("payload-ro", Some(0), 16),
        rw(w("scratch", None, 4)),
        scratch_el0,
        rw(w("fuzz-ram", Some(FUZZ_RAM_IPA), 16)),
        fuzz_dev,
        exec(w("xram", Some(XRAM_IPA), 16)),
        rw(w("unprot-ram", Some(UNPROTECTED | FUZZ_RAM_IPA), 16)),
        {
            let mut x = rw(w("unprot-none", Some(UNPROTECTED | 0x2000_0000), 4));
            x.device = true;
            x
        },
        exec(w("unprot-exec", Some(UNPROTECTED | 0x2000_0000), 4)),
        sea(exec(rw(w("prot-unbacked", Some(0x4000_0000), 4)))),
        sea(exec(rw(w("prot-top", Some(UNPROTECTED - 4 * PAGE), 4)))),
        sea(exec(rw(w("beyond-2^40", Some(1 << 40), 4)))),
        sea(exec(rw(w("beyond-2^47", Some(1 << 47), 4)))),
        sea(exec(rw(w("beyond-top", Some((1 << 48) - 4 * PAGE), 4)))),
        exec(rw(w("unmapped", None, 0))),
        dev("pl011", 0x0900_0000, 1),
        dev("16550", 0x0100_0000, 1),
        dev("rtc", 0x0101_0000, 1),
        dev("gicd", 0x3FFF_0000, 16),
        dev("gicr0", 0x3FFB_0000, 16),
        dev("gicr0-sgi", 0x3FFC_0000, 16),
        dev("gicr1", 0x3FFD_0000, 16),
        dev("gicr1-sgi", 0x3FFE_0000, 16),
        el0,
    ]
};

/// The VA of window `w`.
pub const fn window_va(w: usize) -> u64 {
    WINDOW_VA + w as u64 * WINDOW_STRIDE
}

/// The window a VA is in, if any.
pub fn window_of(va: u64) -> Option<usize> {
    let off = va.checked_sub(WINDOW_VA)?;
    let w = usize::try_from(off / WINDOW_STRIDE).ok()?;
    (w < win::COUNT).then_some(w)
}

/// A small, fast generator (SplitMix64).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub const fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `[0, n)` (0 if `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `1 / n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    /// One element of a non-empty slice.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// Values that often find edge cases.
pub const INTERESTING: [u64; 24] = [
    0,
    1,
    2,
    3,
    0x7f,
    0x80,
    0xff,
    0xfff,
    0x1000,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    (1 << 39) - 1,
    1 << 39,
    1 << 40,
    1 << 48,
    0x7fff_ffff_ffff_ffff,
    0x8000_0000_0000_0000,
    u64::MAX - 1,
    u64::MAX,
    0xCCA0_CCA0_CCA0_CCA0,
];

/// A random register value: interesting, small, or any 64 bits.
pub fn value(rng: &mut Rng) -> u64 {
    match rng.below(4) {
        0 => rng.pick(&INTERESTING),
        1 => rng.below(0x100),
        2 => rng.pick(&INTERESTING) ^ (1u64 << rng.below(64)),
        _ => rng.next_u64(),
    }
}

/// One of `items`, or (one time in `items.len() + 1`) a random value.
pub fn pick_or_value(rng: &mut Rng, items: &[u64]) -> u64 {
    let i = rng.below(items.len() as u64 + 1) as usize;
    match items.get(i) {
        Some(v) => *v,
        None => value(rng),
    }
}

/// A value that is never inside the payload's own memory, except its scratch buffer: for
/// arguments an unknown RSI function might treat as an address it writes.
pub fn safe_value(rng: &mut Rng, ctx: &Ctx) -> u64 {
    let v = value(rng);
    if buffer_ipa_is_safe(v, ctx) {
        v
    } else {
        ctx.scratch_ipa + (v % SCRATCH_SIZE)
    }
}

/// Operation classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Class {
    /// Structured RSI calls with random arguments.
    Rsi,
    /// Structured PSCI calls.
    Psci,
    /// SMCs with random function IDs and arguments (and random immediates).
    Smc,
    /// HVCs with random immediates.
    Hvc,
    /// SVCs at EL1.
    Svc,
    /// System register reads and writes.
    SysReg,
    /// Loads and stores.
    Mem,
    /// Instruction fetches.
    Fetch,
    /// FP/SIMD, SVE and SME instructions, and FP state across exits.
    Fp,
    /// Debug instructions and hints (BRK, HLT, DCPS, UDF, HINT space).
    Debug,
    /// WFE/WFI/WFIT/WFET/YIELD and CPU_SUSPEND.
    Wfx,
    /// MMIO to the host's emulated devices.
    Mmio,
    /// Code at EL0.
    El0,
    /// ERET with a random SPSR.
    Eret,
    /// Cache, TLB and address translation instructions.
    Cache,
}

/// Every class, in report order.
pub const CLASSES: [Class; 15] = [
    Class::Rsi,
    Class::Psci,
    Class::Smc,
    Class::Hvc,
    Class::Svc,
    Class::SysReg,
    Class::Mem,
    Class::Fetch,
    Class::Fp,
    Class::Debug,
    Class::Wfx,
    Class::Mmio,
    Class::El0,
    Class::Eret,
    Class::Cache,
];

impl Class {
    /// Name in reports.
    pub const fn name(self) -> &'static str {
        match self {
            Class::Rsi => "rsi",
            Class::Psci => "psci",
            Class::Smc => "smc",
            Class::Hvc => "hvc",
            Class::Svc => "svc",
            Class::SysReg => "sysreg",
            Class::Mem => "mem",
            Class::Fetch => "fetch",
            Class::Fp => "fp-sve-sme",
            Class::Debug => "debug",
            Class::Wfx => "wfx",
            Class::Mmio => "mmio",
            Class::El0 => "el0",
            Class::Eret => "eret",
            Class::Cache => "cache",
        }
    }
}

/// Draw weights of the classes (REC 0), in [`CLASSES`] order.
pub const WEIGHTS: [u64; 15] = [14, 6, 10, 5, 3, 12, 16, 6, 5, 5, 3, 10, 5, 3, 4];
/// Classes REC 1 draws from: nothing that blocks it, changes devices or starts RECs.
pub const REC1_CLASSES: [Class; 6] = [
    Class::Rsi,
    Class::Smc,
    Class::Hvc,
    Class::Mem,
    Class::Debug,
    Class::Svc,
];

/// What the generator needs to know about the running payload.
#[derive(Clone, Copy, Debug)]
pub struct Ctx {
    /// IPA of the scratch buffer ([`SCRATCH_SIZE`] bytes, page aligned).
    pub scratch_ipa: u64,
    /// IPA of the `CPU_ON` entry point.
    pub secondary_entry: u64,
    /// Number of system register stubs.
    pub sysregs: usize,
    /// Generating for REC 1.
    pub rec1: bool,
}

/// One operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Op {
    /// Its class.
    pub class: Class,
    /// What exactly (class-specific index).
    pub kind: u32,
    /// An address (a VA for memory operations).
    pub addr: u64,
    /// Registers or values.
    pub args: [u64; 8],
}

/// RSI operations (`Op::kind` of [`Class::Rsi`]): the function number's offset from
/// `RSI_VERSION` ([`rsi_fid`]), and [`rsi_kind::OTHER`] for the rest of the RSI range.
pub mod rsi_kind {
    /// `RSI_VERSION`.
    pub const VERSION: u32 = 0;
    /// `RSI_FEATURES`.
    pub const FEATURES: u32 = 1;
    /// `RSI_MEASUREMENT_READ`.
    pub const MEAS_READ: u32 = 2;
    /// `RSI_MEASUREMENT_EXTEND`.
    pub const MEAS_EXTEND: u32 = 3;
    /// `RSI_ATTESTATION_TOKEN_INIT`.
    pub const TOKEN_INIT: u32 = 4;
    /// `RSI_ATTESTATION_TOKEN_CONTINUE`.
    pub const TOKEN_CONTINUE: u32 = 5;
    /// `RSI_REALM_CONFIG`.
    pub const REALM_CONFIG: u32 = 6;
    /// `RSI_IPA_STATE_SET`.
    pub const IPA_SET: u32 = 7;
    /// `RSI_IPA_STATE_GET`.
    pub const IPA_GET: u32 = 8;
    /// `RSI_HOST_CALL`.
    pub const HOST_CALL: u32 = 9;
    /// Another function ID of the RSI range (unassigned, planes, device assignment).
    pub const OTHER: u32 = 10;
    /// Number of kinds.
    pub const COUNT: u32 = 11;
}

/// The SMC function ID of an RSI kind other than [`rsi_kind::OTHER`].
pub const fn rsi_fid(kind: u32) -> u32 {
    fid::RSI_VERSION + kind
}

/// RSI function IDs.
pub mod fid {
    /// `RSI_VERSION`.
    pub const RSI_VERSION: u32 = 0xC400_0190;
    /// Last FID of the RSI range.
    pub const RSI_LAST: u32 = 0xC400_01AF;
    /// `RSI_HOST_CALL`.
    pub const RSI_HOST_CALL: u32 = 0xC400_0199;
}

/// Host call immediates the fuzzer never uses at random (the protocol's own).
pub const RESERVED_HOST_CALLS: (u16, u16) = (0xCCA0, 0xCCAF);

/// True for an SMC function ID the SMC class must not draw: it would end, block or redirect
/// the realm, or name realm memory the RMM writes (decided on the 32-bit function ID with
/// the SMC64 and fast-call bits ignored, whatever the upper half of `x0` holds).
pub fn smc_fid_is_dangerous(x0: u64) -> bool {
    let f = (x0 as u32) & 0x3FFF_FFFF;
    // The standard service range (PSCI and RSI are owned by it, entity 4).
    if f & 0x3F00_0000 == 0x0400_0000 {
        let n = f & 0xFFFF;
        if (0x190..=0x1FF).contains(&n) {
            return true;
        }
        if matches!(
            n,
            0x01 | 0x02 | 0x03 | 0x05 | 0x08 | 0x09 | 0x0B | 0x0C | 0x0E | 0x12 | 0x15
        ) {
            return true;
        }
    }
    false
}

/// PSCI function IDs the PSCI class draws (never CPU_OFF, SYSTEM_OFF, SYSTEM_RESET(2),
/// SYSTEM_SUSPEND, CPU_DEFAULT_SUSPEND; CPU_SUSPEND only in the WFx class with a timer).
pub const PSCI_SAFE: [u32; 11] = [
    0x8400_0000, // PSCI_VERSION
    0x8400_000A, // PSCI_FEATURES
    0x8400_0004, // AFFINITY_INFO (32)
    0xC400_0004, // AFFINITY_INFO (64)
    0x8400_0006, // MIGRATE_INFO_TYPE
    0x8400_0007, // MIGRATE_INFO_UP_CPU
    0x8400_000D, // NODE_HW_STATE
    0x8400_000F, // PSCI_SET_SUSPEND_MODE
    0x8400_0010, // PSCI_STAT_RESIDENCY
    0x8400_0011, // PSCI_STAT_COUNT
    0x8400_0013, // MEM_PROTECT
];
/// `CPU_ON` (64 and 32).
pub const PSCI_CPU_ON: [u32; 2] = [0xC400_0003, 0x8400_0003];

/// SMC function IDs that are interesting to draw (besides random ones).
pub const SMC_FIDS: [u32; 16] = [
    0x8000_0000, // SMCCC_VERSION
    0x8000_0001, // SMCCC_ARCH_FEATURES
    0x8000_0002, // SMCCC_ARCH_SOC_ID
    0x8000_8000, // SMCCC_ARCH_WORKAROUND_1
    0x8000_7FFF, // SMCCC_ARCH_WORKAROUND_2
    0x8000_3FFF, // SMCCC_ARCH_WORKAROUND_3
    0x8400_0050, // TRNG_VERSION
    0xC400_0053, // TRNG_RND64
    0x8200_0000, // SiP
    0xC200_00F0, // SiP (the EL3 test hook's FID)
    0x8300_0000, // OEM
    0xC600_0000, // Hypervisor service
    0xB000_0000, // Trusted applications
    0xBF00_FF00, // Trusted OS
    0xC400_0020, // standard service, unassigned
    0xC4FF_FFFF, // standard service, last
];

/// Stubs of immediates (HVC, SMC, SVC, BRK, HLT, UDF tables).
pub const IMM_STUBS: u64 = 32;
/// Hint stubs (`HINT #0..#127` without `#3`, WFI).
pub const HINT_STUBS: u64 = 127;

/// Memory access kinds (`Op::kind` of [`Class::Mem`] and [`Class::Mmio`], the stub table's
/// order).
pub mod mem {
    /// `LDRB`.
    pub const LDRB: u32 = 0;
    /// `LDRH`.
    pub const LDRH: u32 = 1;
    /// `LDR W`.
    pub const LDRW: u32 = 2;
    /// `LDR X`.
    pub const LDRX: u32 = 3;
    /// `LDP X`.
    pub const LDP: u32 = 4;
    /// `STRB`.
    pub const STRB: u32 = 5;
    /// `STRH`.
    pub const STRH: u32 = 6;
    /// `STR W`.
    pub const STRW: u32 = 7;
    /// `STR X`.
    pub const STRX: u32 = 8;
    /// `STP X`.
    pub const STP: u32 = 9;
    /// `LDAR`.
    pub const LDAR: u32 = 10;
    /// `STLR`.
    pub const STLR: u32 = 11;
    /// `LDXR` + `STXR`.
    pub const LDXR_STXR: u32 = 12;
    /// `LDAXR` + `STLXR`.
    pub const LDAXR_STLXR: u32 = 13;
    /// `LDXP` + `STXP`.
    pub const LDXP_STXP: u32 = 14;
    /// `CAS`.
    pub const CAS: u32 = 15;
    /// `CASAL`.
    pub const CASAL: u32 = 16;
    /// `LDADD`.
    pub const LDADD: u32 = 17;
    /// `SWP`.
    pub const SWP: u32 = 18;
    /// `LDAPR`.
    pub const LDAPR: u32 = 19;
    /// `PRFM PLDL1KEEP`.
    pub const PRFM: u32 = 20;
    /// `DC ZVA`.
    pub const DC_ZVA: u32 = 21;
    /// `DC CIVAC`.
    pub const DC_CIVAC: u32 = 22;
    /// `DC CVAC`.
    pub const DC_CVAC: u32 = 23;
    /// `DC IVAC` (only where stores may go).
    pub const DC_IVAC: u32 = 24;
    /// `IC IVAU`.
    pub const IC_IVAU: u32 = 25;
    /// `AT S1E1R`.
    pub const AT_S1E1R: u32 = 26;
    /// `AT S1E1W`.
    pub const AT_S1E1W: u32 = 27;
    /// `AT S1E0R`.
    pub const AT_S1E0R: u32 = 28;
    /// `LDNP`.
    pub const LDNP: u32 = 29;
    /// `STNP`.
    pub const STNP: u32 = 30;
    /// `LDR X` post-indexed (writeback: no ISV).
    pub const LDR_POST: u32 = 31;
    /// `STR X` pre-indexed.
    pub const STR_PRE: u32 = 32;
    /// `LDRSB X`.
    pub const LDRSB: u32 = 33;
    /// `LDRSW`.
    pub const LDRSW: u32 = 34;
    /// `LD1 {v0.16b}`.
    pub const LD1: u32 = 35;
    /// `ST1 {v0.16b}`.
    pub const ST1: u32 = 36;
    /// `LDR Q0`.
    pub const LDRQ: u32 = 37;
    /// Number of kinds.
    pub const COUNT: u32 = 38;

    /// True for kinds that may write memory (or discard it).
    pub const fn writes(k: u32) -> bool {
        matches!(
            k,
            STRB | STRH
                | STRW
                | STRX
                | STP
                | STLR
                | LDXR_STXR
                | LDAXR_STLXR
                | LDXP_STXP
                | CAS
                | CASAL
                | LDADD
                | SWP
                | DC_ZVA
                | DC_IVAC
                | AT_S1E1W
                | STNP
                | STR_PRE
                | ST1
        )
    }

    /// Single-register accesses with a plain base register: what the host can emulate
    /// (`ISV` = 1), with their size in bytes.
    pub const fn emulatable(k: u32) -> Option<u64> {
        match k {
            LDRB | STRB | LDRSB => Some(1),
            LDRH | STRH => Some(2),
            LDRW | STRW | LDRSW => Some(4),
            LDRX | STRX | LDAR | STLR => Some(8),
            _ => None,
        }
    }
}

/// An address in window `w`: usually aligned to `align`, sometimes not, sometimes at the
/// window's end (crossing into what is not mapped).
pub fn address_in(rng: &mut Rng, w: usize, align: u64) -> u64 {
    let pages = WINDOWS[w].pages.max(1);
    let size = pages * PAGE;
    let mut off = match rng.below(8) {
        0 => size.saturating_sub(rng.below(16) + 1),
        1 => rng.below(64),
        _ => rng.below(size),
    };
    if !rng.one_in(4) {
        off &= !(align.max(1) - 1);
    }
    window_va(w) + off
}

/// A window loads may be drawn for (devices only in the MMIO class).
pub fn load_window(rng: &mut Rng) -> usize {
    loop {
        let w = rng.below(win::COUNT as u64) as usize;
        if WINDOWS[w].kind == Kind::Memory {
            return w;
        }
    }
}

/// A window stores may be drawn for.
pub fn store_window(rng: &mut Rng) -> usize {
    loop {
        let w = rng.below(win::COUNT as u64) as usize;
        let x = &WINDOWS[w];
        // Read-only windows are fine too: stage 1 refuses the store.
        if x.kind == Kind::Memory && (x.store || !x.writable) {
            return w;
        }
    }
}

/// A window instruction fetches may be drawn for.
pub fn fetch_window(rng: &mut Rng) -> usize {
    loop {
        let w = rng.below(win::COUNT as u64) as usize;
        let x = &WINDOWS[w];
        // Non-executable windows fault at stage 1 (PXN); executable ones are only those
        // whose contents never run.
        if x.kind == Kind::Memory && w != win::EL0_CODE && (x.fetch || !x.executable) {
            return w;
        }
    }
}

/// An IPA the RMM may be asked to write (a buffer argument): the scratch buffer (aligned or
/// not), fuzz RAM, or memory the RMM must refuse; never the payload or the execute window.
pub fn buffer_ipa(rng: &mut Rng, ctx: &Ctx, align: u64) -> u64 {
    let a = match rng.below(8) {
        0..=2 => ctx.scratch_ipa + rng.below(SCRATCH_SIZE / align.max(1)) * align.max(1),
        3 => ctx.scratch_ipa + rng.below(SCRATCH_SIZE),
        4 => FUZZ_RAM_IPA + rng.below(16) * PAGE,
        5 => 0x4000_0000 + rng.below(4) * PAGE,
        6 => UNPROTECTED | (rng.below(0x4000_0000) & !0xfff),
        _ => rng.pick(&[1 << 40, 1 << 47, !0xfff, UNPROTECTED - PAGE]),
    };
    debug_assert!(buffer_ipa_is_safe(a, ctx));
    a
}

/// True when an RMM write at `ipa` cannot reach the payload or the execute window.
pub fn buffer_ipa_is_safe(ipa: u64, ctx: &Ctx) -> bool {
    let in_scratch = (ctx.scratch_ipa..ctx.scratch_ipa + SCRATCH_SIZE).contains(&ipa);
    let in_payload = ipa < PAYLOAD_RAM.1;
    let in_xram = (XRAM_IPA..XRAM_IPA + 0x10_0000).contains(&ipa);
    in_scratch || (!in_payload && !in_xram)
}

/// A range for `RSI_IPA_STATE_SET`: inside [`RIPAS_RANGE`] (page aligned, or deliberately
/// broken: unaligned, empty or reversed, which the RMM must refuse before any exit).
pub fn ripas_range(rng: &mut Rng) -> (u64, u64) {
    let (lo, hi) = RIPAS_RANGE;
    let base = lo + rng.below((hi - lo) / PAGE) * PAGE;
    let pages = match rng.below(4) {
        0 => 1,
        1 => 1 + rng.below(16),
        2 => 1 + rng.below(256),
        _ => 1 + rng.below(512),
    };
    let top = (base + pages * PAGE).min(hi);
    match rng.below(10) {
        0 => (base + 1 + rng.below(PAGE - 1), top),
        1 => (base, top - 1 - rng.below(PAGE - 1)),
        2 => (top, base),
        3 => (base, base),
        _ => (base, top),
    }
}

/// True when `RSI_IPA_STATE_SET(base, top)` could change RIPAS outside [`RIPAS_RANGE`] if
/// the RMM accepted it: only ranges the RMM must refuse (empty, reversed or unaligned) may
/// touch other memory.
pub fn ripas_range_is_safe(base: u64, top: u64) -> bool {
    let valid = base < top && base % PAGE == 0 && top % PAGE == 0;
    !valid || (base >= RIPAS_RANGE.0 && top <= RIPAS_RANGE.1)
}

/// An MPIDR for PSCI: REC 0, REC 1, one that does not exist, or junk.
pub fn mpidr(rng: &mut Rng) -> u64 {
    match rng.below(6) {
        0 => 0,
        1 | 2 => 1,
        3 => rng.pick(&[2, 3, 0x100, 0x1_0000, 0x1_0000_0000, 0xff]),
        4 => 1 | (rng.next_u64() & !0xff_00ff_ffff),
        _ => value(rng),
    }
}

/// The affinity fields of an MPIDR.
pub const fn affinity(mpidr: u64) -> u64 {
    mpidr & 0xff_00ff_ffff
}

/// An SPSR for the ERET class: never EL1 with `SP_EL0` (mode 4), always D, A, I, F masked,
/// without ALLINT and PM; the mode is EL0, EL1h (legal) or one the return makes illegal.
pub fn eret_spsr(rng: &mut Rng) -> u64 {
    let mode = rng.pick(&[
        0x0, 0x5, 0x5, 0x8, 0x9, 0xC, 0xD, 0x2, 0x3, 0x6, 0x7, 0xA, 0xB, 0xE, 0xF, 0x10, 0x13, 0x1F,
    ]);
    let random = rng.next_u64() & 0xF0F0_F000 & !(1 << 13);
    random | 0x3C0 | mode
}

/// True when an SPSR keeps the payload safe after `ERET`.
pub const fn eret_spsr_is_safe(spsr: u64) -> bool {
    spsr & 0xF != 0x4 && spsr & 0x3C0 == 0x3C0 && spsr & (1 << 13) == 0 && spsr & (1 << 32) == 0
}

/// Draws the next class.
pub fn class(rng: &mut Rng, ctx: &Ctx) -> Class {
    if ctx.rec1 {
        return rng.pick(&REC1_CLASSES);
    }
    let total: u64 = WEIGHTS.iter().sum();
    let mut r = rng.below(total);
    for (c, w) in CLASSES.iter().zip(WEIGHTS) {
        if r < w {
            return *c;
        }
        r -= w;
    }
    Class::Mem
}

/// Draws the next operation.
pub fn next(rng: &mut Rng, ctx: &Ctx) -> Op {
    let class = class(rng, ctx);
    let mut op = Op {
        class,
        kind: 0,
        addr: 0,
        args: [0; 8],
    };
    for a in op.args.iter_mut() {
        *a = value(rng);
    }
    match class {
        Class::Rsi => rsi(rng, ctx, &mut op),
        Class::Psci => {
            if rng.one_in(4) {
                op.kind = 1;
                op.args[0] = u64::from(rng.pick(&PSCI_CPU_ON));
                if rng.one_in(4) {
                    // A bad entry point, only for MPIDRs that cannot be REC 1 (itself, or
                    // RECs that do not exist).
                    op.args[1] = rng.pick(&[0, 2, 3]);
                    op.args[2] =
                        rng.pick(&[0, ctx.secondary_entry, UNPROTECTED, 1 << 40]) | rng.below(4);
                } else {
                    // Anything else starts REC 1 only at the fuzzer's own entry.
                    op.args[1] = mpidr(rng);
                    op.args[2] = ctx.secondary_entry;
                    op.args[3] = REC1_FUZZ_CONTEXT;
                }
            } else {
                op.kind = 0;
                op.args[0] = u64::from(rng.pick(&PSCI_SAFE));
                if rng.one_in(3) {
                    op.args[1] = mpidr(rng);
                }
                if op.args[0] == 0x8400_000A && rng.one_in(2) {
                    op.args[1] = u64::from(rng.pick(&[
                        0x8400_0002u32,
                        0x8400_0008,
                        0xC400_0003,
                        0xC400_0001,
                        0x8400_0012,
                        0x8400_000E,
                    ]));
                }
            }
        }
        Class::Smc => {
            op.kind = if rng.one_in(4) {
                1 + rng.below(IMM_STUBS) as u32
            } else {
                0
            };
            let f = match rng.below(3) {
                0 => u64::from(rng.pick(&SMC_FIDS)),
                1 => u64::from(rng.next_u64() as u32),
                _ => rng.next_u64(),
            };
            op.args[0] = if smc_fid_is_dangerous(f) {
                0x8000_0000
            } else {
                f
            };
        }
        Class::Hvc | Class::Svc => op.kind = rng.below(IMM_STUBS) as u32,
        Class::SysReg => {
            op.kind = rng.below(ctx.sysregs as u64) as u32;
            op.addr = u64::from(rng.one_in(2)); // 1: write
        }
        Class::Mem => {
            let k = rng.below(u64::from(mem::COUNT)) as u32;
            op.kind = k;
            let w = if mem::writes(k) {
                store_window(rng)
            } else {
                load_window(rng)
            };
            let w = if k == mem::DC_IVAC && !WINDOWS[w].store {
                win::SCRATCH
            } else {
                w
            };
            op.addr = address_in(rng, w, 16);
            if rng.one_in(16) {
                // Outside every window: TTBR0's own code (read-only), non-canonical, tagged.
                op.addr = rng.pick(&[0x0001_0000_0000_0000, 0x00FF_0000_0000_0000, 0x40])
                    | rng.below(0x1000);
                if mem::writes(k) {
                    op.addr = rng.pick(&[0x0001_0000_0000_0000, 0x0100_0000_0000_0000]);
                }
            }
        }
        Class::Fetch => {
            let w = fetch_window(rng);
            op.addr = address_in(rng, w, 4);
        }
        Class::Fp => op.kind = rng.below(8) as u32,
        Class::Debug => {
            op.kind = rng.below(6) as u32;
            op.args[7] = rng.below(if op.kind == 4 { HINT_STUBS } else { IMM_STUBS });
        }
        Class::Wfx => {
            op.kind = rng.below(7) as u32;
            op.args[0] = 1 + rng.below(8);
        }
        Class::Mmio => mmio(rng, &mut op),
        Class::El0 => {
            op.kind = rng.below(EL0_STUBS) as u32;
            let w = if rng.one_in(2) {
                store_window(rng)
            } else {
                load_window(rng)
            };
            op.addr = address_in(rng, w, 8);
            if op.kind == EL0_BLR {
                let w = fetch_window(rng);
                op.addr = address_in(rng, w, 4);
            }
        }
        Class::Eret => op.args[0] = eret_spsr(rng),
        Class::Cache => {
            op.kind = rng.below(12) as u32;
            let w = load_window(rng);
            op.addr = address_in(rng, w, 64);
        }
    }
    op
}

/// EL0 stubs (the EL0 code page's order).
pub const EL0_STUBS: u64 = 26;
/// The EL0 stub that branches to `x0`.
pub const EL0_BLR: u32 = 19;

fn rsi(rng: &mut Rng, ctx: &Ctx, op: &mut Op) {
    op.kind = rng.below(u64::from(rsi_kind::COUNT)) as u32;
    let a = &mut op.args;
    match op.kind {
        rsi_kind::VERSION => {
            a[0] = pick_or_value(rng, &[0x1_0000, 0x1_0001, 0x2_0000, 0x1_0002, 0]);
        }
        rsi_kind::FEATURES => a[0] = pick_or_value(rng, &[0, 1, 2, 0xffff]),
        rsi_kind::MEAS_READ => a[0] = pick_or_value(rng, &[0, 1, 4, 5, 7]),
        rsi_kind::MEAS_EXTEND => {
            a[0] = pick_or_value(rng, &[0, 1, 2, 4, 5, 7]);
            let small = rng.below(128);
            a[1] = pick_or_value(rng, &[0, 1, 32, 48, 64, 65, small]);
        }
        rsi_kind::REALM_CONFIG => a[0] = buffer_ipa(rng, ctx, PAGE),
        rsi_kind::IPA_GET => {
            let b = rng.below(0x80_0000) & !(rng.pick(&[0xfff, 0xfff, 0]));
            a[0] = if rng.one_in(8) { value(rng) } else { b };
            a[1] = if rng.one_in(8) {
                value(rng)
            } else {
                b + rng.below(0x40_0000)
            };
        }
        rsi_kind::IPA_SET => {
            let (b, t) = ripas_range(rng);
            a[0] = b;
            a[1] = t;
            let any = value(rng) & 0xff;
            a[2] = rng.pick(&[0, 1, 1, 2, 3, any]); // EMPTY, RAM, DESTROYED, DEV
            a[3] = pick_or_value(rng, &[0, 0, 1]); // flags: CHANGE_DESTROYED
        }
        rsi_kind::HOST_CALL => {
            a[0] = buffer_ipa(rng, ctx, 0x100);
            let mut imm = rng.next_u64() as u16;
            if (RESERVED_HOST_CALLS.0..=RESERVED_HOST_CALLS.1).contains(&imm) {
                imm = 0xCCB0;
            }
            a[1] = u64::from(imm);
        }
        rsi_kind::TOKEN_INIT => {}
        rsi_kind::TOKEN_CONTINUE => {
            a[0] = buffer_ipa(rng, ctx, PAGE);
            a[1] = pick_or_value(rng, &[0, 8, 0xff8, 0x1000]);
            a[2] = pick_or_value(rng, &[0, 8, 0x100, 0x1000, 0x1001]);
        }
        _ => {
            a[7] = u64::from(fid::RSI_HOST_CALL + 1 + rng.below(0x16) as u32);
            for v in a[..7].iter_mut() {
                *v = safe_value(rng, ctx);
            }
        }
    }
}

fn mmio(rng: &mut Rng, op: &mut Op) {
    let w = rng.pick(&[
        win::PL011,
        win::PL011,
        win::UART16550,
        win::UART16550,
        win::RTC,
        win::GICD,
        win::GICD,
        win::GICR0,
        win::GICR0_SGI,
        win::GICR1,
        win::GICR1_SGI,
        win::UNPROT_NONE,
        win::UNPROT_RAM,
    ]);
    op.kind = if rng.one_in(6) {
        rng.below(u64::from(mem::COUNT)) as u32
    } else {
        rng.pick(&[
            mem::LDRB,
            mem::LDRH,
            mem::LDRW,
            mem::LDRX,
            mem::STRB,
            mem::STRH,
            mem::STRW,
            mem::STRX,
            mem::LDAR,
            mem::STLR,
        ])
    };
    let size = mem::emulatable(op.kind).unwrap_or(8);
    let off = match w {
        win::UART16550 | win::RTC if !rng.one_in(8) => rng.below(8),
        win::PL011 if !rng.one_in(8) => rng.below(0x50),
        _ if rng.one_in(2) => rng.below(0x1000),
        _ => rng.below(WINDOWS[w].pages * PAGE),
    };
    let off = if rng.one_in(8) {
        off
    } else {
        off & !(size - 1)
    };
    op.addr = window_va(w) + off;
    op.args[0] = value(rng);
    // Bytes for the consoles' data registers are printable: the realm's console must stay
    // readable (the registers' other values are covered through the other offsets).
    if (w == win::PL011 || w == win::UART16550) && off < 4 {
        op.args[0] = 0x20 + rng.below(0x5f);
    }
}

/// Outcomes of one operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Outcome {
    /// Completed without an exception (for calls: SUCCESS or a value).
    Ok,
    /// A call returned an error status.
    Error,
    /// A call returned `SMC_UNKNOWN` / `NOT_SUPPORTED`.
    Unknown,
    /// UNDEFINED (EC 0), from the PE or injected by the RMM.
    Undef,
    /// A synchronous external abort (the RMM's or the host's injection).
    Sea,
    /// A stage 1 translation or address size fault.
    Translation,
    /// A stage 1 permission or access flag fault.
    Permission,
    /// An alignment fault (data or PC or SP).
    Alignment,
    /// SVC, HVC or SMC taken at EL1 (from EL0, or an SVC).
    Call,
    /// BRK or another debug exception.
    Debug,
    /// Illegal execution state.
    Illegal,
    /// A trap at EL1 (FP, SVE, SME, WFx, system register from EL0, DC ZVA, MOPS, ...).
    Trap,
    /// Any other exception.
    OtherException,
}

/// Number of outcomes.
pub const OUTCOMES: usize = 13;

/// Every outcome, in report order.
pub const ALL_OUTCOMES: [Outcome; OUTCOMES] = [
    Outcome::Ok,
    Outcome::Error,
    Outcome::Unknown,
    Outcome::Undef,
    Outcome::Sea,
    Outcome::Translation,
    Outcome::Permission,
    Outcome::Alignment,
    Outcome::Call,
    Outcome::Debug,
    Outcome::Illegal,
    Outcome::Trap,
    Outcome::OtherException,
];

impl Outcome {
    /// Name in reports.
    pub const fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Unknown => "unknown",
            Outcome::Undef => "undef",
            Outcome::Sea => "sea",
            Outcome::Translation => "translation",
            Outcome::Permission => "permission",
            Outcome::Alignment => "alignment",
            Outcome::Call => "svc/hvc/smc",
            Outcome::Debug => "debug",
            Outcome::Illegal => "illegal-state",
            Outcome::Trap => "trap",
            Outcome::OtherException => "other-exception",
        }
    }
}

/// Classifies an exception by its `ESR_EL1`.
pub const fn classify(esr: u64) -> Outcome {
    let ec = (esr >> 26) & 0x3f;
    let fsc = esr & 0x3f;
    match ec {
        0x00 => Outcome::Undef,
        0x01 | 0x07 | 0x18 | 0x19 | 0x1D | 0x27 | 0x09 | 0x0A | 0x0C | 0x2C | 0x2D => Outcome::Trap,
        0x0E => Outcome::Illegal,
        0x15..=0x17 => Outcome::Call,
        0x20 | 0x21 | 0x24 | 0x25 => match fsc {
            0x10 | 0x11..=0x17 | 0x18 | 0x1C..=0x1F => Outcome::Sea,
            0x00..=0x07 => Outcome::Translation,
            0x08..=0x0F => Outcome::Permission,
            0x21 => Outcome::Alignment,
            _ => Outcome::OtherException,
        },
        0x22 | 0x26 => Outcome::Alignment,
        0x30..=0x35 | 0x38 | 0x3A | 0x3C => Outcome::Debug,
        _ => Outcome::OtherException,
    }
}

/// Classifies the `x0` an RSI call returned (0 SUCCESS; 1..=5 the defined errors).
pub const fn classify_rsi(x0: u64) -> Option<Outcome> {
    match x0 {
        0 => Some(Outcome::Ok),
        1..=5 => Some(Outcome::Error),
        u64::MAX => Some(Outcome::Unknown),
        _ => None,
    }
}

/// Classifies what a PSCI call returned (the low 32 bits, signed).
pub const fn classify_psci(x0: u64) -> Outcome {
    let v = x0 as u32 as i32;
    match v {
        -1 => Outcome::Unknown,
        -9..=-2 => Outcome::Error,
        _ => Outcome::Ok,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Ctx {
        Ctx {
            scratch_ipa: 0x5_0000,
            secondary_entry: 0x1234,
            sysregs: 100,
            rec1: false,
        }
    }

    #[test]
    fn the_stream_depends_only_on_the_seed() {
        let c = ctx();
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let mut d = Rng::new(8);
        let xs: Vec<Op> = (0..1000).map(|_| next(&mut a, &c)).collect();
        let ys: Vec<Op> = (0..1000).map(|_| next(&mut b, &c)).collect();
        let zs: Vec<Op> = (0..1000).map(|_| next(&mut d, &c)).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
    }

    #[test]
    fn every_class_is_drawn_and_rec1_only_draws_its_own() {
        let mut c = ctx();
        let mut r = Rng::new(1);
        let mut seen = [0u32; 15];
        for _ in 0..20_000 {
            seen[class(&mut r, &c) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 0), "{seen:?}");
        c.rec1 = true;
        for _ in 0..2000 {
            assert!(REC1_CLASSES.contains(&class(&mut r, &c)));
        }
    }

    #[test]
    fn below_stays_below_and_handles_zero() {
        let mut r = Rng::new(3);
        assert_eq!(r.below(0), 0);
        for n in [1, 2, 3, 1000, u64::MAX] {
            for _ in 0..1000 {
                assert!(r.below(n) < n);
            }
        }
    }

    #[test]
    fn dangerous_smc_fids_are_recognised_in_every_form() {
        for f in [
            0x8400_0002u64, // CPU_OFF
            0x8400_0008,    // SYSTEM_OFF
            0x8400_0009,    // SYSTEM_RESET
            0xC400_0012,    // SYSTEM_RESET2
            0x8400_0012,
            0xC400_0001,           // CPU_SUSPEND
            0xC400_0003,           // CPU_ON
            0x8400_000E,           // SYSTEM_SUSPEND
            0x8400_000C,           // CPU_DEFAULT_SUSPEND
            0xC400_0197,           // IPA_STATE_SET
            0x8400_0197,           // its SMC32 form
            0x0400_0199,           // a yielding form of HOST_CALL
            0xFFFF_FFFF_C400_0196, // junk upper half
            0xC400_01FF,
        ] {
            assert!(smc_fid_is_dangerous(f), "{f:#x}");
        }
        for f in [
            0x8400_0000u64,
            0x8000_0000,
            0xC400_000A,
            0xC400_0004,
            0xC200_0000,
            0xC400_0200,
        ] {
            assert!(!smc_fid_is_dangerous(f), "{f:#x}");
        }
    }

    #[test]
    fn random_smcs_never_carry_a_dangerous_fid() {
        let c = ctx();
        let mut r = Rng::new(11);
        let mut n = 0;
        for _ in 0..50_000 {
            let op = next(&mut r, &c);
            if op.class == Class::Smc {
                n += 1;
                assert!(!smc_fid_is_dangerous(op.args[0]), "{op:?}");
            }
        }
        assert!(n > 1000);
    }

    #[test]
    fn stores_and_invalidations_only_reach_the_fuzzers_windows() {
        let c = ctx();
        let mut r = Rng::new(5);
        for _ in 0..100_000 {
            let op = next(&mut r, &c);
            let stores = match op.class {
                Class::Mem => mem::writes(op.kind),
                Class::El0 => true,
                _ => false,
            };
            if !stores {
                continue;
            }
            match window_of(op.addr) {
                Some(w) => {
                    let x = &WINDOWS[w];
                    assert_eq!(x.kind, Kind::Memory, "{op:?}");
                    assert!(x.store || !x.writable, "{op:?} in {}", x.name);
                    if op.kind == mem::DC_IVAC && op.class == Class::Mem {
                        assert!(x.store, "{op:?}");
                    }
                }
                // Outside the windows: only addresses no stage 1 maps.
                None => assert!(
                    op.addr >= 0x0001_0000_0000_0000 && op.addr < WINDOW_VA,
                    "{op:?}"
                ),
            }
        }
    }

    #[test]
    fn fetches_only_reach_windows_whose_contents_never_run() {
        let c = ctx();
        let mut r = Rng::new(6);
        for _ in 0..100_000 {
            let op = next(&mut r, &c);
            let fetch = op.class == Class::Fetch || (op.class == Class::El0 && op.kind == EL0_BLR);
            if !fetch {
                continue;
            }
            let w = window_of(op.addr).expect("fetches stay in the windows");
            let x = &WINDOWS[w];
            assert!(x.fetch || !x.executable, "{op:?}");
            // Executable windows that take stores are never backed by memory.
            assert!(
                !x.store
                    || !x.executable
                    || x.sea_or_zero
                    || w == win::BEYOND_IPS
                    || w == win::UNMAPPED,
                "{}",
                x.name
            );
            assert_ne!(w, win::EL0_CODE);
        }
    }

    #[test]
    fn executable_windows_are_never_stored_to_by_anyone() {
        for (i, x) in WINDOWS.iter().enumerate() {
            if x.executable && x.ipa.is_some_and(|ipa| ipa < UNPROTECTED) && !x.sea_or_zero {
                // Protected executable memory: only the execute window, never writable.
                assert_eq!(i, win::XRAM);
                assert!(!x.writable);
            }
        }
        // Nothing else maps the execute window's IPAs.
        for (i, x) in WINDOWS.iter().enumerate() {
            if let Some(ipa) = x.ipa {
                let end = ipa + x.pages * PAGE;
                let overlaps = ipa < XRAM_IPA + 16 * PAGE && end > XRAM_IPA;
                assert!(!overlaps || i == win::XRAM, "{}", x.name);
                // And no unprotected alias of it either.
                let alias = UNPROTECTED | XRAM_IPA;
                assert!(!(ipa < alias + 16 * PAGE && end > alias), "{}", x.name);
            }
        }
    }

    #[test]
    fn rmm_buffers_never_point_into_the_payload_but_its_scratch() {
        let c = ctx();
        let mut r = Rng::new(9);
        let mut n = 0;
        for _ in 0..100_000 {
            let op = next(&mut r, &c);
            if op.class != Class::Rsi {
                continue;
            }
            match op.kind {
                rsi_kind::REALM_CONFIG | rsi_kind::HOST_CALL | rsi_kind::TOKEN_CONTINUE => {
                    n += 1;
                    assert!(buffer_ipa_is_safe(op.args[0], &c), "{op:?}");
                }
                rsi_kind::OTHER => {
                    for a in &op.args[..7] {
                        assert!(buffer_ipa_is_safe(*a, &c), "{op:?}");
                    }
                    let f = op.args[7] as u32;
                    assert!(f > fid::RSI_HOST_CALL && f <= fid::RSI_LAST);
                }
                _ => {}
            }
            if op.kind == rsi_kind::HOST_CALL {
                let imm = op.args[1] as u16;
                assert!(!(RESERVED_HOST_CALLS.0..=RESERVED_HOST_CALLS.1).contains(&imm));
            }
        }
        assert!(n > 1000);
        assert!(buffer_ipa_is_safe(c.scratch_ipa, &c));
        assert!(!buffer_ipa_is_safe(0, &c));
        assert!(!buffer_ipa_is_safe(c.scratch_ipa + SCRATCH_SIZE, &c));
        assert!(!buffer_ipa_is_safe(XRAM_IPA + 8, &c));
    }

    #[test]
    fn rsi_kinds_are_the_rsi_function_ids() {
        assert_eq!(rsi_fid(rsi_kind::VERSION), 0xC400_0190);
        assert_eq!(rsi_fid(rsi_kind::FEATURES), 0xC400_0191);
        assert_eq!(rsi_fid(rsi_kind::MEAS_READ), 0xC400_0192);
        assert_eq!(rsi_fid(rsi_kind::MEAS_EXTEND), 0xC400_0193);
        assert_eq!(rsi_fid(rsi_kind::TOKEN_INIT), 0xC400_0194);
        assert_eq!(rsi_fid(rsi_kind::TOKEN_CONTINUE), 0xC400_0195);
        assert_eq!(rsi_fid(rsi_kind::REALM_CONFIG), 0xC400_0196);
        assert_eq!(rsi_fid(rsi_kind::IPA_SET), 0xC400_0197);
        assert_eq!(rsi_fid(rsi_kind::IPA_GET), 0xC400_0198);
        assert_eq!(rsi_fid(rsi_kind::HOST_CALL), fid::RSI_HOST_CALL);
    }

    #[test]
    fn ripas_changes_never_touch_the_payloads_memory() {
        let c = ctx();
        let mut r = Rng::new(10);
        let (mut valid, mut broken) = (0, 0);
        for _ in 0..200_000 {
            let op = next(&mut r, &c);
            if op.class == Class::Rsi && op.kind == rsi_kind::IPA_SET {
                let (b, t) = (op.args[0], op.args[1]);
                assert!(ripas_range_is_safe(b, t), "{op:?}");
                assert!(b >= PAYLOAD_RAM.1 || t <= b || b % PAGE != 0);
                if b < t && b % PAGE == 0 && t % PAGE == 0 {
                    valid += 1;
                } else {
                    broken += 1;
                }
            }
        }
        assert!(valid > 100 && broken > 10, "{valid} {broken}");
        assert!(!ripas_range_is_safe(0, 0x1000));
        assert!(ripas_range_is_safe(0, 0));
        assert!(ripas_range_is_safe(0x1001, 0x2000));
        assert!(!ripas_range_is_safe(0x20_0000, 0x50_1000));
    }

    #[test]
    fn rec1_is_only_started_at_the_fuzzers_entry() {
        let c = ctx();
        let mut r = Rng::new(12);
        let mut n = 0;
        for _ in 0..100_000 {
            let op = next(&mut r, &c);
            if op.class == Class::Psci && op.kind == 1 {
                if op.args[2] != c.secondary_entry || op.args[3] != REC1_FUZZ_CONTEXT {
                    assert!([0, 2, 3].contains(&op.args[1]), "{op:?}");
                } else {
                    n += 1;
                }
            }
            if op.class == Class::Psci && op.kind == 0 {
                let f = op.args[0] as u32;
                assert!(PSCI_SAFE.contains(&f), "{f:#x}");
            }
        }
        assert!(n > 100);
    }

    #[test]
    fn eret_never_returns_to_el1t_or_unmasked() {
        let mut r = Rng::new(13);
        let mut legal = 0;
        for _ in 0..10_000 {
            let s = eret_spsr(&mut r);
            assert!(eret_spsr_is_safe(s), "{s:#x}");
            legal += u32::from(s & 0xF == 5);
        }
        assert!(legal > 0);
        assert!(!eret_spsr_is_safe(0x3C4));
        assert!(!eret_spsr_is_safe(0x5));
    }

    #[test]
    fn console_data_bytes_are_printable() {
        let c = ctx();
        let mut r = Rng::new(14);
        for _ in 0..100_000 {
            let op = next(&mut r, &c);
            if op.class == Class::Mmio && mem::writes(op.kind) {
                let w = window_of(op.addr).unwrap();
                if (w == win::PL011 || w == win::UART16550) && op.addr - window_va(w) < 4 {
                    assert!((0x20..0x7f).contains(&op.args[0]), "{op:?}");
                }
            }
        }
    }

    #[test]
    fn windows_fit_their_slots() {
        for (i, x) in WINDOWS.iter().enumerate() {
            assert!(x.pages * PAGE <= WINDOW_STRIDE, "{}", x.name);
            assert_eq!(window_of(window_va(i)), Some(i));
            assert_eq!(
                window_of(window_va(i) + x.pages * PAGE - 1 + u64::from(x.pages == 0)),
                Some(i)
            );
            assert!(!(x.device && x.executable));
        }
        assert_eq!(window_of(0), None);
        assert_eq!(window_of(window_va(win::COUNT)), None);
    }

    #[test]
    fn exceptions_are_classified() {
        assert_eq!(classify(0), Outcome::Undef);
        assert_eq!(classify((0x25 << 26) | 0x10), Outcome::Sea);
        assert_eq!(classify((0x25 << 26) | 0x07), Outcome::Translation);
        assert_eq!(classify((0x25 << 26) | 0x0F), Outcome::Permission);
        assert_eq!(classify((0x25 << 26) | 0x21), Outcome::Alignment);
        assert_eq!(classify(0x21 << 26 | 0x10), Outcome::Sea);
        assert_eq!(classify(0x22 << 26), Outcome::Alignment);
        assert_eq!(classify(0x15 << 26), Outcome::Call);
        assert_eq!(classify(0x3C << 26), Outcome::Debug);
        assert_eq!(classify(0x0E << 26), Outcome::Illegal);
        assert_eq!(classify(0x07 << 26), Outcome::Trap);
        assert_eq!(classify(0x3F << 26), Outcome::OtherException);
        assert_eq!(classify_rsi(0), Some(Outcome::Ok));
        assert_eq!(classify_rsi(5), Some(Outcome::Error));
        assert_eq!(classify_rsi(u64::MAX), Some(Outcome::Unknown));
        assert_eq!(classify_rsi(6), None);
        assert_eq!(classify_psci(0xffff_fffe), Outcome::Error);
        assert_eq!(classify_psci(u64::MAX), Outcome::Unknown);
        assert_eq!(classify_psci(0x1_0001), Outcome::Ok);
    }
}
