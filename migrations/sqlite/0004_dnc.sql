-- Do-not-call lists: one global list and one per campaign, and the DNC files already imported.
-- Instants are INTEGER milliseconds since the Unix epoch (UTC), as in 0001.

CREATE TABLE dnc (
    scope       TEXT NOT NULL,              -- 'global' or a campaign id
    phone_e164  TEXT NOT NULL,
    source      TEXT NOT NULL,              -- cli | file:<name> | opt_out:<call id>
    reason      TEXT,
    added_at    INTEGER NOT NULL,           -- first time the number was listed in this scope
    PRIMARY KEY (scope, phone_e164)
) WITHOUT ROWID;

-- Lookups by number across scopes (the primary key already serves scope + number).
CREATE INDEX dnc_phone ON dnc (phone_e164);

-- One row per DNC file and scope: an unchanged file (same SHA-256) is skipped.
CREATE TABLE dnc_imports (
    scope        TEXT NOT NULL,             -- 'global' or a campaign id
    file         TEXT NOT NULL,             -- the file's path (canonical when it could be resolved)
    file_sha256  TEXT NOT NULL,             -- lower-case hex
    rows         INTEGER NOT NULL,
    accepted     INTEGER NOT NULL,
    rejected     INTEGER NOT NULL,
    added        INTEGER NOT NULL,          -- entries that were not on the list before
    imported_at  INTEGER NOT NULL,
    PRIMARY KEY (scope, file)
);
