-- Answers recorded from the journal of arrived answers (`<db>.arrived/`), by entry id, so an entry recorded by one
-- peel is never recorded again by another (or by the same one after a crash between its commit and removing the file).
CREATE TABLE IF NOT EXISTS arrivals (
    id          TEXT PRIMARY KEY,                                   -- the journal entry's id
    model_id    INTEGER REFERENCES contents(id) ON DELETE SET NULL, -- the answer it became
    recorded_at INTEGER NOT NULL                                    -- unix milliseconds
);
CREATE INDEX IF NOT EXISTS arrivals_by_model ON arrivals(model_id);
