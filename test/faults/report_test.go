package faults

import (
	"fmt"
	"os"
	"sync"
	"testing"
)

var reportMu sync.Mutex

// report logs one row of the fault table, and appends it to the file named
// by $BPFLEET_FAULTS_REPORT when set.
func report(t *testing.T, fault, format string, args ...any) {
	t.Helper()
	line := fmt.Sprintf("%-40s %s", fault, fmt.Sprintf(format, args...))
	t.Log("FAULT " + line)
	path := os.Getenv("BPFLEET_FAULTS_REPORT")
	if path == "" {
		return
	}
	reportMu.Lock()
	defer reportMu.Unlock()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Logf("report: %v", err)
		return
	}
	defer f.Close()
	fmt.Fprintln(f, line)
}
