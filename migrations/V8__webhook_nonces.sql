-- Single-use values of webhook signatures that do not cover the whole body.
-- Mailgun signs only `timestamp` + `token`, not `event-data`: without this,
-- a signature captured once could be replayed with other events for as long
-- as its timestamp passes the freshness check. The endpoint inserts the
-- token (ON CONFLICT DO NOTHING) with a digest of the body; the same token
-- with another body is refused, the same body again is a harmless retry
-- (its events deduplicate by id). Shared by every engine node on this
-- database. Rows are swept once past `expires_at` (the end of the
-- timestamp window); no foreign key, to keep the insert to one index.
CREATE TABLE webhook_nonces (
    provider_id uuid        NOT NULL,
    nonce       text        NOT NULL,
    body_sha256 bytea       NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (provider_id, nonce)
);

CREATE INDEX webhook_nonces_expires_idx ON webhook_nonces (expires_at);
