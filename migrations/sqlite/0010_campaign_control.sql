-- The operator's control of a campaign (`dialerd pause|resume|cancel`, `POST /v1/campaigns/{id}/…`),
-- kept apart from `state` (which the daemon derives from the file and the list): `running`,
-- `paused` or `cancelled`, who set it (`cli:<user>`, `api:<token name>`) and when. A claim is
-- conditional on `control = 'running'`, so nothing is dialled once a pause or cancel commits.
ALTER TABLE campaigns ADD COLUMN control TEXT NOT NULL DEFAULT 'running';
ALTER TABLE campaigns ADD COLUMN control_by TEXT;
ALTER TABLE campaigns ADD COLUMN control_at INTEGER;
