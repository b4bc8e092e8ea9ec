//! The accept group commit's bulkhead: one request whose rows the database
//! refuses fails alone; every other request of the same group, from any
//! organization, commits. The edge refuses such rows long before (see
//! `edge_input`), so these tests hand crafted rows to the committer itself.

use std::sync::{Arc, Mutex};

use chrono::Utc;
use msgengine_actors::commit::{CommitOutcome, CommitSettings, GroupCommitter, OnCommit};
use msgengine_domain::message::{MessageEvent, MessageState, OutboundMessage};
use msgengine_domain::{Channel, MessageId, OrganizationId};
use msgengine_storage::repo::messages::NewMessageRow;
use msgengine_storage::StoreError;
use msgengine_testkit::TestDb;
use serde_json::{json, Value};
use uuid::Uuid;

fn row(org: Uuid, recipient: &str, metadata: Option<Value>) -> NewMessageRow {
    let now = Utc::now();
    NewMessageRow {
        message: OutboundMessage {
            id: MessageId(Uuid::now_v7()),
            organization_id: OrganizationId(org),
            channel: Channel::Email,
            to: recipient.to_owned(),
            from: None,
            subject: Some("Hi".into()),
            text: "Hello".into(),
            html: None,
            metadata: match metadata {
                Some(Value::Object(map)) => Some(map),
                _ => None,
            },
            extras: None,
            routing: None,
        },
        state: MessageState::Queued,
        send_at: None,
        next_attempt_at: now,
        leased: false,
        events: vec![
            MessageEvent::new(MessageState::Accepted, now),
            MessageEvent::new(MessageState::Queued, now),
        ],
    }
}

/// A committer on the test's own runtime, and the rows it reported committed.
fn committer(db: &TestDb) -> (GroupCommitter, Arc<Mutex<Vec<Uuid>>>) {
    let committed = Arc::new(Mutex::new(Vec::new()));
    let seen = committed.clone();
    let on_commit: OnCommit = Arc::new(move |rows: Vec<NewMessageRow>| {
        seen.lock()
            .expect("not poisoned")
            .extend(rows.iter().map(|r| r.message.id.0));
    });
    let settings = CommitSettings {
        node_id: Uuid::new_v4(),
        lease_for: chrono::Duration::seconds(60),
        workers: 1,
        max_rows: 2_000,
    };
    let handle = tokio::runtime::Handle::current();
    (
        GroupCommitter::start(&handle, db.pool.clone(), settings, on_commit),
        committed,
    )
}

async fn stored(db: &TestDb, ids: &[Uuid]) -> i64 {
    let client = db.pool.get().await.expect("connection");
    client
        .query_one(
            "SELECT count(*) FROM messages WHERE id = ANY($1)",
            &[&ids.to_vec()],
        )
        .await
        .expect("count")
        .get(0)
}

/// Commits each job as its own request, all at once. `#[tokio::test]` runs
/// on one thread: the request tasks are spawned before the committer's
/// single worker is woken, and each queues its job as soon as it runs, so
/// the worker finds them all queued and writes them as one group.
async fn commit_all(
    committer: &GroupCommitter,
    jobs: Vec<Vec<NewMessageRow>>,
) -> Vec<Result<CommitOutcome, StoreError>> {
    let tasks: Vec<_> = jobs
        .into_iter()
        .map(|rows| {
            let committer = committer.clone();
            tokio::spawn(async move { committer.commit(rows, None).await })
        })
        .collect();
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(task.await.expect("request task"));
    }
    results
}

