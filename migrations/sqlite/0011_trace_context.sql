-- Issue 25: the W3C trace context of a callback's booking (`traceparent`), so its hand-off can be
-- linked to the trace that booked it.
ALTER TABLE callbacks ADD COLUMN traceparent TEXT;
