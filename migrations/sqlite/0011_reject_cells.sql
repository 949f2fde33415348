-- The full reject report (`dialerd rejects`): each rejected row keeps its cells as read, so the
-- report needs neither the file nor that it be unchanged since the import.
-- `column_index`: 0-based position in the header of the column the reason names; NULL when the
-- row as a whole is bad (wrong field count). `fields`: JSON array of the row's cells as read
-- (invalid UTF-8 replaced by U+FFFD); NULL for rows stored before this migration.
ALTER TABLE import_rejects ADD COLUMN column_index INTEGER;
ALTER TABLE import_rejects ADD COLUMN fields TEXT;

-- The header of the file whose rejects `import_rejects` holds (JSON array of its cells as read),
-- written in the transaction that clears the campaign's rejects.
CREATE TABLE import_reject_headers (
    campaign_id  TEXT PRIMARY KEY,
    header       TEXT NOT NULL
);

-- Lists imported before this migration with rejects are read once more on the next start
-- (a re-import upserts data fields only, so progress is kept), which stores their cells.
UPDATE imports SET file_sha256 = '' WHERE rejected > 0;