#[tokio::test]
async fn a_request_the_database_refuses_fails_alone_and_the_rest_of_its_group_commits() {
    let db = TestDb::new().await;
    let (committer, committed) = committer(&db);
    let (acme, globex) = (Uuid::new_v4(), Uuid::new_v4());
    let good = |org, n: usize| -> Vec<NewMessageRow> {
        (0..n)
            .map(|i| row(org, &format!("r{i}@example.com"), Some(json!({"n": i}))))
            .collect()
    };
    // A NUL in jsonb (22P05) and a NUL in text (22021).
    let bad_jsonb = vec![row(acme, "a@example.com", Some(json!({"a": "x\u{0}y"})))];
    let bad_text = vec![row(globex, "b\u{0}@example.com", None)];
    let jobs = vec![
        good(acme, 3),
        good(globex, 2),
        bad_jsonb,
        good(globex, 4),
        good(acme, 1),
        bad_text,
        good(acme, 2),
    ];
    let ids: Vec<Vec<Uuid>> = jobs
        .iter()
        .map(|j| j.iter().map(|r| r.message.id.0).collect())
        .collect();
    let results = commit_all(&committer, jobs).await;

    for (i, result) in results.iter().enumerate() {
        match i {
            2 | 5 => assert!(
                matches!(result, Err(e @ StoreError::Rejected { .. }) if e.is_data_error()),
                "job {i}: {result:?}"
            ),
            _ => assert!(
                matches!(result, Ok(CommitOutcome::Committed)),
                "job {i}: {result:?}"
            ),
        }
    }
    let good_ids: Vec<Uuid> = ids
        .iter()
        .enumerate()
        .filter(|(i, _)| ![2, 5].contains(i))
        .flat_map(|(_, ids)| ids.iter().copied())
        .collect();
    assert_eq!(stored(&db, &good_ids).await, 12);
    assert_eq!(stored(&db, &[ids[2][0], ids[5][0]]).await, 0);
    let mut reported = committed.lock().expect("not poisoned").clone();
    reported.sort();
    let mut expected = good_ids.clone();
    expected.sort();
    assert_eq!(reported, expected, "only committed rows are dispatched");

    // The committer keeps serving after a split.
    let later = row(acme, "later@example.com", None);
    let later_id = later.message.id.0;
    assert!(matches!(
        committer.commit(vec![later], None).await,
        Ok(CommitOutcome::Committed)
    ));
    assert_eq!(stored(&db, &[later_id]).await, 1);
}

#[tokio::test]
async fn a_group_of_only_refused_requests_fails_each_without_retrying_forever() {
    let db = TestDb::new().await;
    let (committer, _) = committer(&db);
    let org = Uuid::new_v4();
    let jobs: Vec<Vec<NewMessageRow>> = (0..5)
        .map(|i| vec![row(org, &format!("x\u{0}{i}@example.com"), None)])
        .collect();
    let results = commit_all(&committer, jobs).await;
    assert_eq!(results.len(), 5);
    for result in &results {
        assert!(
            matches!(result, Err(StoreError::Rejected { .. })),
            "{result:?}"
        );
    }
}

#[tokio::test]
async fn an_unavailable_database_fails_every_request_with_unavailable() {
    let db = TestDb::new().await;
    let (committer, _) = committer(&db);
    db.pool.close();
    let org = Uuid::new_v4();
    let jobs = (0..3)
        .map(|i| vec![row(org, &format!("r{i}@example.com"), None)])
        .collect();
    let results = commit_all(&committer, jobs).await;
    for result in &results {
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{result:?}"
        );
    }
}

#[tokio::test]
async fn a_group_with_nothing_wrong_is_written_in_one_transaction() {
    let db = TestDb::new().await;
    let (committer, _) = committer(&db);
    let (acme, globex) = (Uuid::new_v4(), Uuid::new_v4());
    let jobs: Vec<Vec<NewMessageRow>> = (0..6)
        .map(|i| {
            let org = if i % 2 == 0 { acme } else { globex };
            vec![row(org, &format!("r{i}@example.com"), None)]
        })
        .collect();
    let ids: Vec<Uuid> = jobs.iter().flatten().map(|r| r.message.id.0).collect();
    let results = commit_all(&committer, jobs).await;
    assert!(results
        .iter()
        .all(|r| matches!(r, Ok(CommitOutcome::Committed))));
    let client = db.pool.get().await.expect("connection");
    let transactions: i64 = client
        .query_one(
            "SELECT count(DISTINCT xmin::text) FROM messages WHERE id = ANY($1)",
            &[&ids],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(transactions, 1, "one group, one transaction");
}
