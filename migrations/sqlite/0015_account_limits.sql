-- A trunk account's limits shared by every process dialing through it (see the PostgreSQL
-- migration of the same name): `campaigns.trunk_account`, and the account's dial grants of the
-- last second as comma-separated ms since the epoch, oldest first.
ALTER TABLE campaigns ADD COLUMN trunk_account TEXT;
CREATE INDEX campaigns_trunk_account ON campaigns (trunk_account);

CREATE TABLE account_limits (
    account  TEXT PRIMARY KEY,
    grants   TEXT NOT NULL DEFAULT ''
);
