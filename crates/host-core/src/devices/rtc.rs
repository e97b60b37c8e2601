//! An MC146818 real-time clock with its CMOS RAM, as kvmtool presents it on arm64: two
//! byte-wide registers, an index at offset 0 (write-only; bit 7, the PC's NMI mask, is
//! ignored) and the selected CMOS byte at offset 1. Offsets 2 and above read as zero and ignore
//! writes; a wider access acts on the byte at its offset (the low byte of the value).
//!
//! | CMOS byte | what |
//! |---|---|
//! | 0x00, 0x02, 0x04 | seconds, minutes, hours (12-hour: 1..12, bit 7 = PM) |
//! | 0x06, 0x07, 0x08, 0x09 | day of week (1 = Sunday), day of month, month, year in the century |
//! | 0x32 | century |
//! | 0x01, 0x03, 0x05 | the alarm bytes: plain storage |
//! | 0x0A | register A: `UIP` (bit 7) reads 0, the divider and rate bits are stored |
//! | 0x0B | register B: stored; `DM` (bit 2) selects binary over BCD, `24/12` (bit 1) 24-hour |
//! | 0x0C | register C: reads 0 (no interrupt flags), ignores writes |
//! | 0x0D | register D: reads `VRT` (0x80), ignores writes |
//! | 0x0E..0x7F | plain storage |
//!
//! The time is the host's UTC wall clock ([`DeviceCtx::unix_time`]) plus an offset, shown in
//! the format register B selects at the moment of the read (after reset B = 0x02: 24-hour,
//! BCD, as edk2's `PcatRealTimeClockRuntimeDxe` and Linux's `rtc-cmos` want it). An update is
//! never in progress, so the `UIP` waits of edk2 and Linux's `mc146818_avoid_UIP` end at once.
//!
//! Setting the clock, as those drivers do it: while `B.SET` (bit 7) is set, the time bytes are
//! frozen storage (holding the time at the moment `SET` was raised) that the guest rewrites;
//! clearing `SET` decodes them and moves the offset, so the clock the guest set keeps running
//! from there. A time byte written while `SET` is clear moves the clock at once (the other
//! fields keep their current values). Writes to the day of week are accepted while `SET` holds
//! but the day of week is always derived from the date. Fields out of range carry over like
//! `mktime` (32 January is 1 February; BCD digits above 9 count as their binary value).
//!
//! The device has no interrupt: kvmtool's device-tree node has none, so register B's
//! interrupt enables are stored and register C never reports a flag.

use super::{DeviceCtx, MmioAccess, MmioDevice};

const INDEX: u64 = 0;
const DATA: u64 = 1;

const SECONDS: u8 = 0x00;
const MINUTES: u8 = 0x02;
const HOURS: u8 = 0x04;
const DAY_OF_WEEK: u8 = 0x06;
const DAY: u8 = 0x07;
const MONTH: u8 = 0x08;
const YEAR: u8 = 0x09;
const REG_A: u8 = 0x0a;
const REG_B: u8 = 0x0b;
const REG_C: u8 = 0x0c;
const REG_D: u8 = 0x0d;
const CENTURY: u8 = 0x32;

/// The CMOS bytes that hold the time, in the order of [`Fields`].
const TIME_REGS: [u8; 8] = [
    SECONDS,
    MINUTES,
    HOURS,
    DAY_OF_WEEK,
    DAY,
    MONTH,
    YEAR,
    CENTURY,
];

const A_UIP: u8 = 1 << 7;
const B_SET: u8 = 1 << 7;
const B_DM_BINARY: u8 = 1 << 2;
const B_24H: u8 = 1 << 1;
const D_VRT: u8 = 1 << 7;
const HOUR_PM: u8 = 1 << 7;

/// Register A after reset: the 32.768 kHz time base running, 1024 Hz periodic rate.
const RESET_A: u8 = 0x26;
/// Register B after reset: 24-hour, BCD.
const RESET_B: u8 = B_24H;

const SECS_PER_DAY: i64 = 86_400;

/// The time bytes as the guest sees them, in [`TIME_REGS`] order.
type Fields = [u8; 8];

/// An MC146818 RTC; see the [module documentation](self).
#[derive(Clone, Debug)]
pub struct Mc146818Rtc {
    index: u8,
    /// Every CMOS byte that is storage (the time bytes are not kept here unless `SET` holds).
    cmos: [u8; 128],
    /// Seconds the guest's clock is ahead of the host's.
    offset: i64,
    /// The time bytes while `B.SET` holds.
    frozen: Option<Fields>,
}

