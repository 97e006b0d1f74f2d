-- Issue 27: a follow-up booked when the platform reports that the customer was not reached
-- names the callback it retries and how many follow-ups came before it (0: an original booking).
ALTER TABLE callbacks ADD COLUMN retry_of TEXT;
ALTER TABLE callbacks ADD COLUMN retry_number BIGINT NOT NULL DEFAULT 0;
