-- The lifecycle metric catalogue (SPEC §6.1) and the columns it needs.
--
-- ADD COLUMN IF NOT EXISTS is a syntax error on ClickHouse 18.16: the
-- migration runner (sql/migrate.go) runs such a statement without IF NOT
-- EXISTS when system.columns does not list the column and skips it when it
-- does, so this file stays idempotent on every version; current releases
-- (the chDB check) run it as written.
ALTER TABLE {db}.events ADD COLUMN IF NOT EXISTS ces Nullable(UInt8);
ALTER TABLE {db}.events ADD COLUMN IF NOT EXISTS trial UInt8;
ALTER TABLE {db}.events ADD COLUMN IF NOT EXISTS plan String;
-- The start of the event's session (1970-01-01 without one): pages_daily
-- counts a page view on the day its session starts.
ALTER TABLE {db}.events ADD COLUMN IF NOT EXISTS session_start DateTime('UTC');
-- The visitor's cohort day (traffic_daily's new visitors) and whether this
-- is the visitor's first session (visitor_conversion_daily).
ALTER TABLE {db}.sessions ADD COLUMN IF NOT EXISTS cohort_day Date;
ALTER TABLE {db}.sessions ADD COLUMN IF NOT EXISTS first_session UInt8;

-- traffic_daily: plain view over sessions FINAL. Its sums (page views,
-- durations) cannot be kept replay-safe in aggregate states without one
-- row per session, which is what sessions already is. Durations are summed
-- in integer milliseconds, so the mean is exact and independent of order.
CREATE VIEW IF NOT EXISTS {db}.traffic_daily AS
SELECT
    day,
    source,
    medium,
    sessions,
    visitors,
    new_visitors,
    toUInt64(visitors - new_visitors)                 AS returning_visitors,
    page_views,
    if(sessions = 0, 0, page_views / sessions)        AS pages_per_session,
    if(sessions = 0, 0, duration_ms / 1000 / sessions) AS avg_session_duration_s,
    if(sessions = 0, 0, bounces / sessions)           AS bounce_rate
FROM
(
    SELECT
        toDate(start)                                  AS day,
        source,
        medium,
        count()                                        AS sessions,
        uniqExact(visitor_id)                          AS visitors,
        uniqExactIf(visitor_id, cohort_day = toDate(start)) AS new_visitors,
        sum(page_views)                                AS page_views,
        sum(end_ms - start_ms)                         AS duration_ms,
        countIf(is_bounce = 1)                         AS bounces
    FROM {db}.sessions FINAL
    GROUP BY day, source, medium
);

-- visitor_conversion_daily: distinct session ids, MV-backed.
CREATE TABLE IF NOT EXISTS {db}.visitor_conversion_daily_state (
    day             Date,
    visitor_type    String,
    sessions_state  AggregateFunction(uniqExact, String),
    converted_state AggregateFunction(uniqExactIf, String, UInt8)
) ENGINE = AggregatingMergeTree
ORDER BY (day, visitor_type);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.visitor_conversion_daily_mv TO {db}.visitor_conversion_daily_state AS
SELECT
    toDate(start)                                AS day,
    if(first_session = 1, 'new', 'returning')    AS visitor_type,
    uniqExactState(session_id)                   AS sessions_state,
    uniqExactIfState(session_id, orders > 0)     AS converted_state
FROM {db}.sessions
GROUP BY day, visitor_type;

CREATE VIEW IF NOT EXISTS {db}.visitor_conversion_daily AS
SELECT day, visitor_type, sessions, converted_sessions,
       if(sessions = 0, 0, converted_sessions / sessions) AS conversion_rate
FROM
(
    SELECT day, visitor_type,
           uniqExactMerge(sessions_state)     AS sessions,
           uniqExactIfMerge(converted_state)  AS converted_sessions
    FROM {db}.visitor_conversion_daily_state
    GROUP BY day, visitor_type
)
WHERE sessions > 0;

-- pages_daily: distinct sessions (entries, exits, bounces) from sessions and
-- distinct page_view events from events, both MV-backed into one state
-- table. A page is the url up to its first '?' or '#'; an event without a
-- url has no page.
CREATE TABLE IF NOT EXISTS {db}.pages_daily_state (
    day               Date,
    page              String,
    entries_state     AggregateFunction(uniqExactIf, String, UInt8),
    exits_state       AggregateFunction(uniqExactIf, String, UInt8),
    bounces_state     AggregateFunction(uniqExactIf, String, UInt8),
    page_views_state  AggregateFunction(uniqExactIf, String, String, UInt8)
) ENGINE = AggregatingMergeTree
ORDER BY (day, page);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.pages_daily_sessions_mv TO {db}.pages_daily_state AS
SELECT
    toDate(start)                                                AS day,
    splitByChar('#', splitByChar('?', tupleElement(p, 2))[1])[1] AS page,
    uniqExactIfState(session_id, tupleElement(p, 1) = 1)                   AS entries_state,
    uniqExactIfState(session_id, tupleElement(p, 1) = 2)                   AS exits_state,
    uniqExactIfState(session_id, tupleElement(p, 1) = 1 AND is_bounce = 1) AS bounces_state,
    uniqExactIfState(session_id, session_id, toUInt8(0))                   AS page_views_state
