//! Stage 1, replay: what a stored idempotency record says about a request
//! carrying its key.

use serde_json::Value;

use super::{AcceptError, Accepted, IdempotencyKey, SendAnswer};

/// The stored answer again when the key was used with this very body; a
/// conflict when it was used with another; `None` (go on) when the key is new.
pub fn replay(
    stored: Option<(Vec<u8>, Value)>,
    key: &IdempotencyKey,
) -> Result<Option<Accepted>, AcceptError> {
    match stored {
        Some((hash, body)) if hash == key.request_hash => Ok(Some(Accepted {
            body: SendAnswer::Stored(body),
            replayed: true,
        })),
        Some(_) => Err(AcceptError::IdempotencyConflict),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn key() -> IdempotencyKey {
        IdempotencyKey {
            key: "k1".into(),
            request_hash: vec![1, 2, 3],
        }
    }

    #[test]
    fn a_new_key_goes_on() {
        assert!(matches!(replay(None, &key()), Ok(None)));
    }

    #[test]
    fn the_same_body_gets_the_first_answer_again() {
        let body = json!({"id": "m1", "status": "queued"});
        match replay(Some((vec![1, 2, 3], body.clone())), &key()) {
            Ok(Some(answer)) => {
                assert_eq!(answer.body, SendAnswer::Stored(body));
                assert!(answer.replayed);
            }
            _ => panic!("expected a replay"),
        }
    }

    #[test]
    fn another_body_under_the_key_conflicts() {
        let stored = Some((vec![9], json!({})));
        assert!(matches!(
            replay(stored, &key()),
            Err(AcceptError::IdempotencyConflict)
        ));
    }
}
