package rows

// Stage is a lifecycle stage: the values of the events.stage and
// lifecycle_transitions.stage enums (sql/migrations). The funnel stages
// are ordered: a visitor only moves forward through them.
type Stage int8

const (
	StageNone Stage = iota // before awareness
	StageAwareness
	StageAcquisition
	StageConversion
	StageRetention
	StageAdvocacy
	StageChurned
	StageReactivated

	NumStages = iota
)

// stageNames are the enums' names; StageNone's is empty (the events enum
// calls it 'none').
var stageNames = [NumStages]string{"", "awareness", "acquisition", "conversion", "retention", "advocacy", "churned", "reactivated"}

// String is the stage's name in ClickHouse.
func (s Stage) String() string { return stageNames[s] }

// StateKind is the kind of a pipeline_state row: the values of its kind
// enum.
type StateKind int8

const (
	StateCheckpoint StateKind = 1 // a partition's checkpoint
	StateVisitor    StateKind = 2 // one visitor's state
)

// String is the kind's name in ClickHouse.
func (k StateKind) String() string {
	switch k {
	case StateCheckpoint:
		return "checkpoint"
	case StateVisitor:
		return "visitor"
	}
	return ""
}
