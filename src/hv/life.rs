//! A domain's lifecycle: one state, changed only by [`Life::apply`], which refuses every
//! transition the table below does not list. The domain keeps it under one lock (see
//! `Domain::life`), so a check and the action that depends on it happen under one guard.
//!
//! ```text
//! Paused ──Unpause──▶ Running ◀──CtlUnpause── CtlPaused ◀──CtlPause── Running
//! Running | CtlPaused ──Stop──▶ Stopped          Running ──Reset──▶ Resetting
//! Stopped | CtlPaused | Resetting ──BeginRestart (no vCPU on a CPU)──▶ Restarting ──EndRestart──▶ Running
//! any but Reclaimed/Destroying/Restarting ──Destroy──▶ Destroying ──Reclaim (no vCPU on a CPU)──▶ Reclaimed
//! ```

use alloc::sync::Arc;
use core::fmt;
use core::sync::atomic::{AtomicU8, Ordering};

/// Where a domain is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// Built, not started yet: the launch holds it (extended configuration applies).
    Paused,
    Running,
    /// Paused by a Control domain: its vCPUs leave their CPUs at their next full exit (a kick is one).
    CtlPaused,
    /// It asked for PSCI SYSTEM_RESET: it is rebuilt once its vCPUs are off their CPUs.
    Resetting,
    /// Being built again from its boot modules (by whoever moved it here).
    Restarting,
    /// Stopped (by itself, or by a fault); a Control domain may restart it.
    Stopped,
    /// Destroyed: its memory is reclaimed once its vCPUs are off their CPUs.
    Destroying,
    /// Its memory was scrubbed and given back: it never runs again.
    Reclaimed,
}

impl State {
    const ALL: [State; 8] = [
        State::Paused,
        State::Running,
        State::CtlPaused,
        State::Resetting,
        State::Restarting,
        State::Stopped,
        State::Destroying,
        State::Reclaimed,
    ];

    /// The state `v` (`self as u8`) stands for.
    pub fn from_u8(v: u8) -> State {
        Self::ALL.get(usize::from(v)).copied().unwrap_or(State::Reclaimed)
    }

    /// It counts as alive: the machine stays on while any domain is.
    pub fn alive(self) -> bool {
        matches!(
            self,
            State::Paused | State::Running | State::CtlPaused | State::Resetting | State::Restarting
        )
    }

    /// Its vCPUs may run.
    pub fn runnable(self) -> bool {
        self == State::Running
    }

    /// The state number the hypercall ABI reports.
    pub fn abi(self) -> u64 {
        use crate::hypercall as hc;
        match self {
            State::Paused => hc::STATE_PAUSED,
            State::Running => hc::STATE_RUNNING,
            State::CtlPaused => hc::STATE_CTL_PAUSED,
            State::Resetting | State::Restarting | State::Stopped | State::Destroying => hc::STATE_STOPPED,
            State::Reclaimed => hc::STATE_RECLAIMED,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Paused => "paused (not yet launched)",
            State::Running => "running",
            State::CtlPaused => "paused",
            State::Resetting => "resetting",
            State::Restarting => "restarting",
            State::Stopped => "stopped",
            State::Destroying => "being destroyed",
            State::Reclaimed => "reclaimed",
        })
    }
}

/// Why a domain stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// PSCI SYSTEM_OFF.
    SystemOff,
    /// PSCI SYSTEM_RESET (it is rebuilt).
    SystemReset,
    /// An SError from the guest: a crash.
    SError,
    /// Destroyed by a Control domain.
    Destroyed { by: u16 },
    /// Reclaimed by the launch (the Boot Domain after done; an unused standby Recovery
    /// Domain).
    Reclaimed,
    /// PSCI SYSTEM_RESET more often than restarts are allowed: stopped instead.
    ResetLoop,
}

impl StopReason {
    /// A crash (before finalization, a launch failure).
    pub fn crashed(self) -> bool {
        matches!(self, StopReason::SError | StopReason::ResetLoop)
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::SystemOff => f.write_str("SYSTEM_OFF"),
            StopReason::SystemReset => f.write_str("SYSTEM_RESET"),
            StopReason::SError => f.write_str("SError"),
            StopReason::Destroyed { by } => write!(f, "destroyed by DOM{by}"),
            StopReason::Reclaimed => f.write_str("reclaimed"),
            StopReason::ResetLoop => write!(
                f,
                "SYSTEM_RESET loop: more than {} restarts in {} s",
                super::domain::RESTARTS_PER_WINDOW,
                super::domain::RESTART_WINDOW_US / 1_000_000
            ),
        }
    }
}