impl Default for Mc146818Rtc {
    fn default() -> Self {
        Self::new()
    }
}

impl Mc146818Rtc {
    /// An RTC after reset, showing the host's time.
    pub fn new() -> Self {
        let mut cmos = [0; 128];
        cmos[usize::from(REG_A)] = RESET_A;
        cmos[usize::from(REG_B)] = RESET_B;
        Self {
            index: 0,
            cmos,
            offset: 0,
            frozen: None,
        }
    }

    fn reg_b(&self) -> u8 {
        self.cmos[usize::from(REG_B)]
    }

    /// The guest's clock now, in seconds since the epoch.
    fn now(&self, ctx: &DeviceCtx<'_>) -> i64 {
        i64::try_from(ctx.unix_time)
            .unwrap_or(i64::MAX)
            .saturating_add(self.offset)
    }

    fn read_data(&mut self, ctx: &DeviceCtx<'_>) -> u8 {
        let reg = self.index;
        if let Some(i) = TIME_REGS.iter().position(|&r| r == reg) {
            let fields = match self.frozen {
                Some(f) => f,
                None => render(self.now(ctx), self.reg_b()),
            };
            return fields[i];
        }
        match reg {
            REG_A => self.cmos[usize::from(REG_A)] & !A_UIP,
            REG_C => 0,
            REG_D => D_VRT,
            _ => self.cmos.get(usize::from(reg)).copied().unwrap_or(0),
        }
    }

    fn write_data(&mut self, v: u8, ctx: &DeviceCtx<'_>) {
        let reg = self.index;
        if let Some(i) = TIME_REGS.iter().position(|&r| r == reg) {
            match &mut self.frozen {
                Some(f) => f[i] = v,
                None => {
                    let mut f = render(self.now(ctx), self.reg_b());
                    f[i] = v;
                    self.set_clock(&f, self.reg_b(), ctx);
                }
            }
            return;
        }
        match reg {
            REG_B => {
                let old = self.reg_b();
                self.cmos[usize::from(REG_B)] = v;
                if v & B_SET != 0 && old & B_SET == 0 {
                    self.frozen = Some(render(self.now(ctx), v));
                } else if v & B_SET == 0 {
                    if let Some(f) = self.frozen.take() {
                        self.set_clock(&f, v, ctx);
                    }
                }
            }
            REG_C | REG_D => {}
            _ => {
                if let Some(b) = self.cmos.get_mut(usize::from(reg)) {
                    *b = v;
                }
            }
        }
    }

    /// Moves the guest's clock to the time `fields` (in register B format `b`) give.
    fn set_clock(&mut self, fields: &Fields, b: u8, ctx: &DeviceCtx<'_>) {
        let host = i64::try_from(ctx.unix_time).unwrap_or(i64::MAX);
        self.offset = decode_time(fields, b).saturating_sub(host);
    }
}

impl MmioDevice for Mc146818Rtc {
    fn name(&self) -> &'static str {
        "mc146818"
    }

    fn read(&mut self, access: MmioAccess, ctx: &mut DeviceCtx<'_>) -> u64 {
        match access.offset {
            DATA => u64::from(self.read_data(ctx)),
            _ => 0, // the index register is write-only
        }
    }

    fn write(&mut self, access: MmioAccess, value: u64, ctx: &mut DeviceCtx<'_>) {
        let v = value.to_le_bytes()[0];
        match access.offset {
            INDEX => self.index = v & 0x7f,
            DATA => self.write_data(v, ctx),
            _ => {}
        }
    }
}

/// A value 0..=99 in the register format: BCD unless `b` says binary.
fn encode(v: u8, b: u8) -> u8 {
    if b & B_DM_BINARY != 0 {
        v
    } else {
        ((v / 10) << 4) | (v % 10)
    }
}

/// A register value back to a number: BCD digits (each 0..=15) unless `b` says binary.
fn decode(v: u8, b: u8) -> i64 {
    if b & B_DM_BINARY != 0 {
        i64::from(v)
    } else {
        i64::from(v >> 4) * 10 + i64::from(v & 0xf)
    }
}

