//! The virtio-mmio transport, version 2 (virtio 1.x, section 4.2.2): the registers a driver
//! sees, as a state machine. Accesses to the common registers are 32-bit; the device's
//! configuration space (at 0x100) is read byte by byte or in words. A driver's write is
//! answered with what the device must do next ([`Effect`]).

use super::queue::{MAX_QUEUE, Queue};

pub const MAGIC: u32 = 0x7472_6976; // "virt"
/// "HLNK".
pub const VENDOR: u32 = 0x4b4e_4c48;
/// Size of one transport's register window.
pub const WINDOW: u64 = 0x200;

/// Device status bits.
pub const ACKNOWLEDGE: u32 = 1;
pub const DRIVER: u32 = 2;
pub const DRIVER_OK: u32 = 4;
pub const FEATURES_OK: u32 = 8;
pub const DEVICE_NEEDS_RESET: u32 = 0x40;
pub const FAILED: u32 = 0x80;

/// Interrupt status bits.
pub const INT_USED: u32 = 1;
pub const INT_CONFIG: u32 = 2;

/// VIRTIO_F_VERSION_1.
pub const F_VERSION_1: u64 = 1 << 32;

/// What the device does after a driver's write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    None,
    /// The driver notified queue N.
    Notify(u16),
    /// The interrupt line may have changed (interrupt acknowledged, or reset).
    Interrupt,
}

/// One transport: the registers' state and its queues.
#[derive(Debug, Clone)]
pub struct Transport {
    pub device_id: u32,
    pub features: u64,
    pub driver_features: u64,
    dev_sel: u32,
    drv_sel: u32,
    queue_sel: u32,
    pub queues: [Queue; 2],
    pub status: u32,
    pub isr: u32,
    generation: u32,
}

impl Transport {
    pub fn new(device_id: u32, features: u64) -> Transport {
        Transport {
            device_id,
            features: features | F_VERSION_1,
            driver_features: 0,
            dev_sel: 0,
            drv_sel: 0,
            queue_sel: 0,
            queues: [Queue::default(); 2],
            status: 0,
            isr: 0,
            generation: 0,
        }
    }

    /// The driver is running the device (and it has not failed).
    pub fn live(&self) -> bool {
        self.status & DRIVER_OK != 0 && self.status & DEVICE_NEEDS_RESET == 0
    }

    /// The device failed (a driver broke the queue rules): it stops until the driver
    /// resets it, and says so with a configuration-change interrupt.
    pub fn fail(&mut self) {
        self.status |= DEVICE_NEEDS_RESET;
        self.isr |= INT_CONFIG;
    }

    fn reset(&mut self) {
        *self = Transport::new(self.device_id, self.features);
    }

    fn queue(&mut self) -> Option<&mut Queue> {
        self.queues.get_mut(self.queue_sel as usize)
    }

    /// A read of `size` bytes at `offset`; `config` is the device's configuration space.
    pub fn read(&self, offset: u64, size: u8, config: &[u8]) -> u64 {
        if offset >= 0x100 {
            let at = (offset - 0x100) as usize;
            let n = usize::from(size);
            let Some(b) = config.get(at..at + n) else { return 0 };
            let mut v = [0u8; 8];
            v[..n].copy_from_slice(b);
            return u64::from_le_bytes(v);
        }
        if size != 4 {
            return 0;
        }
        let q = self.queues.get(self.queue_sel as usize);
        u64::from(match offset {
            0x000 => MAGIC,
            0x004 => 2,
            0x008 => self.device_id,
            0x00c => VENDOR,
            0x010 => match self.dev_sel {
                0 => self.features as u32,
                1 => (self.features >> 32) as u32,
                _ => 0,
            },
            0x034 => q.map_or(0, |_| u32::from(MAX_QUEUE)),
            0x038 => q.map_or(0, |q| u32::from(q.num)),
            0x044 => q.map_or(0, |q| u32::from(q.ready)),
            0x060 => self.isr,
            0x070 => self.status,
            0x080 => q.map_or(0, |q| q.desc as u32),
            0x084 => q.map_or(0, |q| (q.desc >> 32) as u32),
            0x090 => q.map_or(0, |q| q.avail as u32),
            0x094 => q.map_or(0, |q| (q.avail >> 32) as u32),
            0x0a0 => q.map_or(0, |q| q.used as u32),
            0x0a4 => q.map_or(0, |q| (q.used >> 32) as u32),
            0x0fc => self.generation,
            _ => 0,
        })
    }

    /// A write of `value` (`size` bytes) at `offset`.
    pub fn write(&mut self, offset: u64, size: u8, value: u64) -> Effect {
        if size != 4 || offset >= 0x100 {
            // The configuration space (the MAC) is read-only; other sizes are ignored.
            return Effect::None;
        }
        let v = value as u32;
        let lo = |old: u64| (old & !0xffff_ffff) | u64::from(v);
        let hi = |old: u64| (old & 0xffff_ffff) | (u64::from(v) << 32);
        // Queue registers change only while the queue is not ready (4.2.2.3).
        let settable = self.queue().is_some_and(|q| !q.ready);
        match offset {
            0x014 => self.dev_sel = v,
            0x020 if self.status & FEATURES_OK == 0 => match self.drv_sel {
                0 => self.driver_features = lo(self.driver_features),
                1 => self.driver_features = hi(self.driver_features),
                _ => {}
            },
            0x024 => self.drv_sel = v,
            0x030 => self.queue_sel = v,
            0x038 if settable => {
                if let Some(q) = self.queue() {
                    q.num = v.min(u32::from(u16::MAX)) as u16;
                }
            }
            0x044 => {
                if let Some(q) = self.queue() {
                    if v == 0 {
                        *q = Queue::default();
                    } else {
                        q.ready = true;
                    }
                }
            }
            0x050 => return Effect::Notify(v.min(u32::from(u16::MAX)) as u16),
            0x064 => {
                self.isr &= !v;
                return Effect::Interrupt;
            }
            0x070 => {
                if v == 0 {
                    self.reset();
                    return Effect::Interrupt;
                }
                let mut s = v | (self.status & DEVICE_NEEDS_RESET);
                // FEATURES_OK only for a subset of what is offered, with VERSION_1.
                if s & FEATURES_OK != 0
                    && self.status & FEATURES_OK == 0
                    && (self.driver_features & !self.features != 0 || self.driver_features & F_VERSION_1 == 0)
                {
                    s &= !FEATURES_OK;
                }
                self.status = s;
            }
            0x080 | 0x084 | 0x090 | 0x094 | 0x0a0 | 0x0a4 if settable => {
                if let Some(q) = self.queue() {
                    let r = match offset {
                        0x080 | 0x084 => &mut q.desc,
                        0x090 | 0x094 => &mut q.avail,
                        _ => &mut q.used,
                    };
                    *r = if offset & 4 == 0 { lo(*r) } else { hi(*r) };
                }
            }
            _ => {}
        }
        Effect::None
    }
}
