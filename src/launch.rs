//! The Hyperlaunch launch sequence (design Appendix 1, binding sections 5–6) as a state
//! machine: every domain is created paused; a Boot Domain, if there is one, runs first and
//! alone, unpauses domains in the order it chooses and signals done; then finalization
//! reclaims it and the boot modules, and unpauses everything else but a standby Recovery
//! Domain, which runs only if launch failed. The machine returns the actions for the arch
//! layer to apply.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// A domain's place in the launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Paused,
    Running,
    /// Stopped on its own (SYSTEM_OFF) or by a fault.
    Stopped,
    /// Destroyed and its memory reclaimed (the Boot Domain; an unused standby Recovery Domain).
    Reclaimed,
}

/// Launch phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Domains built, nothing runs yet.
    Created,
    /// The Boot Domain runs; the others wait for it.
    Boot,
    /// Finalization done: the launch is over.
    Finalized,
}

/// Something the arch layer must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start the domain's first vCPU.
    Unpause(u16),
    /// Stop the domain, scrub and free its memory; it never runs again.
    Reclaim(u16),
    /// Give the boot modules (and the LCM) back to the frame allocator.
    FreeBootModules,
    /// Console input goes to this domain.
    Console(u16),
    /// Launch failed: tell the Recovery Domain (and the console) what failed.
    ReportFailure,
}

/// Why a launch call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaunchError {
    /// Only the Boot Domain may do this, and only while it runs.
    NotBootDomain,
    /// The launch is past the point where this is possible.
    WrongPhase,
    /// No such domain, or not in a state that allows it.
    BadTarget,
}

impl fmt::Display for LaunchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LaunchError::NotBootDomain => "only the running Boot Domain may do this",
            LaunchError::WrongPhase => "the launch is past that point",
            LaunchError::BadTarget => "no such paused domain",
        })
    }
}

/// Why the launch failed, per domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub domid: u16,
    pub reason: String,
}

/// The launch state.
#[derive(Debug, Clone)]
pub struct Launch {
    phase: Phase,
    domids: Vec<u16>,
    states: Vec<State>,
    boot: Option<usize>,
    /// A Recovery Domain with no other role: it waits unless launch fails.
    standby: Option<usize>,
    console: Option<u16>,
    failures: Vec<Failure>,
}

