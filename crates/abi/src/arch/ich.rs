//! GICv3 virtual CPU interface registers (`ICH_*_EL2`): list registers, `ICH_HCR_EL2`,
//! `ICH_VMCR_EL2`, `ICH_MISR_EL2` and `ICH_VTR_EL2`.

/// `ICH_LR<n>_EL2.State` shift (bits [63:62]).
pub const LR_STATE_SHIFT: u32 = 62;
/// State mask.
pub const LR_STATE_MASK: u64 = 3 << LR_STATE_SHIFT;
/// State: pending.
pub const LR_PENDING: u64 = 1 << 62;
/// State: active.
pub const LR_ACTIVE: u64 = 2 << 62;
/// HW: the virtual interrupt is linked to a physical one (a Normal-world host never sets it
/// for a realm: the RMM rejects such list registers).
pub const LR_HW: u64 = 1 << 61;
/// Group 1.
pub const LR_GROUP1: u64 = 1 << 60;
/// Priority field shift (bits [55:48]).
pub const LR_PRIORITY_SHIFT: u32 = 48;
/// Priority field mask.
pub const LR_PRIORITY_MASK: u64 = 0xff << LR_PRIORITY_SHIFT;
/// EOI: with HW = 0, the deactivation raises a maintenance interrupt (`ICH_MISR_EL2.EOI`).
pub const LR_EOI: u64 = 1 << 41;
/// vINTID field.
pub const LR_VINTID: u64 = 0xffff_ffff;

/// The state of a list register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LrState {
    /// Invalid: the slot is free (or the guest completed the interrupt it held).
    Invalid,
    /// Pending.
    Pending,
    /// Active.
    Active,
    /// Active and pending.
    PendingActive,
}

/// The state field of list register value `lr`.
pub const fn lr_state(lr: u64) -> LrState {
    match lr >> LR_STATE_SHIFT {
        0 => LrState::Invalid,
        1 => LrState::Pending,
        2 => LrState::Active,
        _ => LrState::PendingActive,
    }
}

/// The vINTID of list register value `lr`.
pub const fn lr_vintid(lr: u64) -> u32 {
    (lr & LR_VINTID) as u32
}

/// The priority of list register value `lr`.
pub const fn lr_priority(lr: u64) -> u8 {
    ((lr & LR_PRIORITY_MASK) >> LR_PRIORITY_SHIFT) as u8
}

/// A Group 1 list register value with HW = 0 for `vintid`: `state` is pending, active or
/// both; `eoi` asks for a maintenance interrupt when the guest deactivates it.
pub const fn lr_encode(vintid: u32, priority: u8, state: LrState, eoi: bool) -> u64 {
    let s = match state {
        LrState::Invalid => 0,
        LrState::Pending => LR_PENDING,
        LrState::Active => LR_ACTIVE,
        LrState::PendingActive => LR_PENDING | LR_ACTIVE,
    };
    s | LR_GROUP1
        | ((priority as u64) << LR_PRIORITY_SHIFT)
        | if eoi { LR_EOI } else { 0 }
        | vintid as u64
}

/// `ICH_HCR_EL2.En`: the virtual CPU interface is enabled.
pub const HCR_EN: u64 = 1 << 0;
/// `ICH_HCR_EL2.UIE`: maintenance interrupt when at most one list register is valid.
pub const HCR_UIE: u64 = 1 << 1;
/// `ICH_HCR_EL2.NPIE`: maintenance interrupt when no list register is pending.
pub const HCR_NPIE: u64 = 1 << 3;

/// `ICH_VMCR_EL2.VENG1`: virtual Group 1 interrupts enabled.
pub const VMCR_VENG1: u64 = 1 << 1;
/// `ICH_VMCR_EL2.VPMR` shift (bits [31:24]).
pub const VMCR_VPMR_SHIFT: u32 = 24;

/// The priority mask (`VPMR`) of an `ICH_VMCR_EL2` value.
pub const fn vmcr_pmr(vmcr: u64) -> u8 {
    (vmcr >> VMCR_VPMR_SHIFT) as u8
}

/// `ICH_MISR_EL2.EOI`: a list register with EOI = 1 was deactivated.
pub const MISR_EOI: u64 = 1 << 0;

/// Number of list registers from `ICH_VTR_EL2.ListRegs` (at most 16).
pub const fn list_registers(vtr: u64) -> usize {
    let n = (vtr & 0x1f) as usize + 1;
    if n > 16 {
        16
    } else {
        n
    }
}

/// Number of `ICH_AP0R<n>_EL2` / `ICH_AP1R<n>_EL2` registers from `ICH_VTR_EL2.PREbits`.
pub const fn active_priority_registers(vtr: u64) -> usize {
    let prebits = ((vtr >> 26) & 7) + 1;
    if prebits <= 5 {
        1
    } else if prebits == 6 {
        2
    } else {
        4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_register_round_trip() {
        let lr = lr_encode(27, 0xa0, LrState::Pending, true);
        assert_eq!(lr_state(lr), LrState::Pending);
        assert_eq!(lr_vintid(lr), 27);
        assert_eq!(lr_priority(lr), 0xa0);
        assert_ne!(lr & LR_EOI, 0);
        assert_ne!(lr & LR_GROUP1, 0);
        assert_eq!(lr & LR_HW, 0);
        assert_eq!(lr_state(lr | LR_ACTIVE), LrState::PendingActive);
        assert_eq!(lr_state(lr & !LR_STATE_MASK), LrState::Invalid);
        assert_eq!(lr_state(LR_ACTIVE), LrState::Active);
    }

    #[test]
    fn vtr_fields() {
        assert_eq!(list_registers(3), 4);
        assert_eq!(list_registers(31), 16);
        assert_eq!(active_priority_registers(4 << 26), 1);
        assert_eq!(active_priority_registers(5 << 26), 2);
        assert_eq!(active_priority_registers(6 << 26), 4);
        assert_eq!(vmcr_pmr(0xf0 << 24 | VMCR_VENG1), 0xf0);
    }
}
