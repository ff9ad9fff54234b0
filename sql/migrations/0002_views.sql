-- The four BI views (SPEC §6). Materialised views keep replay-safe
-- aggregate states current as rows arrive (distinct counts of
-- deterministic ids; replacing tables keyed by order and event id); the
-- plain views turn them into one row per key with final numbers.

CREATE TABLE IF NOT EXISTS {db}.funnel_daily_state (
    cohort_day        Date,
    source            String,
    awareness_state   AggregateFunction(uniqExactIf, String, UInt8),
    acquisition_state AggregateFunction(uniqExactIf, String, UInt8),
    conversion_state  AggregateFunction(uniqExactIf, String, UInt8),
    retention_state   AggregateFunction(uniqExactIf, String, UInt8),
    advocacy_state    AggregateFunction(uniqExactIf, String, UInt8)
) ENGINE = AggregatingMergeTree
ORDER BY (cohort_day, source);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.funnel_daily_mv TO {db}.funnel_daily_state AS
SELECT
    cohort_day,
    source,
    uniqExactIfState(visitor_id, stage = 'awareness')   AS awareness_state,
    uniqExactIfState(visitor_id, stage = 'acquisition') AS acquisition_state,
    uniqExactIfState(visitor_id, stage = 'conversion')  AS conversion_state,
    uniqExactIfState(visitor_id, stage = 'retention')   AS retention_state,
    uniqExactIfState(visitor_id, stage = 'advocacy')    AS advocacy_state
FROM {db}.lifecycle_transitions
WHERE stage IN ('awareness', 'acquisition', 'conversion', 'retention', 'advocacy')
GROUP BY cohort_day, source;

CREATE VIEW IF NOT EXISTS {db}.funnel_daily AS
SELECT
    cohort_day,
    source,
    awareness,
    acquisition,
    conversion,
    retention,
    advocacy,
    if(awareness = 0, 0, acquisition / awareness)  AS acquisition_rate,
    if(acquisition = 0, 0, conversion / acquisition) AS conversion_rate,
    if(conversion = 0, 0, retention / conversion)   AS retention_rate,
    if(retention = 0, 0, advocacy / retention)      AS advocacy_rate
FROM
(
    SELECT
        cohort_day,
        source,
        uniqExactIfMerge(awareness_state)   AS awareness,
        uniqExactIfMerge(acquisition_state) AS acquisition,
        uniqExactIfMerge(conversion_state)  AS conversion,
        uniqExactIfMerge(retention_state)   AS retention,
        uniqExactIfMerge(advocacy_state)    AS advocacy
    FROM {db}.funnel_daily_state
    GROUP BY cohort_day, source
)
WHERE awareness > 0;

CREATE TABLE IF NOT EXISTS {db}.bounce_daily_state (
    day            Date,
    source         String,
    sessions_state AggregateFunction(uniqExact, String),
    bounces_state  AggregateFunction(uniqExactIf, String, UInt8)
) ENGINE = AggregatingMergeTree
ORDER BY (day, source);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.bounce_daily_mv TO {db}.bounce_daily_state AS
SELECT
    toDate(start) AS day,
    source,
    uniqExactState(session_id)                 AS sessions_state,
    uniqExactIfState(session_id, is_bounce = 1) AS bounces_state
FROM {db}.sessions
GROUP BY day, source;

CREATE VIEW IF NOT EXISTS {db}.bounce_daily AS
SELECT day, source, sessions, bounces, if(sessions = 0, 0, bounces / sessions) AS bounce_rate
FROM
(
    SELECT day, source, uniqExactMerge(sessions_state) AS sessions, uniqExactIfMerge(bounces_state) AS bounces
    FROM {db}.bounce_daily_state
    GROUP BY day, source
)
WHERE sessions > 0;

