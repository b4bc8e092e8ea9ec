-- Every provider for real: channel-specific message content, inbound
-- provider events (deduplicated, kept until matched), and suppressions.

-- MessageExtras (reply-to, headers, tags, attachments; WhatsApp template and
-- media) as JSON; NULL for plain messages, which are nearly all of them.
ALTER TABLE messages ADD COLUMN extras jsonb;

-- One row per provider event received through a verified webhook. The
-- primary key deduplicates replays: a provider retrying or an attacker
-- replaying a captured request changes nothing. `applied_at` is NULL while
-- the event names a message we cannot find yet (a webhook can overtake our
-- own status write); the scheduler retries those.
CREATE TABLE webhook_events (
    provider_id         uuid        NOT NULL,
    event_id            text        NOT NULL,
    organization_id     uuid        NOT NULL,
    provider_message_id text,
    -- Our message id, when the provider echoed it or once matched.
    message_id          uuid,
    state               text,
    engagement          text,
    raw_status          text        NOT NULL,
    recipient           text,
    error_code          text,
    reason              text,
    suppress            text        CHECK (suppress IN ('bounce', 'complaint', 'unsubscribe')),
    occurred_at         timestamptz NOT NULL,
    received_at         timestamptz NOT NULL DEFAULT now(),
    applied_at          timestamptz,
    PRIMARY KEY (provider_id, event_id)
);
CREATE INDEX webhook_events_unmatched_idx ON webhook_events (received_at)
    WHERE applied_at IS NULL;
CREATE INDEX webhook_events_message_idx ON webhook_events (message_id)
    WHERE message_id IS NOT NULL;

-- Addresses and numbers an organization must not send to. `recipient` is
-- normalised: lower-case email address, or E.164 number.
CREATE TABLE suppressions (
    organization_id uuid        NOT NULL REFERENCES organizations (id),
    recipient       text        NOT NULL,
    reason          text        NOT NULL CHECK (reason IN ('bounce', 'complaint', 'unsubscribe', 'manual')),
    -- The provider connection whose event added it; NULL when added by the API.
    provider_id     uuid,
    note            text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, recipient)
);
