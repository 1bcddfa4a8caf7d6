package main

import (
	"os"
	"testing"

	"github.com/bpfleet/bpfleet/test/support/envtest"
)

// TestMain runs the operator's main instead of the tests when the test
// binary is re-executed by a test (operatorRSS).
func TestMain(m *testing.M) {
	if os.Getenv("BPFLEET_OPERATOR_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(envtest.Run(m, &env))
}

var env *envtest.Env
