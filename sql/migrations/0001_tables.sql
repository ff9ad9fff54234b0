-- Tables written by the pipeline (SPEC §6). Rows are keyed so that a replay
-- of the same input replaces rows instead of adding them.

CREATE TABLE IF NOT EXISTS {db}.events (
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
    kafka_offset    Int64
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (visitor_id, event_id);

CREATE TABLE IF NOT EXISTS {db}.sessions (
    session_id  String,
    visitor_id  String,
    customer_id String,
    start       DateTime('UTC'),
    `end`       DateTime('UTC'),
    start_ms    UInt64,
    end_ms      UInt64,
    duration_s  Float64,
    events      UInt32,
    page_views  UInt32,
    entry_url   String,
    exit_url    String,
    source      String,
    medium      String,
    campaign    String,
    is_bounce   UInt8,
    orders      UInt32,
    revenue     Decimal(18, 4)
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(start)
ORDER BY (visitor_id, session_id);

CREATE TABLE IF NOT EXISTS {db}.lifecycle_transitions (
    visitor_id  String,
    customer_id String,
    stage       Enum8('awareness' = 1, 'acquisition' = 2, 'conversion' = 3, 'retention' = 4, 'advocacy' = 5,
                      'churned' = 6, 'reactivated' = 7),
    ts          DateTime('UTC'),
    ts_ms       UInt64,
    cohort_day  Date,
    source      String,
    event_id    String
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (visitor_id, stage, ts_ms);

-- The pipeline's durable state (SPEC §7): one 'checkpoint' row per consumer
-- group and partition, and one 'visitor' row per visitor, written in a
-- single insert so that a checkpoint is all or nothing. The newest epoch
-- wins.
CREATE TABLE IF NOT EXISTS {db}.pipeline_state (
    consumer_group  String,
    kafka_partition Int32,
    kind            Enum8('checkpoint' = 1, 'visitor' = 2),
    key             String,
    epoch           UInt64,
    data            String
) ENGINE = ReplacingMergeTree(epoch)
ORDER BY (consumer_group, kafka_partition, kind, key);
