//! The SQL guard `msgengine_can_advance` (migrations/V2) is a safety net
//! under the domain's lifecycle table: for every pair of states it must
//! answer exactly what `MessageState::can_advance_to` answers, so the two
//! cannot drift.

use msgengine_domain::message::MessageState;
use msgengine_testkit::TestDb;

#[tokio::test]
async fn the_sql_guard_allows_exactly_the_domains_moves() {
    let db = TestDb::new().await;
    let client = db.pool.get().await.expect("connection");
    let (mut from, mut to, mut allowed) = (Vec::new(), Vec::new(), Vec::new());
    for a in MessageState::ALL {
        for b in MessageState::ALL {
            from.push(a.as_str());
            to.push(b.as_str());
            allowed.push(a.can_advance_to(b));
        }
    }
    let rows = client
        .query(
            "SELECT f, t, msgengine_can_advance(f, t)
               FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS p(f, t, n)
              ORDER BY n",
            &[&from, &to],
        )
        .await
        .expect("guard");
    assert_eq!(rows.len(), allowed.len());
    for (row, domain) in rows.iter().zip(allowed) {
        let (f, t, sql): (String, String, bool) = (row.get(0), row.get(1), row.get(2));
        assert_eq!(
            sql, domain,
            "{f} -> {t}: SQL says {sql}, the domain {domain}"
        );
    }
}
