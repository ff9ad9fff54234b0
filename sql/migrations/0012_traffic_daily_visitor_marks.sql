-- traffic_daily counts its visitors as a sum of marks written by the
-- pipeline instead of distinct visitor ids at query time (issue 14: every
-- view in 100 ms on the 5M-event bench database).
--
-- sessions.first_of_day is 1 for a visitor's first session of the UTC day
-- of its start with that session's source and medium: exactly one session
-- per (visitor, day, source, medium) has it. A replayed session is the
-- same row with the same mark (the pipeline restores the visitor's pairs
-- of the day with its state), so visitors and new_visitors become sums
-- over distinct sessions. Only the session ids are still counted distinct,
-- to find the view rows that hold a replayed copy, which alone take the
-- slower path (sums over each session's first copy).
--
-- Rows of sessions written before this migration keep first_of_day = 0
-- (18.16 would rewrite the whole table to set them). traffic_daily_sessions
-- is rebuilt with the marks computed from its rows: per (day, source,
-- medium, visitor) the session with the least hashed id gets it, unless one
-- of them has it already (this migration run again). As in 0006, the table
-- is rebuilt under another name, the rows copied and the two swapped by
-- RENAME, its materialised view dropped before and created again after:
-- stop the pipeline while this runs. A rerun copies again, into a new
-- table; the old one is dropped only once the new one holds its rows under
-- its name.
--
-- first_of_day is the table's version: of two copies of a session, a merge
-- keeps a marked one (a copy without the mark is one written by 0005 run
-- again, which cannot know it).

ALTER TABLE {db}.sessions ADD COLUMN IF NOT EXISTS first_of_day UInt8;

ALTER TABLE {db}.traffic_daily_sessions ADD COLUMN IF NOT EXISTS first_of_day UInt8;

DROP TABLE IF EXISTS {db}.traffic_daily_sessions_pre0012;

CREATE TABLE IF NOT EXISTS {db}.traffic_daily_sessions_0012 (
    day          Date,
    source       String,
    medium       String,
    group_key    UInt64,
    visitor_key  UInt64,
    session_key  UInt64,
    new_visitor  UInt8,
    page_views   UInt32,
    duration_ms  UInt64,
    bounce       UInt8,
    first_of_day UInt8
) ENGINE = ReplacingMergeTree(first_of_day)
ORDER BY (group_key, visitor_key, session_key);

INSERT INTO {db}.traffic_daily_sessions_0012
SELECT day, source, medium, group_key, visitor_key,
       tupleElement(s, 1), tupleElement(s, 2), tupleElement(s, 3), tupleElement(s, 4), tupleElement(s, 5),
       if(marked, tupleElement(s, 6), toUInt8(tupleElement(s, 1) = first_key))
FROM
(
    SELECT group_key, visitor_key, any(day) AS day, any(source) AS source, any(medium) AS medium,
           groupArray((session_key, new_visitor, page_views, duration_ms, bounce, first_of_day)) AS visitor_sessions,
           min(session_key) AS first_key,
           max(first_of_day) = 1 AS marked
    FROM {db}.traffic_daily_sessions
    GROUP BY group_key, visitor_key
)
ARRAY JOIN visitor_sessions AS s;

DROP TABLE IF EXISTS {db}.traffic_daily_sessions_mv;

RENAME TABLE {db}.traffic_daily_sessions TO {db}.traffic_daily_sessions_pre0012, {db}.traffic_daily_sessions_0012 TO {db}.traffic_daily_sessions;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.traffic_daily_sessions_mv TO {db}.traffic_daily_sessions AS
SELECT
    toDate(start)                             AS day,
    source,
    medium,
    sipHash64(toDate(start), source, medium)  AS group_key,
    sipHash64(visitor_id)                     AS visitor_key,
    sipHash64(session_id)                     AS session_key,
    toUInt8(cohort_day = toDate(start))       AS new_visitor,
    page_views,
    toUInt64(end_ms - start_ms)               AS duration_ms,
    is_bounce                                 AS bounce,
    first_of_day
FROM {db}.sessions;

DROP TABLE IF EXISTS {db}.traffic_daily_sessions_pre0012;

-- traffic_daily: one pass sums every column per view row. A view row
-- with more rows than distinct sessions (a replayed copy not merged away
-- yet) takes its numbers over distinct sessions instead: the sums over the
-- first copy of each, visitors as the distinct sessions with a marked copy.
-- Only those view rows collect arrays (groupArrayIf): the IN subquery finds
-- them first, so the common case costs one distinct count of session ids
-- (arrayUniq, half the CPU of uniqExact here) and the sums. group_key is the
-- hash of (day, source, medium): grouping by all four costs less than any()
-- of the three.
DROP TABLE IF EXISTS {db}.traffic_daily;

CREATE VIEW IF NOT EXISTS {db}.traffic_daily AS
SELECT
    day,
    source,
    medium,
    sessions,
    visitors,
    new_visitors,
    toUInt64(visitors - new_visitors)                  AS returning_visitors,
    page_views,
    if(sessions = 0, 0, page_views / sessions)         AS pages_per_session,
    if(sessions = 0, 0, duration_ms / 1000 / sessions) AS avg_session_duration_s,
    if(sessions = 0, 0, bounces / sessions)            AS bounce_rate
FROM
(
    SELECT
        day,
        source,
        medium,
        if(replayed, toUInt64(arrayUniq(keys)), row_sessions)                                                  AS sessions,
        if(replayed, toUInt64(arrayUniq(arrayFilter((k, m) -> m = 1, keys, marks))), row_visitors)             AS visitors,
        if(replayed, toUInt64(arrayUniq(arrayFilter((k, m, n) -> m = 1 AND n = 1, keys, marks, news))), row_new_visitors) AS new_visitors,
        if(replayed, toUInt64(arraySum(arrayMap((x, c) -> if(c = 1, x, 0), views, arrayEnumerateUniq(keys)))), row_page_views)    AS page_views,
        if(replayed, toUInt64(arraySum(arrayMap((x, c) -> if(c = 1, x, 0), durations, arrayEnumerateUniq(keys)))), row_duration_ms) AS duration_ms,
        if(replayed, toUInt64(arraySum(arrayMap((x, c) -> if(c = 1, x, 0), bounced, arrayEnumerateUniq(keys)))), row_bounces)     AS bounces
    FROM
    (
        SELECT
            group_key IN (
                SELECT group_key FROM {db}.traffic_daily_sessions GROUP BY group_key HAVING count() != arrayUniq(groupArray(session_key))
            )                                                 AS replayed,
            day,
            source,
            medium,
            count()                                           AS row_sessions,
            toUInt64(sum(first_of_day))                       AS row_visitors,
            toUInt64(sum(first_of_day * new_visitor))         AS row_new_visitors,
            toUInt64(sum(page_views))                         AS row_page_views,
            toUInt64(sum(duration_ms))                        AS row_duration_ms,
            toUInt64(sum(bounce))                             AS row_bounces,
            groupArrayIf(session_key, replayed)               AS keys,
            groupArrayIf(first_of_day, replayed)              AS marks,
            groupArrayIf(new_visitor, replayed)               AS news,
            groupArrayIf(page_views, replayed)                AS views,
            groupArrayIf(duration_ms, replayed)               AS durations,
            groupArrayIf(bounce, replayed)                    AS bounced
        FROM {db}.traffic_daily_sessions
        GROUP BY group_key, day, source, medium
    )
);
