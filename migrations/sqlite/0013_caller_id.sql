-- Caller-ID pools (`[caller_id]`): the number each attempt presented, the number a contact keeps
-- for its retries, and the runner's latest health figures per number.
ALTER TABLE attempts ADD COLUMN caller_id TEXT;        -- E.164 presented on this attempt
ALTER TABLE contacts ADD COLUMN caller_id TEXT;        -- E.164 its retries present
-- The health history read back at start: a campaign's attempts since an instant.
CREATE INDEX attempts_started ON attempts (campaign_id, started_at);
CREATE TABLE caller_id_health (
    campaign_id  TEXT PRIMARY KEY,
    numbers      TEXT NOT NULL,                        -- JSON array of per-number figures
    updated_at   INTEGER NOT NULL
);
