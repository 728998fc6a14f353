//! The moves that bring a case from one status to another, through the lifecycle: the
//! partner's database says where a case is now, the hub needs each step.

use relais_hub::domain::CaseStatus;
use std::collections::{HashMap, VecDeque};

/// The shortest legal path from `from` to `to` (excluding `from`), or none. `redirected` and
/// `duplicate` need more than a status and are never planned.
pub fn path(from: CaseStatus, to: CaseStatus) -> Option<Vec<CaseStatus>> {
    if from == to {
        return Some(vec![]);
    }
    let mut previous: HashMap<CaseStatus, CaseStatus> = HashMap::new();
    let mut queue = VecDeque::from([from]);
    while let Some(s) = queue.pop_front() {
        for next in s.allowed_next() {
            if matches!(next, CaseStatus::Redirected | CaseStatus::Duplicate)
                || next == from
                || previous.contains_key(&next)
            {
                continue;
            }
            previous.insert(next, s);
            if next == to {
                let mut steps = vec![to];
                let mut at = to;
                while let Some(p) = previous.get(&at).copied() {
                    if p == from {
                        break;
                    }
                    steps.push(p);
                    at = p;
                }
                steps.reverse();
                return Some(steps);
            }
            queue.push_back(next);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use CaseStatus::*;

    #[test]
    fn paths_follow_the_lifecycle() {
        assert_eq!(
            path(Draft, WaitingDocuments),
            Some(vec![Sent, Acknowledged, InProgress, WaitingDocuments])
        );
        assert_eq!(
            path(WaitingDocuments, Accepted),
            Some(vec![InProgress, Accepted])
        );
        assert_eq!(path(InProgress, InProgress), Some(vec![]));
        assert_eq!(path(Closed, InProgress), None);
        assert_eq!(path(Draft, Redirected), None);
    }
}
