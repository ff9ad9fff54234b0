package ablation

import (
	"strings"
	"testing"
)

const tracesSample = `File: funnelhouse
Type: cpu
-----------+-------------------------------------------------------
      10ms   runtime.memclrNoHeapPointers
             github.com/twmb/franz-go/pkg/kgo.(*decompressor).Decompress
-----------+-------------------------------------------------------
      30ms   runtime.scanObject
             runtime.gcDrain
             runtime.gcBgMarkWorker
-----------+-------------------------------------------------------
      20ms   runtime.mallocgc
             github.com/funnelhouse/funnelhouse/schemas.(*Decoder).Decode
             github.com/funnelhouse/funnelhouse/pipeline.(*Processor).Add
-----------+-------------------------------------------------------
      1.5s   github.com/ClickHouse/ch-go/proto.(*ColStr).Append
             github.com/funnelhouse/funnelhouse/sinks/clickhouse.(*Sink).insert
-----------+-------------------------------------------------------
      40ms   runtime.findRunnable
             runtime.schedule
`

func TestStages(t *testing.T) {
	stages, err := Stages(strings.NewReader(tracesSample))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, s := range stages {
		got[s.Stage] = s.Seconds
	}
	want := map[string]float64{StageFetch: 0.01, StageGC: 0.03, StageDecode: 0.02, StageDriver: 1.5, StageOther: 0.04}
	for s, v := range want {
		if d := got[s] - v; d > 1e-9 || d < -1e-9 {
			t.Errorf("%s: %.3f s, want %.3f", s, got[s], v)
		}
	}
	if len(got) != len(want) || stages[0].Stage != StageDriver {
		t.Errorf("stages %v", stages)
	}
}
