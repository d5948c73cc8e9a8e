-- peel's store: a conversation is a tree of contents; a session is a named pointer to one of them.

-- Every large value once, by SHA-256 of its bytes: images, and thought signatures (often as large as the images).
CREATE TABLE blobs (
    hash  TEXT PRIMARY KEY,   -- lowercase hex SHA-256 of bytes
    bytes BLOB NOT NULL
);

-- One Gemini `Content` a row. Parts are JSON as received, with base64 values replaced by {"$blob": hash, ...}.
CREATE TABLE contents (
    id         INTEGER PRIMARY KEY,
    parent_id  INTEGER REFERENCES contents(id),
    depth      INTEGER NOT NULL,            -- contents above this one; a model content answers turn (depth + 1) / 2
    role       TEXT NOT NULL CHECK (role IN ('user', 'model')),
    parts      TEXT NOT NULL,
    meta       TEXT NOT NULL DEFAULT '{}',  -- model turns: settings used, usage, finish reason, timing, image sizes
    created_at INTEGER NOT NULL             -- unix milliseconds
);
CREATE INDEX contents_by_parent ON contents(parent_id);

-- Which blobs a content uses, so unreachable blobs can be found without parsing JSON.
CREATE TABLE content_blobs (
    content_id INTEGER NOT NULL REFERENCES contents(id) ON DELETE CASCADE,
    hash       TEXT NOT NULL REFERENCES blobs(hash),
    PRIMARY KEY (content_id, hash)
) WITHOUT ROWID;
CREATE INDEX content_blobs_by_hash ON content_blobs(hash);

CREATE TABLE sessions (
    id             INTEGER PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    head_id        INTEGER REFERENCES contents(id),   -- newest model content; NULL for an empty session
    settings       TEXT NOT NULL DEFAULT '{}',        -- model, aspect, size, ... for the next turns
    origin_session TEXT,                              -- the session this one branched from, when it did
    origin_head_id INTEGER REFERENCES contents(id),   -- where it branched
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,                  -- last turn or change
    used_at        INTEGER NOT NULL                   -- last opened; `peel -r` resumes the newest
);
