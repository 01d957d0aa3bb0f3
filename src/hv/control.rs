//! The calls that create domains (stage, stage-write, create, free), and the control
//! device: hyperlaunch's calls through MMIO registers, for a domain's user space (which
//! cannot make HVCs). The device makes the same calls as HVC, with the same permission
//! table: a domain without Control gets DENIED from it as from HVC.

use super::domain::Domain;
use super::machine::Machine;
use super::ram::Src;
use super::system::System;
use crate::hypercall as hc;

type Ret = [u64; 4];

fn ret(x0: i64) -> Ret {
    [x0 as u64, 0, 0, 0]
}

/// Writes `msg` (NUL-terminated, cut to `room`) at the caller's address `at` (its control
/// window or RAM); returns the bytes written.
fn put_message(m: &dyn Machine, dom: &Domain, at: u64, room: u64, msg: &str) -> u64 {
    if room == 0 {
        return 0;
    }
    let n = (msg.len() as u64).min(room - 1) as usize;
    let mut bytes = alloc::vec::Vec::with_capacity(n + 1);
    bytes.extend_from_slice(&msg.as_bytes()[..n]);
    bytes.push(0);
    let ok = match dom.window_at(at, bytes.len() as u64) {
        Some(w) => {
            m.write(w, &bytes);
            true
        }
        None => dom.write_guest(m, at, Src::Bytes(&bytes)),
    };
    if ok { bytes.len() as u64 } else { 0 }
}

impl System {
    pub(super) fn hc_stage(&self, dom: &Domain, part: u64, size: u64) -> Ret {
        match self.stage(dom, part, size) {
            Ok(()) => ret(hc::SUCCESS),
            Err(why) => {
                dom.notice(format_args!("stage of part {part} refused: {why}"));
                ret(hc::INVALID)
            }
        }
    }

    pub(super) fn hc_stage_write(&self, dom: &Domain, part: u64, offset: u64, src: u64, len: u64) -> Ret {
        match self.stage_write(dom, part, offset, src, len) {
            Ok(n) => ret(n as i64),
            Err(why) => {
                dom.notice(format_args!("stage write of part {part} refused: {why}"));
                ret(hc::INVALID)
            }
        }
    }

    /// x0 SUCCESS and x1 the new domid, or INVALID and x1 the length of the message
    /// ("RULE: what is wrong") written at `msg`.
    pub(super) fn hc_create(&self, dom: &Domain, flags: u64, msg: u64, room: u64) -> Ret {
        if flags & !hc::CREATE_PAUSED != 0 {
            dom.notice(format_args!("create refused: unknown flags {flags:#x}"));
            if let Some(p) = self.unstage(dom.id) {
                self.free_parts(&p);
            }
            return ret(hc::INVALID);
        }
        match self.create(dom, flags & hc::CREATE_PAUSED != 0) {
            Ok(id) => [hc::SUCCESS as u64, u64::from(id), 0, 0],
            Err(e) => {
                dom.notice(format_args!("create refused: {e}"));
                let text = alloc::format!("{e}");
                let n = put_message(self.m(), dom, msg, room, &text);
                [hc::INVALID as u64, n, 0, 0]
            }
        }
    }

    pub(super) fn hc_free(&self) -> Ret {
        let exist = self.domains.all().iter().filter(|d| d.state() != super::life::State::Reclaimed).count();
        [hc::SUCCESS as u64, self.free_bytes(), exist as u64, self.domains.capacity() as u64]
    }

    /// An access to `dom`'s control device at `offset`: `value` for a write; returns what a
    /// read reads. Registers are 64-bit: other sizes read 0 and write nothing.
    pub fn control_access(&self, dom: &Domain, offset: u64, size: u8, value: Option<u64>) -> u64 {
        if size != 8 || !offset.is_multiple_of(8) {
            dom.notice(format_args!(
                "control device: {size}-byte access at {offset:#x} (64-bit registers only)"
            ));
            return 0;
        }
        let window = dom.window.map(|(at, m)| (at, m.len())).unwrap_or((0, 0));
        match (offset, value) {
            (hc::CTL_ID, None) => hc::CTL_MAGIC,
            (hc::CTL_WINDOW, None) => window.0,
            (hc::CTL_WINDOW_SIZE, None) => window.1,
            (o, v) if (hc::CTL_X1..hc::CTL_X1 + 32).contains(&o) => {
                let i = ((o - hc::CTL_X1) / 8) as usize;
                let mut r = dom.ctl.lock();
                match v {
                    Some(v) => {
                        r[i] = v;
                        0
                    }
                    None => r[i],
                }
            }
            (o, None) if (hc::CTL_R0..hc::CTL_R0 + 32).contains(&o) => {
                dom.ctl.lock()[4 + ((o - hc::CTL_R0) / 8) as usize]
            }
            (hc::CTL_CALL, Some(fid)) => {
                let x = {
                    let r = dom.ctl.lock();
                    [fid, r[0], r[1], r[2], r[3]]
                };
                let out = match hc::decode(x) {
                    Some(call) => self.hypercall(dom, call),
                    None => ret(hc::NOT_SUPPORTED),
                };
                dom.ctl.lock()[4..].copy_from_slice(&out);
                0
            }
            (o, _) => {
                dom.notice(format_args!("control device: no register at {o:#x} for this access"));
                0
            }
        }
    }
}
