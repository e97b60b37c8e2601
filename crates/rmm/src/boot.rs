//! Cold and warm boot: the RMM-EL3 boot arguments, the boot manifest, the console, the RMM's
//! own stage 1 tables, and the creation of the RMM core.

use crate::entry::MAX_CPUS;
use crate::platform::{FwPlatform, NS_ALIAS, REALM_ALIAS};
use aarch64_paging::descriptor::El23Attributes;
use aarch64_paging::paging::{El2, PageTable};
use cca_abi::el3::{
    manifest_checksum_ok, BootError, BootManifest, ConsoleInfo, MemoryBank, MANIFEST_MIN_MINOR,
};
use core::sync::atomic::AtomicU16;
use fw_support::mmu;
use fw_support::once::TakeOnce;
use fw_support::sysreg::CpuId;
use fw_support::{println, write_sysreg};
use rmm_core::{CpuFeatures, GranuleTable, Rmm};
use spin::Once;
use zerocopy::FromBytes;

/// Granules the RMM can track: 1 Mi granules, 4 GiB of DRAM (2 bytes each: 2 MiB).
const MAX_GRANULES: usize = 1 << 20;
static GRANULES: [AtomicU16; MAX_GRANULES] = [const { AtomicU16::new(0) }; MAX_GRANULES];

/// Stateful operation contexts.
static SRO: rmm_core::SroStorage = rmm_core::SroStorage::new();

const POOL_PAGES: usize = 48;
static POOL: TakeOnce<[PageTable<El23Attributes>; POOL_PAGES]> =
    TakeOnce::new([PageTable::EMPTY; POOL_PAGES]);

#[derive(Clone, Copy)]
struct MmuRegs {
    ttbr0: u64,
    tcr: u64,
}
static MMU: Once<MmuRegs> = Once::new();

unsafe extern "C" {
    static __text_end: u8;
    static __rodata_end: u8;
    static __rmm_end: u8;
    static __stacks_start: u8;
    static __stacks_end: u8;
}

/// The activation token this RMM hands EL3 for `cpu`: the top of its stack.
pub fn token_for(cpu: u64) -> u64 {
    (&raw const __stacks_start) as u64 + ((cpu + 1) << crate::entry::STACK_SHIFT)
}

fn fail(e: BootError, why: core::fmt::Arguments) -> BootError {
    println!("boot failed ({e:?}): {why}");
    e
}

/// Validates the manifest in the shared buffer and returns its DRAM banks and console.
fn read_manifest(
    shared: u64,
) -> Result<([MemoryBank; rmm_core::MAX_DRAM_BANKS], usize, ConsoleInfo), BootError> {
    // SAFETY: EL3 placed the manifest in the 4 KiB shared buffer; with the MMU off the RMM
    // reads it in the Realm PAS, where EL3 mapped and wrote it, and nothing changes it now.
    let page = unsafe { core::slice::from_raw_parts(shared as *const u8, 4096) };
    let (m, _) = BootManifest::read_from_prefix(page).map_err(|_| BootError::ManifestDataError)?;
    let (major, minor) = cca_abi::version_parts(u64::from(m.version));
    if major != 0 || minor < MANIFEST_MIN_MINOR {
        return Err(BootError::ManifestVersionNotSupported);
    }
    // The lists must lie inside the shared buffer.
    let array = |ptr: u64, num: u64, size: u64| -> Result<&[u8], BootError> {
        let len = num.checked_mul(size).ok_or(BootError::ManifestDataError)?;
        let off = ptr
            .checked_sub(shared)
            .ok_or(BootError::ManifestDataError)?;
        let end = off.checked_add(len).ok_or(BootError::ManifestDataError)?;
        page.get(off as usize..end as usize)
            .ok_or(BootError::ManifestDataError)
    };
    let nbanks = m.plat_dram.num as usize;
    if nbanks == 0 || nbanks > rmm_core::MAX_DRAM_BANKS {
        return Err(BootError::ManifestDataError);
    }
    let bank_bytes = array(m.plat_dram.ptr, m.plat_dram.num, 16)?;
    let mut banks = [MemoryBank::default(); rmm_core::MAX_DRAM_BANKS];
    for (i, b) in banks.iter_mut().take(nbanks).enumerate() {
        *b = MemoryBank::read_from_bytes(&bank_bytes[i * 16..(i + 1) * 16])
            .map_err(|_| BootError::ManifestDataError)?;
    }
    if !manifest_checksum_ok(
        &m.plat_dram,
        banks[..nbanks].iter().flat_map(|b| [b.base, b.size]),
    ) {
        return Err(BootError::ManifestDataError);
    }
    if m.plat_console.num == 0 {
        return Err(BootError::ManifestDataError);
    }
    let con_bytes = array(m.plat_console.ptr, m.plat_console.num, 48)?;
    let console =
        ConsoleInfo::read_from_bytes(&con_bytes[..48]).map_err(|_| BootError::ManifestDataError)?;
    let words = con_bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])));
    if !manifest_checksum_ok(&m.plat_console, words) || &console.name[..5] != b"pl011" {
        return Err(BootError::ManifestDataError);
    }
    // The console is identity-mapped: it must be page-aligned and below the DRAM aliases.
    if console.base % 4096 != 0
        || console
            .base
            .checked_add(16 * 4096)
            .is_none_or(|end| end > REALM_ALIAS)
    {
        return Err(BootError::ManifestDataError);
    }
    Ok((banks, nbanks, console))
}

