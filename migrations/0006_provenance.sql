-- Threads that mix models and sources: who made each answer, and contents' own unknown fields.

-- Content-level fields other than role and parts, exactly as received (a JSON object), sent back with the content;
-- NULL when there are none.
ALTER TABLE contents ADD COLUMN extra TEXT;

-- Which backend made each model content, beside the model already in meta.settings.model: the API (or a gateway)
-- or the offline stand-in, whose answers carry a model_version ending in "-offline". A model content whose meta
-- names no model (an import of a hand-made history) stays without: where it came from is not known.
UPDATE contents
SET meta = json_set(
    meta,
    '$.made_by',
    json_object(
        'backend',
        CASE WHEN json_extract(meta, '$.model_version') LIKE '%-offline' THEN 'offline' ELSE 'api' END
    )
)
WHERE role = 'model'
  AND json_valid(meta)
  AND json_extract(meta, '$.settings.model') IS NOT NULL
  AND json_extract(meta, '$.made_by') IS NULL;