FROM {db}.sessions
ARRAY JOIN arrayFilter(x -> tupleElement(x, 2) != '', [(toUInt8(1), entry_url), (toUInt8(2), exit_url)]) AS p
GROUP BY day, page;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.pages_daily_events_mv TO {db}.pages_daily_state AS
SELECT
    toDate(session_start)                             AS day,
    splitByChar('#', splitByChar('?', url)[1])[1]     AS page,
    uniqExactIfState(visitor_id, toUInt8(0))          AS entries_state,
    uniqExactIfState(visitor_id, toUInt8(0))          AS exits_state,
    uniqExactIfState(visitor_id, toUInt8(0))          AS bounces_state,
    uniqExactIfState(visitor_id, event_id, toUInt8(1)) AS page_views_state
FROM {db}.events
WHERE type = 'page_view' AND session_id != '' AND url != ''
GROUP BY day, page;

CREATE VIEW IF NOT EXISTS {db}.pages_daily AS
SELECT day, page, entries, exits, bounces, page_views,
       if(entries = 0, 0, bounces / entries)  AS bounce_rate,
       if(page_views = 0, 0, exits / page_views) AS exit_rate
FROM
(
    SELECT day, page,
           uniqExactIfMerge(entries_state)    AS entries,
           uniqExactIfMerge(exits_state)      AS exits,
           uniqExactIfMerge(bounces_state)    AS bounces,
           uniqExactIfMerge(page_views_state) AS page_views
    FROM {db}.pages_daily_state
    GROUP BY day, page
)
WHERE entries > 0 OR exits > 0 OR page_views > 0;

