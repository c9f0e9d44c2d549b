//! Membership and authorship rules: who may see, write, join, leave, add, remove, edit, delete.
//!
//! Every function takes the facts it needs as plain data, read by the store inside the same
//! transaction that then writes, so a rule and its write can never see different states.

/// A rule refused an action; the store turns it into the protocol's error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// No such room or event, or one the user may not see.
    #[error("{0}")]
    NotFound(&'static str),
    /// Visible, but the user may not do this.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The request itself is wrong (e.g. editing a join event).
    #[error("{0}")]
    BadRequest(&'static str),
}

/// What the rules need to know about a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomFacts {
    pub public: bool,
    pub dm: bool,
    pub owner: String,
    pub member_count: u64,
}

/// What the rules need to know about the event an edit, delete or react targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetFacts {
    pub is_text: bool,
    pub deleted: bool,
    pub author: String,
}

const NO_ROOM: RuleError = RuleError::NotFound("no such room");

/// Reading or writing a room: members only; a private room does not exist for others.
pub fn may_use(room: &RoomFacts, is_member: bool) -> Result<(), RuleError> {
    match (is_member, room.public) {
        (true, _) => Ok(()),
        (false, true) => Err(RuleError::Forbidden("not a member of this room")),
        (false, false) => Err(NO_ROOM),
    }
}

/// Whether a join writes anything: `Ok(false)` for a member joining again.
pub fn may_join(room: &RoomFacts, is_member: bool) -> Result<bool, RuleError> {
    match (is_member, room.public) {
        (true, _) => Ok(false),
        (false, true) => Ok(true),
        (false, false) => Err(NO_ROOM),
    }
}

/// Leaving: members only; the owner only as the last member (either member may leave a DM).
pub fn may_leave(room: &RoomFacts, user: &str, is_member: bool) -> Result<(), RuleError> {
    may_use(room, is_member)?;
    if !room.dm && room.owner == user && room.member_count > 1 {
        return Err(RuleError::Forbidden(
            "the owner may leave only as the last member",
        ));
    }
    Ok(())
}

/// Adding a member: the owner only, never into a DM. `Ok(false)` when already a member.
pub fn may_add(
    room: &RoomFacts,
    actor: &str,
    actor_is_member: bool,
    target_is_member: bool,
) -> Result<bool, RuleError> {
    may_use(room, actor_is_member)?;
    if room.owner != actor {
        return Err(RuleError::Forbidden("only the owner may add members"));
    }
    if room.dm {
        return Err(RuleError::Forbidden(
            "a direct conversation has exactly two members",
        ));
    }
    Ok(!target_is_member)
}

/// Removing a member: the owner only, not from a DM, and the target must be a member.
pub fn may_remove(
    room: &RoomFacts,
    actor: &str,
    actor_is_member: bool,
    target: &str,
    target_is_member: bool,
) -> Result<(), RuleError> {
    may_use(room, actor_is_member)?;
    if room.owner != actor {
        return Err(RuleError::Forbidden("only the owner may remove members"));
    }
    if room.dm {
        return Err(RuleError::Forbidden(
            "members of a direct conversation cannot be removed",
        ));
    }
    if !target_is_member {
        return Err(RuleError::NotFound("no such member"));
    }
    if target == actor {
        return may_leave(room, actor, true);
    }
    Ok(())
}

fn live_text(target: Option<&TargetFacts>) -> Result<&TargetFacts, RuleError> {
    let t = target.ok_or(RuleError::NotFound("no such event"))?;
    if !t.is_text {
        return Err(RuleError::BadRequest(
            "only text events can be edited, deleted or reacted to",
        ));
    }
    if t.deleted {
        return Err(RuleError::NotFound("that message was deleted"));
    }
    Ok(t)
}

/// Editing: the author only, of a live text event.
pub fn may_edit(target: Option<&TargetFacts>, actor: &str) -> Result<(), RuleError> {
    if live_text(target)?.author != actor {
        return Err(RuleError::Forbidden("only the author may edit a message"));
    }
    Ok(())
}