/// What changes a domain's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The launch starts it.
    Unpause,
    CtlPause,
    CtlUnpause,
    Stop(StopReason),
    /// PSCI SYSTEM_RESET.
    Reset,
    BeginRestart,
    EndRestart,
    Destroy,
    /// Its memory was given back.
    Reclaim,
}

/// Why a transition was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The event does not apply in this state.
    Illegal { from: State, event: Event },
    /// Its vCPUs are still leaving their CPUs; try again.
    Busy,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Illegal { from, .. } => write!(f, "its state is {from}"),
            Refused::Busy => f.write_str("its vCPUs are still leaving their CPUs; try again"),
        }
    }
}

/// What the last vCPU leaving its CPU must do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowUp {
    None,
    /// Scrub and give back the domain's memory (it is now `Reclaimed`).
    Reclaim,
    /// Build it again (it is now `Restarting`).
    Restart,
}

/// A domain's state and how many of its vCPUs are on a CPU.
#[derive(Debug, Clone)]
pub struct Life {
    state: State,
    active: usize,
    stopped: Option<StopReason>,
    /// Where every transition is shown as it is made, for readers that take no lock.
    shown: Option<Arc<AtomicU8>>,
}

impl Default for Life {
    fn default() -> Self {
        Life::new()
    }
}

impl Life {
    pub const fn new() -> Life {
        Life { state: State::Paused, active: 0, stopped: None, shown: None }
    }

    /// As [`Life::new`], each transition stored in `shown` too.
    pub fn shown_in(shown: Arc<AtomicU8>) -> Life {
        shown.store(State::Paused as u8, Ordering::Release);
        Life { shown: Some(shown), ..Life::new() }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// vCPUs on a CPU now.
    pub fn active(&self) -> usize {
        self.active
    }

    /// Why it last stopped.
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.stopped
    }

    /// The one transition function.
    pub fn apply(&mut self, event: Event) -> Result<State, Refused> {
        use State as S;
        let illegal = Err(Refused::Illegal { from: self.state, event });
        let quiet = self.active == 0;
        let next = match (self.state, event) {
            (S::Paused, Event::Unpause) => S::Running,
            (S::Running, Event::CtlPause) => S::CtlPaused,
            (S::CtlPaused, Event::CtlUnpause) => S::Running,
            (S::Running | S::CtlPaused, Event::Stop(r)) => {
                self.stopped = Some(r);
                S::Stopped
            }
            (S::Running, Event::Reset) => {
                self.stopped = Some(StopReason::SystemReset);
                S::Resetting
            }
            (S::Stopped | S::CtlPaused | S::Resetting, Event::BeginRestart) if !quiet => {
                return Err(Refused::Busy);
            }
            (S::Stopped | S::CtlPaused | S::Resetting, Event::BeginRestart) => S::Restarting,
            (S::Restarting, Event::EndRestart) => {
                self.stopped = None;
                S::Running
            }
            // A rebuild that could not be done.
            (S::Restarting, Event::Stop(r)) => {
                self.stopped = Some(r);
                S::Stopped
            }
            (S::Paused | S::Running | S::CtlPaused | S::Resetting | S::Stopped, Event::Destroy) => {
                S::Destroying
            }
            (S::Destroying, Event::Reclaim) if !quiet => return Err(Refused::Busy),
            (S::Destroying, Event::Reclaim) => S::Reclaimed,
            _ => return illegal,
        };
        self.state = next;
        if let Some(s) = &self.shown {
            s.store(next as u8, Ordering::Release);
        }
        Ok(next)
    }

    /// A vCPU is about to run: only while the domain runs.
    pub fn enter(&mut self) -> bool {
        if self.state.runnable() {
            self.active += 1;
            true
        } else {
            false
        }
    }

    /// A vCPU left its CPU. The last one out of a domain being destroyed or reset takes it
    /// on to the next state and says what to do.
    pub fn leave(&mut self) -> FollowUp {
        self.active = self.active.saturating_sub(1);
        self.settle()
    }

