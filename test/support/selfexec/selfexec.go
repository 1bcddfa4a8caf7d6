// Package selfexec runs a test binary again as the program it tests, for
// tests that measure or signal the real process: the package's TestMain
// runs main when the environment variable the caller passes says so.
//
// Usage:
//
//	p := selfexec.Start(t, []string{"BPFLEET_AGENT_TEST_MAIN=1"}, "--node-name", node)
//	select {
//	case <-p.Done():
//		t.Fatalf("agent exited: %v\n%s", p.Err(), p.Output())
//	default:
//	}
//	sample, err := procstat.Read(p.Pid)
package selfexec

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// Process is the running program.
type Process struct {
	// Pid is its process id.
	Pid int

	done chan struct{}
	err  error // set before done closes
	out  *buffer
}

// Start runs os.Args[0] with args and the test's environment plus env, its
// output captured. When the test ends it is interrupted, and killed if it
// has not exited 10 s later.
func Start(tb testing.TB, env []string, args ...string) *Process {
	tb.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), env...)
	out := &buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	p := &Process{Pid: cmd.Process.Pid, done: make(chan struct{}), out: out}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is how the process exited, once Done is closed.
func (p *Process) Err() error {
	<-p.done
	return p.err
}

// Output is what the process wrote so far, stdout and stderr.
func (p *Process) Output() string { return p.out.String() }

// Tail is the last n lines of Output.
func (p *Process) Tail(n int) string {
	lines := strings.Split(p.Output(), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// buffer is a bytes.Buffer the process writes while the test reads.
type buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
