//! virtio devices the hypervisor serves itself: the virtio-mmio transport, split
//! virtqueues, and the network link between two domains. Pure logic over a guest-memory
//! trait: the run-time core gives it the two domains' memories.

pub mod mmio;
pub mod net;
pub mod queue;

#[cfg(test)]
mod tests;
