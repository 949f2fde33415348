-- AI abandonment (FTC TSR 16 CFR 310.4(b)(4)(i)): a person connected to an agent who hears no
-- agent speech within 2 s of the answer is abandoned. Each connected attempt keeps its answer →
-- first agent speech latency and whether that rule made it abandoned, so the measured abandonment
-- that seeds pacing after a restart and `dialerd status` count it.
ALTER TABLE attempts ADD COLUMN speech_latency_ms INTEGER;                    -- NULL: the agent never spoke (or not measured)
ALTER TABLE attempts ADD COLUMN speech_abandoned INTEGER NOT NULL DEFAULT 0;  -- 1: abandoned under the 2 s rule