fn build_mmu(banks: &[MemoryBank], console: &ConsoleInfo, shared: u64, id: &CpuId) -> MmuRegs {
    let base = crate::entry::_start_addr();
    let text_end = (&raw const __text_end) as u64;
    let rodata_end = (&raw const __rodata_end) as u64;
    let end = (&raw const __rmm_end) as u64;
    let mut regions: [(u64, u64, u64, El23Attributes); 5 + 2 * rmm_core::MAX_DRAM_BANKS] =
        [(0, 0, 0, El23Attributes::empty()); 5 + 2 * rmm_core::MAX_DRAM_BANKS];
    regions[0] = (base, text_end, base, mmu::RX_CODE);
    regions[1] = (text_end, rodata_end, text_end, mmu::RO_DATA);
    // Data and bss up to the stacks; each CPU's stack without its lowest page (the guard);
    // then the exception stacks.
    let stacks = (&raw const __stacks_start) as u64;
    let stacks_end = (&raw const __stacks_end) as u64;
    regions[2] = (rodata_end, stacks, rodata_end, mmu::RW_DATA);
    regions[3] = (shared, shared + 4096, shared, mmu::RW_DATA);
    let con_size = console.map_pages.clamp(1, 16) * 4096;
    regions[4] = (
        console.base,
        console.base + con_size,
        console.base,
        mmu::DEVICE,
    );
    for (i, b) in banks.iter().enumerate() {
        regions[5 + 2 * i] = (
            REALM_ALIAS + b.base,
            REALM_ALIAS + b.base + b.size,
            b.base,
            mmu::RW_DATA,
        );
        regions[6 + 2 * i] = (
            NS_ALIAS + b.base,
            NS_ALIAS + b.base + b.size,
            b.base,
            mmu::RW_DATA | El23Attributes::NS,
        );
    }
    let stack_size = 1u64 << crate::entry::STACK_SHIFT;
    let guarded = (0..MAX_CPUS as u64).map(|i| {
        let lo = stacks + i * stack_size + 4096;
        (lo, lo + stack_size - 4096, lo, mmu::RW_DATA)
    });
    let exc = core::iter::once((stacks_end, end, stacks_end, mmu::RW_DATA));
    let all = regions
        .iter()
        .take(5 + 2 * banks.len())
        .copied()
        .chain(guarded)
        .chain(exc);
    let tables = POOL.take().expect("RMM page tables built twice");
    let ttbr0 = mmu::build(tables, El2, "RMM", all);
    MmuRegs {
        ttbr0,
        tcr: mmu::tcr(id.pa_range().min(5)),
    }
}

fn enable_mmu(regs: &MmuRegs) {
    // SAFETY: the tables identity-map the RMM image, stacks and console, so execution
    // continues unchanged when translation turns on; HCR_EL2 = 0 keeps the non-VHE EL2 regime.
    unsafe {
        write_sysreg!(hcr_el2, 0u64);
        write_sysreg!(mair_el2, mmu::MAIR);
        write_sysreg!(tcr_el2, regs.tcr);
        write_sysreg!(ttbr0_el2, regs.ttbr0);
        core::arch::asm!("dsb ish", "tlbi alle2", "dsb ish", "isb", options(nostack));
        write_sysreg!(
            sctlr_el2,
            0x30C5_0830u64 | 1 | (1 << 2) | (1 << 3) | (1 << 12) | (1 << 19)
        );
        core::arch::asm!("isb", options(nostack));
    }
}

fn cpu_features(id: &CpuId) -> CpuFeatures {
    let field = fw_support::sysreg::field;
    CpuFeatures {
        pa_width: id.pa_bits().min(48) as u8,
        lpa2: false,
        // SVE is not offered (RMI_FEATURES SVE_EN = 0, so REALM_CREATE refuses the SVE flag):
        // the world switch does not save Z0-Z31, P0-P15, FFR or ZCR_EL1, and realms see no SVE
        // in their ID registers (rmm_core::idregs).
        sve_vq: None,
        dfr0_brps: field(id.dfr0, 12, 4) as u8,
        dfr0_wrps: field(id.dfr0, 20, 4) as u8,
        dfr1_brps: field(id.dfr1, 8, 8) as u8,
        dfr1_wrps: field(id.dfr1, 16, 8) as u8,
    }
}

