package pipeline

import (
	"cmp"
	"fmt"
	"strings"

	"github.com/bits-and-blooms/bloom/v3"

	"github.com/funnelhouse/funnelhouse/pipeline/rows"
)

// Forgetting bounds the visitors held in memory by those active lately,
// without changing a single row. A visitor inactive for --forget-after
// (event time) whose state is stored already (not changed since the last
// checkpoint), with no open session and no pending churn, leaves memory at
// a checkpoint: its newest state is its row in pipeline_state. Its id goes
// into a Bloom filter. When an event of a visitor not in memory but maybe
// in the filter is held, the visitor is loaded back from pipeline_state
// before the event is released (the ids wanted by a run of records are
// loaded in one query); a visitor forgotten while one of its events was
// held is loaded when that event is released. A false positive of the
// filter costs one lookup that finds nothing.
//
// Which rows are a forgotten visitor's state: only those of the current
// fork. A restore claims the settled visitor rows of its checkpoint's
// fork, by writing them again with its first checkpoint's epoch (until
// that checkpoint is stored, a visitor coming back is taken from the
// claims in memory). That fork holds every visitor of the lineage: its own
// first checkpoint wrote them all. Rows of other forks are another owner's
// lineage: those a member fenced while it still writes (two members
// sharing an instance id, or a member that lost the partition right after
// its restore) wrote after the restored checkpoint; claiming a settled one
// would take that member's events for this lineage's. Without the claim,
// such a member could load a forgotten visitor in its older fork and
// write it again, hiding the settled row from this owner, which would take
// the visitor for a new one. A claim has a higher epoch than any row of an
// earlier fork, so it always wins. Its cost: every restore writes the
// partition's settled visitors once more, about as much as it has just
// read.

// forgottenSet is a scalable Bloom filter of forgotten visitor ids: a new
// filter, twice as large, once the last is full. About 2 bytes per id.
type forgottenSet struct {
	filters  []*bloom.BloomFilter
	n, limit uint    // ids in the last filter, and its capacity
	ids      int     // ids added to all filters
	fp       float64 // the last filter's false-positive rate
}

// The first filter's false-positive rate; each next one's is half the
// one before, so that all together stay under twice this.
const forgottenFalsePositives = 0.002

func (f *forgottenSet) add(id string) {
	if len(f.filters) == 0 || f.n >= f.limit {
		f.limit, f.fp = max(2*f.limit, 1<<16), cmp.Or(f.fp/2, forgottenFalsePositives)
		f.filters = append(f.filters, bloom.NewWithEstimates(f.limit, f.fp))
		f.n = 0
	}
	f.filters[len(f.filters)-1].AddString(id)
	f.n++
	f.ids++
}

func (f *forgottenSet) mayContain(id string) bool {
	for _, b := range f.filters {
		if b.TestString(id) {
			return true
		}
	}
	return false
}

// bytes is the memory of the filters.
func (f *forgottenSet) bytes() int64 {
	var n int64
	for _, b := range f.filters {
		n += int64(b.Cap() / 8)
	}
	return n
}

// ForgetCounts count the visitors forgotten and loaded back, and the
// lookups that loaded them, since the processor started: what this member
// did, not kept in checkpoints.
type ForgetCounts struct{ Forgotten, Reloaded, Lookups uint64 }

// ForgottenIDs is the number of visitor ids in the forgotten filter: those
// a restore found settled in pipeline_state and those forgotten since.
func (p *Processor) ForgottenIDs() int { return p.forgotten.ids }

// ForgetCounts returns the counts so far.
func (p *Processor) ForgetCounts() ForgetCounts { return p.forgetCounts }

// VisitorLoader reads the newest pipeline_state 'visitor' rows of the
// given ids (the rows of ids without one are absent). It retries as it
// sees fit; an error stops the processor.
type VisitorLoader func(ids []string) ([]rows.State, error)

// ForgetTo enables forgetting (see above) with load to bring visitors
// back. Without it, or with Rules.ForgetAfter 0, every visitor stays in
// memory. Call it before Restore.
func (p *Processor) ForgetTo(load VisitorLoader) { p.load = load }