/// Deleting: the author or the room's owner, of a live text event.
pub fn may_delete(
    room: &RoomFacts,
    target: Option<&TargetFacts>,
    actor: &str,
) -> Result<(), RuleError> {
    if live_text(target)?.author != actor && room.owner != actor {
        return Err(RuleError::Forbidden(
            "only the author or the owner may delete a message",
        ));
    }
    Ok(())
}

/// Reacting: to a live text event.
pub fn may_react(target: Option<&TargetFacts>) -> Result<(), RuleError> {
    live_text(target).map(|_| ())
}

/// Where a read marker moves: only forward, never past the room's newest seq.
pub fn advance_read(current: u64, requested: u64, last_seq: u64) -> Option<u64> {
    let wanted = requested.min(last_seq);
    (wanted > current).then_some(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn room(public: bool) -> RoomFacts {
        RoomFacts {
            public,
            dm: false,
            owner: "o".into(),
            member_count: 2,
        }
    }

    #[test]
    fn a_private_room_does_not_exist_for_a_non_member() {
        assert_eq!(may_use(&room(false), false), Err(NO_ROOM));
        assert_eq!(may_join(&room(false), false), Err(NO_ROOM));
        assert!(matches!(
            may_use(&room(true), false),
            Err(RuleError::Forbidden(_))
        ));
    }

    #[test]
    fn joining_again_writes_nothing() {
        assert_eq!(may_join(&room(true), true), Ok(false));
        assert_eq!(may_join(&room(true), false), Ok(true));
    }

    #[test]
    fn the_owner_leaves_only_as_the_last_member() {
        assert!(may_leave(&room(true), "o", true).is_err());
        let alone = RoomFacts {
            member_count: 1,
            ..room(true)
        };
        assert!(may_leave(&alone, "o", true).is_ok());
        assert!(may_leave(&room(true), "m", true).is_ok());
    }

    #[test]
    fn only_the_owner_adds_and_never_to_a_dm() {
        assert!(matches!(
            may_add(&room(false), "m", true, false),
            Err(RuleError::Forbidden(_))
        ));
        assert_eq!(may_add(&room(false), "o", true, false), Ok(true));
        assert_eq!(may_add(&room(false), "o", true, true), Ok(false));
        let dm = RoomFacts {
            dm: true,
            ..room(false)
        };
        assert!(matches!(
            may_add(&dm, "o", true, false),
            Err(RuleError::Forbidden(_))
        ));
    }

    #[test]
    fn edits_need_the_author_and_deletes_the_author_or_owner() {
        let t = TargetFacts {
            is_text: true,
            deleted: false,
            author: "a".into(),
        };
        assert!(may_edit(Some(&t), "a").is_ok());
        assert!(may_edit(Some(&t), "o").is_err());
        assert!(may_delete(&room(true), Some(&t), "o").is_ok());
        assert!(may_delete(&room(true), Some(&t), "x").is_err());
        let gone = TargetFacts {
            deleted: true,
            ..t.clone()
        };
        assert!(matches!(
            may_react(Some(&gone)),
            Err(RuleError::NotFound(_))
        ));
        let join = TargetFacts {
            is_text: false,
            ..t
        };
        assert!(matches!(
            may_react(Some(&join)),
            Err(RuleError::BadRequest(_))
        ));
        assert!(matches!(may_react(None), Err(RuleError::NotFound(_))));
    }

    proptest! {
        #[test]
        fn read_markers_only_move_forward_and_never_past_the_newest(cur in 0u64..1000, req in 0u64..2000, last in 0u64..1000) {
            match advance_read(cur, req, last) {
                Some(new) => { prop_assert!(new > cur); prop_assert!(new <= last); prop_assert!(new <= req); }
                None => prop_assert!(req.min(last) <= cur),
            }
        }

        #[test]
        fn a_non_member_never_uses_a_private_room(dm in any::<bool>(), count in 1u64..10) {
            let r = RoomFacts { public: false, dm, owner: "o".into(), member_count: count };
            prop_assert_eq!(may_use(&r, false), Err(NO_ROOM));
            prop_assert!(may_join(&r, false).is_err());
            prop_assert!(may_leave(&r, "x", false).is_err());
            prop_assert!(may_add(&r, "o", false, false).is_err());
        }
    }
}
