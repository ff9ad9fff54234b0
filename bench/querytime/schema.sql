-- The query-time peer's objects (bench/querytime), for ClickHouse 18.16.1
-- and later. Statements end with ";" at the end of a line. Placeholders:
-- {db}, {brokers}, {clickstream_topic}, {transactions_topic}, {group},
-- {session_gap_ms}, {churn_after_ms}, {lateness_ms}.

-- Raw events as they came, duplicates included, one row per record of
-- either topic. Typed columns extracted from the JSON at ingest
-- (ingest.sql); everything else is computed when a view is read.
CREATE TABLE {db}.events_raw (
    topic        UInt8,  -- 0 clickstream, 1 transactions (SPEC processing order)
    event_id     String,
    type         String,
    ts_ms        UInt64, -- epoch milliseconds, UTC
    visitor_id   String,
    customer_id  String,
    url          String,
    referrer     String,
    utm_source   String,
    utm_medium   String,
    utm_campaign String,
    order_id     String,
    amount       Decimal(18, 4),
    currency     String,
    rating       UInt8,
    nps          UInt8
) ENGINE = MergeTree
ORDER BY (visitor_id, ts_ms);

-- One Kafka table per topic, each record read whole into one String:
-- JSONEachRow cannot read ts, which is a string or a number (SPEC §2), into
-- any one column type on 18.16 (no JSONAsString or LineAsString there
-- either). TabSeparated with one column and a newline between messages
-- reads the record as it is, except that TSV unescaping turns a JSON escape
-- such as \" into " (the fields the views read carry none).
CREATE TABLE {db}.clickstream_queue (raw String)
ENGINE = Kafka
SETTINGS
    kafka_broker_list = '{brokers}',
    kafka_topic_list = '{clickstream_topic}',
    kafka_group_name = '{group}-clickstream',
    kafka_format = 'TabSeparated',
    kafka_row_delimiter = '\n',
    kafka_num_consumers = 1;

CREATE TABLE {db}.transactions_queue (raw String)
ENGINE = Kafka
SETTINGS
    kafka_broker_list = '{brokers}',
    kafka_topic_list = '{transactions_topic}',
    kafka_group_name = '{group}-transactions',
    kafka_format = 'TabSeparated',
    kafka_row_delimiter = '\n',
    kafka_num_consumers = 1;

-- Lambdas below read only their own arguments and constants: 18.16 loses
-- a column that a lambda captures from its query ("Unknown identifier")
-- depending on which columns the outer query selects. A value a lambda
-- needs is passed as another argument array instead: a flag per element,
-- an array shifted by one, or arrayResize replicating a value.

-- Every visitor's events as parallel arrays in processing order (ts, topic,
-- event_id), each (visitor_id, event_id) once: copies of an event are
-- identical, so they sort next to each other and a copy is an element whose
-- event_id equals its predecessor's. Deduplicating inside the per-visitor
-- arrays saves the GROUP BY (visitor_id, event_id) over all rows that a
-- separate dedup step would cost. source is the SPEC §4 source of each
-- event: utm_source, else the referrer's host, else (direct).
CREATE VIEW {db}.visitor_timelines AS
SELECT
    visitor_id,
    arrayFilter((x, keep) -> keep, ts_sorted, keep_arr)     AS ts_arr,
    arrayFilter((x, keep) -> keep, topic_sorted, keep_arr)  AS topic_arr,
    arrayFilter((x, keep) -> keep, type_sorted, keep_arr)   AS type_arr,
    arrayFilter((x, keep) -> keep, source_sorted, keep_arr) AS source_arr,
    arrayFilter((x, keep) -> keep, order_sorted, keep_arr)  AS order_arr,
    arrayFilter((x, keep) -> keep, rating_sorted, keep_arr) AS rating_arr,
    arrayFilter((x, keep) -> keep, nps_sorted, keep_arr)    AS nps_arr
