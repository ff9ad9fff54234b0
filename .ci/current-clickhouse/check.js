// Applies funnelhouse's migrations to a current ClickHouse engine (chDB,
// embedded, no server), inserts a few rows whose view results are known,
// checks them, and runs the SQL of docs/metrics.md. SPEC: all SQL must run
// on ClickHouse 18.16.1 (the Go tests) and on current releases (this).
// Usage: node check.js REPO_ROOT
const fs = require('fs'), path = require('path');
const { Session } = require('chdb');

const root = process.argv[2] || '../..';
const split = t => t.split(';\n')
  .map(c => c.split('\n').filter(l => l.trim() && !l.trim().startsWith('--')).join('\n').trim().replace(/;$/, ''))
  .filter(Boolean);
const s = new Session(fs.mkdtempSync('/tmp/funnelhouse-chdb-'));
let failed = 0;
const run = (q, fmt) => {
  try { return s.query(q, fmt || 'TSV'); }
  catch (e) { failed++; console.error('FAILED:', q.slice(0, 400), '\n ', e.message); return null; }
};
const expect = (what, q, want) => {
  const got = (run(q) || '').trim();
  if (got !== want) { failed++; console.error(`WRONG ${what}:\n  got  ${JSON.stringify(got)}\n  want ${JSON.stringify(want)}`); }
};

console.log('ClickHouse', run('SELECT version()').trim());
run('CREATE DATABASE IF NOT EXISTS fh');
const migrations = path.join(root, 'sql', 'migrations');
for (const f of fs.readdirSync(migrations).filter(f => f.endsWith('.sql')).sort())
  for (const st of split(fs.readFileSync(path.join(migrations, f), 'utf8'))) run(st.replaceAll('{db}', 'fh'));

// Two customers: v1 converts in January, churns in April, is reactivated in
// June (the churn written twice, as a replay would); v2 converts in
// January. One order inserted twice and one refund.
const day = (d) => `toDateTime('${d} 00:00:00', 'UTC')`;
const ms = (d) => `toUInt64(toUnixTimestamp(${day(d)})) * 1000`;
const tr = (v, stage, d) => `INSERT INTO fh.lifecycle_transitions SELECT '${v}', '', '${stage}', ${day(d)}, ${ms(d)}, toDate('2025-01-05'), 'google', 'e'`;
for (const q of [
  tr('v1', 'awareness', '2025-01-05'), tr('v1', 'acquisition', '2025-01-05'), tr('v1', 'conversion', '2025-01-06'),
  tr('v2', 'awareness', '2025-01-05'), tr('v2', 'acquisition', '2025-01-05'), tr('v2', 'conversion', '2025-01-07'),
  tr('v1', 'churned', '2025-04-06'), tr('v1', 'churned', '2025-04-06'), tr('v1', 'reactivated', '2025-06-06'),
]) run(q);
const ev = (id, type, order, amount) => `INSERT INTO fh.events (event_id, ts, ts_ms, type, visitor_id, order_id, amount, currency) SELECT '${id}', ${day('2025-01-06')}, 1, '${type}', 'v1', '${order}', toDecimal64(${amount}, 4), 'USD'`;
run(ev('o1e', 'order_completed', 'o1', '12.5'));
run(ev('o1e', 'order_completed', 'o1', '12.5'));
run(ev('r1e', 'order_refunded', 'o1', '2.25'));
// A duplicate that comes back after the dedup horizon is written late,
// without its session: events keeps the on-time row (0006), whatever the
// order of the inserts.
const pv = (late, session) => `INSERT INTO fh.events (event_id, ts, ts_ms, type, visitor_id, session_id, url, late) SELECT 'p1e', ${day('2025-01-06')}, 1, 'page_view', 'v1', '${session}', '/p', ${late}`;
run(pv(0, 's1')); run(pv(1, ''));
expect('events after a late copy', "SELECT session_id, late FROM fh.events FINAL WHERE event_id = 'p1e'", 's1\t0');
const se = (id, bounce) => `INSERT INTO fh.sessions (session_id, visitor_id, start, \`end\`, source, is_bounce) SELECT '${id}', 'v1', ${day('2025-01-05')}, ${day('2025-01-05')}, 'google', ${bounce}`;
run(se('s1', 1)); run(se('s1', 1)); run(se('s2', 0));

expect('funnel_daily', 'SELECT cohort_day, source, awareness, acquisition, conversion, retention, advocacy, acquisition_rate, conversion_rate FROM fh.funnel_daily',
  '2025-01-05\tgoogle\t2\t2\t2\t0\t0\t1\t1');
