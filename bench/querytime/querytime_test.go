package querytime

import (
	"regexp"
	"strings"
	"testing"
)

// TestStatements checks the SQL files as Create and Start send them: every
// placeholder filled, one statement per object, no comment-only statement.
func TestStatements(t *testing.T) {
	p := &Peer{db: "qt"}
	p.r = strings.NewReplacer("{db}", "qt", "{brokers}", "b:9092", "{clickstream_topic}", "cs", "{transactions_topic}", "tx", "{group}", "g",
		"{session_gap_ms}", "1800000", "{churn_after_ms}", "7776000000", "{lateness_ms}", "600000")
	placeholder := regexp.MustCompile(`\{[a-z_]+\}`)
	for file, want := range map[string]int{schemaSQL: 11, ingestSQL: 2} {
		stmts := statements(p.r.Replace(file))
		if len(stmts) != want {
			t.Errorf("%d statements, want %d: %q", len(stmts), want, stmts)
		}
		for _, s := range stmts {
			if m := placeholder.FindString(s); m != "" {
				t.Errorf("placeholder %s left in: %s", m, firstLine(s))
			}
			if !strings.HasPrefix(s, "CREATE ") || strings.HasSuffix(s, ";") {
				t.Errorf("not one CREATE statement: %s", s)
			}
		}
	}
}
