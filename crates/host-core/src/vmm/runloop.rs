//! Running a VM: the scheduler that shares the physical CPU between vCPUs, `REC_ENTER` with
//! the virtual CPU interface loaded, and the handling of every exit.
//!
//! Scheduling: one physical CPU runs every vCPU in turn. A vCPU keeps the CPU for a quantum
//! (the host's timer makes it exit with `IRQ` when the quantum ends, so guests that spin on
//! every CPU, like Linux's `stop_machine`, make progress with any number of vCPUs); WFE
//! yields to the next vCPU, WFI blocks until an interrupt is deliverable (a timer due, an
//! SGI, a device line). When every vCPU is blocked the host idles until the earliest timer.

use super::dma::SharedMemory;
use super::error::{VmError, VmResult};
use super::host::VmHost;
use super::memory::PageState;
use super::stats::ExitClass;
use super::vcpu::VcpuState;
use super::vm::{Stop, Vm};
use crate::devices::{ConsoleOut, DeviceCtx};
use crate::rmi::{Conduit, HostMem, Rmi};
use cca_abi::arch::{esr, ich};
use cca_abi::psci::{self, PsciStatus};
use cca_abi::rmi::{exit_reason, rec_enter_flags, RecExit};

/// Answers what the guest asks of the host beyond the platform (host calls), and decides
/// policies the platform leaves open.
pub trait ExitHooks {
    /// `RSI_HOST_CALL` with immediate `imm` from vCPU `vcpu`: returns the gprs the realm gets
    /// back. The default answers with the gprs unchanged.
    fn host_call(&mut self, _vcpu: usize, _imm: u16, gprs: &[u64; 31]) -> [u64; 31] {
        *gprs
    }
    /// Whether to carry out a RIPAS change of `[base, top)` (to RAM if `ram`); a refused
    /// request is answered with a reject. The default accepts everything.
    fn accept_ripas(&mut self, _base: u64, _top: u64, _ram: bool) -> bool {
        true
    }
    /// Whether `CPU_ON` of a vCPU is allowed (false answers DENIED). Default: yes.
    fn allow_cpu_on(&mut self, _target: usize) -> bool {
        true
    }
}

/// Hooks that take every default.
pub struct DefaultHooks;

impl ExitHooks for DefaultHooks {}

/// Limits of one run.
#[derive(Clone, Copy, Debug)]
pub struct RunLimits {
    /// The run stops after this many exits.
    pub max_exits: u64,
    /// A vCPU's quantum, in counter ticks.
    pub quantum: u64,
}

/// Most lines the host prints about guest accesses it does not emulate.
const UNEMULATED_LOG_LINES: u64 = 8;

/// What the loop does after an exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    /// Enter the same vCPU again (its quantum permitting).
    Stay,
    /// Give the CPU to the next runnable vCPU.
    Yield,
    /// The guest is done.
    Done(StopKind),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StopKind {
    Off,
    Reset,
}

struct Loop<'a, 'o, C: Conduit, M: HostMem, H: VmHost> {
    vm: &'a mut Vm,
    rmi: &'a mut Rmi<'o, C>,
    mem: &'a mut M,
    host: &'a mut H,
    console: &'a mut dyn ConsoleOut,
    hooks: &'a mut dyn ExitHooks,
    nr_lrs: usize,
    nr_aprs: usize,
    unemulated: u64,
}

impl Vm {
    /// Runs the VM until the guest powers off or resets, an error stops it, or
    /// `limits.max_exits` exits were handled. Guest console bytes go to `console`; the
    /// host's own log lines to the RMI client's output.
    pub fn run<C: Conduit, M: HostMem, H: VmHost>(
        &mut self,
        rmi: &mut Rmi<'_, C>,
        mem: &mut M,
        host: &mut H,
        console: &mut dyn ConsoleOut,
        hooks: &mut dyn ExitHooks,
        limits: RunLimits,
    ) -> VmResult<Stop> {
        let vtr = host.vtr();
        let verbose = core::mem::replace(&mut rmi.verbose, false);
        let mut l = Loop {
            vm: self,
            rmi,
            mem,
            host,
            console,
            hooks,
            nr_lrs: ich::list_registers(vtr),
            nr_aprs: ich::active_priority_registers(vtr),
            unemulated: 0,
        };
        let r = l.run(limits);
        l.host.arm_preemption(None);
        l.host.write_hcr(0);
        for n in 0..l.nr_lrs {
            l.host.write_lr(n, 0);
        }
        if l.unemulated > UNEMULATED_LOG_LINES {
            let _ = writeln!(
                l.rmi.out(),
                "   ({} accesses to unemulated addresses in all, read as zero and ignored)",
                l.unemulated
            );
        }
        l.rmi.verbose = verbose;
        r
    }
}

