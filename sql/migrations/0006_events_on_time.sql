-- events keeps an on-time row over a late one of the same event (issue
-- 13). A duplicate that arrives after the pipeline forgot its event id
-- (--lateness + --session-gap after its event time) is written as a late
-- event, late = 1 and no session, under the same (visitor_id, event_id):
-- ReplacingMergeTree kept the row inserted last, so the copy replaced the
-- original's session and stage. With on_time as its version the row with
-- late = 0 wins whatever the order of the inserts; between rows of the
-- same lateness the last inserted still wins, so a replay replaces its
-- rows as before. Writers do not send on_time: its DEFAULT computes it
-- (not MATERIALIZED: an 18.16 Distributed table, in the cluster form,
-- passes a materialised column on to its local tables, which refuse it).
--
-- 18.16 cannot change an engine: the table is rebuilt under another name,
-- the rows copied, and the two swapped by RENAME. The materialised views
-- that read events are dropped before the swap and created again after it
-- (as 0002, 0003 and 0005 define them): 18.16 finds a view's source by
-- name, but current releases lose it at a RENAME (measured with chDB
-- 26.7: neither table fired the view). Rows written to events between the
-- copy and the swap would be lost: stop the pipeline while this runs.
--
-- A rerun (an interrupted run, or one not recorded) copies the table
-- again, into a new one; nothing is lost at any statement: the old table
-- is dropped only once the new one holds its rows under its name.

DROP TABLE IF EXISTS {db}.events_pre0006;

CREATE TABLE IF NOT EXISTS {db}.events_0006 (
    event_id        String,
    ts              DateTime('UTC'),
    ts_ms           UInt64,
    type            Enum8('page_view' = 1, 'click' = 2, 'search' = 3, 'signup' = 4, 'login' = 5,
                          'add_to_cart' = 6, 'checkout_started' = 7, 'review' = 8, 'referral' = 9,
                          'survey' = 10, 'order_completed' = 11, 'order_refunded' = 12,
                          'subscription_started' = 13, 'subscription_cancelled' = 14),
    visitor_id      String,
    customer_id     String,
    session_id      String,
    stage           Enum8('none' = 0, 'awareness' = 1, 'acquisition' = 2, 'conversion' = 3, 'retention' = 4, 'advocacy' = 5),
    url             String,
    referrer        String,
    source          String,
    medium          String,
    campaign        String,
    device          String,
    country         String,
    order_id        String,
    amount          Decimal(18, 4),
    currency        String,
    rating          Nullable(UInt8),
    nps             Nullable(UInt8),
    csat            Nullable(UInt8),
    props           String,
    late            UInt8,
    kafka_topic     String,
    kafka_partition Int32,
    kafka_offset    Int64,
    ces             Nullable(UInt8),
    trial           UInt8,
    plan            String,
    session_start   DateTime('UTC'),
    on_time         UInt8 DEFAULT late = 0
) ENGINE = ReplacingMergeTree(on_time)
PARTITION BY toYYYYMM(ts)
ORDER BY (visitor_id, event_id);

INSERT INTO {db}.events_0006 (event_id, ts, ts_ms, type, visitor_id, customer_id, session_id, stage, url, referrer,
    source, medium, campaign, device, country, order_id, amount, currency, rating, nps, csat, props, late,
    kafka_topic, kafka_partition, kafka_offset, ces, trial, plan, session_start)
SELECT event_id, ts, ts_ms, type, visitor_id, customer_id, session_id, stage, url, referrer,
    source, medium, campaign, device, country, order_id, amount, currency, rating, nps, csat, props, late,
    kafka_topic, kafka_partition, kafka_offset, ces, trial, plan, session_start
FROM {db}.events;

DROP TABLE IF EXISTS {db}.revenue_items_mv;

DROP TABLE IF EXISTS {db}.satisfaction_items_mv;

DROP TABLE IF EXISTS {db}.trial_visitors_mv;

DROP TABLE IF EXISTS {db}.pages_daily_keyed_events_mv;

RENAME TABLE {db}.events TO {db}.events_pre0006, {db}.events_0006 TO {db}.events;

-- The views as 0002, 0003 and 0005 created them.
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.revenue_items_mv TO {db}.revenue_items AS
SELECT
    toDate(ts) AS day,
    currency,
    if(type = 'order_completed', 'order', 'refund') AS kind,
    if(type = 'order_completed', order_id, event_id) AS item_id,
    visitor_id,
    amount
FROM {db}.events
WHERE type IN ('order_completed', 'order_refunded');

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.satisfaction_items_mv TO {db}.satisfaction_items AS
SELECT toStartOfMonth(ts) AS month, visitor_id, event_id, toString(type) AS type, nps, csat, ces, rating
FROM {db}.events
WHERE type IN ('survey', 'review', 'referral');

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.trial_visitors_mv TO {db}.trial_visitors_state AS
SELECT
    visitor_id,
    minIfState(ts_ms, type = 'subscription_started' AND trial = 1) AS first_trial_state,
    maxIfState(ts_ms, type = 'order_completed' OR (type = 'subscription_started' AND trial = 0)) AS last_conversion_state
FROM {db}.events
WHERE type IN ('order_completed', 'subscription_started')
GROUP BY visitor_id;

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

DROP TABLE IF EXISTS {db}.events_pre0006;
