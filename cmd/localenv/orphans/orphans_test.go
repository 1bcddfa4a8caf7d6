package orphans

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

func TestReapKillsRecordedProcess(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	file := filepath.Join(t.TempDir(), "pids")
	if err := Record(file, cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	kids, err := Children(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, k := range kids {
		found = found || k == cmd.Process.Pid
	}
	if !found {
		t.Errorf("Children(self) = %v, lacks %d", kids, cmd.Process.Pid)
	}
	n, err := Reap(file)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("Reap killed %d processes, want 1", n)
	}
	if err := <-done; err == nil {
		t.Error("sleep exited cleanly, want killed")
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("record still there: %v", err)
	}
}

func TestReapSparesRecycledPID(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	file := filepath.Join(t.TempDir(), "pids")
	// Same pid, another start time: a process that is not the one recorded.
	if err := os.WriteFile(file, []byte(itoa(cmd.Process.Pid)+" 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := Reap(file)
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 || !Alive(cmd.Process.Pid) {
		t.Errorf("Reap killed %d, alive %v: want the unrelated process spared", n, Alive(cmd.Process.Pid))
	}
}

func TestReapWithoutRecord(t *testing.T) {
	if n, err := Reap(filepath.Join(t.TempDir(), "none")); n != 0 || err != nil {
		t.Errorf("Reap(missing) = %d, %v", n, err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
