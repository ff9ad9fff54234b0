package pipeline

// A member's memory goes mostly to four things that grow with the input:
// rows waiting for ClickHouse, held events kept decoded, records fetched
// but not yet fed, and the fetch buffers. Rows and records can carry up to
// 256 KiB of props each, so each is bounded in bytes, not only in count,
// by a share of Config.MemoryLimit. The rest of the budget is for the
// state (visitors, sessions, ids), the Go runtime and the driver's copy of
// a batch while it is sent.

// budget is the byte bounds that Config.MemoryLimit implies.
type budget struct {
	limit         int64 // the whole budget
	rowBytes      int64 // buffered rows: a flush starts at half, fetching pauses above
	partitionRows int64 // one partition's buffered rows: its release pauses above
	hotHeld       int64 // decoded held events per partition; beyond, they spill
	queued        int64 // records fetched and waiting per partition input (values only: with its Record and batch, a queued record takes about twice that)
	fetchMax      int32 // franz-go's FetchMaxBytes (its default, 50 MiB, is a lot to hold twice)
	coldRun       int   // bytes of raw records after which a cold run is sealed
}

// DefaultMemoryLimit is the budget when none is given (Config.MemoryLimit
// 0, and `funnelhouse run` without --memory-limit, GOMEMLIMIT or a cgroup
// limit). Like a JVM service's default heap, it keeps a member
// predictable where nobody sized it. Measured (bench/RESULTS.md, "a
// default memory budget"): 1 GiB keeps historical traffic at 5M events
// under 820 MiB and real-time traffic at 20,000 events/s with 10 minutes
// of lateness under 1 GiB, at the records/s of 2 GiB; 512 MiB stays under
// 512 MiB at 5M but costs a third of the records/s.
const DefaultMemoryLimit = 1 << 30

// standaloneBudget bounds a Processor on its own (tests, tools) until a
// member applies its budget (rebalance.go). Nobody flushes its rows
// while it releases, so its bounds are those of a large budget.
const standaloneBudget = 2 << 30

func newBudget(limit int64) budget {
	b := limit
	if b <= 0 {
		b = DefaultMemoryLimit
	}
	return budget{
		limit:         b,
		rowBytes:      b / 8,
		partitionRows: b / 64,
		hotHeld:       clamp(b/64, 1<<20, 8<<20),
		queued:        clamp(b/256, 1<<20, 32<<20),
		fetchMax:      int32(clamp(b/128, 1<<20, 16<<20)),
		coldRun:       int(clamp(b/256, 256<<10, coldRunBytes)),
	}
}

func clamp(v, lo, hi int64) int64 { return max(lo, min(v, hi)) }
