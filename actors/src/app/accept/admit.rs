//! Stage 2, admit: the organization's tenant answers for its rate and burst.

use msgengine_storage::StoreError;

use super::AcceptError;
use crate::tenant::Admission;

/// The tenant's answer (`None`: the tenant could not answer) as the accept's.
pub fn admit(answer: Option<Admission>) -> Result<(), AcceptError> {
    match answer {
        Some(Admission::Admitted) => Ok(()),
        Some(Admission::RateLimited { retry_after }) => {
            Err(AcceptError::RateLimited { retry_after })
        }
        Some(Admission::OverBurst { burst }) => Err(AcceptError::OverBurst { burst }),
        None => Err(StoreError::Unavailable("tenant actor unavailable".into()).into()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn an_admitted_request_goes_on() {
        assert!(admit(Some(Admission::Admitted)).is_ok());
    }

    #[test]
    fn over_the_rate_or_the_burst_is_refused_with_the_limits() {
        let retry_after = Duration::from_millis(250);
        assert!(matches!(
            admit(Some(Admission::RateLimited { retry_after })),
            Err(AcceptError::RateLimited { retry_after: r }) if r == retry_after
        ));
        assert!(matches!(
            admit(Some(Admission::OverBurst { burst: 10 })),
            Err(AcceptError::OverBurst { burst: 10 })
        ));
    }

    #[test]
    fn a_tenant_that_cannot_answer_is_a_store_failure() {
        assert!(matches!(
            admit(None),
            Err(AcceptError::Store(StoreError::Unavailable(_)))
        ));
    }
}