expect('bounce_daily', 'SELECT day, source, sessions, bounces, bounce_rate FROM fh.bounce_daily', '2025-01-05\tgoogle\t2\t1\t0.5');
expect('churn_monthly', 'SELECT month, active_at_start, churned, reactivated, churn_rate FROM fh.churn_monthly ORDER BY month',
  ['2025-01-01\t0\t0\t0\t0', '2025-02-01\t2\t0\t0\t0', '2025-03-01\t2\t0\t0\t0', '2025-04-01\t2\t1\t0\t0.5',
   '2025-05-01\t1\t0\t0\t0', '2025-06-01\t1\t0\t1\t0'].join('\n'));
expect('revenue_daily', 'SELECT day, currency, orders, toString(revenue), toString(refunds), toString(net_revenue), customers FROM fh.revenue_daily',
  '2025-01-06\tUSD\t1\t12.5\t2.25\t10.25\t1');

// traffic_daily (0012) and pages_daily (0009) with a replayed session:
// v3's s3 (3 page views, 60 s, v3's first that day from bing by cpc) is
// written twice, s4 (2 page views, 60 s) once, on another day and source
// than the sessions above; s3's page view twice.
const se3 = (id, pvs, firstOfDay) => `INSERT INTO fh.sessions (session_id, visitor_id, start, \`end\`, start_ms, end_ms, page_views, entry_url, exit_url, source, medium, is_bounce, cohort_day, first_session, first_of_day) SELECT '${id}', 'v3', ${day('2025-01-07')}, ${day('2025-01-07')} + 60, ${ms('2025-01-07')}, ${ms('2025-01-07')} + 60000, ${pvs}, 'https://x/a?q=1', 'https://x/b#top', 'bing', 'cpc', 0, toDate('2025-01-07'), 0, ${firstOfDay}`;
run(se3('s3', 3, 1)); run(se3('s3', 3, 1)); run(se3('s4', 2, 0));
const pv3 = `INSERT INTO fh.events (event_id, ts, ts_ms, type, visitor_id, session_id, session_start, url) SELECT 'pv3', ${day('2025-01-07')}, ${ms('2025-01-07')}, 'page_view', 'v3', 's3', ${day('2025-01-07')}, 'https://x/a?q=1'`;
run(pv3); run(pv3);
expect('traffic_daily', "SELECT day, source, medium, sessions, visitors, new_visitors, returning_visitors, page_views, pages_per_session, avg_session_duration_s, bounce_rate FROM fh.traffic_daily WHERE source = 'bing'",
  '2025-01-07\tbing\tcpc\t2\t1\t1\t0\t5\t2.5\t60\t0');
expect('pages_daily', "SELECT day, page, entries, exits, bounces, page_views, bounce_rate, exit_rate FROM fh.pages_daily WHERE day = toDate('2025-01-07') ORDER BY page",
  ['2025-01-07\thttps://x/a\t2\t0\t0\t1\t0\t0', '2025-01-07\thttps://x/b\t0\t2\t0\t0\t0\t0'].join('\n'));

// The catalogue (SPEC §6.1): every view answers; the revenue ones on the
// rows above (v1 converts in January with one 12.5 USD order and a 2.25
// refund; v2 converts too, without an order).
for (const v of ['traffic_daily', 'visitor_conversion_daily', 'pages_daily', 'satisfaction_monthly',
  'trial_conversion_monthly', 'retention_monthly', 'clv_cohort_monthly']) run(`SELECT * FROM fh.${v}`);
expect('revenue_daily.avg_order_value', 'SELECT toString(avg_order_value) FROM fh.revenue_daily', '12.5');
expect('clv_cohort_monthly', 'SELECT cohort_month, currency, month_offset, cohort_customers, ordering_customers, toString(net_revenue), toString(cumulative_net_revenue), toString(clv) FROM fh.clv_cohort_monthly',
  '2025-01-01\tUSD\t0\t2\t1\t10.25\t10.25\t5.125');
expect('retention_monthly', 'SELECT month, customers_at_start, new_customers, customers_at_end, retention_rate, customers, repeat_customers FROM fh.retention_monthly ORDER BY month LIMIT 2',
  ['2025-01-01\t0\t2\t2\t0\t1\t0', '2025-02-01\t2\t0\t2\t1\t1\t0'].join('\n'));

const docs = fs.readFileSync(path.join(root, 'docs', 'metrics.md'), 'utf8');
for (const m of docs.matchAll(/```sql\n([\s\S]*?)```/g)) run(m[1].trim().replace(/;$/, '').replaceAll('funnelhouse.', 'fh.'));

if (failed) { console.error(`${failed} problem(s) on current ClickHouse`); process.exit(1); }
console.log('all migrations, views and documented queries run on current ClickHouse with the expected results');
