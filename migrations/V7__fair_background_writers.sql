-- Fairness in the shared background work (issue 10).

-- Provider events that can no longer match a message are closed: an event
-- naming no message at all (an opt-out reply) when it is recorded, any other
-- once it has stayed unmatched past the matching window. A closed event
-- leaves the late-matching scan, which now visits organizations one by one
-- (a quota each), so one tenant's unmatched events cannot hide another's.
ALTER TABLE webhook_events ADD COLUMN closed_at timestamptz;
DROP INDEX IF EXISTS webhook_events_unmatched_idx;
CREATE INDEX webhook_events_unmatched_idx ON webhook_events (organization_id, received_at)
    WHERE applied_at IS NULL AND closed_at IS NULL;

-- Outbound deliveries are claimed endpoint by endpoint (each its own quota
-- of its oldest due rows), so the due index leads with the endpoint.
DROP INDEX IF EXISTS org_webhook_deliveries_due_idx;
CREATE INDEX org_webhook_deliveries_due_idx ON org_webhook_deliveries (endpoint_id, next_attempt_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
