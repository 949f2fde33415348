-- The conversations API (`GET /v1/conversations`) and call recordings.
-- Newest first across every campaign, with a stable tie-break for the cursor.
CREATE INDEX call_records_ended ON call_records (ended_at, call_id);
-- The same order within one campaign (replaces the index without the tie-break).
DROP INDEX call_records_campaign;
CREATE INDEX call_records_campaign ON call_records (campaign_id, ended_at, call_id);
-- A recording callback names the trunk's call id only.
CREATE INDEX attempts_call_id ON attempts (call_id);
-- The trunk's recording of the call (`[trunk] record = true`), set by the recording callback,
-- which may come before or after the attempt is closed.
ALTER TABLE attempts ADD COLUMN recording_url TEXT;
