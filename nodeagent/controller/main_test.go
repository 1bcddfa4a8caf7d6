package controller_test

import (
	"flag"
	"os"
	"testing"

	"go.uber.org/zap/zapcore"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/bpfleet/bpfleet/test/support/envtest"
	"github.com/bpfleet/bpfleet/test/support/targets"
)

var env *envtest.Env

func TestMain(m *testing.M) {
	// Agents log through their Options.Log; this catches the rest.
	ctrllog.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	flag.Parse()
	if fuzzingOnly() {
		// FuzzDesired drives the reconciler's plan with fakes: no control
		// plane, so each fuzz worker starts in milliseconds.
		os.Exit(m.Run())
	}
	// No operator runs here: the mirror writes the BpfProgramTargets agents
	// read from the BpfPrograms tests write, as the operator would.
	os.Exit(envtest.Run(m, &env, targets.Mirror))
}

// fuzzingOnly tells whether this process runs fuzz inputs and no test: a
// fuzz worker, or the coordinator of `go test -run '^$' -fuzz X` (as
// test/tools/fuzz-all.sh runs it).
func fuzzingOnly() bool {
	value := func(name string) string {
		if f := flag.Lookup(name); f != nil {
			return f.Value.String()
		}
		return ""
	}
	return value("test.fuzzworker") == "true" || value("test.fuzz") != "" && value("test.run") == "^$"
}