func (p *Processor) forgetting() bool { return p.forgetAfter > 0 && p.load != nil }

// queueForget gives v an entry in the forget deadline queue, at last
// activity + forget-after, unless it has one.
func (p *Processor) queueForget(vi uint32, v *visitor) {
	if p.forgetting() && !v.is(forgetQueued) {
		v.set(forgetQueued, true)
		p.forgets.push(v.lastMs+p.forgetAfter, vi)
	}
}

// settled reports whether a visitor may leave memory once its state is
// stored: inactive before watermark - forget-after, no open session, no
// churn deadline (not a customer, or churned).
func (p *Processor) settled(lastMs int64, open, activeCustomer bool, watermark int64) bool {
	return p.forgetting() && !open && !activeCustomer && lastMs+p.forgetAfter < watermark
}

// forgetInactive forgets the visitors whose forget deadline the watermark
// passed and that are settled and stored; at a checkpoint, before the
// changed visitors are encoded.
func (p *Processor) forgetInactive() {
	later := p.forgetLater[:0]
	for {
		at, ok := p.forgets.next()
		if !ok || at >= p.watermark {
			break
		}
		d := p.forgets.pop()
		v := p.visitors.slab.at(d.v)
		v.set(forgetQueued, false)
		switch {
		case v.lastMs+p.forgetAfter > d.at: // active since
			p.queueForget(d.v, v)
		case !p.settled(v.lastMs, v.session != 0 || v.is(sessionQueued), v.customer() && !v.is(churned), p.watermark):
			// Its session close or churn queues it again.
		case v.is(dirty): // its newest state goes out with this checkpoint
			later = append(later, d)
		default:
			p.forgotten.add(p.visitors.strs.get(v.id))
			p.visitors.remove(d.v)
			p.forgetCounts.Forgotten++
		}
	}
	for _, d := range later {
		p.visitors.slab.at(d.v).set(forgetQueued, true)
		p.forgets.push(d.at, d.v)
	}
	p.forgetLater = later[:0]
	p.visitors.compact(func(v *visitor) *session {
		if v.session == 0 {
			return nil
		}
		return p.sessions.at(v.session - 1)
	})
	p.compactSymbols()
}

// compactSymbols interns again the symbols still used, once the table has
// more than doubled since it was last rebuilt: distinct campaigns, say,
// that were used by sessions long closed or visitors forgotten.
func (p *Processor) compactSymbols() {
	if len(p.symbols.names) < max(symbolsCompactAt, 2*p.symbolsLive) {
		return
	}
	old := p.symbols
	p.symbols = newSymbols()
	move := func(s *symbol) { *s = p.symbols.intern(old.name(*s)) }
	p.visitors.each(func(_ uint32, v *visitor) {
		move(&v.source)
		if v.session != 0 {
			s := p.sessions.at(v.session - 1)
			move(&s.source)
			move(&s.medium)
			move(&s.campaign)
		}
	})
	p.symbolsLive = len(p.symbols.names)
}

// symbolsCompactAt is the least table size that compactSymbols rebuilds.
// Tests lower it.
var symbolsCompactAt = 1 << 16

// want notes that the visitor of a held event may have to be loaded back.
func (p *Processor) want(id string) {
	if len(p.forgotten.filters) == 0 || !p.forgotten.mayContain(id) {
		return
	}
	if _, v := p.visitors.find(id); v != nil {
		return
	}
	if _, ok := p.wanted[id]; !ok {
		p.wanted[strings.Clone(id)] = struct{}{} // id lives in the decoder's arena
	}
}

// findOrLoad returns the visitor with the given id, loading it back if it
// was forgotten, or nil: a new visitor. It fails (setting p.err) if the
// load does.
func (p *Processor) findOrLoad(id string) (uint32, *visitor, bool) {
	vi, v := p.visitors.find(id)
	if v != nil || len(p.forgotten.filters) == 0 || !p.forgotten.mayContain(id) {
		return vi, v, true
	}
	p.wanted[strings.Clone(id)] = struct{}{} // id lives in the decoder's arena
	if !p.loadWanted() {
		return 0, nil, false
	}
	vi, v = p.visitors.find(id)
	return vi, v, true
}

