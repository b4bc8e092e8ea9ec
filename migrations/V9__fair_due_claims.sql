-- The scheduler claims due messages organization by organization (issue 10:
-- every backlog is fair per tenant). Each active organization gets a quota of
-- its own oldest due rows per claim, so one tenant's million due retries
-- cannot hold back another tenant's ten. The due index therefore leads with
-- the organization; it replaces the global one (one index entry per message,
-- as before, on the hot insert path). Parking and unparking an organization's
-- messages, which filter on the organization, use it too.
CREATE INDEX messages_due_idx ON messages (organization_id, next_attempt_at)
    WHERE state IN ('scheduled', 'accepted', 'queued', 'sending');
DROP INDEX IF EXISTS messages_pending_idx;
