-- Batch API jobs (`peel batch`): a job is kept from before it is submitted until its results are stored, so
-- `peel batch list|status|wait|fetch|cancel` work from any later terminal, and a result is stored once.
CREATE TABLE batches (
    id            INTEGER PRIMARY KEY,                               -- the number peel shows
    name          TEXT UNIQUE,                                       -- batches/{id} on the server; NULL until submitted
    model         TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    source        TEXT NOT NULL,                                     -- the prompts file, as given
    state         TEXT NOT NULL,                                     -- the last state seen (BATCH_STATE_...)
    stats         TEXT NOT NULL DEFAULT '{}',                        -- the last batchStats seen
    input         TEXT,                                              -- 'inline' or 'file' (the Files API upload)
    uploaded_file TEXT,                                              -- files/{id} of the requests file
    into_session  INTEGER REFERENCES sessions(id) ON DELETE SET NULL, -- --into: the session the takes go to
    into_parent   INTEGER REFERENCES contents(id) ON DELETE SET NULL, -- the content every request continues from
    created_at    INTEGER NOT NULL,                                  -- unix milliseconds
    updated_at    INTEGER NOT NULL,
    fetched_at    INTEGER                                            -- when every result was stored
);

-- What each key of a job stands for, and what became of it.
CREATE TABLE batch_requests (
    batch_id   INTEGER NOT NULL REFERENCES batches(id) ON DELETE CASCADE,
    key        TEXT NOT NULL,                                        -- the request's key in the job
    line       INTEGER NOT NULL,                                     -- its line in the prompts file
    prompt     TEXT NOT NULL,
    user_parts TEXT NOT NULL,                                        -- the prompt content, large values as blob references
    settings   TEXT NOT NULL,                                        -- model, aspect, size, ... of this request
    model_id   INTEGER REFERENCES contents(id) ON DELETE SET NULL,   -- the answer, once stored
    session    TEXT,                                                 -- the session it was stored in
    error      TEXT,                                                 -- why it has no answer, when it failed
    PRIMARY KEY (batch_id, key)
) WITHOUT ROWID;

-- The blobs the prompts of a job use (reference images), kept while the job is: no content refers to them yet.
CREATE TABLE batch_blobs (
    batch_id INTEGER NOT NULL REFERENCES batches(id) ON DELETE CASCADE,
    hash     TEXT NOT NULL REFERENCES blobs(hash),
    PRIMARY KEY (batch_id, hash)
) WITHOUT ROWID;
CREATE INDEX batch_blobs_by_hash ON batch_blobs(hash);
