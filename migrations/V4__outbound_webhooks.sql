-- Outbound webhooks: an organization's own endpoint that receives the
-- engine's status events, and the durable queue of deliveries to it.

-- One endpoint per organization. `secret` is sealed under the key ring
-- (AES-256-GCM, bound to the organization and this row), like provider
-- secrets; `secret_last4` is what the API shows. `events` filters by message
-- state (NULL: every state).
CREATE TABLE org_webhook_endpoints (
    id              uuid        PRIMARY KEY,
    organization_id uuid        NOT NULL UNIQUE REFERENCES organizations (id),
    url             text        NOT NULL,
    secret          bytea       NOT NULL,
    secret_last4    text        NOT NULL,
    enabled         boolean     NOT NULL DEFAULT true,
    events          text[],
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- One row per event to deliver; its id is the event id the receiver
-- deduplicates by (the same on every retry). A claimed row's
-- `next_attempt_at` is pushed forward as a lease, so a crashed node's
-- deliveries are retried by another. Exactly one of `delivered_at` /
-- `failed_at` is set once finished.
CREATE TABLE org_webhook_deliveries (
    id              uuid        PRIMARY KEY,
    endpoint_id     uuid        NOT NULL REFERENCES org_webhook_endpoints (id) ON DELETE CASCADE,
    organization_id uuid        NOT NULL,
    payload         jsonb       NOT NULL,
    attempts        int4        NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    last_status     int4,
    delivered_at    timestamptz,
    failed_at       timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX org_webhook_deliveries_due_idx ON org_webhook_deliveries (next_attempt_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
CREATE INDEX org_webhook_deliveries_endpoint_idx ON org_webhook_deliveries (endpoint_id, created_at);
