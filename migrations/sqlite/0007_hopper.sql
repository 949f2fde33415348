-- The hopper: the runner keeps a small buffer of the next due contacts and refills it in batches.
-- Every query on its hot path reads this partial index in order, so the cost of the next dial does
-- not grow with the list: the zones that have dialable contacts (a loose index scan, one seek per
-- zone), and per open zone the next due contacts by `next_attempt_at`, then `priority` (higher
-- first), then id. Only dialable rows are in it, so dialled contacts leave it.

ALTER TABLE contacts ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;

CREATE INDEX contacts_hopper ON contacts (campaign_id, timezone, next_attempt_at, priority DESC, id)
    WHERE status IN ('pending', 'scheduled');
