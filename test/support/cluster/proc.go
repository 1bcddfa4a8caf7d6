package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/bpfleet/bpfleet/cmd/localenv/orphans"
)

// proc is one component the harness runs as a child process. Each runs in
// its own process group and gets SIGKILL when the harness dies
// (PR_SET_PDEATHSIG), so a harness killed with SIGKILL takes its direct
// children with it; what they leave behind (container shims, containers,
// mounts) is found by the next Start.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
	err  error
}

// start runs bin with args, its output in <state>/logs/<name>.log.
func (c *Cluster) start(name, bin string, args ...string) (*proc, error) {
	if err := os.MkdirAll(c.dirs.logs, 0o755); err != nil {
		return nil, fmt.Errorf("create log dir: %w", err)
	}
	logf, err := os.OpenFile(filepath.Join(c.dirs.logs, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s log: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "PATH="+c.opts.NodeBinDir+":"+os.Getenv("PATH"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logf, done: make(chan struct{})}
	if err := orphans.Record(c.dirs.pidFile, cmd.Process.Pid); err != nil {
		_ = cmd.Process.Kill()
		return nil, err
	}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	c.procs = append(c.procs, p)
	return p, nil
}

// stop sends SIGTERM to the process group and SIGKILL after grace.
func (p *proc) stop(grace time.Duration) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
	return fmt.Errorf("stop %s: killed after %s without exiting on SIGTERM", p.name, grace)
}

// exited reports an error when the process is no longer running, with the
// tail of its log.
func (p *proc) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited: %v; log tail:\n%s", p.name, p.err, tail(p.log.Name(), 20))
	default:
		return nil
	}
}

// waitFor polls ready every 100 ms until it returns nil, p exits, or timeout.
func waitFor(ctx context.Context, p *proc, timeout time.Duration, what string, ready func() error) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if p != nil {
			if err := p.exited(); err != nil {
				return err
			}
		}
		if last = ready(); last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("wait for %s: not ready after %s: %v", what, timeout, last)
			if p != nil {
				msg += "\nlog tail:\n" + tail(p.log.Name(), 20)
			}
			return errors.New(msg)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	n := 0
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '\n' {
			if n++; n > lines {
				return string(b[i+1:])
			}
		}
	}
	return string(b)
}