FROM
(
    SELECT
        visitor_id,
        groupArray((ts_ms, topic, event_id))                        AS unsorted_keys,
        arraySort(unsorted_keys)                                    AS keys,
        arrayMap(k -> k.1, keys)                                    AS ts_sorted,
        arrayMap(k -> k.2, keys)                                    AS topic_sorted,
        arrayMap(k -> k.3, keys)                                    AS id_sorted,
        arrayMap((id, prev) -> id != prev, id_sorted, arrayPushFront(arrayPopBack(id_sorted), '')) AS keep_arr,
        arraySort((x, k) -> k, groupArray(type), unsorted_keys)     AS type_sorted,
        arraySort((x, k) -> k, groupArray(source), unsorted_keys)   AS source_sorted,
        arraySort((x, k) -> k, groupArray(order_id), unsorted_keys) AS order_sorted,
        arraySort((x, k) -> k, groupArray(rating), unsorted_keys)   AS rating_sorted,
        arraySort((x, k) -> k, groupArray(nps), unsorted_keys)      AS nps_sorted
    FROM
    (
        SELECT
            visitor_id, ts_ms, topic, event_id, type, order_id, rating, nps,
            lower(domain(if(position(referrer, '://') > 0, referrer, concat('//', referrer)))) AS referrer_host,
            multiIf(
                utm_source != '', utm_source,
                referrer_host != '', referrer_host,
                '(direct)') AS source
        FROM {db}.events_raw
    )
    GROUP BY visitor_id
);

-- Sessions (SPEC §4) of every visitor: clickstream events split where the
-- gap to the previous one exceeds the session gap. The orders of a session
-- are the order_completed events with ts in [start, end + gap): the
-- session windows' opening and closing marks and the orders are sorted
-- together (a close before an order at the same ms, an open before it), and
-- a session's orders are those counted between its open and its close. A
-- session is a bounce when it has one event, a page_view, and no order.
CREATE VIEW {db}.sessions_at_query_time AS
SELECT
    visitor_id,
    start_ms,
    end_ms,
    events,
    first_type,
    source,
    orders,
    toDate(toDateTime(intDiv(start_ms, 1000), 'UTC')) AS day,
    events = 1 AND first_type = 'page_view' AND orders = 0 AS is_bounce
FROM
(
    SELECT
        visitor_id,
        arrayFilter((t, topic) -> topic = 0, ts_arr, topic_arr)        AS click_ts,
        arrayFilter((y, topic) -> topic = 0, type_arr, topic_arr)      AS click_type,
        arrayFilter((s, topic) -> topic = 0, source_arr, topic_arr)    AS click_source,
        arrayFilter((t, y) -> y = 'order_completed', ts_arr, type_arr) AS order_ts,
        arrayMap((d, i) -> i = 1 OR d > {session_gap_ms}, arrayDifference(click_ts), arrayEnumerate(click_ts)) AS is_first,
        arrayPushBack(arrayPopFront(is_first), 1)                       AS is_last,
        arrayFilter((t, f) -> f, click_ts, is_first)                    AS starts,
        arrayFilter((t, l) -> l, click_ts, is_last)                     AS ends,
        arrayFilter((i, f) -> f, arrayEnumerate(click_ts), is_first)    AS first_idx,
        arrayMap((i, j) -> j - i, first_idx, arrayPushBack(arrayPopFront(first_idx), length(click_ts) + 1)) AS counts,
        arrayFilter((y, f) -> f, click_type, is_first)                  AS first_types,
        arrayFilter((s, f) -> f, click_source, is_first)                AS sources,
        -- marks: 1 opens a session's window, 0 closes it, 2 is an order
        arrayConcat(arrayMap(t -> 1, starts), arrayMap(t -> 0, ends), arrayMap(t -> 2, order_ts)) AS mark_kinds,
        arrayConcat(starts, arrayMap(t -> t + {session_gap_ms}, ends), order_ts)                   AS mark_ts,
        arraySort((k, t) -> (t, k), mark_kinds, mark_ts)                AS marks_sorted,
        arrayCumSum(arrayMap(k -> k = 2, marks_sorted))                 AS orders_so_far,
        arrayMap((at_open, at_close) -> at_close - at_open,
            arrayFilter((n, k) -> k = 1, orders_so_far, marks_sorted),
            arrayFilter((n, k) -> k = 0, orders_so_far, marks_sorted))  AS session_orders
    FROM {db}.visitor_timelines
    -- No clickstream event, no session; and the shifted arrays above
    -- (arrayPushBack of an empty array) would not match in length.
    WHERE has(topic_arr, 0)
)
ARRAY JOIN
    starts         AS start_ms,
    ends           AS end_ms,
    counts         AS events,
    first_types    AS first_type,
    sources        AS source,
    session_orders AS orders;

CREATE VIEW {db}.bounce_daily AS
SELECT
    day,
    source,
    sessions,
    bounces,
    if(sessions = 0, 0, bounces / sessions) AS bounce_rate
FROM
(
    SELECT day, source, count() AS sessions, countIf(is_bounce) AS bounces
    FROM {db}.sessions_at_query_time
    GROUP BY day, source
);

