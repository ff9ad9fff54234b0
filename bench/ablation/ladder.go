package ablation

import (
	"regexp"

	"github.com/funnelhouse/funnelhouse/pipeline/rows"
	fhsql "github.com/funnelhouse/funnelhouse/sql"
)

// Step is one rung of the ladder: the tables inserted into and the
// materialised views kept. Every rung includes the ones before it.
type Step struct {
	Name   string
	Tables []rows.AnyTable
	Views  []string // materialised views present; the others are dropped
}

// Ladder is events only, + sessions, + lifecycle_transitions, +
// pipeline_state, then + each materialised view in the order the
// migrations create them: the last step is everything the pipeline writes.
func Ladder() ([]Step, error) {
	views, err := MaterializedViews()
	if err != nil {
		return nil, err
	}
	var steps []Step
	var tables []rows.AnyTable
	for _, t := range rows.Tables {
		tables = append(tables, t)
		name := "+ " + t.TableName()
		if len(tables) == 1 {
			name = t.TableName() + " only"
		}
		steps = append(steps, Step{Name: name, Tables: tables[:len(tables):len(tables)]})
	}
	for i, v := range views {
		steps = append(steps, Step{Name: "+ " + v, Tables: rows.Tables, Views: views[: i+1 : i+1]})
	}
	return steps, nil
}

var (
	createView = regexp.MustCompile(`(?is)^CREATE\s+MATERIALIZED\s+VIEW\s+IF\s+NOT\s+EXISTS\s+\{db\}\.(\w+)`)
	dropTable  = regexp.MustCompile(`(?is)^DROP\s+TABLE\s+IF\s+EXISTS\s+\{db\}\.(\w+)`)
)

// MaterializedViews are the materialised views a migrated database has,
// in the order the migrations create them (a view a later migration drops
// is left out). Read from the migration files, so a new view joins the
// ladder by itself.
func MaterializedViews() ([]string, error) {
	migrations, err := fhsql.Migrations()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range migrations {
		for _, stmt := range m.Statements {
			if v := createView.FindStringSubmatch(stmt); v != nil {
				out = append(out, v[1])
			} else if d := dropTable.FindStringSubmatch(stmt); d != nil {
				out = remove(out, d[1])
			}
		}
	}
	return out, nil
}

func remove(s []string, v string) []string {
	out := s[:0]
	for _, x := range s {
		if x != v {
			out = append(out, x)
		}
	}
	return out
}
