-- pipeline_state in index granules of 256 rows instead of 8,192 (issue
-- 12: cost growth). A forgotten visitor coming back is read by key
-- (sinks/clickhouse LoadVisitors, a few keys per query), and ClickHouse
-- reads at least a granule of every part for each key: 8,192 rows of
-- state, `data` included. At 20M events of the bench, 9,318 such queries
-- read 548M rows and cost ClickHouse 185 CPU-s, 60 % of its work in the
-- run (bench/RESULTS.md, "growth to 20M"); with 256-row granules a lookup
-- of two keys over five parts read 2,560 rows instead of 81,920 and cost
-- 4 ms of CPU instead of 31. The checkpoint rows, read by prefix, do not
-- mind; the primary index grows to one key per 256 rows (a few MB for
-- millions of visitors).
--
-- 18.16 cannot change a table's index_granularity: the table is rebuilt
-- under another name, its rows copied, and the two swapped by RENAME, as
-- 0006 did for events. Stop the pipeline while this runs: a checkpoint
-- written between the copy and the swap would be lost (its partition
-- would restart from the one before, and replay). A rerun copies the rows
-- again; a row copied twice is the same (key, epoch) twice, one state.

DROP TABLE IF EXISTS {db}.pipeline_state_pre0011;

CREATE TABLE IF NOT EXISTS {db}.pipeline_state_0011 (
    consumer_group  String,
    kafka_partition Int32,
    kind            Enum8('checkpoint' = 1, 'visitor' = 2),
    key             String,
    epoch           UInt64,
    data            String,
    written_at      DateTime DEFAULT now()
) ENGINE = ReplacingMergeTree(epoch)
ORDER BY (consumer_group, kafka_partition, kind, key)
SETTINGS index_granularity = 256;

INSERT INTO {db}.pipeline_state_0011 (consumer_group, kafka_partition, kind, key, epoch, data, written_at)
SELECT consumer_group, kafka_partition, kind, key, epoch, data, written_at
FROM {db}.pipeline_state;

RENAME TABLE {db}.pipeline_state TO {db}.pipeline_state_pre0011, {db}.pipeline_state_0011 TO {db}.pipeline_state;

DROP TABLE IF EXISTS {db}.pipeline_state_pre0011;
