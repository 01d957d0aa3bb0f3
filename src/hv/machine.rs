//! What the run-time core asks of the machine: a few CPU operations and access to the
//! physical memory the hypervisor owns. The arch layer implements it on hardware; host
//! tests drive the core through a recording fake with a byte-vector RAM.

/// A range of host physical memory the hypervisor owns and may read and write: a domain's
/// RAM, one of its stage-2 table pages, a boot module. Only `unsafe` code can make one: its
/// constructor carries the obligation; everything after it is bounds-checked and safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostMem {
    start: u64,
    len: u64,
}

impl HostMem {
    /// # Safety
    /// `start..start + len` is RAM that the hypervisor owns for the purpose the core puts
    /// it to (allocated for it, or reserved), mapped read-write at EL2 at that address, and
    /// not used as hypervisor memory (heap, stacks, tables of its own) by anything else.
    // The one unsafe constructor of the core: it dereferences nothing; the obligation it
    // states is what makes every later access through the machine sound.
    #[allow(unsafe_code)]
    pub const unsafe fn new(start: u64, len: u64) -> HostMem {
        HostMem { start, len }
    }

    pub fn start(&self) -> u64 {
        self.start
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn end(&self) -> u64 {
        self.start + self.len
    }

    /// The part `off..off + len` of it, when it lies inside.
    pub fn sub(&self, off: u64, len: u64) -> Option<HostMem> {
        let end = off.checked_add(len)?;
        (end <= self.len).then_some(HostMem { start: self.start + off, len })
    }

    /// The part at host address `pa`, `len` bytes long, when it lies inside.
    pub fn at(&self, pa: u64, len: u64) -> Option<HostMem> {
        self.sub(pa.checked_sub(self.start)?, len)
    }
}

/// A change the console multiplexer is told of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleEvent {
    /// The domain stopped: its partial line is written and it leaves the input rotation.
    Stopped(u16),
    /// The domain runs again: it rejoins the rotation.
    Restarted(u16),
    /// Console input goes to the domain from now on.
    Input(u16),
    /// A domain created at run time joins the console.
    Added(u16),
}

/// The machine operations the core needs. Memory methods work on [`HostMem`] only and
/// are given ranges that lie inside it (callers check with `HostMem::sub`). What `write`,
/// `zero`, `copy` and `with_slices` write reaches memory itself, not only the caches: a
/// guest that starts with its MMU off reads it, never stale data. What `read` and `copy`
/// read is what memory holds, even when a guest wrote it past the caches (MMU off, or a
/// device-memory mapping).
pub trait Machine: Send + Sync {
    /// The index of the physical CPU this runs on.
    fn cpu(&self) -> usize;
    /// Physical CPU `cpu` is online (it started, and runs vCPUs).
    fn cpu_online(&self, cpu: usize) -> bool;
    /// Interrupts physical CPU `cpu`: it leaves its guest or its WFI and looks at its
    /// state again.
    fn kick(&self, cpu: usize);
    /// Delivers physical SPI `intid` to CPU `cpu`.
    fn route_spi(&self, intid: u32, cpu: usize);
    /// Deactivates physical SPI `intid` at the distributor (one a stopped guest left
    /// active, through its hardware link, would never be delivered again).
    fn deactivate_spi(&self, intid: u32);
    /// Microseconds since the hypervisor started.
    fn now_us(&self) -> u64;
    /// One turn of a loop waiting for another CPU (a spin-loop hint).
    fn relax(&self);
    /// A fresh `/chosen/rng-seed` for domain `domid` (`crate::entropy`); `None` when the
    /// hypervisor has no source of entropy.
    fn rng_seed(&self, domid: u16) -> Option<[u8; crate::entropy::SEED_BYTES]>;
    /// The physical counter (CNTPCT): a domain's virtual counter starts from it.
    fn counter(&self) -> u64;
    /// Every domain has stopped: the machine powers off (on hardware it does not return).
    fn power_off(&self, why: &str);
    /// One byte a domain's virtual UART transmitted.
    fn console_output(&self, domid: u16, byte: u8);
    /// Tells the console multiplexer of a change.
    fn console_event(&self, e: ConsoleEvent);
    /// The launch deadline changed (`None`: no deadline runs): the timer is armed again.
    fn launch_deadline_changed(&self, deadline_us: Option<u64>);

    /// Reads `buf.len()` bytes at the start of `src`.
    fn read(&self, src: HostMem, buf: &mut [u8]);
    /// Writes `data` at the start of `dst`.
    fn write(&self, dst: HostMem, data: &[u8]);
    /// Zeroes all of `dst`.
    fn zero(&self, dst: HostMem);
    /// Copies `src` to `dst` (the length of the shorter).
    fn copy(&self, dst: HostMem, src: HostMem);
    /// Runs `f` over the bytes of `src` and of `dst` (writable), which do not overlap: for
    /// work on whole buffers in place (unpacking a gzip kernel).
    fn with_slices(&self, src: HostMem, dst: HostMem, f: &mut dyn FnMut(&[u8], &mut [u8]));
    /// Reads the stage-2 descriptor at `entry` (8 bytes).
    fn read_entry(&self, entry: HostMem) -> u64;
    /// Replaces the valid stage-2 page descriptor at `entry`, which maps guest page `ipa`
    /// of the domain whose vCPU runs on this CPU, by `new`, break-before-make; `local`: every
    /// vCPU of that domain runs on this CPU, so only its TLB needs invalidating.
    fn replace_entry(&self, entry: HostMem, new: u64, ipa: u64, local: bool);
    /// Invalidates every TLB entry of VMID `vmid` on every CPU (before the VMID is given
    /// to a new domain).
    fn flush_vmid(&self, vmid: u16);
}
