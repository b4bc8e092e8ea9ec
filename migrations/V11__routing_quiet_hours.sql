-- Quiet hours per organization (issue 12): messages of the listed
-- categories due inside the window, in the recipient's local time, are
-- deferred to its end. The settings are stored as the API takes them
-- (validated by the domain first); the router loads them with the
-- organization's providers and rules.
CREATE TABLE routing_quiet_hours (
    organization_id uuid        PRIMARY KEY REFERENCES organizations (id),
    settings        jsonb       NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
