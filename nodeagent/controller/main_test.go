package controller_test

import (
	"os"
	"testing"

	"github.com/bpfleet/bpfleet/test/envtest"
)

var env *envtest.Env

func TestMain(m *testing.M) { os.Exit(envtest.Run(m, &env)) }
