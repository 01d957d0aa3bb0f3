//! The run-time core: domains and their lifecycle, the launch sequence's actions,
//! hypercalls, exit handling, copy-on-write policy, interrupt forwarding, console input and
//! the run queues' decisions. It decides; it touches no hardware: the arch layer implements
//! [`machine::Machine`] and applies the outcomes. The lock order is written once, on
//! [`system::System`].

pub mod assign;
pub mod build;
pub mod build_error;
mod build_map;
pub mod control;
pub mod cow;
pub mod create;
pub mod domain;
pub mod exits;
pub mod guestmem;
pub mod hypercalls;
mod kernel;
pub mod life;
pub mod lifecycle;
pub mod links;
pub mod machine;
pub mod pool;
pub mod ram;
pub mod setup;
mod stores;
pub mod system;
pub mod table;
pub mod vcpu;

#[cfg(test)]
mod build_tests;
#[cfg(test)]
mod cow_tests;
#[cfg(test)]
mod create_dev_tests;
#[cfg(test)]
mod create_tests;
#[cfg(test)]
mod exit_tests;
#[cfg(any(test, feature = "fake"))]
pub mod fake;
#[cfg(test)]
mod kick_tests;
#[cfg(test)]
mod launch_tests;
#[cfg(test)]
mod tests;