/// Logs the CPU's AArch64 ID registers and the view a realm without SVE or PMU gets
/// (CPU value -> realm value), at trace level: seven long lines a cold boot does not print
/// (console output costs boot time: each character is a write by QEMU).
fn log_id_regs(ids: &rmm_core::IdRegs) {
    use rmm_core::idregs::{realm_view, RealmCpu};
    use rmm_core::IdReg;
    if !log::log_enabled!(log::Level::Trace) {
        return;
    }
    let realm = RealmCpu {
        sve: false,
        pmu: false,
        num_bps: 1,
        num_wps: 1,
    };
    for (crm, first) in [(4u8, 0u8), (4, 4), (5, 0), (5, 4), (6, 0), (7, 0), (7, 4)] {
        let line = |op2: u8| {
            let reg = IdReg::new(crm, op2);
            (ids.get(reg), realm_view(ids, &realm, crm, op2, 0))
        };
        let (a, b, c, d) = (
            line(first),
            line(first + 1),
            line(first + 2),
            line(first + 3),
        );
        log::trace!(
            "ID_AA64 CRm {crm} op2 {first}..: {:#x} -> {:#x}, {:#x} -> {:#x}, {:#x} -> {:#x}, {:#x} -> {:#x}",
            a.0, a.1, b.0, b.1, c.0, c.1, d.0, d.1
        );
    }
}

/// Cold boot on the first CPU.
pub fn cold(
    cpu: u64,
    version: u64,
    ncpus: u64,
    shared: u64,
    _token: u64,
) -> Result<Rmm<'static, FwPlatform>, BootError> {
    let (major, _) = cca_abi::version_parts(version);
    if major != 2 {
        return Err(BootError::VersionMismatch);
    }
    if ncpus == 0 || ncpus > MAX_CPUS as u64 {
        return Err(BootError::CpusOutOfRange);
    }
    if cpu >= ncpus {
        return Err(BootError::CpuIdOutOfRange);
    }
    if shared == 0 || shared % 4096 != 0 {
        return Err(BootError::InvalidSharedBuffer);
    }
    let (banks, nbanks, console) = read_manifest(shared)?;
    let banks = &banks[..nbanks];
    // SAFETY: the manifest names this PL011 as the RMM's console; the MMU is still off.
    unsafe { fw_support::console::init(console.base as usize, "RMM") };
    fw_support::console::init_logger(log::LevelFilter::Debug);
    println!(
        "RMM (Rust) cold boot on CPU {cpu} of {ncpus}: RMM-EL3 interface {}.{}, RMI 2.0",
        major,
        version & 0xffff
    );
    for b in banks {
        // Both aliases (PA + 2^44, PA + 2^45) must stay apart: every bank ends below 2^44.
        if b.base
            .checked_add(b.size)
            .is_none_or(|end| end > REALM_ALIAS)
        {
            return Err(fail(
                BootError::ManifestDataError,
                format_args!(
                    "DRAM bank {:#x}+{:#x} reaches the RMM's aliases at 2^44",
                    b.base, b.size
                ),
            ));
        }
        println!("DRAM bank {:#x}..{:#x}", b.base, b.base + b.size);
    }
    let id = CpuId::read();
    let regs = build_mmu(banks, &console, shared, &id);
    enable_mmu(&regs);
    MMU.call_once(|| regs);
    // GRANULES is a zero-initialised static (`.bss`, which the entry code clears) and cold
    // boot runs once, before anything else uses it: every descriptor is still unlocked NS.
    let table = GranuleTable::over_zeroed(banks, &GRANULES)
        .map_err(|e| fail(BootError::ManifestDataError, format_args!("{e}")))?;
    let id_regs = crate::platform::read_id_regs();
    log_id_regs(&id_regs);
    let engine = fw_support::sha2::init(
        id_regs.get(rmm_core::IdReg::AA64ISAR0),
        id_regs.get(rmm_core::IdReg::AA64PFR0),
    );
    println!("measurement hashing: {engine}");
    crate::realm::init(&id_regs);
    crate::attest::init(shared, id.rng());
    let platform = FwPlatform {
        features: cpu_features(&id),
        id_regs,
    };
    let rmm =
        Rmm::new(platform, table, &SRO).map_err(|e| fail(e.boot_error(), format_args!("{e}")))?;
    println!(
        "tracking {} granules; activation gate closed until RMM_ACTIVATE",
        rmm.granules().len()
    );
    Ok(rmm)
}

/// Warm boot of another CPU (or of a CPU coming back on).
pub fn warm(cpu: u64, _token: u64) -> Result<(), BootError> {
    let regs = MMU.get().ok_or(BootError::Unknown)?;
    enable_mmu(regs);
    crate::realm::init_cpu();
    println!("warm boot on CPU {cpu}");
    Ok(())
}
