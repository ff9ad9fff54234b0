-- The query-time peer's ingest (bench/querytime): one materialised view
-- per Kafka table, extracting typed columns from each record's JSON into
-- events_raw. ClickHouse starts consuming when they are created. 18.16 has
-- no JSONExtract: visitParam* read the first "name": anywhere in the
-- object (no nested object of the events repeats a field name of §2), and
-- return "" or 0 for an absent field or null, which SPEC §2 treats alike.
-- A view whose target has columns it does not select fails with WITH on
-- 18.16, so each view selects every column.
--
-- ts is an RFC 3339 string or an integer of epoch milliseconds.
-- parseDateTimeBestEffortOrZero reads the string's date, time and zone to
-- the second (OrZero: if evaluates both branches on every row, and the
-- string of a number is ""); the milliseconds are the first three digits
-- of the fraction (truncated, as SPEC §2 says).
--
-- amount is a JSON number, exponent form allowed, with at most 4 decimals
-- in value: its text is turned into an integer of 1/10000 units (mantissa
-- digits times a power of ten), then into Decimal through text. Reading it
-- as Float64 is not exact on 18.16 (58.6677 reads as 58.667699999999996,
-- and more than 4 decimals make toDecimal64 fail and stop the Kafka
-- table's consumer); toDecimal64 of the text itself rejects 1.5e2 and
-- 14.990000. scale is >= 1 in both branches of if, which evaluates both.

CREATE MATERIALIZED VIEW {db}.clickstream_mv TO {db}.events_raw AS
WITH
    visitParamExtractRaw(raw, 'ts')    AS ts_json,
    visitParamExtractString(raw, 'ts') AS ts_text
SELECT
    toUInt8(0)                               AS topic,
    visitParamExtractString(raw, 'event_id') AS event_id,
    visitParamExtractString(raw, 'type')     AS type,
    if(substring(ts_json, 1, 1) = '"',
        toUInt64(parseDateTimeBestEffortOrZero(ts_text)) * 1000
            + toUInt64OrZero(substring(concat(extract(ts_text, '\\.([0-9]{1,3})'), '00'), 1, 3)),
        toUInt64OrZero(ts_json))             AS ts_ms,
    visitParamExtractString(raw, 'visitor_id')   AS visitor_id,
    visitParamExtractString(raw, 'customer_id')  AS customer_id,
    visitParamExtractString(raw, 'url')          AS url,
    visitParamExtractString(raw, 'referrer')     AS referrer,
    visitParamExtractString(raw, 'utm_source')   AS utm_source,
    visitParamExtractString(raw, 'utm_medium')   AS utm_medium,
    visitParamExtractString(raw, 'utm_campaign') AS utm_campaign,
    ''                                           AS order_id,
    toDecimal64(0, 4)                            AS amount,
    ''                                           AS currency,
    toUInt8(visitParamExtractUInt(raw, 'rating')) AS rating,
    toUInt8(visitParamExtractUInt(raw, 'nps'))    AS nps
FROM {db}.clickstream_queue;

CREATE MATERIALIZED VIEW {db}.transactions_mv TO {db}.events_raw AS
WITH
    visitParamExtractRaw(raw, 'ts')    AS ts_json,
    visitParamExtractString(raw, 'ts') AS ts_text,
    splitByChar('e', replaceOne(lower(visitParamExtractRaw(raw, 'amount')), 'e+', 'e')) AS amount_parts,
    amount_parts[1]                    AS mantissa,
    toInt64OrZero(amount_parts[2])     AS exponent,
    position(mantissa, '.')            AS dot,
    toUInt64OrZero(replaceOne(mantissa, '.', '')) AS digits,
    4 + exponent - if(dot = 0, 0, length(mantissa) - dot) AS shift,
    intExp10(toUInt8(abs(shift)))      AS scale,
    if(shift >= 0, digits * scale, intDiv(digits, scale)) AS units
SELECT
    toUInt8(1)                               AS topic,
    visitParamExtractString(raw, 'event_id') AS event_id,
    visitParamExtractString(raw, 'type')     AS type,
    if(substring(ts_json, 1, 1) = '"',
        toUInt64(parseDateTimeBestEffortOrZero(ts_text)) * 1000
            + toUInt64OrZero(substring(concat(extract(ts_text, '\\.([0-9]{1,3})'), '00'), 1, 3)),
        toUInt64OrZero(ts_json))             AS ts_ms,
    visitParamExtractString(raw, 'visitor_id')  AS visitor_id,
    visitParamExtractString(raw, 'customer_id') AS customer_id,
    ''                                          AS url,
    ''                                          AS referrer,
    ''                                          AS utm_source,
    ''                                          AS utm_medium,
    ''                                          AS utm_campaign,
    visitParamExtractString(raw, 'order_id')    AS order_id,
    toDecimal64(concat(toString(intDiv(units, 10000)), '.', substring(toString(10000 + units % 10000), 2)), 4) AS amount,
    visitParamExtractString(raw, 'currency')    AS currency,
    toUInt8(0)                                  AS rating,
    toUInt8(0)                                  AS nps
FROM {db}.transactions_queue;