impl<C: Conduit, M: HostMem, H: VmHost> Loop<'_, '_, C, M, H> {
    fn run(&mut self, limits: RunLimits) -> VmResult<Stop> {
        let n = self.vm.vcpus.len();
        let mut cur = 0usize;
        let mut turn_start = self.host.counter();
        let mut exits = 0u64;
        loop {
            if exits >= limits.max_exits {
                return Ok(Stop::ExitLimit);
            }
            let now = self.host.counter();
            self.poll_input();
            self.update_timers(now);
            self.wake_blocked();
            // Keep the current vCPU for its quantum, then round robin.
            let keep = self.vm.vcpus[cur].state == VcpuState::Runnable
                && now.wrapping_sub(turn_start) < limits.quantum;
            if !keep {
                match (1..=n)
                    .map(|k| (cur + k) % n)
                    .find(|&i| self.vm.vcpus[i].state == VcpuState::Runnable)
                {
                    Some(i) => {
                        cur = i;
                        turn_start = now;
                    }
                    None if self.vm.all_off() => {
                        return Err(VmError::Guest("every vCPU is off".into()));
                    }
                    None => {
                        self.idle(now, limits.quantum);
                        continue;
                    }
                }
            }
            self.host
                .arm_preemption(Some(turn_start.wrapping_add(limits.quantum)));
            let (exit, ticks) = self.enter(cur)?;
            exits += 1;
            self.vm.vcpus[cur].exits += 1;
            let (class, next) = self.handle(cur, &exit)?;
            self.vm.stats.record(class, ticks);
            match next {
                Next::Stay => {}
                Next::Yield => turn_start = now.wrapping_sub(limits.quantum),
                Next::Done(StopKind::Off) => return Ok(Stop::SystemOff),
                Next::Done(StopKind::Reset) => return Ok(Stop::SystemReset),
            }
        }
    }

    fn poll_input(&mut self) {
        while let Some(b) = self.host.poll_input() {
            let unix_time = self.host.unix_time();
            let mut dma = SharedMemory {
                memory: &self.vm.memory,
                mem: &mut *self.mem,
                shared_bit: self.vm.realm.shared_bit(),
            };
            let mut ctx = DeviceCtx {
                gic: &mut self.vm.vgic,
                console: self.console,
                unix_time,
                dma: &mut dma,
            };
            self.vm.bus.console_input(b, &mut ctx);
        }
    }

    /// Drives each vCPU's timer PPIs from the timer state its last exit reported.
    fn update_timers(&mut self, now: u64) {
        use super::platform::{PTIMER_INTID, VTIMER_INTID};
        for v in &self.vm.vcpus {
            if v.state == VcpuState::Off {
                continue;
            }
            self.vm
                .vgic
                .set_ppi_level(v.index, VTIMER_INTID, v.timers[0].asserted(now));
            self.vm
                .vgic
                .set_ppi_level(v.index, PTIMER_INTID, v.timers[1].asserted(now));
        }
    }

    fn wake_blocked(&mut self) {
        for i in 0..self.vm.vcpus.len() {
            if self.vm.vcpus[i].state == VcpuState::Blocked && self.vm.vgic.has_deliverable(i) {
                self.vm.vcpus[i].state = VcpuState::Runnable;
            }
        }
    }

    /// Every vCPU is blocked: waits for the earliest timer (or input, or one quantum).
    fn idle(&mut self, now: u64, quantum: u64) {
        let deadline = self
            .vm
            .vcpus
            .iter()
            .filter(|v| v.state == VcpuState::Blocked)
            .flat_map(|v| v.timers.iter().filter_map(|t| t.deadline()))
            // A timer already due that still left its vCPU blocked is one the vGIC does not
            // deliver (its PPI is disabled): it is no reason to wake up.
            .filter(|&d| d > now)
            .min()
            .unwrap_or(u64::MAX);
        let until = deadline
            .max(now)
            .min(now.saturating_add(quantum.saturating_mul(25)));
        self.host.arm_preemption(None);
        self.host.idle(until);
    }

