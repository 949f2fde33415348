-- Post-call analysis: call records, the outbox (durable jobs) and the delivery log.
-- Instants are INTEGER milliseconds since the Unix epoch (UTC), as in 0001.

CREATE TABLE call_records (
    call_id               TEXT PRIMARY KEY,          -- "c<contact>a<attempt>": stable across restarts
    trunk_call_id         TEXT NOT NULL,
    campaign_id           TEXT NOT NULL,
    contact_id            INTEGER NOT NULL REFERENCES contacts(id),
    attempt               INTEGER NOT NULL,
    agent_id              TEXT NOT NULL,
    caller_number         TEXT NOT NULL,             -- our caller id, E.164
    callee_number         TEXT NOT NULL,             -- the contact, E.164
    dialed_at             INTEGER NOT NULL,
    answered_at           INTEGER,
    first_agent_speech_at INTEGER,
    ended_at              INTEGER NOT NULL,
    outcome               TEXT NOT NULL,
    disposition           TEXT NOT NULL,
    transcript            TEXT NOT NULL DEFAULT '[]', -- JSON [{role, text, at}]
    tool_events           TEXT NOT NULL DEFAULT '[]', -- JSON [{name, arguments, at}]
    analysis              TEXT,                       -- JSON, set by the analyze job
    analyzed_at           INTEGER,
    UNIQUE (contact_id, attempt)
);

CREATE INDEX call_records_campaign ON call_records (campaign_id, ended_at);

CREATE TABLE outbox (
    id               INTEGER PRIMARY KEY,
    campaign_id      TEXT NOT NULL,
    order_key        TEXT NOT NULL,          -- jobs sharing a key run one at a time, in id order
    kind             TEXT NOT NULL,          -- analyze | webhook | crm | follow_up
    event            TEXT,                   -- webhook event type, when there is one
    idempotency_key  TEXT NOT NULL UNIQUE,   -- sent as X-Webhook-Id; stable across retries and crashes
    payload          TEXT NOT NULL,          -- JSON; a webhook's raw body is stored so retries resend the same bytes
    state            TEXT NOT NULL DEFAULT 'pending',  -- pending | running | done | dead
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    next_run_at      INTEGER NOT NULL,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);

CREATE INDEX outbox_due ON outbox (state, next_run_at);
CREATE INDEX outbox_order ON outbox (order_key, id);

CREATE TABLE outbox_deliveries (
    id          INTEGER PRIMARY KEY,
    job_id      INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    latency_ms  INTEGER NOT NULL,
    status      INTEGER,                    -- HTTP status, when a response came back
    error       TEXT
);

CREATE INDEX outbox_deliveries_job ON outbox_deliveries (job_id);
