//! `TestDb`: isolated, migrated databases.

use msgengine_testkit::TestDb;

async fn table_exists(db: &TestDb, table: &str) -> bool {
    let client = db.pool.get().await.expect("pool connection");
    let row = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await
        .expect("to_regclass");
    row.get(0)
}

#[tokio::test]
async fn each_test_db_is_a_separate_migrated_database() {
    let first = TestDb::new().await;
    let second = TestDb::new().await;
    assert_ne!(first.name, second.name);

    for db in [&first, &second] {
        let client = db.pool.get().await.expect("pool connection");
        let current: String = client
            .query_one("SELECT current_database()", &[])
            .await
            .expect("current_database")
            .get(0);
        assert_eq!(current, db.name);
        assert!(
            table_exists(db, "refinery_schema_history").await,
            "migrations were not applied in {}",
            db.name
        );
    }

    let client = first.pool.get().await.expect("pool connection");
    client
        .batch_execute("CREATE TABLE only_in_first (id int)")
        .await
        .expect("create table");
    assert!(table_exists(&first, "only_in_first").await);
    assert!(!table_exists(&second, "only_in_first").await);
}

#[tokio::test]
async fn create_returns_a_conninfo_for_the_new_database() {
    let (name, conninfo) = TestDb::create().await;
    assert!(name.starts_with("test_"));
    let (client, connection) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls)
        .await
        .expect("connect with the returned conninfo");
    tokio::spawn(connection);
    let current: String = client
        .query_one("SELECT current_database()", &[])
        .await
        .expect("current_database")
        .get(0);
    assert_eq!(current, name);
}