    /// Loads vCPU `i`'s interrupt state, enters it and saves the state back.
    fn enter(&mut self, i: usize) -> VmResult<(RecExit, u64)> {
        let nr_lrs = self.nr_lrs;
        let v = &mut self.vm.vcpus[i];
        let overflow = self.vm.vgic.flush_lrs(i, &mut v.lrs[..nr_lrs]);
        for n in 0..nr_lrs {
            self.host.write_lr(n, v.lrs[n]);
        }
        for g in 0..2 {
            for n in 0..self.nr_aprs {
                self.host.write_apr(g, n, v.aprs[g][n]);
            }
        }
        self.host.write_vmcr(v.vmcr);
        let hcr = ich::HCR_EN | if overflow { ich::HCR_UIE } else { 0 };
        self.host.write_hcr(hcr);
        v.enter.flags |= rec_enter_flags::TRAP_WFI | rec_enter_flags::TRAP_WFE;
        let t0 = self.host.counter();
        let r = self.rmi.rec_enter(self.mem, v.rec, v.run, &v.enter);
        let t1 = self.host.counter();
        for n in 0..nr_lrs {
            v.lrs[n] = self.host.read_lr(n);
        }
        for g in 0..2 {
            for n in 0..self.nr_aprs {
                v.aprs[g][n] = self.host.read_apr(g, n);
            }
        }
        v.vmcr = self.host.read_vmcr();
        self.vm.vgic.sync_lrs(i, &v.lrs[..nr_lrs]);
        // A failed entry consumed nothing: the answer to the last exit stays for a retry.
        let exit = r.map_err(VmError::rmi("entering a REC"))?;
        v.enter.flags = 0;
        v.enter.gprs = [0; 31];
        v.note_timers(&exit);
        Ok((exit, t1.wrapping_sub(t0)))
    }

    fn say(&mut self, what: core::fmt::Arguments<'_>) {
        let _ = writeln!(self.rmi.out(), "{what}");
    }

    fn handle(&mut self, cur: usize, exit: &RecExit) -> VmResult<(ExitClass, Next)> {
        match exit.exit_reason {
            exit_reason::SYNC => self.sync(cur, exit),
            exit_reason::IRQ | exit_reason::FIQ => Ok((ExitClass::Irq, Next::Stay)),
            exit_reason::PSCI => self.psci(cur, exit),
            exit_reason::RIPAS_CHANGE => self.ripas(cur, exit),
            exit_reason::HOST_CALL => {
                let imm = (exit.imm & 0xffff) as u16;
                let answer = self.hooks.host_call(cur, imm, &exit.gprs);
                self.vm.vcpus[cur].enter.gprs = answer;
                Ok((ExitClass::HostCall, Next::Stay))
            }
            exit_reason::SERROR => Err(VmError::Guest(alloc::format!(
                "vCPU {cur}: SError (ESR {:#x})",
                exit.esr
            ))),
            other => Err(VmError::Guest(alloc::format!(
                "vCPU {cur}: exit reason {other} (planes or device assignment) is not supported"
            ))),
        }
    }

    fn sync(&mut self, cur: usize, exit: &RecExit) -> VmResult<(ExitClass, Next)> {
        match esr::class(exit.esr) {
            esr::ec::DABT_LOW | esr::ec::IABT_LOW => {
                let ipa = esr::hpfar_ipa(exit.hpfar) | (exit.far & 0xfff);
                let shared = self.vm.realm.shared_bit();
                if ipa & shared != 0 {
                    self.unprotected(cur, exit, ipa & !shared)
                } else {
                    self.protected(cur, exit, ipa)
                }
            }
            esr::ec::WFX => {
                if exit.esr & esr::WFX_TI != 0 {
                    Ok((ExitClass::Wfe, Next::Yield))
                } else {
                    if !self.vm.vgic.has_deliverable(cur) && !self.vm.vcpus[cur].has_lr_in_use() {
                        self.vm.vcpus[cur].state = VcpuState::Blocked;
                    }
                    Ok((ExitClass::Wfi, Next::Yield))
                }
            }
            esr::ec::SYSREG => Ok(self.sysreg(cur, exit)),
            ec => Err(VmError::Guest(alloc::format!(
                "vCPU {cur}: unexpected synchronous exit, EC {ec:#x} (ESR {:#x}, FAR {:#x}, \
                 HPFAR {:#x})",
                exit.esr,
                exit.far,
                exit.hpfar
            ))),
        }
    }

    fn protected(&mut self, cur: usize, exit: &RecExit, ipa: u64) -> VmResult<(ExitClass, Next)> {
        let Vm {
            memory,
            pool,
            realm,
            ..
        } = &mut *self.vm;
        if memory.map_on_fault(self.rmi, pool, realm, ipa)? {
            Ok((ExitClass::ProtectedFault, Next::Stay))
        } else {
            Err(VmError::Guest(alloc::format!(
                "vCPU {cur}: fault at protected IPA {ipa:#x}, which is not RAM the realm may \
                 use (ESR {:#x})",
                exit.esr
            )))
        }
    }

