-- The pacing state each campaign runner publishes for `dialerd status`: mode, dial ratio and the
-- outcome probabilities its estimators hold. Measured abandonment is computed from `attempts`.
CREATE TABLE pacing_snapshots (
    campaign_id  TEXT PRIMARY KEY,
    updated_at   INTEGER NOT NULL,
    mode         TEXT NOT NULL,
    dial_ratio   REAL NOT NULL,   -- (dialing + talking) / slots
    p_human      REAL NOT NULL,
    p_machine    REAL NOT NULL,
    p_no_answer  REAL NOT NULL,
    p_early      REAL NOT NULL,   -- busy or failed
    calls_observed INTEGER NOT NULL
);

CREATE INDEX attempts_answered ON attempts (campaign_id, answered_at);
