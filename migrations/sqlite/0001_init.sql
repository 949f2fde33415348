-- dialerd schema. Instants are INTEGER milliseconds since the Unix epoch (UTC),
-- so comparisons are exact and the same SQL ports to PostgreSQL (BIGINT).

CREATE TABLE campaigns (
    id          TEXT PRIMARY KEY,           -- file name without .toml
    name        TEXT NOT NULL,
    file        TEXT NOT NULL,
    state       TEXT NOT NULL,              -- active | paused | finished
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE contacts (
    id               INTEGER PRIMARY KEY,
    campaign_id      TEXT NOT NULL REFERENCES campaigns(id),
    phone_e164       TEXT NOT NULL,
    extension        TEXT,
    alternate_phones TEXT NOT NULL DEFAULT '[]',   -- JSON array of E.164 strings
    first_name       TEXT,
    last_name        TEXT,
    email            TEXT,
    timezone         TEXT NOT NULL,                -- IANA zone the calling window is read in
    custom_fields    TEXT NOT NULL DEFAULT '{}',   -- JSON object: other CSV columns
    source_line      INTEGER NOT NULL,             -- 1-based line in the CSV (header is line 1)
    status           TEXT NOT NULL DEFAULT 'pending',
    disposition      TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL DEFAULT 0,
    last_outcome     TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    UNIQUE (campaign_id, phone_e164)
);

CREATE INDEX contacts_due ON contacts (campaign_id, status, next_attempt_at);

CREATE TABLE attempts (
    id           INTEGER PRIMARY KEY,
    campaign_id  TEXT NOT NULL,
    contact_id   INTEGER NOT NULL REFERENCES contacts(id),
    attempt      INTEGER NOT NULL,
    phone_e164   TEXT NOT NULL,
    call_id      TEXT,
    state        TEXT NOT NULL,             -- dialing | answered | ended
    started_at   INTEGER NOT NULL,
    answered_at  INTEGER,
    ended_at     INTEGER,
    outcome      TEXT,
    disposition  TEXT,
    UNIQUE (contact_id, attempt)
);

CREATE INDEX attempts_open ON attempts (campaign_id, state);

CREATE TABLE imports (
    campaign_id  TEXT PRIMARY KEY,
    file         TEXT NOT NULL,
    file_sha256  TEXT NOT NULL,
    column_map   TEXT NOT NULL DEFAULT '',  -- JSON: column mapping, region, default zone used
    rows         INTEGER NOT NULL,
    accepted     INTEGER NOT NULL,
    rejected     INTEGER NOT NULL,
    duplicates   INTEGER NOT NULL,
    alternate_phones_dropped INTEGER NOT NULL,
    imported_at  INTEGER NOT NULL
);

CREATE TABLE import_rejects (
    campaign_id  TEXT NOT NULL,
    line         INTEGER NOT NULL,
    reason       TEXT NOT NULL,
    PRIMARY KEY (campaign_id, line)
);