-- satisfaction_monthly: one row per survey, review or referral event (by
-- visitor and event id; a replay replaces it), late ones included, MV-backed;
-- the view counts them with FINAL. Sums are of integers, so the means are
-- exact.
CREATE TABLE IF NOT EXISTS {db}.satisfaction_items (
    month      Date,
    visitor_id String,
    event_id   String,
    type       String,
    nps        Nullable(UInt8),
    csat       Nullable(UInt8),
    ces        Nullable(UInt8),
    rating     Nullable(UInt8)
) ENGINE = ReplacingMergeTree
ORDER BY (month, visitor_id, event_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.satisfaction_items_mv TO {db}.satisfaction_items AS
SELECT toStartOfMonth(ts) AS month, visitor_id, event_id, toString(type) AS type, nps, csat, ces, rating
FROM {db}.events
WHERE type IN ('survey', 'review', 'referral');

CREATE VIEW IF NOT EXISTS {db}.satisfaction_monthly AS
SELECT
    month,
    nps_responses, promoters, passives, detractors,
    if(nps_responses = 0, 0, 100 * (toInt64(promoters) - toInt64(detractors)) / nps_responses) AS nps,
    csat_responses,
    if(csat_responses = 0, 0, 100 * csat_satisfied / csat_responses) AS csat,
    if(csat_responses = 0, 0, csat_sum / csat_responses)             AS csat_avg,
    ces_responses,
    if(ces_responses = 0, 0, ces_sum / ces_responses)                AS ces_avg,
    reviews,
    if(reviews = 0, 0, rating_sum / reviews)                         AS avg_rating,
    referrals
FROM
(
    SELECT
        month,
        countIf(type = 'survey' AND isNotNull(nps))                    AS nps_responses,
        countIf(type = 'survey' AND nps >= 9)                          AS promoters,
        countIf(type = 'survey' AND nps >= 7 AND nps <= 8)             AS passives,
        countIf(type = 'survey' AND nps <= 6)                          AS detractors,
        countIf(type = 'survey' AND isNotNull(csat))                   AS csat_responses,
        countIf(type = 'survey' AND csat >= 4)                         AS csat_satisfied,
        sumIf(toUInt64(assumeNotNull(csat)), type = 'survey' AND isNotNull(csat)) AS csat_sum,
        countIf(type = 'survey' AND isNotNull(ces))                    AS ces_responses,
        sumIf(toUInt64(assumeNotNull(ces)), type = 'survey' AND isNotNull(ces))   AS ces_sum,
        countIf(type = 'review')                                       AS reviews,
        sumIf(toUInt64(assumeNotNull(rating)), type = 'review')        AS rating_sum,
        countIf(type = 'referral')                                     AS referrals
    FROM {db}.satisfaction_items FINAL
    GROUP BY month
)
WHERE nps_responses + csat_responses + ces_responses + reviews + referrals > 0;

-- trial_conversion_monthly: per visitor, the first trial start and the
-- last conversion (order_completed or non-trial subscription_started):
-- min and max, so a replay changes nothing. MV-backed.
CREATE TABLE IF NOT EXISTS {db}.trial_visitors_state (
    visitor_id             String,
    first_trial_state      AggregateFunction(minIf, UInt64, UInt8),
    last_conversion_state  AggregateFunction(maxIf, UInt64, UInt8)
) ENGINE = AggregatingMergeTree
ORDER BY visitor_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.trial_visitors_mv TO {db}.trial_visitors_state AS
SELECT
    visitor_id,
    minIfState(ts_ms, type = 'subscription_started' AND trial = 1) AS first_trial_state,
    maxIfState(ts_ms, type = 'order_completed' OR (type = 'subscription_started' AND trial = 0)) AS last_conversion_state
FROM {db}.events
WHERE type IN ('order_completed', 'subscription_started')
GROUP BY visitor_id;

CREATE VIEW IF NOT EXISTS {db}.trial_conversion_monthly AS
SELECT month, trials, converted, if(trials = 0, 0, converted / trials) AS trial_conversion_rate
FROM
(
    SELECT
        toStartOfMonth(toDateTime(intDiv(first_trial, 1000), 'UTC')) AS month,
        count()                                   AS trials,
        countIf(last_conversion > first_trial)    AS converted
    FROM
    (
        SELECT visitor_id,
               minIfMerge(first_trial_state)     AS first_trial,
               maxIfMerge(last_conversion_state) AS last_conversion
        FROM {db}.trial_visitors_state
        GROUP BY visitor_id
    )
    WHERE first_trial > 0
    GROUP BY month
);

-- revenue_daily gains avg_order_value = revenue / orders (refunds not
-- subtracted), a Decimal truncated to 4 places; 0 without orders (revenue
-- is then 0, so dividing by greatest(orders, 1) gives it).
DROP TABLE IF EXISTS {db}.revenue_daily;

CREATE VIEW IF NOT EXISTS {db}.revenue_daily AS
SELECT
    day,
    currency,
    countIf(kind = 'order')        AS orders,
    sumIf(amount, kind = 'order')  AS revenue,
    sumIf(amount, kind = 'refund') AS refunds,
    revenue - refunds              AS net_revenue,
    uniqExactIf(visitor_id, kind = 'order') AS customers,
    revenue / greatest(orders, 1)  AS avg_order_value
FROM
(
    SELECT day, currency, kind, item_id, any(visitor_id) AS visitor_id, any(amount) AS amount
    FROM {db}.revenue_items
    GROUP BY day, currency, kind, item_id
)
GROUP BY day, currency;

-- retention_monthly: plain view. S and E come from the churn states (as
-- churn_monthly's active_at_start); customers and repeat customers are
-- cumulative over the distinct orders of converted visitors
-- (revenue_items, late orders included), by the day of each order.
CREATE VIEW IF NOT EXISTS {db}.retention_monthly AS
SELECT
    month,
    customers_at_start,
    new_customers,
    customers_at_end,
    if(customers_at_start = 0, 0, (toInt64(customers_at_end) - toInt64(new_customers)) / customers_at_start) AS retention_rate,
    customers,
    repeat_customers,
    if(customers = 0, 0, repeat_customers / customers) AS repeat_purchase_rate
FROM
(
    SELECT month, customers_at_start, new_customers, customers_at_end
    FROM
    (
        SELECT
            groupArray(month)        AS month_arr,
            groupArray(conversions)  AS new_arr,
            groupArray(toInt64(conversions) + toInt64(reactivations) - toInt64(churns)) AS net_arr,
            arrayCumSum(net_arr)     AS net_cum_arr,
            arrayMap((c, n) -> toUInt64(c - n), net_cum_arr, net_arr) AS start_arr,
            arrayMap(c -> toUInt64(c), net_cum_arr) AS end_arr
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
    ARRAY JOIN
        month_arr AS month,
        new_arr AS new_customers,
        start_arr AS customers_at_start,
        end_arr AS customers_at_end
) AS rows
ANY LEFT JOIN
(
    SELECT month, sumIf(firsts, first_month <= month) AS customers, sumIf(seconds, second_month <= month) AS repeat_customers
    FROM
    (
        SELECT DISTINCT month FROM
        (
            SELECT addMonths(first_month, arrayJoin(range(toUInt64(dateDiff('month', first_month, last_month) + 1)))) AS month
            FROM (SELECT minIf(month, conversions > 0) AS first_month, max(month) AS last_month FROM {db}.churn_monthly_totals)
        )
    ) AS months
    CROSS JOIN
    (
        SELECT first_month, second_month, count() AS firsts, countIf(has_second) AS seconds
        FROM
        (
            SELECT
                visitor_id,
                arraySort(groupArray(first_day)) AS days,
                toStartOfMonth(days[1])          AS first_month,
                length(days) >= 2                AS has_second,
                toStartOfMonth(if(has_second, days[2], days[1])) AS second_month
            FROM
            (
                SELECT visitor_id, item_id, min(day) AS first_day
                FROM {db}.revenue_items
                WHERE kind = 'order'
                  AND visitor_id IN (SELECT visitor_id FROM {db}.lifecycle_transitions WHERE stage = 'conversion')
                GROUP BY visitor_id, item_id
            )
            GROUP BY visitor_id
        )
        GROUP BY first_month, second_month, has_second
    ) AS firsts
    GROUP BY month
) AS cumulative USING month;

-- clv_cohort_monthly: plain view. A customer's cohort is the month of their
-- conversion; their orders (one per order_id) and refunds (one per event)
-- from revenue_items, late ones included, by month and currency. Amounts are
-- summed in ten-thousandths (Int64) for arrayCumSum, which 18.16 does not
-- run on Decimal.
CREATE VIEW IF NOT EXISTS {db}.clv_cohort_monthly AS
SELECT
    cohort_month,
    currency,
    month_offset,
    cohort_customers,
    ordering_customers,
    toDecimal128(net_units, 4) / 10000                       AS net_revenue,
    toDecimal128(cum_units, 4) / 10000                       AS cumulative_net_revenue,
    toDecimal128(cum_units, 4) / 10000 / cohort_customers     AS clv
FROM
(
    SELECT
        cohort_month, currency, cohort_customers,
        groupArray(month_offset)       AS offset_arr,
        groupArray(ordering_customers) AS ordering_arr,
        groupArray(net_units)          AS net_arr,
        arrayCumSum(net_arr)           AS cum_arr
    FROM
    (
        SELECT cohort_month, currency, cohort_customers, month_offset, ordering_customers, net_units
        FROM
        (
            WITH (SELECT toStartOfMonth(max(day)) FROM {db}.revenue_items) AS last_month
            SELECT pairs.cohort_month AS cohort_month, currency, cohort_customers,
                   toUInt64(arrayJoin(range(toUInt64(dateDiff('month', pairs.cohort_month, last_month) + 1)))) AS month_offset
            FROM
            (
                SELECT cohort_month, currency
                FROM
                (
                    SELECT visitor_id, currency
                    FROM {db}.revenue_items
                    WHERE kind = 'order'
                ) AS ordered ALL INNER JOIN
                (
                    SELECT visitor_id, toStartOfMonth(min(ts)) AS cohort_month
                    FROM {db}.lifecycle_transitions
                    WHERE stage = 'conversion'
                    GROUP BY visitor_id
                ) AS cohorts USING visitor_id
                GROUP BY cohort_month, currency
            ) AS pairs
            ALL INNER JOIN
            (
                SELECT cohort_month, count() AS cohort_customers
                FROM
                (
                    SELECT visitor_id, toStartOfMonth(min(ts)) AS cohort_month
                    FROM {db}.lifecycle_transitions
                    WHERE stage = 'conversion'
                    GROUP BY visitor_id
                )
                GROUP BY cohort_month
            ) AS x USING cohort_month
        ) AS grid
        ANY LEFT JOIN
        (
            SELECT cohort_month, currency, toUInt64(dateDiff('month', cohort_month, toStartOfMonth(day))) AS month_offset,
                   uniqExactIf(visitor_id, kind = 'order') AS ordering_customers,
                   sum(if(kind = 'order', 1, -1) * toInt64(toDecimal128(amount, 4) * 10000)) AS net_units
            FROM
            (
                SELECT day, currency, kind, item_id, any(visitor_id) AS visitor_id, any(amount) AS amount
                FROM {db}.revenue_items
                GROUP BY day, currency, kind, item_id
            ) AS items ALL INNER JOIN
            (
                SELECT visitor_id, toStartOfMonth(min(ts)) AS cohort_month
                FROM {db}.lifecycle_transitions
                WHERE stage = 'conversion'
                GROUP BY visitor_id
            ) AS cohorts USING visitor_id
            WHERE toStartOfMonth(day) >= cohort_month
            GROUP BY cohort_month, currency, month_offset
        ) AS monthly USING cohort_month, currency, month_offset
        ORDER BY cohort_month, currency, month_offset
    )
    GROUP BY cohort_month, currency, cohort_customers
)
ARRAY JOIN offset_arr AS month_offset, ordering_arr AS ordering_customers, net_arr AS net_units, cum_arr AS cum_units;
