package pipeline

import (
	"cmp"
	"fmt"
	"os"
	"slices"
)

// Sealed runs of cold held events go to disk: on real-time traffic a
// member holds every event of the last lateness (12M at 20k events/s and
// 10 min), and even compressed they would be most of its memory. They are
// written once and read once, in about the order they were written, so a
// log of segment files is enough: a segment is closed once every run in
// it has been read back. The files are unlinked as soon as they are
// created, so a crash leaves nothing behind (the replay range rebuilds
// held events from Kafka after a restart).

// spillSegmentBytes is the size after which a new segment file is started.
const spillSegmentBytes = 64 << 20

type spillStore struct {
	dir          string // "" : os.TempDir()
	segmentBytes int64  // 0: spillSegmentBytes; tests make it small
	cur          *spillSegment
	open         int   // segments not yet closed
	segments     int   // segments created
	bytes        int64 // bytes of runs not yet read back
}

type spillSegment struct {
	f    *os.File
	size int64 // bytes written
	live int   // runs not yet read back
}

// spillRef is where a run's bytes are.
type spillRef struct {
	seg *spillSegment
	off int64
	n   int
}

// write appends b to the current segment.
func (s *spillStore) write(b []byte) (spillRef, error) {
	if s.cur == nil || s.cur.size >= cmp.Or(s.segmentBytes, spillSegmentBytes) {
		if err := s.next(); err != nil {
			return spillRef{}, err
		}
	}
	seg := s.cur
	if _, err := seg.f.WriteAt(b, seg.size); err != nil {
		return spillRef{}, fmt.Errorf("spill held events to %s: %w", seg.f.Name(), err)
	}
	ref := spillRef{seg: seg, off: seg.size, n: len(b)}
	seg.size += int64(len(b))
	seg.live++
	s.bytes += int64(len(b))
	return ref, nil
}

// next starts a new segment, and closes the current one if it is done.
func (s *spillStore) next() error {
	f, err := os.CreateTemp(s.dir, "funnelhouse-held-*")
	if err != nil {
		return fmt.Errorf("spill held events: %w", err)
	}
	os.Remove(f.Name()) // open, it lives until closed
	old := s.cur
	s.cur = &spillSegment{f: f}
	s.open++
	s.segments++
	if old != nil && old.live == 0 {
		s.closeSegment(old)
	}
	return nil
}

// read returns the bytes of ref in buf (grown if need be) and releases
// them: a run is read once.
func (s *spillStore) read(ref spillRef, buf []byte) ([]byte, error) {
	buf = slices.Grow(buf[:0], ref.n)[:ref.n]
	if _, err := ref.seg.f.ReadAt(buf, ref.off); err != nil {
		return nil, fmt.Errorf("read held events back from %s at %d: %w", ref.seg.f.Name(), ref.off, err)
	}
	s.bytes -= int64(ref.n)
	if ref.seg.live--; ref.seg.live == 0 && ref.seg != s.cur {
		s.closeSegment(ref.seg)
	}
	return buf, nil
}

func (s *spillStore) closeSegment(seg *spillSegment) {
	seg.f.Close()
	s.open--
}

// close closes every segment; runs not read back are lost.
func (s *spillStore) close(runs []*coldRun) {
	if s.cur != nil && s.cur.live == 0 {
		s.closeSegment(s.cur)
	}
	for _, r := range runs {
		if seg := r.spilled.seg; seg != nil && seg.live > 0 {
			seg.live = 0
			s.closeSegment(seg)
		}
	}
	s.cur = nil
}
