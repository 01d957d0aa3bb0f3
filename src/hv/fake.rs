//! A recording fake of the machine for host tests: a byte-vector RAM at a fixed host
//! address, and a log of every machine operation the core asked for.
#![allow(unsafe_code)]

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use spin::Mutex;

use super::machine::{ConsoleEvent, HostMem, Machine};

/// Where the fake RAM starts (host address).
pub const BASE: u64 = 0x8000_0000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Kick(usize),
    RouteSpi(u32, usize),
    PowerOff(String),
    Console(ConsoleEvent),
    Deadline(Option<u64>),
    Replace { ipa: u64, local: bool },
}

type Hook = Box<dyn FnMut(&mut [u8], HostMem) + Send>;

pub struct Fake {
    ram: Mutex<Vec<u8>>,
    pub cpu: AtomicUsize,
    pub cpus: usize,
    pub now: AtomicU64,
    pub ops: Mutex<Vec<Op>>,
    /// What domains wrote to their UART, by domain.
    pub output: Mutex<Vec<(u16, u8)>>,
    /// Reads of memory, in order.
    pub reads: Mutex<Vec<HostMem>>,
    /// Runs after every read with the whole RAM: a racing vCPU changing memory.
    pub after_read: Mutex<Option<Hook>>,
}

/// Memory of the fake machine.
pub fn mem(start: u64, len: u64) -> HostMem {
    assert!(start >= BASE);
    // SAFETY: every address from BASE on is backed by the fake's byte vector (checked at
    // each access); nothing else uses it.
    unsafe { HostMem::new(start, len) }
}

impl Fake {
    /// A fake with `size` bytes of RAM at [`BASE`] and `cpus` CPUs, leaked so that a
    /// `System` can hold it for good.
    pub fn new(size: usize, cpus: usize) -> &'static Fake {
        Box::leak(Box::new(Fake {
            ram: Mutex::new(vec![0; size]),
            cpu: AtomicUsize::new(0),
            cpus,
            now: AtomicU64::new(0),
            ops: Mutex::new(Vec::new()),
            output: Mutex::new(Vec::new()),
            reads: Mutex::new(Vec::new()),
            after_read: Mutex::new(None),
        }))
    }

    fn range(&self, m: HostMem) -> core::ops::Range<usize> {
        let a = (m.start() - BASE) as usize;
        let len = self.ram.lock().len();
        assert!(a + m.len() as usize <= len, "fake RAM access out of range: {m:?}");
        a..a + m.len() as usize
    }

    pub fn peek(&self, pa: u64, len: usize) -> Vec<u8> {
        let a = (pa - BASE) as usize;
        self.ram.lock()[a..a + len].to_vec()
    }

    pub fn poke(&self, pa: u64, data: &[u8]) {
        let a = (pa - BASE) as usize;
        self.ram.lock()[a..a + data.len()].copy_from_slice(data);
    }

    pub fn poke_u64(&self, pa: u64, v: u64) {
        self.poke(pa, &v.to_le_bytes());
    }

    pub fn ops(&self) -> Vec<Op> {
        self.ops.lock().clone()
    }

    pub fn power_offs(&self) -> usize {
        self.ops.lock().iter().filter(|o| matches!(o, Op::PowerOff(_))).count()
    }

    pub fn clear_ops(&self) {
        self.ops.lock().clear();
    }

    pub fn output_of(&self, domid: u16) -> String {
        self.output.lock().iter().filter(|o| o.0 == domid).map(|o| o.1 as char).collect()
    }
}

impl Machine for Fake {
    fn cpu(&self) -> usize {
        self.cpu.load(Ordering::Relaxed)
    }
    fn online_cpus(&self) -> usize {
        self.cpus
    }
    fn kick(&self, cpu: usize) {
        self.ops.lock().push(Op::Kick(cpu));
    }
    fn route_spi(&self, intid: u32, cpu: usize) {
        self.ops.lock().push(Op::RouteSpi(intid, cpu));
    }
    fn now_us(&self) -> u64 {
        self.now.load(Ordering::Relaxed)
    }
    fn power_off(&self, why: &str) {
        self.ops.lock().push(Op::PowerOff(why.into()));
    }
    fn console_output(&self, domid: u16, byte: u8) {
        self.output.lock().push((domid, byte));
    }
    fn console_event(&self, e: ConsoleEvent) {
        self.ops.lock().push(Op::Console(e));
    }
    fn launch_deadline_changed(&self, deadline_us: Option<u64>) {
        self.ops.lock().push(Op::Deadline(deadline_us));
    }
    fn read(&self, src: HostMem, buf: &mut [u8]) {
        let r = self.range(src);
        buf.copy_from_slice(&self.ram.lock()[r.start..r.start + buf.len()]);
        self.reads.lock().push(src);
        if let Some(h) = self.after_read.lock().as_mut() {
            h(&mut self.ram.lock(), src);
        }
    }
    fn write(&self, dst: HostMem, data: &[u8]) {
        let r = self.range(dst);
        self.ram.lock()[r.start..r.start + data.len()].copy_from_slice(data);
    }
    fn zero(&self, dst: HostMem) {
        let r = self.range(dst);
        self.ram.lock()[r].fill(0);
    }
    fn copy(&self, dst: HostMem, src: HostMem) {
        let n = dst.len().min(src.len()) as usize;
        let (d, s) = (self.range(dst), self.range(src));
        self.ram.lock().copy_within(s.start..s.start + n, d.start);
    }
    fn read_entry(&self, entry: HostMem) -> u64 {
        let r = self.range(entry);
        u64::from_le_bytes(self.ram.lock()[r.start..r.start + 8].try_into().unwrap())
    }
    fn replace_entry(&self, entry: HostMem, new: u64, ipa: u64, local: bool) {
        let r = self.range(entry);
        self.ram.lock()[r.start..r.start + 8].copy_from_slice(&new.to_le_bytes());
        self.ops.lock().push(Op::Replace { ipa, local });
    }
}