    fn unprotected(&mut self, cur: usize, exit: &RecExit, gpa: u64) -> VmResult<(ExitClass, Next)> {
        {
            let Vm {
                memory,
                pool,
                realm,
                ..
            } = &mut *self.vm;
            if memory.share_on_fault(self.rmi, pool, realm, gpa)? {
                return Ok((ExitClass::SharedFault, Next::Stay));
            }
        }
        let v = &mut self.vm.vcpus[cur];
        if esr::class(exit.esr) != esr::ec::DABT_LOW || exit.esr & esr::ISV == 0 {
            self.unemulated += 1;
            let _ = writeln!(
                self.rmi.out(),
                "vCPU {cur}: access to unprotected IPA {gpa:#x} (alias) that cannot be \
                 emulated (ESR {:#x}): SEA injected",
                exit.esr
            );
            v.enter.flags |= rec_enter_flags::INJECT_SEA;
            return Ok((ExitClass::Other, Next::Stay));
        }
        let size = esr::access_len(exit.esr) as u8;
        let write = esr::is_write(exit.esr);
        let unix_time = self.host.unix_time();
        let shared_bit = self.vm.realm.shared_bit();
        let mut dma = SharedMemory {
            memory: &self.vm.memory,
            mem: &mut *self.mem,
            shared_bit,
        };
        let mut ctx = DeviceCtx {
            gic: &mut self.vm.vgic,
            console: self.console,
            unix_time,
            dma: &mut dma,
        };
        let handled = if write {
            self.vm
                .bus
                .write(cur, gpa, size, exit.gprs[0], &mut ctx)
                .then_some(0)
        } else {
            self.vm.bus.read(cur, gpa, size, &mut ctx)
        };
        let v = &mut self.vm.vcpus[cur];
        match handled {
            Some(value) => {
                v.enter.gprs[0] = value;
            }
            None if matches!(
                self.vm.memory.state(gpa),
                Some(PageState::Private) | Some(PageState::Ram)
            ) =>
            {
                // The alias of private memory: not the guest's to use.
                self.unemulated += 1;
                let _ = writeln!(
                    self.rmi.out(),
                    "vCPU {cur}: access to the alias of private RAM at {gpa:#x}: SEA injected"
                );
                v.enter.flags |= rec_enter_flags::INJECT_SEA;
                return Ok((ExitClass::Other, Next::Stay));
            }
            None => {
                self.unemulated += 1;
                if self.unemulated <= UNEMULATED_LOG_LINES {
                    let _ = writeln!(
                        self.rmi.out(),
                        "vCPU {cur}: {} of {size} byte(s) at {gpa:#x}: no device there, \
                         read as zero / ignored",
                        if write { "write" } else { "read" }
                    );
                }
                v.enter.gprs[0] = 0;
            }
        }
        v.enter.flags |= rec_enter_flags::EMUL_MMIO;
        Ok((ExitClass::Mmio, Next::Stay))
    }

    fn sysreg(&mut self, cur: usize, exit: &RecExit) -> (ExitClass, Next) {
        let enc = exit.esr & esr::SYSREG_MASK;
        let read = exit.esr & esr::SYSREG_READ != 0;
        if enc == ICC_SGI1R_EL1 && !read {
            let woken = self.vm.vgic.send_sgi(cur, exit.gprs[0]);
            for (i, v) in self.vm.vcpus.iter_mut().enumerate() {
                if woken & 1u64.checked_shl(i as u32).unwrap_or(0) != 0
                    && v.state == VcpuState::Blocked
                {
                    v.state = VcpuState::Runnable;
                }
            }
            return (ExitClass::Sgi, Next::Stay);
        }
        if read {
            // ICC_SRE_EL1 reads SRE, DFB and DIB; the other trapped GIC registers read 0.
            self.vm.vcpus[cur].enter.gprs[0] = if enc == ICC_SRE_EL1 { 0x7 } else { 0 };
        }
        (ExitClass::SysReg, Next::Stay)
    }