CREATE TABLE IF NOT EXISTS {db}.churn_monthly_state (
    month              Date,
    conversions_state  AggregateFunction(uniqExactIf, String, UInt8),
    churned_state      AggregateFunction(uniqExactIf, String, UInt64, UInt8),
    reactivated_state  AggregateFunction(uniqExactIf, String, UInt64, UInt8)
) ENGINE = AggregatingMergeTree
ORDER BY month;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.churn_monthly_mv TO {db}.churn_monthly_state AS
SELECT
    toStartOfMonth(ts) AS month,
    uniqExactIfState(visitor_id, stage = 'conversion')         AS conversions_state,
    uniqExactIfState(visitor_id, ts_ms, stage = 'churned')     AS churned_state,
    uniqExactIfState(visitor_id, ts_ms, stage = 'reactivated') AS reactivated_state
FROM {db}.lifecycle_transitions
WHERE stage IN ('conversion', 'churned', 'reactivated')
GROUP BY month;

CREATE VIEW IF NOT EXISTS {db}.churn_monthly_totals AS
SELECT
    month,
    uniqExactIfMerge(conversions_state) AS conversions,
    uniqExactIfMerge(churned_state)     AS churns,
    uniqExactIfMerge(reactivated_state) AS reactivations
FROM {db}.churn_monthly_state
GROUP BY month;

-- Months run from the first with a conversion to the last with any of the
-- three transitions, gaps included. Customers alternate conversion or
-- reactivation with churn, so the customers active at a month's start are
-- the conversions and reactivations before it minus the churns before it.
-- (No window functions or array closures: ClickHouse 18.16 has neither.)
CREATE VIEW IF NOT EXISTS {db}.churn_monthly AS
SELECT
    month,
    toUInt64(net_cum - net) AS active_at_start,
    churned,
    reactivated,
    if(active_at_start = 0, 0, churned / active_at_start) AS churn_rate
FROM
(
    SELECT
        groupArray(month)       AS month_arr,
        groupArray(churns)      AS churned_arr,
        groupArray(reactivations) AS reactivated_arr,
        groupArray(toInt64(conversions) + toInt64(reactivations) - toInt64(churns)) AS net_arr,
        arrayCumSum(net_arr)    AS net_cum_arr
    FROM
    (
        SELECT month, conversions, churns, reactivations
        FROM
        (
            SELECT addMonths(first_month, arrayJoin(range(toUInt64(dateDiff('month', first_month, last_month) + 1)))) AS month
            FROM
            (
                SELECT minIf(month, conversions > 0) AS first_month, max(month) AS last_month, countIf(conversions > 0) AS months_with_conversions
                FROM {db}.churn_monthly_totals
            )
            WHERE months_with_conversions > 0
        ) AS months
        ANY LEFT JOIN {db}.churn_monthly_totals USING month
        ORDER BY month
    )
)
ARRAY JOIN month_arr AS month, churned_arr AS churned, reactivated_arr AS reactivated, net_arr AS net, net_cum_arr AS net_cum;

-- One row per order (by order_id) and per refund (by event_id): a replayed
-- event replaces its row instead of adding revenue twice.
CREATE TABLE IF NOT EXISTS {db}.revenue_items (
    day        Date,
    currency   String,
    kind       String,
    item_id    String,
    visitor_id String,
    amount     Decimal(18, 4)
) ENGINE = ReplacingMergeTree
ORDER BY (day, currency, kind, item_id);

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

CREATE VIEW IF NOT EXISTS {db}.revenue_daily AS
SELECT
    day,
    currency,
    countIf(kind = 'order')        AS orders,
    sumIf(amount, kind = 'order')  AS revenue,
    sumIf(amount, kind = 'refund') AS refunds,
    revenue - refunds              AS net_revenue,
    uniqExactIf(visitor_id, kind = 'order') AS customers
FROM
(
    SELECT day, currency, kind, item_id, any(visitor_id) AS visitor_id, any(amount) AS amount
    FROM {db}.revenue_items
    GROUP BY day, currency, kind, item_id
)
GROUP BY day, currency;
