-- Issue 16: an API key's scope. "full" (every existing key) may do everything; "widget" keys, meant
-- to be placed in web pages, may do everything but list callbacks.
ALTER TABLE api_keys ADD COLUMN scope TEXT NOT NULL DEFAULT 'full';