// loadWanted loads the wanted visitors back: those claimed at the restore
// from memory, the others in one query.
func (p *Processor) loadWanted() bool {
	if len(p.wanted) == 0 {
		return true
	}
	ids := make([]string, 0, len(p.wanted))
	for id := range p.wanted {
		if _, v := p.visitors.find(id); v != nil {
			continue
		}
		if data, ok := p.claims.take(id); ok {
			vi, err := p.reload(id, data)
			if err != nil {
				p.err = fmt.Errorf("partition %d: cannot load forgotten visitor %q back: %w", p.partition, id, err)
				return false
			}
			p.touch(vi, p.visitors.slab.at(vi)) // written from memory, not as a claim
			continue
		}
		ids = append(ids, id)
	}
	clear(p.wanted)
	if len(ids) == 0 {
		return true
	}
	state, err := p.load(ids)
	if err == nil {
		err = p.reloadRows(state)
	}
	if err != nil {
		p.err = fmt.Errorf("partition %d: cannot load forgotten visitors back: %w", p.partition, err)
		return false
	}
	p.forgetCounts.Lookups++
	return true
}

// reloadRows adds the visitors of the current fork's rows (see above).
func (p *Processor) reloadRows(state []rows.State) error {
	fork := p.epoch >> forkShift
	for _, r := range state {
		if r.Kind != rows.StateVisitor {
			continue
		}
		switch f := r.Epoch >> forkShift; {
		case f > fork:
			return fmt.Errorf("visitor %q has state of a later owner (epoch %d, this owner's %d): %w", r.Key, r.Epoch, p.epoch, errPartitionMoved)
		case f < fork:
			continue // another owner's lineage: a settled row would have been claimed
		}
		if _, v := p.visitors.find(r.Key); v != nil {
			continue
		}
		if _, err := p.reload(r.Key, r.Data); err != nil {
			return fmt.Errorf("visitor %q: %w", r.Key, err)
		}
	}
	return nil
}

// reload adds a forgotten visitor from its state row.
func (p *Processor) reload(id, data string) (uint32, error) {
	if err := p.restoreVisitor(id, []byte(data)); err != nil {
		return 0, err
	}
	if err := p.visitors.strs.err; err != nil {
		return 0, err
	}
	vi, v := p.visitors.find(id)
	// Not forgotten again before the events it was loaded for.
	v.set(forgetQueued, true)
	p.forgets.push(max(v.lastMs+p.forgetAfter, p.watermark+p.lateness), vi)
	p.forgetCounts.Reloaded++
	return vi, nil
}

// claims are the settled visitor rows a restore read: written again at the
// fork's first checkpoint (see above), and kept until the next, by which
// that one is stored.
type claims struct {
	rows    map[string]string // visitor id: state row data
	written bool
}

func (c *claims) add(id, data string) {
	if c.rows == nil {
		c.rows = map[string]string{}
	}
	c.rows[id] = data
}

// take returns and removes the claimed row of visitor id.
func (c *claims) take(id string) (string, bool) {
	data, ok := c.rows[id]
	if ok {
		delete(c.rows, id)
	}
	return data, ok
}

// cut calls write for every claim at the first checkpoint, and forgets
// them at the second.
func (c *claims) cut(write func(id, data string)) {
	if c.written {
		c.rows = nil
		return
	}
	for id, data := range c.rows {
		write(id, data)
	}
	c.written = true
}

// settledRow reports whether a visitor row's state was settled at
// watermark.
func (p *Processor) settledRow(data []byte, watermark int64) (bool, error) {
	r := reader{b: data}
	if ver := r.byte(); !knownVisitorVersion(ver) {
		return false, fmt.Errorf("unknown visitor state version %d", ver)
	}
	r.string() // customer_id
	stage := rows.Stage(r.byte())
	churnedNow := r.byte()&1 != 0
	r.varint() // cohort day
	r.string() // source
	r.string() // first order
	lastMs := r.varint()
	open := r.byte() == 1
	if r.err != nil {
		return false, r.err
	}
	return p.settled(lastMs, open, stage >= rows.StageConversion && !churnedNow, watermark), nil
}
