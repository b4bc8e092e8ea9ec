use super::*;

struct FakeEnv(Vec<(&'static str, &'static str)>);

impl Env for FakeEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    }

    fn vars(&self) -> Vec<(String, String)> {
        self.0
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }
}

#[test]
fn defaults_listen_on_loopback_8080_with_data_in_dot_data() {
    let s = Settings::load(&FakeEnv(vec![])).expect("loads");
    assert_eq!(s.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(s.data_dir, PathBuf::from("./data"));
    assert_eq!(s.environment, Environment::Development);
    assert!(s.validate().is_ok());
}

#[test]
fn named_variables_and_nested_overrides_apply() {
    let s = Settings::load(&FakeEnv(vec![
        ("DATABASE_URL", "postgresql://u@localhost/db"),
        ("MSGENGINE_ENV", "production"),
        ("MSGENGINE__SERVER__MAX_BODY_BYTES", "4096"),
        ("MSGENGINE__DATABASE__POOL_MAX_SIZE", "8"),
        ("MSGENGINE__METRICS__TENANT_LABEL_LIMIT", "20"),
        (
            "MSGENGINE__METRICS__BEARER_TOKEN",
            "scrape-token-0123456789",
        ),
        ("MSGENGINE__DATABASE__STATEMENT_TIMEOUT_MS", "5000"),
        ("MSGENGINE__SERVER__WEBHOOK_LISTEN", "0.0.0.0:8081"),
        ("MSGENGINE__ENGINE__MAX_PROVIDERS_PER_ORG", "7"),
    ]))
    .expect("loads");
    assert_eq!(s.metrics.tenant_label_limit, 20);
    assert_eq!(
        s.metrics.bearer_token.as_ref().map(Secret::expose),
        Some("scrape-token-0123456789")
    );
    assert_eq!(s.database.statement_timeout_ms, 5000);
    assert_eq!(s.database.lock_timeout_ms, 10_000);
    assert_eq!(
        s.server.webhook_listen.map(|a| a.to_string()).as_deref(),
        Some("0.0.0.0:8081")
    );
    assert_eq!(s.engine.max_providers_per_org, 7);
    assert_eq!(s.metrics.queue_poll_secs, 5);
    assert_eq!(
        s.database.url.as_ref().map(Secret::expose),
        Some("postgresql://u@localhost/db")
    );
    assert_eq!(s.server.max_body_bytes, 4096);
    assert_eq!(s.database.pool_max_size, 8);
    assert_eq!(s.environment, Environment::Production);
}

#[test]
fn production_refuses_to_start_without_secrets() {
    let s = Settings::load(&FakeEnv(vec![("MSGENGINE_ENV", "production")])).expect("loads");
    assert!(s
        .validate()
        .is_err_and(|e| e.contains("MSGENGINE_ADMIN_TOKEN")));
    let s = Settings::load(&FakeEnv(vec![
        ("MSGENGINE_ENV", "production"),
        ("MSGENGINE_ADMIN_TOKEN", "0123456789abcdef0123456789abcdef"),
    ]))
    .expect("loads");
    assert!(s
        .validate()
        .is_err_and(|e| e.contains("MSGENGINE_MASTER_KEYS")));
}

#[test]
fn bad_values_are_refused_in_words() {
    assert!(Settings::load(&FakeEnv(vec![("MSGENGINE_ENV", "staging")])).is_err());
    let s = Settings::load(&FakeEnv(vec![("MSGENGINE_ADMIN_TOKEN", "short")])).expect("loads");
    assert!(s.validate().is_err_and(|e| e.contains("32 characters")));
    let s = Settings::load(&FakeEnv(vec![("MSGENGINE__METRICS__QUEUE_POLL_SECS", "0")]))
        .expect("loads");
    assert!(s.validate().is_err_and(|e| e.contains("queue_poll_secs")));
    let s = Settings::load(&FakeEnv(vec![(
        "MSGENGINE__METRICS__BEARER_TOKEN",
        "short",
    )]))
    .expect("loads");
    assert!(s.validate().is_err_and(|e| e.contains("bearer_token")));
    let s = Settings::load(&FakeEnv(vec![(
        "MSGENGINE__DATABASE__STATEMENT_TIMEOUT_MS",
        "5",
    )]))
    .expect("loads");
    assert!(s
        .validate()
        .is_err_and(|e| e.contains("statement_timeout_ms")));
}
