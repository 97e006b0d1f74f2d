-- Issue 26: each history entry names the hand-off attempt it belongs to (the callback's attempt
-- when the entry was written: 0 before the first hand-off), so a timeline can say "handed over as
-- attempt 2". Entries written before this migration have none.
ALTER TABLE callback_history ADD COLUMN attempt BIGINT;
