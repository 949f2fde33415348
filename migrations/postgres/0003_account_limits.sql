-- A trunk account's limits shared by every node dialing through it. `campaigns.trunk_account`
-- names the account a campaign dials through (set by its runner at start), so the calls in
-- progress on an account are its campaigns' open attempts. `account_limits.grants` holds the
-- account's dial grants of the last second (server clock, ms since the epoch, oldest first); a
-- claim locks the row, grants at most what the window and the concurrency limit allow, and
-- writes the window back in the same transaction.
ALTER TABLE campaigns ADD COLUMN trunk_account TEXT;
CREATE INDEX campaigns_trunk_account ON campaigns (trunk_account);

CREATE TABLE account_limits (
    account  TEXT PRIMARY KEY,
    grants   BIGINT[] NOT NULL DEFAULT '{}'
);
