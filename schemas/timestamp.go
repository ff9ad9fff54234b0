package schemas

// ts: an RFC 3339 time with a zone, or integer epoch milliseconds, not
// before 2000 and not more than an hour after the processing clock.

import "time"

// minTsMs is 2000-01-01T00:00:00Z; earlier events are rejected with ReasonBadTs.
const minTsMs = 946684800000

// maxFutureMs is how far ahead of the processing clock an event ts may be.
const maxFutureMs = int64(time.Hour / time.Millisecond)

// tsLimit is the latest ts the "not more than 1 h after the processing
// clock" rule admits: the clock as last read plus maxFutureMs. The clock is
// read again only when a ts passes that limit, or after tsLimitReuse
// decodes: a ts under a limit read moments ago is under the current one,
// and reading the clock for every event was 1 % of a member's CPU.
type tsLimit struct {
	now   func() time.Time
	limit int64
	uses  int // decodes since the clock was read
}

// tsLimitReuse bounds how long a limit is kept, so that a clock set back
// is obeyed again within that many events.
const tsLimitReuse = 1024

// admits reports whether ms is within the limit, and the limit.
func (l *tsLimit) admits(ms int64) (bool, int64) {
	if l.uses++; ms > l.limit || l.uses > tsLimitReuse {
		l.limit, l.uses = l.now().UnixMilli()+maxFutureMs, 0
	}
	return ms <= l.limit, l.limit
}

// decodeTs checks ts against the processing clock and returns it in epoch
// milliseconds.
func (fv *fieldValues) decodeTs(clock *tsLimit) (int64, *Error) {
	if fv.absent(fTs) {
		return 0, missing(fTs)
	}
	var ms int64
	switch k := fv.vals[fTs].kind; k {
	case kString:
		b := fv.text(fTs)
		var ok bool
		if ms, ok = parseRFC3339Ms(b); !ok {
			return 0, errorf(ReasonBadTs, "field ts: want an RFC 3339 time with a zone (Z or ±hh:mm) or integer epoch milliseconds, got %s", quote(b))
		}
	case kNumber:
		raw := fv.text(fTs)
		var ok bool
		if ms, ok = parseEpochMs(raw); !ok {
			return 0, errorf(ReasonBadTs, "field ts: epoch milliseconds must be a JSON integer literal in range, got %s", quote(raw))
		}
	default:
		return 0, errorf(ReasonBadTs, "field ts: must be a string or an integer, got %s", jsonTypeName(k))
	}
	if ms < minTsMs {
		return 0, errorf(ReasonBadTs, "field ts: not before 2000-01-01, got %s", msString(ms))
	}
	if ok, limit := clock.admits(ms); !ok {
		return 0, errorf(ReasonBadTs, "field ts: more than 1h after the processing clock, got %s, limit %s", msString(ms), msString(limit))
	}
	return ms, nil
}

func msString(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// parseEpochMs parses the raw text of a JSON number that must be an integer
// literal: an optional '-' and digits, no fraction, no exponent.
func parseEpochMs(raw []byte) (int64, bool) {
	s := raw
	if len(s) > 0 && s[0] == '-' {
		s = s[1:]
	}
	if len(s) == 0 || len(s) > 18 { // 18 digits cannot overflow int64
		return 0, false
	}
	var n int64
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if raw[0] == '-' {
		n = -n
	}
	return n, true
}

// parseRFC3339Ms parses YYYY-MM-DDTHH:MM:SS[.fraction](Z|±hh:mm) into UTC epoch
// milliseconds. The fraction may have any number of digits and is truncated,
// never rounded, to milliseconds. 'T' and 'Z' must be upper case.
func parseRFC3339Ms(s []byte) (int64, bool) {
	if len(s) < len("2006-01-02T15:04:05Z") ||
		s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return 0, false
	}
	year, ok1 := digits(s[0:4])
	month, ok2 := digits(s[5:7])
	day, ok3 := digits(s[8:10])
	hour, ok4 := digits(s[11:13])
	minute, ok5 := digits(s[14:16])
	sec, ok6 := digits(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) ||
		month < 1 || month > 12 || day < 1 || day > daysIn(year, month) ||
		hour > 23 || minute > 59 || sec > 59 {
		return 0, false
	}
	s = s[19:]
	ms := 0
	if s[0] == '.' {
		i := 1
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if i <= 3 {
				ms = ms*10 + int(s[i]-'0')
			}
			i++
		}
		if i == 1 {
			return 0, false // a '.' needs at least one digit
		}
		for j := i; j <= 3; j++ {
			ms *= 10 // ".5" is 500 ms
		}
		s = s[i:]
	}
	offsetMin := 0
	switch {
	case len(s) == 1 && s[0] == 'Z':
	case len(s) == 6 && (s[0] == '+' || s[0] == '-') && s[3] == ':':
		oh, ok1 := digits(s[1:3])
		om, ok2 := digits(s[4:6])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return 0, false
		}
		offsetMin = oh*60 + om
		if s[0] == '-' {
			offsetMin = -offsetMin
		}
	default:
		return 0, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute-offsetMin, sec, 0, time.UTC)
	return t.Unix()*1000 + int64(ms), true
}

// digits parses a short run of ASCII digits.
func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
