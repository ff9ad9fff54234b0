package perf

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
)

// median is the middle value of v (the upper one of an even count).
func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

// readPID reads a pid file; 0 when there is none.
func readPID(file string) int {
	if file == "" {
		return 0
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// cpuMark is the CPU seconds used so far by ClickHouse (0 without its pid;
// the sum over the servers of a cluster, each also in perServer), by
// ZooKeeper (a cluster's; 0 without), by the broker (0 without its pid)
// and by this process, the harness.
type cpuMark struct {
	clickhouse, zookeeper, broker, self float64
	perServer                           []float64 // in the order of servers.clickhouse
}

// servers are the processes of the ClickHouse a measurement writes to,
// whose CPU it reports beside the measured process.
type servers struct {
	clickhouse []int // pid of each server; none, or 0: not measured
	names      []string
	zookeeper  int // a cluster's ZooKeeper; 0 for none
	broker     int // the broker's; 0 for none
}

// oneServer is a single ClickHouse server by pid (0: not measured).
func oneServer(pid int) servers {
	return servers{clickhouse: []int{pid}, names: []string{"clickhouse"}}
}

// begin marks the start of a measured window, once this process's own
// garbage collection has settled: the harness holds the expected
// computation (GBs at 5M events), and a collection still marking it would
// take the measured system's cores.
func (s servers) begin() cpuMark {
	runtime.GC()
	return s.mark()
}

func (s servers) mark() cpuMark {
	m := cpuMark{zookeeper: cpuSeconds(s.zookeeper), broker: cpuSeconds(s.broker), self: cpuSeconds(os.Getpid())}
	for _, pid := range s.clickhouse {
		c := cpuSeconds(pid)
		m.clickhouse += c
		m.perServer = append(m.perServer, c)
	}
	return m
}

// since is the CPU used from m until now.
func (m cpuMark) since(s servers) cpuMark { return m.until(s.mark()) }

// until is the CPU used from m until the later mark end.
func (m cpuMark) until(end cpuMark) cpuMark {
	d := cpuMark{clickhouse: end.clickhouse - m.clickhouse, zookeeper: end.zookeeper - m.zookeeper, broker: end.broker - m.broker, self: end.self - m.self}
	for i := range end.perServer {
		d.perServer = append(d.perServer, end.perServer[i]-m.perServer[i])
	}
	return d
}

// beginCPU is begin for a single server by pid.
func beginCPU(chPID int) cpuMark { return oneServer(chPID).begin() }

// perMillion turns seconds over n records into seconds per million records.
func perMillion(seconds float64, n int64) float64 { return seconds / float64(n) * 1e6 }

// cpuSeconds is a process's user + system CPU time so far, from /proc.
func cpuSeconds(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) start after ")".
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(fields) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return (utime + stime) / 100 // clock ticks; 100 per second on Linux
}

// PeakRSS is a process's peak resident set (VmHWM) in bytes, 0 when /proc
// cannot say.
func PeakRSS(pid int) int64 { return procStatusBytes(pid, "VmHWM:") }

// RSS is a process's current resident set (VmRSS) in bytes, 0 when /proc
// cannot say.
func RSS(pid int) int64 { return procStatusBytes(pid, "VmRSS:") }

// procStatusBytes reads a field in kB of /proc/PID/status, in bytes.
func procStatusBytes(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &kb)
			return kb << 10
		}
	}
	return 0
}

// CPUSeconds is a process's user + system CPU seconds so far (0 when /proc
// cannot say); for other benchmarks of the server (bench/ablation).
func CPUSeconds(pid int) float64 { return cpuSeconds(pid) }

// ReadPID reads a pid file; 0 when there is none.
func ReadPID(file string) int { return readPID(file) }
