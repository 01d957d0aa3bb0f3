//! Fuzzes the run-time core as guests drive it: sequences of hypercalls and PSCI calls with
//! arbitrary registers from every kind of domain (Boot, Control, plain, standby Recovery,
//! Xenstore), trapped MMIO of every size and offset to the emulated GIC and UART, trapped
//! system registers, vCPUs entering and leaving their CPUs, console input and the launch
//! deadline, on the fake machine. Nothing may panic, and the machine powers off at most once.
#![no_main]

use hyperlaunch::config::{Functions, Permissions};
use hyperlaunch::hv::exits::End;
use hyperlaunch::hv::fake::{self, GUEST_RAM, Sys};
use hyperlaunch::hv::vcpu::GuestRegs;
use hyperlaunch::trap::{Access, Exit};
use libfuzzer_sys::fuzz_target;

const IDS: [u16; 5] = [9, 2, 3, 4, 5];

fn scenario() -> Sys {
    fake::system(
        |f| {
            vec![
                fake::domain(f, 9, &[0, 0], 0, Functions::BOOT, false),
                fake::domain(f, 2, &[1], Permissions::CONTROL, 0, false),
                fake::domain(f, 3, &[2], 0, 0, true),
                fake::domain(f, 4, &[3], 0, Functions::RECOVERY, false),
                fake::domain(f, 5, &[3], 0, Functions::XENSTORE, false),
            ]
        },
        Some(9),
        Some(4),
    )
}

/// Reads bytes off the input.
struct In<'a>(&'a [u8]);

impl In<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    /// A register value: small numbers (domain ids, indices, guest addresses near RAM)
    /// most of the time, anything otherwise.
    fn reg(&mut self) -> Option<u64> {
        Some(match self.u8()? {
            k @ 0..=127 => u64::from(k % 16),
            128..=191 => GUEST_RAM + u64::from(self.u8()?) * 0x1000 + u64::from(self.u8()?),
            192..=223 => u64::from(IDS[usize::from(self.u8()?) % IDS.len()]),
            _ => {
                let mut v = 0u64;
                for _ in 0..8 {
                    v = (v << 8) | u64::from(self.u8()?);
                }
                v
            }
        })
    }
}

fn run(data: &[u8]) -> Option<()> {
    let s = scenario();
    s.sys.start();
    let mut input = In(data);
    let mut now = 0u64;
    let mut regs = GuestRegs { pstate: 0x3c5, ..Default::default() };
    loop {
        let op = input.u8()?;
        let d = s.d(IDS[usize::from(input.u8()?) % IDS.len()]);
        let vi = usize::from(input.u8()?) % d.vcpus.len();
        let exit = match op % 10 {
            0 | 1 => {
                // hyperlaunch's own calls, or PSCI.
                let fid = if op & 0x80 != 0 {
                    0xc600_0000 | u64::from(input.u8()? % 0x12)
                } else {
                    [
                        0x8400_0000,
                        0x8400_0008,
                        0x8400_0009,
                        0xc400_0003,
                        0x8400_0002,
                        0xc400_0004,
                        0x8400_000a,
                    ][usize::from(input.u8()?) % 7]
                };
                regs.x[0] = fid;
                for r in 1..5 {
                    regs.x[r] = input.reg()?;
                }
                Some(if op & 0x40 != 0 { Exit::Hvc { imm: 0 } } else { Exit::Smc { imm: 0 } })
            }
            2 => {
                let _ = s.sys.enter(d);
                None
            }
            3 => {
                let end = [End::CpuOff, End::Yield, End::DomainStopped][usize::from(input.u8()?) % 3];
                if d.life().active() > 0 {
                    s.sys.leave(d, vi, end);
                }
                None
            }
            4 | 5 => {
                // MMIO to the emulated GIC (distributor or redistributors) or UART.
                let base = [d.map.gicd, d.map.gicr, d.map.vuart][usize::from(input.u8()?) % 3];
                let offset = u64::from(u16::from_le_bytes([input.u8()?, input.u8()?]));
                let size = [1u8, 2, 4, 8][usize::from(input.u8()?) % 4];
                let write = op & 0x80 != 0;
                let reg = input.u8()? % 32;
                regs.set(reg, input.reg()?);
                let access = (op & 0x40 == 0).then_some(Access {
                    write,
                    size,
                    reg,
                    sign_extend: false,
                    sixty_four: size == 8,
                    step: if op & 0x10 == 0 { 4 } else { 2 },
                });
                Some(Exit::DataAbort {
                    ipa: base + offset,
                    va: base + offset,
                    write,
                    access,
                    perm: op & 0x20 != 0,
                })
            }
            6 => Some(Exit::SysReg {
                iss: u32::from_le_bytes([input.u8()?, input.u8()?, input.u8()?, input.u8()? & 1]),
            }),
            7 => {
                now += u64::from(input.u8()?) * 20_000;
                s.sys.check_launch_timeout(now);
                let _ = s.sys.pick(usize::from(op >> 4) % 4, now);
                None
            }
            8 => {
                s.sys.deliver_input(d.id, input.u8()?);
                None
            }
            _ => {
                Some([Exit::Wfi { step: 4 }, Exit::Wfe { step: 2 }, Exit::Irq, Exit::SError { esr: 0 }][usize::from(input.u8()?) % 4])
            }
        };
        if let Some(e) = exit {
            let _ = s.sys.handle_exit(d, vi, e, &mut regs, op & 1 != 0);
        }
        assert!(s.fake.power_offs() <= 1, "the machine powered off twice");
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});
