-- Several nodes on one database. Each node beats in `nodes`; each campaign is run by the one node
-- that holds its row in `campaign_leases` until `expires_at` (server clock, ms since the epoch).
-- `token` is the fencing token: it grows by one on every acquisition, and every claim or close
-- of an attempt is conditional on the token its node holds, so a node that lost its lease can no
-- longer write for the campaign. `lease_history` keeps who held each token from when, and
-- `attempts.lease_token` the token each attempt was claimed under.
CREATE TABLE nodes (
    id            TEXT PRIMARY KEY,
    host          TEXT NOT NULL,
    pid           BIGINT NOT NULL,
    started_at    BIGINT NOT NULL,
    heartbeat_at  BIGINT NOT NULL,
    stopped_at    BIGINT
);

CREATE TABLE campaign_leases (
    campaign_id  TEXT PRIMARY KEY,
    owner        TEXT,
    token        BIGINT NOT NULL,
    acquired_at  BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);

CREATE TABLE lease_history (
    campaign_id  TEXT NOT NULL,
    token        BIGINT NOT NULL,
    owner        TEXT NOT NULL,
    acquired_at  BIGINT NOT NULL,
    PRIMARY KEY (campaign_id, token)
);

ALTER TABLE attempts ADD COLUMN lease_token BIGINT;
