-- Faster traffic_daily and pages_daily (issue 14, item 2), still exact and
-- replay-safe. Both read narrower, id-hashed state that materialised views
-- keep up to date; the rows already in sessions and events are copied in
-- once here (a copy repeated after an interrupted run changes nothing: the
-- states are replay-safe). Migration 0003 stays as it was; its traffic_daily
-- and pages_daily views are replaced below, and pages_daily's String-keyed
-- state and its two MVs are dropped.
--
-- Ids are compared by their 64-bit SipHash (sipHash64): two different
-- sessions (or visitors, or page_view events) of one row's group would have
-- to share a hash to be counted once. uniqExact over a String compares
-- 128-bit hashes for the same reason; the 64-bit ones halve what every
-- query reads and hashes.

-- traffic_daily_sessions: one narrow row per session, so that FINAL keeps
-- one row per session as `sessions FINAL` did, at a fraction of the
-- columns. It is keyed by the view's row first (group_key, the hash of
-- day, source and medium: a replayed session is the same row, so it lands
-- on the same key), then visitor and session: FINAL then hands the GROUP
-- BY each row's sessions together. Not partitioned: FINAL on 18.16 merges
-- every part in one stream, and month partitions only add parts to merge.
CREATE TABLE IF NOT EXISTS {db}.traffic_daily_sessions (
    day          Date,
    source       String,
    medium       String,
    group_key    UInt64,
    visitor_key  UInt64,
    session_key  UInt64,
    new_visitor  UInt8,
    page_views   UInt32,
    duration_ms  UInt64,
    bounce       UInt8
) ENGINE = ReplacingMergeTree
ORDER BY (group_key, visitor_key, session_key);

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
    is_bounce                                 AS bounce
FROM {db}.sessions;

INSERT INTO {db}.traffic_daily_sessions (day, source, medium, group_key, visitor_key, session_key, new_visitor, page_views, duration_ms, bounce)
SELECT
    toDate(start), source, medium, sipHash64(toDate(start), source, medium), sipHash64(visitor_id), sipHash64(session_id),
    toUInt8(cohort_day = toDate(start)), page_views, toUInt64(end_ms - start_ms), is_bounce
FROM {db}.sessions;

DROP TABLE IF EXISTS {db}.traffic_daily;

-- Durations are summed in integer milliseconds, so the mean is exact and
-- independent of order (as in 0003).
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
        any(day)                                 AS day,
        any(source)                              AS source,
        any(medium)                              AS medium,
        count()                                  AS sessions,
        uniqExact(visitor_key)                   AS visitors,
        uniqExactIf(visitor_key, new_visitor = 1) AS new_visitors,
        sum(page_views)                          AS page_views,
        sum(duration_ms)                         AS duration_ms,
        countIf(bounce = 1)                      AS bounces
    FROM {db}.traffic_daily_sessions FINAL
    GROUP BY group_key
);

-- pages_daily_keyed_state: pages_daily's distinct counts as uniqExact
-- states of 64-bit keys (session ids; visitor and event id of page views).
CREATE TABLE IF NOT EXISTS {db}.pages_daily_keyed_state (
    day               Date,
    page              String,
    entries_state     AggregateFunction(uniqExactIf, UInt64, UInt8),
    exits_state       AggregateFunction(uniqExactIf, UInt64, UInt8),
    bounces_state     AggregateFunction(uniqExactIf, UInt64, UInt8),
    page_views_state  AggregateFunction(uniqExactIf, UInt64, UInt8)
) ENGINE = AggregatingMergeTree
ORDER BY (day, page);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.pages_daily_keyed_sessions_mv TO {db}.pages_daily_keyed_state AS
SELECT
    toDate(start)                                                AS day,
    splitByChar('#', splitByChar('?', tupleElement(p, 2))[1])[1] AS page,
    uniqExactIfState(sipHash64(session_id), tupleElement(p, 1) = 1)                   AS entries_state,
    uniqExactIfState(sipHash64(session_id), tupleElement(p, 1) = 2)                   AS exits_state,
    uniqExactIfState(sipHash64(session_id), tupleElement(p, 1) = 1 AND is_bounce = 1) AS bounces_state,
    uniqExactIfState(toUInt64(0), toUInt8(0))                                         AS page_views_state
FROM {db}.sessions
ARRAY JOIN arrayFilter(x -> tupleElement(x, 2) != '', [(toUInt8(1), entry_url), (toUInt8(2), exit_url)]) AS p
GROUP BY day, page;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.pages_daily_keyed_events_mv TO {db}.pages_daily_keyed_state AS
SELECT
    toDate(session_start)                                         AS day,
    splitByChar('#', splitByChar('?', url)[1])[1]                 AS page,
    uniqExactIfState(toUInt64(0), toUInt8(0))                     AS entries_state,
    uniqExactIfState(toUInt64(0), toUInt8(0))                     AS exits_state,
    uniqExactIfState(toUInt64(0), toUInt8(0))                     AS bounces_state,
    uniqExactIfState(sipHash64(visitor_id, event_id), toUInt8(1)) AS page_views_state
FROM {db}.events
WHERE type = 'page_view' AND session_id != '' AND url != ''
GROUP BY day, page;

INSERT INTO {db}.pages_daily_keyed_state
SELECT
    toDate(start)                                                AS day,
    splitByChar('#', splitByChar('?', tupleElement(p, 2))[1])[1] AS page,
    uniqExactIfState(sipHash64(session_id), tupleElement(p, 1) = 1),
    uniqExactIfState(sipHash64(session_id), tupleElement(p, 1) = 2),
    uniqExactIfState(sipHash64(session_id), tupleElement(p, 1) = 1 AND is_bounce = 1),
    uniqExactIfState(toUInt64(0), toUInt8(0))
FROM {db}.sessions
ARRAY JOIN arrayFilter(x -> tupleElement(x, 2) != '', [(toUInt8(1), entry_url), (toUInt8(2), exit_url)]) AS p
GROUP BY day, page;

INSERT INTO {db}.pages_daily_keyed_state
SELECT
    toDate(session_start)                         AS day,
    splitByChar('#', splitByChar('?', url)[1])[1] AS page,
    uniqExactIfState(toUInt64(0), toUInt8(0)),
    uniqExactIfState(toUInt64(0), toUInt8(0)),
    uniqExactIfState(toUInt64(0), toUInt8(0)),
    uniqExactIfState(sipHash64(visitor_id, event_id), toUInt8(1))
FROM {db}.events
WHERE type = 'page_view' AND session_id != '' AND url != ''
GROUP BY day, page;

DROP TABLE IF EXISTS {db}.pages_daily;

CREATE VIEW IF NOT EXISTS {db}.pages_daily AS
SELECT day, page, entries, exits, bounces, page_views,
       if(entries = 0, 0, bounces / entries)     AS bounce_rate,
       if(page_views = 0, 0, exits / page_views) AS exit_rate
FROM
(
    SELECT day, page,
           uniqExactIfMerge(entries_state)    AS entries,
           uniqExactIfMerge(exits_state)      AS exits,
           uniqExactIfMerge(bounces_state)    AS bounces,
           uniqExactIfMerge(page_views_state) AS page_views
    FROM {db}.pages_daily_keyed_state
    GROUP BY day, page
)
WHERE entries > 0 OR exits > 0 OR page_views > 0;

DROP TABLE IF EXISTS {db}.pages_daily_sessions_mv;

DROP TABLE IF EXISTS {db}.pages_daily_events_mv;

DROP TABLE IF EXISTS {db}.pages_daily_state;
