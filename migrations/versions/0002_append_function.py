"""append_events(): a whole group-committed batch decided and written inside PostgreSQL.

Why a function: appends are serialised by one advisory lock (that is what makes positions commit in
order), so the time the lock is held is the log's throughput ceiling. Deciding in the client needs
several round trips while holding it; here the lock is taken, the batch decided and written, and the
transaction committed within a single statement sent in autocommit mode.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# The one lock every append transaction takes ("chln" "log" 1).
APPEND_LOCK_KEY = 0x63686C6E_6C6F6701


def upgrade() -> None:
    op.execute(
        f"""
        CREATE FUNCTION append_events(
            stream_ids    text[],         -- one entry per append request ...
            expected      integer[],      --   NULL: any version; n: the stream must be at n (0: no stream)
            counts        integer[],      --   how many of the events below belong to the request
            sources       text[],         --   inbox key, NULL when the request has none
            external_ids  text[],
            sha256s       bytea[],
            types         text[],         -- ... one entry per event, requests' events in order
            data          bytea[],        --   JSON objects, UTF-8
            metadata      bytea[],
            occurred_at   timestamptz[]
        ) RETURNS TABLE (outcome text, version integer, positions bigint[])
        LANGUAGE plpgsql
        -- PL/pgSQL caches a plan per statement and session; one made while the inbox was tiny could
        -- scan it whole forever after. Every lookup here is an index lookup and nothing needs a table
        -- scan, so rule scans out: cached plans stay right, and nothing is re-planned under the lock.
        SET enable_seqscan = off
        AS $$
        DECLARE
            n integer := coalesce(array_length(stream_ids, 1), 0);
            streams text[];                 -- distinct streams of the batch ...
            versions integer[];             -- ... and their current versions, kept up to date below
            known_sha bytea[];              -- per request: the inbox row already stored, if any
            known_position bigint[];
            claimed text[] := '{{}}';       -- per request: its delivery key once appended in this batch
            outcomes text[] := '{{}}';
            new_versions integer[] := '{{}}';
            first_row integer[] := '{{}}';  -- per request: index of its first event row (NULL if none)
            original integer[] := '{{}}';   -- per request: the earlier request of this batch it repeats
            row_stream text[] := '{{}}';    -- per event row to insert
            row_version integer[] := '{{}}';
            row_event integer[] := '{{}}';  -- index into types/data/metadata/occurred_at
            inserted bigint[] := '{{}}';    -- per event row: its position
            recorded timestamptz;
            next_event integer := 1;
            s integer;
            key text;
            actual integer;
            earlier integer;
        BEGIN
            PERFORM pg_advisory_xact_lock({APPEND_LOCK_KEY});
            recorded := clock_timestamp();  -- after the lock, so it never goes back as positions go up

            -- Correlated subqueries: one index lookup per stream and per delivery.
            SELECT array_agg(d.stream_id),
                   array_agg((SELECT coalesce(max(e.version), 0) FROM events e
                               WHERE e.stream_id = d.stream_id))
              INTO streams, versions
              FROM (SELECT DISTINCT u.stream_id FROM unnest(stream_ids) AS u(stream_id)) d;
            SELECT array_agg((SELECT i.payload_sha256 FROM inbox i
                               WHERE i.source = k.source AND i.external_id = k.external_id) ORDER BY k.r),
                   array_agg((SELECT i.position FROM inbox i
                               WHERE i.source = k.source AND i.external_id = k.external_id) ORDER BY k.r)
              INTO known_sha, known_position
              FROM unnest(sources, external_ids) WITH ORDINALITY AS k(source, external_id, r);

            FOR r IN 1 .. n LOOP
                key := sources[r] || E'\\x1f' || external_ids[r];
                s := array_position(streams, stream_ids[r]);
                actual := versions[s];
                earlier := CASE WHEN key IS NULL THEN NULL ELSE array_position(claimed, key) END;
                IF known_position[r] IS NOT NULL THEN
                    outcomes[r] := CASE WHEN known_sha[r] = sha256s[r] THEN 'duplicate' ELSE 'conflict' END;
                ELSIF earlier IS NOT NULL THEN
                    original[r] := earlier;
                    outcomes[r] := CASE WHEN sha256s[earlier] = sha256s[r]
                                        THEN 'duplicate' ELSE 'conflict' END;
                ELSIF expected[r] IS NOT NULL AND expected[r] <> actual THEN
                    outcomes[r] := 'wrong_version';
                    new_versions[r] := actual;
                ELSE
                    outcomes[r] := 'appended';
                    IF counts[r] > 0 THEN
                        first_row[r] := coalesce(array_length(row_stream, 1), 0) + 1;
                    END IF;
                    FOR k IN 1 .. counts[r] LOOP
                        row_stream := row_stream || stream_ids[r];
                        row_version := row_version || (actual + k);
                        row_event := row_event || (next_event + k - 1);
                    END LOOP;
                    versions[s] := actual + counts[r];
                    new_versions[r] := actual + counts[r];
                    claimed[r] := key;
                END IF;
                next_event := next_event + counts[r];
            END LOOP;

            IF array_length(row_stream, 1) > 0 THEN
                -- Rows are inserted in ORDER BY ord so positions grow with versions inside each stream;
                -- each row's position is then found again by its (stream_id, version).
                WITH written AS (
                    INSERT INTO events (stream_id, version, type, data, metadata, occurred_at, recorded_at)
                    SELECT w.stream_id, w.version, types[w.e], convert_from(data[w.e], 'UTF8')::jsonb,
                           convert_from(metadata[w.e], 'UTF8')::jsonb, occurred_at[w.e], recorded
                      FROM unnest(row_stream, row_version, row_event)
                           WITH ORDINALITY AS w(stream_id, version, e, ord)
                     ORDER BY w.ord
                    RETURNING events.position, events.stream_id, events.version
                )
                SELECT array_agg(x.position ORDER BY w.ord) INTO inserted
                  FROM unnest(row_stream, row_version) WITH ORDINALITY AS w(stream_id, version, ord)
                  JOIN written x ON x.stream_id = w.stream_id AND x.version = w.version;
                PERFORM pg_notify('chargeline_events', (SELECT max(p) FROM unnest(inserted) AS p)::text);
            END IF;

            INSERT INTO inbox (source, external_id, payload_sha256, position)
            SELECT sources[r], external_ids[r], sha256s[r], inserted[first_row[r]]
              FROM generate_subscripts(stream_ids, 1) AS r
             WHERE outcomes[r] = 'appended' AND sources[r] IS NOT NULL;

            -- A duplicate or a conflict answers with the original delivery's (first) position; the
            -- caller keeps a conflicting body aside in inbox_conflicts.
            FOR r IN 1 .. n LOOP
                outcome := outcomes[r];
                version := new_versions[r];
                positions := CASE
                    WHEN outcomes[r] = 'appended' AND counts[r] > 0
                        THEN inserted[first_row[r] : first_row[r] + counts[r] - 1]
                    WHEN outcomes[r] IN ('duplicate', 'conflict')
                        THEN ARRAY[coalesce(known_position[r], inserted[first_row[original[r]]])]
                    ELSE '{{}}'::bigint[] END;
                RETURN NEXT;
            END LOOP;
        END
        $$
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION append_events")
