//! Operations held for a person's approval: the kernel side of "hold until the final decision,
//! then enforce it".
//!
//! The service owns the approval timer and always sends a final decision; the kernel holds an
//! operation at most the timeout carried in the `pending` reply plus a grace period, then denies
//! on its own. Holds are keyed by the service's approval ticket.

use alloc::vec::Vec;

use crate::Millis;

/// Most operations held at once; a further `pending` reply is denied.
pub const MAX_HOLDS: usize = 1024;
/// Most operations one session may have held at once (a quarter of [`MAX_HOLDS`]): one agent
/// with many threads blocked on approvals cannot take every slot from the other sessions.
pub const MAX_HOLDS_PER_SESSION: usize = MAX_HOLDS / 4;
/// Longest approval timeout the kernel honours, whatever the reply says.
pub const MAX_APPROVAL_TIMEOUT_SECS: u32 = 3600;

/// The state of a hold, as the waiting thread sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldStatus {
    /// Keep waiting, at most until `deadline`.
    Waiting { deadline: Millis },
    /// The final decision arrived.
    Decided { allow: bool },
    /// The hold outlived its deadline, or the service went away: deny.
    Expired,
    /// No hold with that ticket.
    Unknown,
}

#[derive(Debug, Clone, Copy)]
struct Hold {
    ticket: u32,
    /// The session's token when the hold began.
    session: u64,
    deadline: Millis,
    decided: Option<bool>,
}

/// Why a hold could not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldError {
    /// The ticket is already held (a service error): deny.
    DuplicateTicket,
    /// Too many holds: deny.
    Full,
    /// The session already has [`MAX_HOLDS_PER_SESSION`] holds: deny.
    SessionFull,
}

/// The table of held operations.
#[derive(Debug, Default)]
pub struct PendingTable {
    holds: Vec<Hold>,
}

impl PendingTable {
    /// Holds currently waiting or decided but not yet collected.
    pub fn len(&self) -> usize {
        self.holds.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.holds.is_empty()
    }

    /// Starts holding `ticket` for no particular session (they share one quota); returns the
    /// deadline.
    pub fn begin(
        &mut self,
        ticket: u32,
        now: Millis,
        timeout_secs: u32,
        grace_ms: u32,
    ) -> Result<Millis, HoldError> {
        self.begin_in_session(0, ticket, now, timeout_secs, grace_ms)
    }

    /// Starts holding `ticket` for the session whose token is `session`; returns the deadline.
    /// Refused when the table is full, or the session already holds [`MAX_HOLDS_PER_SESSION`].
    pub fn begin_in_session(
        &mut self,
        session: u64,
        ticket: u32,
        now: Millis,
        timeout_secs: u32,
        grace_ms: u32,
    ) -> Result<Millis, HoldError> {
        if self.holds.iter().any(|h| h.ticket == ticket) {
            return Err(HoldError::DuplicateTicket);
        }
        if self.holds.len() >= MAX_HOLDS {
            return Err(HoldError::Full);
        }
        if self.holds.iter().filter(|h| h.session == session).count() >= MAX_HOLDS_PER_SESSION {
            return Err(HoldError::SessionFull);
        }
        let hold_ms =
            u64::from(timeout_secs.min(MAX_APPROVAL_TIMEOUT_SECS)) * 1000 + u64::from(grace_ms);
        let deadline = now.saturating_add(hold_ms);
        // Fallible: the driver calls this on its callback paths, where an allocation failure
        // must refuse the hold (a denial), never bug-check.
        if self.holds.try_reserve(1).is_err() {
            return Err(HoldError::Full);
        }
        self.holds.push(Hold {
            ticket,
            session,
            deadline,
            decided: None,
        });
        Ok(deadline)
    }

    /// Records the final decision; `false` if no hold waits for `ticket`.
    pub fn resolve(&mut self, ticket: u32, allow: bool) -> bool {
        match self
            .holds
            .iter_mut()
            .find(|h| h.ticket == ticket && h.decided.is_none())
        {
            Some(h) => {
                h.decided = Some(allow);
                true
            }
            None => false,
        }
    }

    /// What the thread holding `ticket` should do at `now`. A final answer removes the hold.
    pub fn poll(&mut self, ticket: u32, now: Millis) -> HoldStatus {
        let Some(i) = self.holds.iter().position(|h| h.ticket == ticket) else {
            return HoldStatus::Unknown;
        };
        let hold = self.holds[i];
        let status = match hold.decided {
            Some(allow) => HoldStatus::Decided { allow },
            None if now >= hold.deadline => HoldStatus::Expired,
            None => {
                return HoldStatus::Waiting {
                    deadline: hold.deadline,
                };
            }
        };
        self.holds.swap_remove(i);
        status
    }

    /// The held thread stopped waiting (it is being terminated): forget its hold. A final
    /// decision arriving later finds no hold.
    pub fn forget(&mut self, ticket: u32) {
        if let Some(i) = self.holds.iter().position(|h| h.ticket == ticket) {
            self.holds.swap_remove(i);
        }
    }

    /// The service is gone: no final decision will come, so every waiting hold is denied.
    /// Returns the tickets to wake (all of them if the list cannot be allocated: the caller then
    /// wakes every held thread, each of which finds its hold denied).
    pub fn abandon_all(&mut self) -> Vec<u32> {
        let mut woken = Vec::new();
        let _ = woken.try_reserve_exact(self.holds.len());
        for h in self.holds.iter_mut().filter(|h| h.decided.is_none()) {
            h.decided = Some(false);
            if woken.len() < woken.capacity() {
                woken.push(h.ticket);
            }
        }
        woken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_session_cannot_take_every_hold() {
        let mut table = PendingTable::default();
        let mut ticket = 0u32;
        for _ in 0..MAX_HOLDS_PER_SESSION {
            ticket += 1;
            table
                .begin_in_session(7, ticket, 0, 10, 0)
                .expect("within the quota");
        }
        ticket += 1;
        assert_eq!(
            table.begin_in_session(7, ticket, 0, 10, 0),
            Err(HoldError::SessionFull)
        );
        // Other sessions still get theirs, up to the table's size.
        let mut session = 8u64;
        while table.len() < MAX_HOLDS {
            for _ in 0..MAX_HOLDS_PER_SESSION {
                if table.len() == MAX_HOLDS {
                    break;
                }
                ticket += 1;
                table
                    .begin_in_session(session, ticket, 0, 10, 0)
                    .expect("another session");
            }
            session += 1;
        }
        ticket += 1;
        assert_eq!(
            table.begin_in_session(session, ticket, 0, 10, 0),
            Err(HoldError::Full)
        );
        // A collected hold frees the session's slot.
        assert!(table.resolve(1, true));
        assert_eq!(table.poll(1, 0), HoldStatus::Decided { allow: true });
        ticket += 1;
        table
            .begin_in_session(7, ticket, 0, 10, 0)
            .expect("a slot freed");
    }
}
