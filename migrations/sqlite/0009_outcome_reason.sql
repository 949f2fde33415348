-- Why an attempt ended as it did, when the trunk said (e.g. `twilio 21211: Invalid 'To' Phone
-- Number` for a number the trunk will never call). Shown by `dialerd export`.
ALTER TABLE attempts ADD COLUMN outcome_reason TEXT;
-- When the voicemail message was sent to the trunk (written before the request), so that a call
-- that ended while the daemon was down is closed `voicemail_left` only if it got the message.
ALTER TABLE attempts ADD COLUMN voicemail_at INTEGER;