/// The time bytes of `t` (seconds since the epoch) in register B format `b`.
fn render(t: i64, b: u8) -> Fields {
    let days = t.div_euclid(SECS_PER_DAY);
    let secs = t.rem_euclid(SECS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    // Each of these is below 100, so the narrowing is exact.
    let hour = (secs / 3600) as u8;
    let minute = (secs / 60 % 60) as u8;
    let second = (secs % 60) as u8;
    let hour_reg = if b & B_24H != 0 {
        encode(hour, b)
    } else {
        let h12 = match hour % 12 {
            0 => 12,
            h => h,
        };
        let pm = if hour >= 12 { HOUR_PM } else { 0 };
        encode(h12, b) | pm
    };
    // 1970-01-01 was a Thursday; the register counts Sunday as 1.
    let weekday = (days.saturating_add(4).rem_euclid(7) + 1) as u8;
    [
        encode(second, b),
        encode(minute, b),
        hour_reg,
        encode(weekday, b),
        encode(day, b),
        encode(month, b),
        encode(year.rem_euclid(100) as u8, b),
        encode(year.div_euclid(100).rem_euclid(100) as u8, b),
    ]
}

/// The seconds since the epoch of the time bytes `f` in register B format `b` (the day of week
/// is ignored; fields out of range carry over).
fn decode_time(f: &Fields, b: u8) -> i64 {
    let hour = if b & B_24H != 0 {
        decode(f[2], b)
    } else {
        let pm = f[2] & HOUR_PM != 0;
        decode(f[2] & !HOUR_PM, b) % 12 + if pm { 12 } else { 0 }
    };
    let year = decode(f[7], b) * 100 + decode(f[6], b);
    // Months beyond December roll into the following years; month 0 is the previous December.
    let month0 = decode(f[5], b) - 1;
    let year = year + month0.div_euclid(12);
    let month = (month0.rem_euclid(12) + 1) as u8;
    let days = days_from_civil(year, month, 1) + decode(f[4], b) - 1;
    days * SECS_PER_DAY + hour * 3600 + decode(f[1], b) * 60 + decode(f[0], b)
}

/// Days in the 400-year cycle of the proleptic Gregorian calendar.
const DAYS_PER_ERA: i64 = 146_097;
/// Days from 0000-03-01 (the start of era 0 when years begin in March) to 1970-01-01.
const EPOCH_FROM_ERA0: i64 = 719_468;

/// Days before the first of each month when the year starts in March (March = 0).
fn days_before_march_month(m: i64) -> i64 {
    // March..July and August..December each run 31, 30, 31, 30, 31: 153 days per five
    // months, so the count grows by 30.6 days a month, rounded so the months come out right.
    (153 * m + 2) / 5
}

/// The day number (days since 1970-01-01, negative before it) of `year`-`month`-`day` in the
/// proleptic Gregorian calendar; `month` is 1..=12, `day` may run past the month's end.
fn days_from_civil(year: i64, month: u8, day: i64) -> i64 {
    // Counting years from March puts the leap day at the end of the year.
    let (y, m) = if month > 2 {
        (year, i64::from(month) - 3)
    } else {
        (year - 1, i64::from(month) + 9)
    };
    let era = y.div_euclid(400);
    let year_of_era = y.rem_euclid(400);
    let day_of_year = days_before_march_month(m) + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * DAYS_PER_ERA + day_of_era - EPOCH_FROM_ERA0
}

/// The (year, month 1..=12, day 1..=31) of day number `days` (days since 1970-01-01).
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days.saturating_add(EPOCH_FROM_ERA0);
    let era = z.div_euclid(DAYS_PER_ERA);
    let day_of_era = z.rem_euclid(DAYS_PER_ERA); // 0..=146096
                                                 // Remove the leap days before this day in its era (one per 4 years, less one per
                                                 // century, plus the era's last day), leaving 365-day years.
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let m = (5 * day_of_year + 2) / 153; // 0 = March
    let day = (day_of_year - days_before_march_month(m) + 1) as u8;
    let (month, carry) = if m < 10 { (m + 3, 0) } else { (m - 9, 1) };
    (era * 400 + year_of_era + carry, month as u8, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::test_util::{Captured, Ctx};
    use crate::vgic::Vgic;
    use proptest::prelude::*;

    struct Env {
        gic: Vgic,
        out: Captured,
        time: u64,
        rtc: Mc146818Rtc,
    }

    /// 2000-02-29 13:45:07 UTC, a Tuesday.
    const LEAP_DAY_2000: u64 = 951_831_907;

    impl Env {
        fn new(time: u64) -> Self {
            Self {
                gic: Vgic::new(&[0], 32),
                out: Captured::default(),
                time,
                rtc: Mc146818Rtc::new(),
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
                unix_time: self.time,
            }
            .read(&mut self.rtc, a)
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
                unix_time: self.time,
            }
            .write(&mut self.rtc, a, value);
        }

        fn get(&mut self, reg: u8) -> u8 {
            self.write_sized(INDEX, 1, u64::from(reg));
            let v = self.read_sized(DATA, 1);
            assert!(v <= 0xff);
            v as u8
        }

        fn set(&mut self, reg: u8, v: u8) {
            self.write_sized(INDEX, 1, u64::from(reg));
            self.write_sized(DATA, 1, u64::from(v));
        }

        /// Seconds, minutes, hours, day of week, day, month, year, century.
        fn time_regs(&mut self) -> [u8; 8] {
            TIME_REGS.map(|r| self.get(r))
        }
    }

    #[test]
    fn civil_conversion_known_dates() {
        for (date, days) in [
            ((1970, 1, 1), 0),
            ((1969, 12, 31), -1),
            ((2000, 1, 1), 10_957),
            ((2000, 2, 29), 11_016), // 2000 is a leap year (divisible by 400)
            ((2000, 3, 1), 11_017),
            ((2024, 2, 29), 19_782),
            ((2038, 1, 19), 24_855),
            ((2099, 12, 31), 47_481),
            ((2100, 2, 28), 47_540),
            ((2100, 3, 1), 47_541), // 2100 is not (divisible by 100 only)
            ((1900, 2, 28), -25_509),
            ((1900, 3, 1), -25_508),
            ((1600, 2, 29), -135_081),
            ((1, 1, 1), -719_162),
            ((9999, 12, 31), 2_932_896),
        ] {
            let (y, m, d) = date;
            assert_eq!(days_from_civil(y, m, i64::from(d)), days, "{date:?}");
            assert_eq!(civil_from_days(days), (y, m, d), "{days}");
        }
        assert_eq!(days_from_civil(2023, 2, 29), days_from_civil(2023, 3, 1));
        assert_eq!(days_from_civil(2024, 1, 0), days_from_civil(2023, 12, 31));
    }

    /// Day number by counting whole years and months from 1970 (slow, obviously right).
    fn naive_civil(mut days: i64) -> (i64, u8, u8) {
        let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let mut y = 1970;
        while days < 0 {
            y -= 1;
            days += if leap(y) { 366 } else { 365 };
        }
        loop {
            let len = if leap(y) { 366 } else { 365 };
            if days < len {
                break;
            }
            days -= len;
            y += 1;
        }
        let feb = if leap(y) { 29 } else { 28 };
        let lens = [31, feb, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        let mut m = 0;
        while days >= lens[m] {
            days -= lens[m];
            m += 1;
        }
        (y, m as u8 + 1, days as u8 + 1)
    }

    #[test]
    fn reset_registers() {
        let mut e = Env::new(LEAP_DAY_2000);
        assert_eq!(e.get(REG_A), 0x26);
        assert_eq!(e.get(REG_B), 0x02);
        assert_eq!(e.get(REG_C), 0);
        assert_eq!(e.get(REG_D), 0x80);
        assert_eq!(e.rtc.name(), "mc146818");
    }

    #[test]
    fn bcd_24_hour_time() {
        let mut e = Env::new(LEAP_DAY_2000);
        assert_eq!(
            e.time_regs(),
            [0x07, 0x45, 0x13, 0x03, 0x29, 0x02, 0x00, 0x20]
        );
        e.time = 1_783_125_000; // 2026-07-04 00:30:00, a Saturday
        assert_eq!(
            e.time_regs(),
            [0x00, 0x30, 0x00, 0x07, 0x04, 0x07, 0x26, 0x20]
        );
        e.time = 0;
        assert_eq!(
            e.time_regs(),
            [0x00, 0x00, 0x00, 0x05, 0x01, 0x01, 0x70, 0x19]
        );
    }

    #[test]
    fn binary_and_12_hour_formats() {
        let mut e = Env::new(LEAP_DAY_2000);
        e.set(REG_B, B_DM_BINARY | B_24H);
        assert_eq!(e.time_regs(), [7, 45, 13, 3, 29, 2, 0, 20]);
        e.set(REG_B, B_DM_BINARY);
        assert_eq!(e.get(HOURS), 0x80 | 1, "13:45 is 1 PM");
        e.set(REG_B, 0);
        assert_eq!(e.get(HOURS), 0x81);
        for (hour, bcd12) in [(0, 0x12), (1, 0x01), (11, 0x11), (12, 0x92), (23, 0x91)] {
            e.time = 86_400 * 3 + hour * 3600;
            assert_eq!(e.get(HOURS), bcd12, "hour {hour}");
        }
        e.set(REG_B, B_DM_BINARY);
        e.time = 86_400 * 3;
        assert_eq!(e.get(HOURS), 12, "midnight is 12 AM");
        e.time += 12 * 3600;
        assert_eq!(e.get(HOURS), 0x80 | 12, "noon is 12 PM");
    }

    #[test]
    fn century_rolls_over() {
        let mut e = Env::new(4_102_444_799); // 2099-12-31 23:59:59
        assert_eq!(
            e.time_regs(),
            [0x59, 0x59, 0x23, 0x05, 0x31, 0x12, 0x99, 0x20]
        );
        e.time += 1;
        assert_eq!(
            e.time_regs(),
            [0x00, 0x00, 0x00, 0x06, 0x01, 0x01, 0x00, 0x21]
        );
    }

    #[test]
    fn uip_reads_zero_and_a_is_stored() {
        let mut e = Env::new(0);
        e.set(REG_A, 0xff);
        assert_eq!(e.get(REG_A), 0x7f);
        e.set(REG_A, 0x26);
        assert_eq!(e.get(REG_A), 0x26);
    }

    #[test]
    fn c_and_d_are_read_only() {
        let mut e = Env::new(0);
        e.set(REG_B, 0x72); // every interrupt enable: no flag ever appears
        e.set(REG_C, 0xff);
        assert_eq!(e.get(REG_C), 0);
        assert_eq!(e.get(REG_C), 0);
        e.set(REG_D, 0); // edk2 writes its initial D value
        assert_eq!(e.get(REG_D), 0x80);
        assert_eq!(e.get(REG_B), 0x72);
    }

    #[test]
    fn cmos_storage_and_alarms() {
        let mut e = Env::new(LEAP_DAY_2000);
        for reg in (0x0e..0x80).filter(|&r| r != CENTURY) {
            e.set(reg, reg ^ 0xa5);
        }
        for reg in [0x01, 0x03, 0x05] {
            e.set(reg, 0xc0 | reg);
        }
        for reg in (0x0e..0x80).filter(|&r| r != CENTURY) {
            assert_eq!(e.get(reg), reg ^ 0xa5, "{reg:#x}");
        }
        for reg in [0x01, 0x03, 0x05] {
            assert_eq!(e.get(reg), 0xc0 | reg);
        }
        assert_eq!(e.get(SECONDS), 0x07, "the time is not storage");
        assert_eq!(e.get(CENTURY), 0x20);
    }

    #[test]
    fn index_ignores_nmi_bit_and_is_write_only() {
        let mut e = Env::new(LEAP_DAY_2000);
        e.write_sized(INDEX, 1, 0x80 | u64::from(REG_D));
        assert_eq!(e.read_sized(DATA, 1), 0x80);
        assert_eq!(e.read_sized(INDEX, 1), 0, "index reads as zero");
        e.write_sized(INDEX, 1, 0x80 | u64::from(MINUTES));
        assert_eq!(e.read_sized(DATA, 1), 0x45);
    }

    #[test]
    fn wide_and_unknown_accesses() {
        let mut e = Env::new(LEAP_DAY_2000);
        e.write_sized(INDEX, 4, 0xffff_ff20);
        e.write_sized(DATA, 8, 0xdead_beef_0000_0042);
        assert_eq!(e.get(0x20), 0x42);
        e.write_sized(INDEX, 2, 0x0d0b);
        assert_eq!(e.read_sized(DATA, 8), 0x02, "index 0x0b (B), not 0x0d");
        for off in [2, 3, 0x1000, u64::MAX] {
            e.write_sized(off, 1, 0xff);
            e.write_sized(off, 8, u64::MAX);
            assert_eq!(e.read_sized(off, 1), 0);
            assert_eq!(e.read_sized(off, 4), 0);
        }
        assert_eq!(e.get(REG_B), 0x02);
        assert_eq!(e.get(0x20), 0x42);
        assert!(e.out.0.is_empty());
        assert!(!e.gic.spi_level(32));
    }

    #[test]
    fn write_without_set_moves_the_running_clock() {
        let mut e = Env::new(LEAP_DAY_2000);
        e.set(MINUTES, 0x10);
        assert_eq!(e.time_regs()[..3], [0x07, 0x10, 0x13]);
        e.time += 65;
        assert_eq!(e.time_regs()[..3], [0x12, 0x11, 0x13], "it keeps running");
        e.set(YEAR, 0x24);
        assert_eq!(
            e.time_regs(),
            [0x12, 0x11, 0x13, 0x05, 0x29, 0x02, 0x24, 0x20],
            "2024-02-29 was a Thursday"
        );
        e.set(YEAR, 0x23);
        assert_eq!(
            e.time_regs()[4..6],
            [0x01, 0x03],
            "2023-02-29 carries to 1 March"
        );
        e.set(CENTURY, 0x21);
        assert_eq!(e.time_regs()[6..], [0x23, 0x21]);
    }

    #[test]
    fn linux_set_time_sequence() {
        let mut e = Env::new(LEAP_DAY_2000);
        // mc146818_set_time: SET and divider reset, write the fields, restore B and A.
        let b = e.get(REG_B);
        e.set(REG_B, b | B_SET);
        let a = e.get(REG_A);
        e.set(REG_A, a | 0x70);
        e.time += 10;
        assert_eq!(e.get(SECONDS), 0x07, "frozen while SET");
        for (reg, v) in [
            (YEAR, 0x26),
            (MONTH, 0x07),
            (DAY, 0x04),
            (HOURS, 0x00),
            (MINUTES, 0x30),
            (SECONDS, 0x00),
        ] {
            e.set(reg, v);
            assert_eq!(e.get(reg), v, "written byte reads back while SET");
        }
        e.time += 100;
        e.set(REG_B, b);
        e.set(REG_A, a);
        assert_eq!(
            e.time_regs(),
            [0x00, 0x30, 0x00, 0x07, 0x04, 0x07, 0x26, 0x20]
        );
        e.time += 3661;
        assert_eq!(e.time_regs()[..3], [0x01, 0x31, 0x01]);
        assert_eq!(e.get(REG_A), 0x26);
    }

    #[test]
    fn edk2_init_and_set_time() {
        let mut e = Env::new(LEAP_DAY_2000);
        // PcRtcInit: A = 0x26, read B and C, D = 0, wait for UIP with D.VRT, read the time.
        e.set(REG_A, 0x26);
        let b = e.get(REG_B);
        e.get(REG_C);
        e.set(REG_D, 0);
        assert_eq!(e.get(REG_D) & D_VRT, D_VRT);
        assert_eq!(e.get(REG_A) & A_UIP, 0);
        assert_eq!(e.time_regs()[..3], [0x07, 0x45, 0x13]);
        e.set(REG_B, 0x02 | (b & 0x20));
        // PcRtcSetTime in 12-hour binary mode: SET, fields, clear SET.
        e.set(REG_B, B_SET | B_DM_BINARY);
        for (reg, v) in [
            (SECONDS, 59),
            (MINUTES, 59),
            (HOURS, 0x80 | 11), // 11 PM
            (DAY, 31),
            (MONTH, 12),
            (YEAR, 99),
            (CENTURY, 19),
        ] {
            e.set(reg, v);
        }
        e.set(REG_B, B_DM_BINARY);
        assert_eq!(e.time_regs(), [59, 59, 0x80 | 11, 6, 31, 12, 99, 19]);
        e.time += 1;
        e.set(REG_B, B_24H);
        assert_eq!(
            e.time_regs(),
            [0x00, 0x00, 0x00, 0x07, 0x01, 0x01, 0x00, 0x20]
        );
    }

    #[test]
    fn twelve_hour_writes() {
        let mut e = Env::new(0);
        e.set(REG_B, 0); // 12-hour BCD
        for (reg, hour24) in [(0x12, 0), (0x92, 12), (0x81, 13), (0x11, 11)] {
            e.set(HOURS, reg);
            e.set(REG_B, B_24H | B_DM_BINARY);
            assert_eq!(e.get(HOURS), hour24, "{reg:#x}");
            e.set(REG_B, 0);
        }
    }

    #[test]
    fn out_of_range_fields_carry() {
        let mut e = Env::new(0);
        e.set(REG_B, B_SET | B_24H | B_DM_BINARY);
        for (reg, v) in [
            (SECONDS, 255),
            (MINUTES, 255),
            (HOURS, 255),
            (DAY, 0),
            (MONTH, 0),
            (YEAR, 255),
            (CENTURY, 255),
        ] {
            e.set(reg, v);
        }
        e.set(REG_B, B_24H | B_DM_BINARY);
        // Year 255 * 100 + 255 = 25755; month 0 = December 25754; day 0 = 30 November;
        // then 255 hours, 255 minutes, 255 seconds on top.
        let base = days_from_civil(25_754, 11, 30) * SECS_PER_DAY;
        let want = base + 255 * 3600 + 255 * 60 + 255;
        assert_eq!(e.rtc.offset, want);
        assert_eq!(e.get(YEAR), 54);
        assert_eq!(e.get(CENTURY), 57);
        // BCD with digits above 9: 0xFF counts as 15 * 10 + 15 seconds.
        let mut e = Env::new(LEAP_DAY_2000);
        e.set(SECONDS, 0xff);
        assert_eq!(e.rtc.offset, 165 - 7);
        assert_eq!(e.time_regs()[..3], [0x45, 0x47, 0x13]);
    }

    #[test]
    fn extreme_host_times_do_not_panic() {
        for t in [u64::MAX, i64::MAX as u64, (i64::MAX as u64) + 1, 0] {
            let mut e = Env::new(t);
            let regs = e.time_regs();
            assert!(regs.iter().all(|&r| r != 0xff), "{t}: {regs:x?}");
            e.set(YEAR, 0);
            e.set(CENTURY, 0);
            e.set(REG_B, B_SET | B_24H);
            e.set(CENTURY, 0x99);
            e.set(REG_B, B_24H);
            e.time_regs();
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Read(u64, u8),
        Write(u64, u8, u64),
        Tick(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        let offset = prop_oneof![8 => 0u64..2, 1 => any::<u64>()];
        let size = prop_oneof![Just(1u8), Just(2u8), Just(4u8), Just(8u8), any::<u8>()];
        prop_oneof![
            3 => (offset.clone(), size.clone()).prop_map(|(o, s)| Op::Read(o, s)),
            3 => (offset, size, any::<u64>()).prop_map(|(o, s, v)| Op::Write(o, s, v)),
            1 => any::<u32>().prop_map(Op::Tick),
        ]
    }

    proptest! {
        #[test]
        fn civil_matches_counting(days in -800_000i64..3_000_000) {
            let (y, m, d) = civil_from_days(days);
            prop_assert_eq!((y, m, d), naive_civil(days));
            prop_assert_eq!(days_from_civil(y, m, i64::from(d)), days);
        }

        // Times up to 9999-12-31 23:59:59: the registers hold four digits of year.
        #[test]
        fn registers_show_the_host_time(t in 0u64..253_402_300_800, b in 0u8..8) {
            let mut e = Env::new(t);
            e.set(REG_B, b);
            let f = e.time_regs();
            prop_assert_eq!(decode_time(&f, b), t as i64);
            let weekday = (t as i64 / SECS_PER_DAY + 4) % 7 + 1;
            prop_assert_eq!(decode(f[3], b), weekday);
        }

        #[test]
        fn random_access_streams_never_panic(
            start in any::<u64>(),
            ops in proptest::collection::vec(op(), 0..300),
        ) {
            let mut e = Env::new(start);
            for op in ops {
                match op {
                    Op::Read(o, s) => prop_assert!(e.read_sized(o, s) <= 0xff),
                    Op::Write(o, s, v) => e.write_sized(o, s, v),
                    Op::Tick(dt) => e.time = e.time.saturating_add(u64::from(dt)),
                }
                prop_assert!(e.rtc.index < 0x80);
                prop_assert_eq!(e.rtc.frozen.is_some(), e.rtc.reg_b() & B_SET != 0);
            }
            prop_assert_eq!(e.get(REG_D), 0x80);
            prop_assert_eq!(e.get(REG_C), 0);
            prop_assert_eq!(e.get(REG_A) & A_UIP, 0);
        }
    }
}
