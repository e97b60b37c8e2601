//! QEMU `virt` platform facts, following TF-A's QEMU conventions so that each part of the
//! stack can be swapped with the reference (TF-A, TF-RMM).

/// PL011 UART0, shared by every world.
pub const UART0: u64 = 0x0900_0000;
/// Secure PL061 GPIO: pin 0 powers the machine off, pin 1 resets it.
pub const SECURE_GPIO: u64 = 0x090b_0000;
/// Secure RAM (16 MiB): EL3's data, stacks and tables; Root PAS.
pub const SECURE_RAM: (u64, u64) = (0x0e00_0000, 0x0100_0000);
/// Base of DRAM.
pub const DRAM_BASE: u64 = 0x4000_0000;
/// Where QEMU places the device tree for a `-bios` boot (start of DRAM).
pub const DTB_BASE: u64 = 0x4000_0000;
/// Realm carve-out: the RMM image and its memory, up to and including the shared page.
pub const RMM_BASE: u64 = 0x4010_0000;
/// End (exclusive) of the Realm carve-out.
pub const RMM_LIMIT: u64 = 0x4190_0000;
/// The EL3-RMM shared buffer (boot manifest, attestation buffers), the carve-out's last page.
pub const RMM_SHARED: u64 = 0x418f_f000;
/// Lowest address RMM_RESERVE_MEMORY hands out (base + 16 MiB, as a TF-RMM image is smaller).
pub const RMM_RESERVE_LOW: u64 = RMM_BASE + 0x100_0000;
/// Entry point of the Normal-world image (BL33 position), entered at NS-EL2.
pub const NS_ENTRY: u64 = 0x6000_0000;
/// GPT geometry: 1 TiB protected space, 1 GiB level 0 entries.
pub const GPT_GEOMETRY: el3_core::gpt::GptGeometry = el3_core::gpt::GptGeometry {
    pps_bits: 40,
    l0gptsz_bits: 30,
};
/// Level 1 tables available (one per GiB made granular: secure RAM's GiB and DRAM).
pub const GPT_MAX_L1: usize = 6;
/// UART clock reported in the manifest (TF-A reports 1 Hz and TF-RMM accepts it).
pub const UART_CLK_HZ: u64 = 1;
/// UART baud rate reported in the manifest.
pub const UART_BAUD: u64 = 115_200;
/// GICv3 distributor.
pub const GICD_BASE: u64 = 0x0800_0000;
/// First GICv3 redistributor.
pub const GICR_BASE: u64 = 0x080a_0000;
/// Distance between redistributors (RD_base and SGI_base frames).
pub const GICR_STRIDE: u64 = 0x2_0000;
