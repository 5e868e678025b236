//! One kubelet batch: the deadline (gRPC `grpc-timeout`, else kubelet's 45 s), one call per
//! distinct claim UID in order, each with its share of the time left, and one answer per UID.
//! Never lets one claim's error, overrun or panic decide another claim's answer.

use super::super::ClaimRef;
use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// kubelet's `defaultClientCallTimeout` for NodePrepareResources / NodeUnprepareResources, used
/// when a caller sends no `grpc-timeout`.
pub const KUBELET_CALL_TIMEOUT: Duration = Duration::from_secs(45);
/// The answer has to reach kubelet before its context expires, or kubelet drops the whole
/// response (good claims included) and tonic cancels the handler at the deadline: keep this much
/// of the batch for sending it, a twentieth of the timeout and at most this.
const ANSWER_MARGIN_MAX: Duration = Duration::from_millis(500);

/// The header's value: at most 8 digits and a unit (gRPC over HTTP/2, "Timeout").
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    // The header comes from the caller: split on a char, never inside one.
    let unit = value.chars().last()?;
    let digits = &value[..value.len() - unit.len_utf8()];
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        'H' => Duration::from_secs(n.checked_mul(3600)?),
        'M' => Duration::from_secs(n.checked_mul(60)?),
        'S' => Duration::from_secs(n),
        'm' => Duration::from_millis(n),
        'u' => Duration::from_micros(n),
        'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// When the batch must be finished, counted from `start`: the caller's timeout (or kubelet's
/// default) less the margin for the answer.
pub fn batch_deadline(start: Instant, timeout: Option<Duration>) -> Instant {
    let timeout = timeout.unwrap_or(KUBELET_CALL_TIMEOUT);
    let margin = (timeout / 20).min(ANSWER_MARGIN_MAX);
    start + timeout.saturating_sub(margin)
}

/// The deadline of the next claim when `left` claims (this one included) share the time until
/// `deadline`: an equal share of what is left now, so time a fast claim did not use goes to the
/// ones after it.
pub fn claim_deadline(now: Instant, deadline: Instant, left: usize) -> Instant {
    let remaining = deadline.saturating_duration_since(now);
    let share = remaining / u32::try_from(left.max(1)).unwrap_or(u32::MAX);
    now + share
}

/// The claims of a request with duplicate UIDs dropped (the first one counts): kubelet keys the
/// answer by UID, so a UID is prepared once and answered once.
pub fn distinct(claims: Vec<ClaimRef>) -> Vec<ClaimRef> {
    let mut seen = std::collections::BTreeSet::new();
    claims.into_iter().filter(|c| seen.insert(c.uid.clone())).collect()
}

/// Why a claim from kubelet cannot be passed to the driver at all.
pub fn invalid(claim: &ClaimRef) -> Option<String> {
    let missing: Vec<&str> = [("uid", &claim.uid), ("name", &claim.name), ("namespace", &claim.namespace)]
        .into_iter()
        .filter(|(_, v)| v.is_empty())
        .map(|(k, _)| k)
        .collect();
    (!missing.is_empty()).then(|| format!("claim {}/{} has no {}", claim.namespace, claim.name, missing.join(", ")))
}

/// Run `call` for each claim in order, each bounded by its share of the time until `deadline`.
/// A call that overruns its share is answered with an error but not cancelled: it runs on as a
/// task and finishes (or rolls back) on its own, because dropping the pipeline mid-step would
/// skip the rollback it does on its own errors; the driver's next Prepare or Unprepare of that
/// claim is idempotent.
pub async fn run<T, F, Fut>(
    verb: &'static str,
    claims: Vec<ClaimRef>,
    deadline: Instant,
    call: F,
) -> BTreeMap<String, Result<T, String>>
where
    T: Send + 'static,
    F: Fn(ClaimRef, Instant) -> Fut,
    Fut: Future<Output = Result<T, String>> + Send + 'static,
{
    let claims = distinct(claims);
    let total = claims.len();
    let mut answers = BTreeMap::new();
    for (i, claim) in claims.into_iter().enumerate() {
        let uid = claim.uid.clone();
        let span =
            tracing::info_span!("claim", verb, uid = %claim.uid, namespace = %claim.namespace, name = %claim.name);
        let answer = one(verb, claim, deadline, total - i, &call).instrument(span).await;
        answers.insert(uid, answer);
    }
    answers
}

/// One claim of the batch, `left` claims (this one included) still to go.
async fn one<T, F, Fut>(
    verb: &'static str,
    claim: ClaimRef,
    deadline: Instant,
    left: usize,
    call: &F,
) -> Result<T, String>
where
    T: Send + 'static,
    F: Fn(ClaimRef, Instant) -> Fut,
    Fut: Future<Output = Result<T, String>> + Send + 'static,
{
    let started = Instant::now();
    let uid = claim.uid.clone();
    let what = format!("{verb} of claim {}/{}", claim.namespace, claim.name);
    let answer = if let Some(reason) = invalid(&claim) {
        Err(reason)
    } else if started >= deadline {
        Err(format!("{what} was not started: kubelet's deadline for this batch passed; kubelet retries"))
    } else {
        let own = claim_deadline(started, deadline, left);
        let task = tokio::spawn(call(claim, own));
        match tokio::time::timeout_at(own.into(), task).await {
            Ok(Ok(result)) => result.map_err(|e| {
                // kubelet reads an empty error as success: never send one.
                if e.trim().is_empty() {
                    format!("{what} failed without a message (a driver bug): see the plugin's log")
                } else {
                    e
                }
            }),
            Ok(Err(join)) => Err(format!("{what} failed: the driver panicked ({join}); see the plugin's log")),
            Err(_) => Err(format!(
                "{what} did not finish within its share of kubelet's deadline ({} ms); it continues in the \
                 background and kubelet retries",
                own.saturating_duration_since(started).as_millis()
            )),
        }
    };
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match &answer {
        Ok(_) => tracing::info!(%uid, elapsed_ms, "claim done"),
        Err(error) => tracing::warn!(%uid, elapsed_ms, %error, "claim failed"),
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_units_and_malformed_values() {
        assert_eq!(parse_grpc_timeout("45S"), Some(Duration::from_secs(45)));
        assert_eq!(parse_grpc_timeout("44999m"), Some(Duration::from_millis(44999)));
        assert_eq!(parse_grpc_timeout("2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("7u"), Some(Duration::from_micros(7)));
        assert_eq!(parse_grpc_timeout("9n"), Some(Duration::from_nanos(9)));
        for bad in ["", "S", "123456789S", "12x", "-1S", "1.5S", " 1S", "é", "1é", "é1S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?} must be refused");
        }
    }

    #[test]
    fn a_fast_claim_donates_its_time_to_the_later_ones() {
        let now = Instant::now();
        let deadline = now + Duration::from_secs(30);
        assert_eq!(claim_deadline(now, deadline, 3), now + Duration::from_secs(10));
        // The first claim took 1 s: the two left share 29 s.
        let later = now + Duration::from_secs(1);
        assert_eq!(claim_deadline(later, deadline, 2), later + Duration::from_millis(14_500));
        assert_eq!(claim_deadline(deadline + Duration::from_secs(1), deadline, 1), deadline + Duration::from_secs(1));
    }

    #[test]
    fn batch_deadline_keeps_a_margin_for_the_answer() {
        let now = Instant::now();
        assert_eq!(batch_deadline(now, None), now + Duration::from_millis(44_500));
        assert_eq!(batch_deadline(now, Some(Duration::from_secs(2))), now + Duration::from_millis(1_900));
    }

    #[test]
    fn duplicate_uids_count_once_in_order() {
        let c = |uid: &str, name: &str| ClaimRef { namespace: "ns".into(), name: name.into(), uid: uid.into() };
        let got = distinct(vec![c("a", "x"), c("b", "y"), c("a", "z")]);
        assert_eq!(got, vec![c("a", "x"), c("b", "y")]);
    }
}
