package perf

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// brokerProcess is the embedded broker run as a child (`funnelhouse
// broker`), so that its CPU is its own. In the bench process it shared a
// heap with the harness's expected computation (about 2 KB per event):
// kfake allocates a fetch response per fetch (3.4 GB over a 5M run), and
// every collection that started then marked the harness's GBs. A CPU
// profile of one 5M run put 84 % of the bench process in that marking and
// 0.4 CPU-s/M in serving fetches, all of it charged to the broker and
// taken from the measured system's cores.
type brokerProcess struct {
	cmd     *exec.Cmd
	addr    string
	Pid     int
	dataDir string          // removed at Close; "" when the records are in its memory
	trace   strings.Builder // its stderr, for an error
}

var brokerListening = regexp.MustCompile(`^broker listening on (\S+)`)

// startBroker starts bin's broker on a free loopback port with topics of
// partitions partitions each, and waits for its address line. With
// dataDir, the broker keeps its records in a new directory under it (read
// back from the page cache) instead of its heap, about 300 B a record: 6
// GB at 20M events.
func startBroker(ctx context.Context, bin string, partitions int, dataDir string, topics []string) (*brokerProcess, error) {
	b := &brokerProcess{}
	args := []string{"broker", "--listen", "127.0.0.1:0", "--partitions", strconv.Itoa(partitions), "--topics", strings.Join(topics, ",")}
	if dataDir != "" {
		if err := os.MkdirAll(dataDir, 0o755); err != nil {
			return nil, fmt.Errorf("the broker's data dir: %w", err)
		}
		dir, err := os.MkdirTemp(dataDir, "broker-")
		if err != nil {
			return nil, fmt.Errorf("the broker's data dir: %w", err)
		}
		b.dataDir = dir
		args = append(args, "--data-dir", dir)
	}
	b.cmd = exec.CommandContext(ctx, bin, args...)
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // not left behind by a killed bench
	b.cmd.Stderr = &b.trace
	out, err := b.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := b.cmd.Start(); err != nil {
		b.removeData()
		return nil, fmt.Errorf("start the broker: %w", err)
	}
	b.Pid = b.cmd.Process.Pid
	found := make(chan string, 1)
	go func() {
		lines := bufio.NewScanner(out)
		for lines.Scan() {
			if m := brokerListening.FindStringSubmatch(lines.Text()); m != nil {
				found <- m[1]
			}
		}
		close(found)
	}()
	select {
	case addr, ok := <-found:
		if ok {
			b.addr = addr
			return b, nil
		}
	case <-time.After(30 * time.Second):
	}
	b.Close()
	return nil, fmt.Errorf("the broker (%s broker) printed no address: %s", bin, lastLines(b.trace.String(), 5))
}

// Addrs is the broker's address, as kafka.Broker gives it.
func (b *brokerProcess) Addrs() []string { return []string{b.addr} }

// Close stops the broker and removes its records.
func (b *brokerProcess) Close() {
	defer b.removeData()
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = b.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = b.cmd.Process.Kill()
		<-done
	}
}

func (b *brokerProcess) removeData() {
	if b.dataDir != "" {
		_ = os.RemoveAll(b.dataDir)
	}
}