    fn psci(&mut self, cur: usize, exit: &RecExit) -> VmResult<(ExitClass, Next)> {
        let fid = exit.gprs[0] as u32;
        let caller = self.vm.vcpus[cur].rec;
        let target = |vm: &Vm| vm.vcpu_by_mpidr(exit.gprs[1]);
        let next = match fid {
            psci::CPU_ON_32 | psci::CPU_ON_64 => {
                let Some(t) = target(self.vm) else {
                    return Err(VmError::Guest(alloc::format!(
                        "vCPU {cur}: CPU_ON of MPIDR {:#x}, which no vCPU has",
                        exit.gprs[1]
                    )));
                };
                let trec = self.vm.vcpus[t].rec;
                let off = self.vm.vcpus[t].state == VcpuState::Off;
                // For a vCPU that is on, the RMM answers ALREADY_ON itself; the host only
                // decides whether an off one may start.
                let status = if !off || self.hooks.allow_cpu_on(t) {
                    PsciStatus::Success
                } else {
                    PsciStatus::Denied
                };
                self.rmi
                    .psci_complete(caller, trec, status)
                    .map_err(VmError::rmi("PSCI_COMPLETE (CPU_ON)"))?;
                let tv = &mut self.vm.vcpus[t];
                if status == PsciStatus::Success && off {
                    tv.reset_interrupts();
                    tv.state = VcpuState::Runnable;
                    self.vm.vgic.reset_vcpu(t);
                }
                Next::Stay
            }
            psci::AFFINITY_INFO_32 | psci::AFFINITY_INFO_64 => {
                let Some(t) = target(self.vm) else {
                    return Err(VmError::Guest(alloc::format!(
                        "vCPU {cur}: AFFINITY_INFO of MPIDR {:#x}, which no vCPU has",
                        exit.gprs[1]
                    )));
                };
                let trec = self.vm.vcpus[t].rec;
                self.rmi
                    .psci_complete(caller, trec, PsciStatus::Success)
                    .map_err(VmError::rmi("PSCI_COMPLETE (AFFINITY_INFO)"))?;
                Next::Yield
            }
            psci::CPU_OFF => {
                self.vm.vcpus[cur].state = VcpuState::Off;
                Next::Yield
            }
            psci::CPU_SUSPEND_32 | psci::CPU_SUSPEND_64 => {
                if !self.vm.vgic.has_deliverable(cur) {
                    self.vm.vcpus[cur].state = VcpuState::Blocked;
                }
                Next::Yield
            }
            psci::SYSTEM_OFF => {
                self.say(format_args!("vCPU {cur}: PSCI SYSTEM_OFF"));
                Next::Done(StopKind::Off)
            }
            psci::SYSTEM_RESET => {
                self.say(format_args!("vCPU {cur}: PSCI SYSTEM_RESET"));
                Next::Done(StopKind::Reset)
            }
            _ => {
                self.say(format_args!(
                    "vCPU {cur}: PSCI function {fid:#x} is not expected at the host: ignored"
                ));
                Next::Stay
            }
        };
        Ok((ExitClass::Psci, next))
    }

    fn ripas(&mut self, cur: usize, exit: &RecExit) -> VmResult<(ExitClass, Next)> {
        let (base, top) = (exit.ripas_base, exit.ripas_top);
        let ram = exit.ripas_value == cca_abi::rmi::Ripas::Ram as u8;
        let in_ram = self.vm.memory.contains(base);
        if !self.hooks.accept_ripas(base, top, ram) || (ram && !in_ram) {
            self.vm.vcpus[cur].enter.flags |= rec_enter_flags::RIPAS_RESPONSE;
            self.say(format_args!(
                "vCPU {cur}: RIPAS of [{base:#x}, {top:#x}) to {}: rejected",
                if ram { "RAM" } else { "EMPTY" }
            ));
            return Ok((ExitClass::RipasChange, Next::Stay));
        }
        let rec = self.vm.vcpus[cur].rec;
        let Vm {
            memory,
            pool,
            realm,
            ..
        } = &mut *self.vm;
        let done = memory.change_ripas(self.rmi, pool, realm, rec, (base, top), ram)?;
        self.say(format_args!(
            "vCPU {cur}: RIPAS of [{base:#x}, {top:#x}) to {}: accepted up to {done:#x}",
            if ram { "RAM" } else { "EMPTY" }
        ));
        Ok((ExitClass::RipasChange, Next::Stay))
    }
}

/// `ICC_SGI1R_EL1` as a trapped MSR reports it.
const ICC_SGI1R_EL1: u64 = esr::sysreg(3, 0, 12, 11, 5);
/// `ICC_SRE_EL1`.
const ICC_SRE_EL1: u64 = esr::sysreg(3, 0, 12, 12, 5);
