-- Branching, undo and retry: every turn stays stored while the session that made it lives.

-- The session that created a content. Its undone turns and earlier takes stay reachable through it (/redo, /tree,
-- /branch @3b); deleting the session lets them go unless another session's history still uses them.
ALTER TABLE contents ADD COLUMN session_id INTEGER REFERENCES sessions(id) ON DELETE SET NULL;
CREATE INDEX contents_by_session ON contents(session_id);
UPDATE contents SET session_id = (
    SELECT s.id FROM sessions s WHERE s.head_id = contents.id
);

-- Heads stepped back from by /undo, newest last; /redo pops one, a new turn clears them.
ALTER TABLE sessions ADD COLUMN redo TEXT NOT NULL DEFAULT '[]';
