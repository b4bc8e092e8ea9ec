-- An organization's routing rules (issue 12). The rule itself is stored as
-- the API takes it (`rule`, validated by the domain before it is written);
-- the columns beside it are what listing and evaluation order need. The
-- router loads every rule of an organization when it loads its providers,
-- in (priority, id) order; first match wins.
CREATE TABLE routing_rules (
    id              uuid        PRIMARY KEY,
    organization_id uuid        NOT NULL REFERENCES organizations (id),
    name            text        NOT NULL,
    priority        integer     NOT NULL,
    enabled         boolean     NOT NULL,
    channel         text        NOT NULL CHECK (channel IN ('email', 'sms', 'whatsapp')),
    rule            jsonb       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX routing_rules_organization_idx ON routing_rules (organization_id, priority, id);


-- Each message's routing: its category and routing tags from the send body,
-- and the plan made when it was accepted (the rule that matched, the
-- providers in order with the reason for each, those left out, the
-- fallback settings). Retries and restarts follow the stored plan; the
-- status API explains it. NULL for messages accepted before this column.
ALTER TABLE messages ADD COLUMN routing jsonb;
