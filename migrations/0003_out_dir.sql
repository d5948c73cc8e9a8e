-- Where a session's images go: the absolute output folder it was created with (its images are written to
-- <out_dir>/<session name>/), so every turn of a thread lands in one folder wherever peel is resumed from.
-- NULL for sessions made before this column: peel fills it in the first time it opens them.
ALTER TABLE sessions ADD COLUMN out_dir TEXT;
