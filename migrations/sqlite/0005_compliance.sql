-- Compliance audit: dials refused for compliance, counted per campaign and reason, and the
-- abandonment policy each runner answers to, published with its pacing snapshot for `status`.

CREATE TABLE compliance_refusals (
    campaign_id  TEXT NOT NULL,
    reason       TEXT NOT NULL,      -- outside_hours | holiday | dnc | abandon_cap | attempt_limit | min_gap | recent_abandon
    count        INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, reason)
);

ALTER TABLE pacing_snapshots ADD COLUMN abandon_policy TEXT NOT NULL DEFAULT 'both';
ALTER TABLE pacing_snapshots ADD COLUMN abandon_cap REAL NOT NULL DEFAULT 0.03;
ALTER TABLE pacing_snapshots ADD COLUMN amd_false_positive_rate REAL NOT NULL DEFAULT 0;

-- Per-contact history lookups (last abandoned call) by contact.
CREATE INDEX attempts_contact_outcome ON attempts (contact_id, outcome);
