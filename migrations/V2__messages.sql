-- The send pipeline: messages with their event history and attempts, the
-- idempotency keys of send requests, and per-organization send rates.

-- Per-organization admission rate (messages per second, burst); NULL means
-- the engine's default.
ALTER TABLE organizations
    ADD COLUMN rate_per_second integer CHECK (rate_per_second > 0),
    ADD COLUMN rate_burst      integer CHECK (rate_burst > 0);

-- Progress order of message states; must match MessageState::rank in the
-- domain crate. Used so a batched status write never moves a message back.
CREATE FUNCTION msgengine_state_rank(state text) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE state
        WHEN 'scheduled' THEN 0 WHEN 'accepted' THEN 1
        WHEN 'queued' THEN 2 WHEN 'sending' THEN 2
        WHEN 'sent' THEN 3 WHEN 'delivered' THEN 4 WHEN 'read' THEN 5
        ELSE 6 END
$$;

-- Whether a message may move from `cur` to `next`; mirrors
-- MessageState::can_advance_to.
CREATE FUNCTION msgengine_can_advance(cur text, next text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT cur <> next
       AND cur NOT IN ('failed', 'bounced', 'rejected', 'expired', 'read')
       AND msgengine_state_rank(next) >= msgengine_state_rank(cur)
       AND NOT (cur = 'delivered' AND next IN ('failed', 'bounced', 'rejected', 'expired'))
$$;

-- One row per message. The normal path writes it twice: the insert at accept
-- time (already leased to the accepting node, so it is dispatched from memory
-- right after the commit) and one final status update. `events` and
-- `attempts` are append-only JSON arrays (MessageEvent, Attempt).
CREATE TABLE messages (
    id                  uuid        PRIMARY KEY,
    -- No foreign key: the id always comes from the authenticated API key and
    -- organizations are disabled, never deleted; the FK check cost a third of
    -- every insert on the hottest table.
    organization_id     uuid        NOT NULL,
    channel             text        NOT NULL CHECK (channel IN ('email', 'sms', 'whatsapp')),
    state               text        NOT NULL,
    recipient           text        NOT NULL,
    sender              text,
    subject             text,
    body_text           text,
    body_html           text,
    metadata            jsonb,
    send_at             timestamptz,
    -- When the scheduler may (re)claim it: send_at, a retry's time, or now.
    next_attempt_at     timestamptz NOT NULL,
    -- The engine node holding it and until when; NULL when nobody does.
    lease_owner         uuid,
    lease_until         timestamptz,
    provider_id         uuid,
    provider_message_id text,
    attempt_count       integer     NOT NULL DEFAULT 0,
    attempts            jsonb       NOT NULL DEFAULT '[]'::jsonb,
    events              jsonb       NOT NULL DEFAULT '[]'::jsonb,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
-- The scheduler's work: scheduled, retrying and (after a crash) orphaned messages.
CREATE INDEX messages_pending_idx ON messages (next_attempt_at)
    WHERE state IN ('scheduled', 'accepted', 'queued', 'sending');
CREATE INDEX messages_lease_owner_idx ON messages (lease_owner)
    WHERE state IN ('scheduled', 'accepted', 'queued', 'sending');
CREATE INDEX messages_provider_message_idx ON messages (provider_id, provider_message_id)
    WHERE provider_message_id IS NOT NULL;

-- Idempotency-Key of send requests, per organization: the request's hash and
-- the response given, written in the same transaction as its messages.
CREATE TABLE idempotency_keys (
    organization_id uuid        NOT NULL REFERENCES organizations (id),
    key             text        NOT NULL,
    request_hash    bytea       NOT NULL,
    response        jsonb       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