-- Lifecycle stages per visitor (SPEC §5), each stage with every earlier
-- one: awareness for everyone; acquisition on a signup or an order;
-- conversion on the first order_completed; retention on an order_completed
-- with another order_id, i.e. two distinct order_ids (or on advocacy);
-- advocacy on a referral, a review rated >= 4 or a survey with nps >= 9
-- after the first order in processing order (orders_before > 0).
-- cohort_day and source are those of the visitor's first event.
CREATE VIEW {db}.visitor_stages AS
SELECT
    visitor_id,
    toDate(toDateTime(intDiv(ts_arr[1], 1000), 'UTC')) AS cohort_day,
    source_arr[1]                                      AS source,
    has(type_arr, 'order_completed')                   AS converted,
    has(type_arr, 'signup') OR converted               AS acquired,
    arrayMap(y -> y = 'order_completed', type_arr)     AS is_order,
    arrayMap((n, o) -> n - o, arrayCumSum(is_order), is_order) AS orders_before,
    arrayExists(
        (b, y, r, n) -> b > 0 AND (y = 'referral' OR (y = 'review' AND r >= 4) OR (y = 'survey' AND n >= 9)),
        orders_before, type_arr, rating_arr, nps_arr)  AS advocate,
    advocate OR arrayReduce('uniqExact', arrayFilter((o, x) -> x, order_arr, is_order)) >= 2 AS retained
FROM {db}.visitor_timelines;

CREATE VIEW {db}.funnel_daily AS
SELECT
    cohort_day,
    source,
    awareness,
    acquisition,
    conversion,
    retention,
    advocacy,
    if(awareness = 0, 0, acquisition / awareness)    AS acquisition_rate,
    if(acquisition = 0, 0, conversion / acquisition) AS conversion_rate,
    if(conversion = 0, 0, retention / conversion)    AS retention_rate,
    if(retention = 0, 0, advocacy / retention)       AS advocacy_rate
FROM
(
    SELECT
        cohort_day,
        source,
        count()            AS awareness,
        countIf(acquired)  AS acquisition,
        countIf(converted) AS conversion,
        countIf(retained)  AS retention,
        countIf(advocate)  AS advocacy
    FROM {db}.visitor_stages
    GROUP BY cohort_day, source
);

-- Customer status transitions (SPEC §5): conversion, churned, reactivated.
-- The status is a set/reset state over the events from the first order
-- on: a gap longer than churn_after before an event (churn at the previous
-- event + churn_after), a subscription_cancelled, or the end of the data
-- with its deadline before now - lateness set "churned"; an order_completed
-- or subscription_started resets it. Triggers are put in order (the gap
-- before an event before the event itself, the end last); a transition is
-- a trigger that changes the state, i.e. differs from the trigger before
-- it (the first is compared with "active" at conversion).
-- kind: 1 churned, 2 reactivated, 3 conversion.
CREATE VIEW {db}.status_transitions AS
SELECT visitor_id, kind, ts_ms
FROM
(
    SELECT
        visitor_id,
        length(ts_arr)                                     AS n,
        arrayEnumerate(ts_arr)                             AS idx,
        arrayCumSum(arrayMap(y -> y = 'order_completed', type_arr)) AS orders_so_far,
        arrayMap((c, y) -> c - (y = 'order_completed'), orders_so_far, type_arr) AS orders_before,
        toUInt64(toUnixTimestamp(now())) * 1000 - {lateness_ms}     AS horizon_ms,
        arrayMap((b, d) -> b > 0 AND d > {churn_after_ms}, orders_before, arrayDifference(ts_arr)) AS gap_kind,
        arrayMap(t -> t + {churn_after_ms}, arrayPushFront(arrayPopBack(ts_arr), toUInt64(0)))      AS gap_ts,
        arrayMap((c, y) -> multiIf(
                c = 0, 0,
                y = 'subscription_cancelled', 1,
                y IN ('order_completed', 'subscription_started'), 2,
                0), orders_so_far, type_arr)               AS event_kind,
        ts_arr[n] + {churn_after_ms} < horizon_ms          AS end_kind,
        arrayConcat(arrayMap(i -> i * 2, idx), arrayMap(i -> i * 2 + 1, idx), [n * 2 + 2]) AS trigger_order,
        arraySort((x, o) -> o, arrayConcat(gap_kind, event_kind, [end_kind]), trigger_order) AS kinds_sorted,
        arraySort((x, o) -> o, arrayConcat(gap_ts, ts_arr, [ts_arr[n] + {churn_after_ms}]), trigger_order) AS times_sorted,
        arrayFilter(x -> x != 0, kinds_sorted)                  AS trigger_kinds,
        arrayFilter((t, x) -> x != 0, times_sorted, kinds_sorted) AS trigger_ts,
        arrayMap((x, prev) -> x != prev, trigger_kinds, arrayPushFront(arrayPopBack(trigger_kinds), 2)) AS changes,
        arrayConcat([3], arrayFilter((x, c) -> c, trigger_kinds, changes))                 AS kinds,
        arrayConcat([ts_arr[indexOf(type_arr, 'order_completed')]], arrayFilter((t, c) -> c, trigger_ts, changes)) AS times
    FROM {db}.visitor_timelines
    WHERE has(type_arr, 'order_completed')
)
ARRAY JOIN kinds AS kind, times AS ts_ms;