    /// Moves a quiet domain on from `Destroying` or `Resetting`.
    pub fn settle(&mut self) -> FollowUp {
        let (event, follow) = match self.state {
            State::Destroying => (Event::Reclaim, FollowUp::Reclaim),
            State::Resetting => (Event::BeginRestart, FollowUp::Restart),
            _ => return FollowUp::None,
        };
        if self.apply(event).is_ok() { follow } else { FollowUp::None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_transition_is_shown_to_readers_without_the_lock() {
        for s in State::ALL {
            assert_eq!(State::from_u8(s as u8), s);
        }
        let shown = Arc::new(AtomicU8::new(0xff));
        let mut l = Life::shown_in(shown.clone());
        let now = || State::from_u8(shown.load(Ordering::Acquire));
        assert_eq!(now(), State::Paused);
        for (e, s) in [
            (Event::Unpause, State::Running),
            (Event::CtlPause, State::CtlPaused),
            (Event::CtlUnpause, State::Running),
            (Event::Destroy, State::Destroying),
            (Event::Reclaim, State::Reclaimed),
        ] {
            assert_eq!(l.apply(e), Ok(s));
            assert_eq!(now(), s, "after {e:?}");
        }
        // A refused event changes nothing.
        assert!(l.apply(Event::Unpause).is_err());
        assert_eq!(now(), State::Reclaimed);
    }

    #[test]
    fn table() {
        let mut l = Life::new();
        assert_eq!(
            l.apply(Event::CtlPause),
            Err(Refused::Illegal { from: State::Paused, event: Event::CtlPause })
        );
        assert_eq!(l.apply(Event::Unpause), Ok(State::Running));
        assert_eq!(l.apply(Event::Unpause).map_err(|_| ()), Err(()), "unpaused once");
        assert_eq!(
            l.apply(Event::BeginRestart).map_err(|_| ()),
            Err(()),
            "a running domain is not restarted"
        );
        assert_eq!(l.apply(Event::CtlPause), Ok(State::CtlPaused));
        assert_eq!(l.apply(Event::CtlUnpause), Ok(State::Running));
        assert_eq!(l.apply(Event::Stop(StopReason::SystemOff)), Ok(State::Stopped));
        assert_eq!(l.stop_reason(), Some(StopReason::SystemOff));
        assert_eq!(l.apply(Event::Stop(StopReason::SError)).map_err(|_| ()), Err(()), "stops once");
        assert_eq!(l.apply(Event::BeginRestart), Ok(State::Restarting));
        assert_eq!(l.apply(Event::Destroy).map_err(|_| ()), Err(()), "not while it is being rebuilt");
        assert_eq!(l.apply(Event::EndRestart), Ok(State::Running));
        assert_eq!(l.apply(Event::Destroy), Ok(State::Destroying));
        assert_eq!(l.apply(Event::Reclaim), Ok(State::Reclaimed));
        for e in [Event::Unpause, Event::Destroy, Event::BeginRestart, Event::CtlUnpause, Event::Reset] {
            assert!(l.apply(e).is_err(), "{e:?} after reclaim");
        }
        assert!(!l.state().alive());
    }

    #[test]
    fn vcpus_enter_only_a_running_domain() {
        let mut l = Life::new();
        assert!(!l.enter(), "a paused domain does not run");
        l.apply(Event::Unpause).unwrap();
        assert!(l.enter() && l.enter());
        l.apply(Event::CtlPause).unwrap();
        assert!(!l.enter());
        assert_eq!(l.apply(Event::BeginRestart), Err(Refused::Busy), "vCPUs still on their CPUs");
        assert_eq!(l.leave(), FollowUp::None);
        assert_eq!(l.leave(), FollowUp::None);
        assert_eq!(l.apply(Event::BeginRestart), Ok(State::Restarting));
    }

    #[test]
    fn the_last_vcpu_out_reclaims_or_restarts_once() {
        let mut l = Life::new();
        l.apply(Event::Unpause).unwrap();
        assert!(l.enter() && l.enter());
        l.apply(Event::Reset).unwrap();
        assert_eq!(l.apply(Event::BeginRestart), Err(Refused::Busy));
        assert_eq!(l.leave(), FollowUp::None);
        assert_eq!(l.leave(), FollowUp::Restart);
        assert_eq!(l.state(), State::Restarting);
        assert_eq!(l.settle(), FollowUp::None, "only one rebuild");
        l.apply(Event::EndRestart).unwrap();
        assert!(l.enter());
        l.apply(Event::Destroy).unwrap();
        assert_eq!(l.apply(Event::Reclaim), Err(Refused::Busy));
        assert_eq!(l.leave(), FollowUp::Reclaim);
        assert_eq!(l.settle(), FollowUp::None);
        assert_eq!(l.state(), State::Reclaimed);
    }

    #[test]
    fn reset_and_restart_race_rebuilds_once() {
        // A Control RESTART arriving while the domain's own SYSTEM_RESET is under way is
        // refused (not a second rebuild), whoever comes first.
        let mut l = Life::new();
        l.apply(Event::Unpause).unwrap();
        assert!(l.enter());
        l.apply(Event::Reset).unwrap();
        assert_eq!(
            l.apply(Event::BeginRestart),
            Err(Refused::Busy),
            "Control's restart while the vCPU leaves"
        );
        assert_eq!(l.leave(), FollowUp::Restart);
        assert!(l.apply(Event::BeginRestart).is_err(), "Control's restart while it is rebuilt");
        assert!(l.state().alive());
    }
}
