//! The realm's address space as the host builds it (see `docs/realm-payload.md`).

/// The realm's IPA width (`RmiRealmParams.s2sz`).
pub const IPA_WIDTH: u64 = 40;
/// The unprotected half starts here: the top IPA bit, `1 << (IPA_WIDTH - 1)`.
pub const UNPROTECTED: u64 = 1 << (IPA_WIDTH - 1);
/// Protected RAM with RIPAS RAM from the start: the image, its data and stacks.
pub const PROTECTED_RAM: (u64, u64) = (0, 0x20_0000);
/// Protected memory that starts RIPAS EMPTY (the host maps nothing there).
pub const EMPTY_RAM: (u64, u64) = (0x20_0000, 0x40_0000);
/// The part of [`EMPTY_RAM`] the payload asks to turn RAM (the host accepts).
pub const NEW_RAM: (u64, u64) = (0x20_0000, 0x21_0000);
/// The part of [`EMPTY_RAM`] the payload asks to turn RAM and the host rejects.
pub const REJECTED_RAM: (u64, u64) = (0x30_0000, 0x30_1000);
/// The PL011 the host emulates: unprotected alias of `0x0900_0000`.
pub const UART_BASE: u64 = UNPROTECTED + 0x0900_0000;

/// MPIDR (`RmiRecMpidr`) of REC 0, which starts at IPA 0.
pub const REC0_MPIDR: u64 = 0;
/// MPIDR of REC 1, which exists but is started only by `CPU_ON`.
pub const REC1_MPIDR: u64 = 1;
/// An MPIDR no REC has.
pub const NO_REC_MPIDR: u64 = 2;

/// `RSI_HOST_CALL` immediate: the payload's verdict (gprs[0] = passed, gprs[1] = failed,
/// `u64::MAX` after a fatal exception).
pub const HOST_CALL_RESULT: u16 = 0xCCA0;
/// `RSI_HOST_CALL` immediate of the echo check: the host answers every gpr plus one.
pub const HOST_CALL_ECHO: u16 = 0xCCA1;
/// `RSI_HOST_CALL` immediate of the RSI timing report: gprs[0..3] = calls, ticks, CNTFRQ for
/// RSI_VERSION, gprs[3..6] the same for RSI_IPA_STATE_GET.
pub const HOST_CALL_TIMING: u16 = 0xCCA2;

/// The context id passed to REC 1 by `CPU_ON`; its low byte is REC 1's stack index.
pub const REC1_CONTEXT: u64 = 0x5EC0_0DE0_0000_0001;