-- One row per month from the first with a conversion to the last with any
-- transition; customers active at a month's start are the conversions and
-- reactivations before it minus the churns before it (they alternate).
-- The monthly totals are read once and looked up for each month of the
-- range in arrays (a second read of a plain view would compute every
-- visitor again); the lookup's lambda gets the totals' arrays replicated
-- once per month.
CREATE VIEW {db}.churn_monthly AS
SELECT
    month,
    toUInt64(net_cum - net) AS active_at_start,
    churned,
    reactivated,
    if(active_at_start = 0, 0, churned / active_at_start) AS churn_rate
FROM
(
    SELECT
        arrayReduce('min', arrayFilter((m, c) -> c > 0, month_arr, conversions_arr)) AS first_month,
        arrayReduce('max', month_arr) AS last_month,
        toUInt64(dateDiff('month', first_month, last_month) + 1) AS n,
        arrayMap((i, first) -> addMonths(first, i), range(n), arrayResize(emptyArrayDate(), n, first_month)) AS months,
        arrayMap((m, at, v) -> v[indexOf(at, m)], months, arrayResize([month_arr], n, month_arr), arrayResize([churns_arr], n, churns_arr)) AS churned_arr,
        arrayMap((m, at, v) -> v[indexOf(at, m)], months, arrayResize([month_arr], n, month_arr), arrayResize([reactivations_arr], n, reactivations_arr)) AS reactivated_arr,
        arrayMap((m, at, v) -> v[indexOf(at, m)], months, arrayResize([month_arr], n, month_arr), arrayResize([net_by_month], n, net_by_month)) AS net_arr,
        arrayCumSum(net_arr) AS net_cum_arr
    FROM
    (
        SELECT
            groupArray(month)         AS month_arr,
            groupArray(conversions)   AS conversions_arr,
            groupArray(churns)        AS churns_arr,
            groupArray(reactivations) AS reactivations_arr,
            groupArray(toInt64(conversions) + toInt64(reactivations) - toInt64(churns)) AS net_by_month
        FROM
        (
            SELECT
                toStartOfMonth(toDateTime(intDiv(ts_ms, 1000), 'UTC')) AS month,
                countIf(kind = 3) AS conversions,
                countIf(kind = 1) AS churns,
                countIf(kind = 2) AS reactivations
            FROM {db}.status_transitions
            GROUP BY month
        )
    )
    WHERE length(month_arr) > 0
)
ARRAY JOIN months AS month, churned_arr AS churned, reactivated_arr AS reactivated, net_arr AS net, net_cum_arr AS net_cum;

-- Revenue needs no dedup step: orders are counted by distinct order_id
-- (the first copy's amount), refunds by event_id and customers as distinct
-- visitors, so a second copy of an event adds nothing.
CREATE VIEW {db}.revenue_daily AS
SELECT
    day,
    currency,
    countIf(kind = 'order')        AS orders,
    sumIf(amount, kind = 'order')  AS revenue,
    sumIf(amount, kind = 'refund') AS refunds,
    revenue - refunds              AS net_revenue,
    uniqExactArrayIf(visitors, kind = 'order') AS customers,
    revenue / greatest(orders, 1)  AS avg_order_value
FROM
(
    SELECT
        toDate(toDateTime(intDiv(ts_ms, 1000), 'UTC')) AS day,
        currency,
        if(type = 'order_completed', 'order', 'refund')   AS kind,
        if(type = 'order_completed', order_id, event_id) AS item_id,
        argMin(amount, (ts_ms, visitor_id, event_id))     AS amount,
        groupUniqArray(visitor_id)                        AS visitors
    FROM {db}.events_raw
    WHERE type IN ('order_completed', 'order_refunded')
    GROUP BY day, currency, kind, item_id
)
GROUP BY day, currency;