impl Launch {
    /// `domids` in configuration order (built domains only); `boot`/`standby` name the Boot
    /// and standby Recovery Domains; `failures` are domains that could not be built.
    pub fn new(
        domids: Vec<u16>,
        boot: Option<u16>,
        standby: Option<u16>,
        console: Option<u16>,
        failures: Vec<Failure>,
    ) -> Self {
        let find = |id: Option<u16>| id.and_then(|i| domids.iter().position(|&d| d == i));
        Launch {
            phase: Phase::Created,
            states: alloc::vec![State::Paused; domids.len()],
            boot: find(boot),
            standby: find(standby),
            console,
            failures,
            domids,
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn state(&self, domid: u16) -> Option<State> {
        self.index(domid).map(|i| self.states[i])
    }

    pub fn failures(&self) -> &[Failure] {
        &self.failures
    }

    /// The Boot Domain, while it runs.
    pub fn boot_domain(&self) -> Option<u16> {
        (self.phase == Phase::Boot).then(|| self.boot.map(|i| self.domids[i])).flatten()
    }

    /// The standby Recovery Domain (it waits unless launch fails).
    pub fn standby(&self) -> Option<u16> {
        self.standby.map(|i| self.domids[i])
    }

    fn index(&self, domid: u16) -> Option<usize> {
        self.domids.iter().position(|&d| d == domid)
    }

    /// Starts the launch: the Boot Domain alone (with the console), or finalization.
    pub fn start(&mut self) -> Vec<Action> {
        if self.phase != Phase::Created {
            return Vec::new();
        }
        match self.boot {
            Some(b) => {
                self.phase = Phase::Boot;
                self.states[b] = State::Running;
                alloc::vec![Action::Console(self.domids[b]), Action::Unpause(self.domids[b])]
            }
            None => self.finalize(),
        }
    }

    /// The Boot Domain unpauses `target` before finalization (ordered start).
    pub fn unpause(&mut self, caller: u16, target: u16) -> Result<Action, LaunchError> {
        self.check_boot(caller)?;
        let t = self.index(target).ok_or(LaunchError::BadTarget)?;
        if Some(t) == self.standby || self.states[t] != State::Paused {
            return Err(LaunchError::BadTarget);
        }
        self.states[t] = State::Running;
        Ok(Action::Unpause(target))
    }

    fn check_boot(&self, caller: u16) -> Result<(), LaunchError> {
        if self.phase != Phase::Boot {
            return Err(if self.phase == Phase::Finalized {
                LaunchError::WrongPhase
            } else {
                LaunchError::NotBootDomain
            });
        }
        if self.boot.map(|b| self.domids[b]) != Some(caller) {
            return Err(LaunchError::NotBootDomain);
        }
        Ok(())
    }

    /// The Boot Domain signals done.
    pub fn done(&mut self, caller: u16) -> Result<Vec<Action>, LaunchError> {
        self.check_boot(caller)?;
        Ok(self.finalize())
    }

    /// The Boot Domain faulted or ran out of time: launch failed, finalization goes on.
    pub fn boot_failed(&mut self, reason: &str) -> Vec<Action> {
        if self.phase != Phase::Boot {
            return Vec::new();
        }
        if let Some(b) = self.boot {
            self.failures.push(Failure { domid: self.domids[b], reason: reason.into() });
        }
        self.finalize()
    }

    /// A domain stopped, `crashed` or cleanly. Before finalization a crash is a launch
    /// failure, and so is any stop of the Boot Domain other than through done.
    pub fn stopped(&mut self, domid: u16, reason: &str, crashed: bool) -> Vec<Action> {
        let Some(i) = self.index(domid) else { return Vec::new() };
        if self.states[i] == State::Reclaimed {
            return Vec::new();
        }
        self.states[i] = State::Stopped;
        if self.phase == Phase::Boot {
            if Some(i) == self.boot {
                return self.boot_failed(reason);
            }
            if crashed {
                self.failures.push(Failure { domid, reason: reason.into() });
            }
        }
        Vec::new()
    }

    /// A stopped domain was restarted (after finalization, by a Control domain): it runs
    /// again. False when it is not a stopped domain, or launch is not over.
    pub fn restarted(&mut self, domid: u16) -> bool {
        match self.index(domid) {
            Some(i) if self.phase == Phase::Finalized && self.states[i] == State::Stopped => {
                self.states[i] = State::Running;
                true
            }
            _ => false,
        }
    }

    fn finalize(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        if let Some(b) = self.boot {
            if self.states[b] != State::Stopped {
                self.states[b] = State::Reclaimed;
            }
            out.push(Action::Reclaim(self.domids[b]));
        }
        out.push(Action::FreeBootModules);
        let failed = !self.failures.is_empty();
        let console = match (failed, self.standby) {
            // Recovery takes the console when launch failed.
            (true, Some(s)) => Some(self.domids[s]),
            _ => self.console.filter(|&c| Some(c) != self.boot.map(|b| self.domids[b])),
        };
        if let Some(c) = console {
            out.push(Action::Console(c));
        }
        // Before anything starts: a standby Recovery Domain finds the report in its device tree.
        if failed {
            out.push(Action::ReportFailure);
        }
        for i in 0..self.domids.len() {
            if self.states[i] != State::Paused || Some(i) == self.boot {
                continue;
            }
            if Some(i) == self.standby && !failed {
                self.states[i] = State::Reclaimed;
                out.push(Action::Reclaim(self.domids[i]));
                continue;
            }
            self.states[i] = State::Running;
            out.push(Action::Unpause(self.domids[i]));
        }
        self.phase = Phase::Finalized;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn fail(domid: u16) -> Failure {
        Failure { domid, reason: "kernel: bad magic".into() }
    }

    #[test]
    fn without_boot_domain_straight_to_finalization() {
        let mut l = Launch::new(vec![1, 2, 3], None, Some(3), Some(2), vec![]);
        let a = l.start();
        assert_eq!(
            a,
            vec![
                Action::FreeBootModules,
                Action::Console(2),
                Action::Unpause(1),
                Action::Unpause(2),
                Action::Reclaim(3)
            ]
        );
        assert_eq!(l.phase(), Phase::Finalized);
        assert_eq!(l.state(3), Some(State::Reclaimed));
        // Nothing more can be done through the launch interface.
        assert_eq!(l.unpause(1, 2), Err(LaunchError::WrongPhase));
    }

    #[test]
    fn boot_domain_runs_alone_orders_the_start_and_is_reclaimed() {
        let mut l = Launch::new(vec![0x7ff5, 1, 2, 3], Some(0x7ff5), None, Some(1), vec![]);
        assert_eq!(l.start(), vec![Action::Console(0x7ff5), Action::Unpause(0x7ff5)]);
        assert_eq!(l.boot_domain(), Some(0x7ff5));
        assert_eq!(l.unpause(0x7ff5, 2), Ok(Action::Unpause(2)));
        assert_eq!(l.unpause(0x7ff5, 2), Err(LaunchError::BadTarget), "already running");
        assert_eq!(l.unpause(0x7ff5, 0x7ff5), Err(LaunchError::BadTarget), "itself");
        assert_eq!(l.unpause(0x7ff5, 9), Err(LaunchError::BadTarget));
        // Another domain may not use the Boot Domain's calls.
        assert_eq!(l.unpause(2, 3), Err(LaunchError::NotBootDomain));
        assert_eq!(l.done(2), Err(LaunchError::NotBootDomain));
        let a = l.done(0x7ff5).unwrap();
        assert_eq!(
            a,
            vec![
                Action::Reclaim(0x7ff5),
                Action::FreeBootModules,
                Action::Console(1),
                Action::Unpause(1),
                Action::Unpause(3)
            ]
        );
        // A second done, or the Boot Domain trying anything again, is refused.
        assert_eq!(l.done(0x7ff5), Err(LaunchError::WrongPhase));
        assert_eq!(l.unpause(0x7ff5, 1), Err(LaunchError::WrongPhase));
        assert_eq!(l.state(0x7ff5), Some(State::Reclaimed));
        assert_eq!(l.boot_domain(), None);
    }

    #[test]
    fn build_failure_wakes_the_standby_recovery_domain() {
        let mut l = Launch::new(vec![1, 3], None, Some(3), Some(1), vec![fail(2)]);
        let a = l.start();
        assert_eq!(
            a,
            vec![
                Action::FreeBootModules,
                Action::Console(3),
                Action::ReportFailure,
                Action::Unpause(1),
                Action::Unpause(3),
            ]
        );
        assert_eq!(l.failures(), &[fail(2)]);
    }

    #[test]
    fn boot_domain_fault_or_timeout_fails_the_launch() {
        let mut l = Launch::new(vec![9, 1, 2], Some(9), Some(2), Some(1), vec![]);
        l.start();
        let a = l.stopped(9, "Boot Domain timed out", false);
        assert_eq!(
            a,
            vec![
                Action::Reclaim(9),
                Action::FreeBootModules,
                Action::Console(2),
                Action::ReportFailure,
                Action::Unpause(1),
                Action::Unpause(2),
            ]
        );
        assert_eq!(l.failures()[0].domid, 9);
        assert_eq!(l.state(9), Some(State::Stopped));
    }

    #[test]
    fn a_clean_power_off_before_finalization_is_no_failure() {
        let mut l = Launch::new(vec![9, 1, 2], Some(9), Some(2), None, vec![]);
        l.start();
        l.unpause(9, 1).unwrap();
        assert_eq!(l.stopped(1, "SYSTEM_OFF", false), vec![]);
        let a = l.done(9).unwrap();
        assert!(a.contains(&Action::Reclaim(2)) && !a.contains(&Action::ReportFailure), "{a:?}");
    }

    #[test]
    fn a_domain_crashing_before_finalization_fails_the_launch() {
        let mut l = Launch::new(vec![9, 1, 2], Some(9), Some(2), None, vec![]);
        l.start();
        l.unpause(9, 1).unwrap();
        assert_eq!(l.stopped(1, "crashed", true), vec![]);
        let a = l.done(9).unwrap();
        assert!(a.contains(&Action::Unpause(2)) && a.contains(&Action::ReportFailure));
        // After finalization a stop is just a stop.
        let mut ok = Launch::new(vec![1], None, None, None, vec![]);
        ok.start();
        assert_eq!(ok.stopped(1, "SYSTEM_OFF", false), vec![]);
        assert!(ok.failures().is_empty());
    }

    #[test]
    fn only_a_stopped_domain_restarts_and_only_after_launch() {
        let mut l = Launch::new(vec![1, 2], None, None, None, vec![]);
        assert!(!l.restarted(1), "not launched yet");
        l.start();
        assert_eq!(l.phase(), Phase::Finalized);
        assert!(!l.restarted(1), "running");
        l.stopped(1, "SYSTEM_OFF", false);
        assert!(l.restarted(1));
        assert_eq!(l.state(1), Some(State::Running));
        assert!(!l.restarted(9));
    }
}
