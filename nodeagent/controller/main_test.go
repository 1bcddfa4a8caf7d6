package controller_test

import (
	"os"
	"testing"

	"go.uber.org/zap/zapcore"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/bpfleet/bpfleet/test/envtest"
)

var env *envtest.Env

func TestMain(m *testing.M) {
	// Agents log through their Options.Log; this catches the rest.
	ctrllog.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	os.Exit(envtest.Run(m, &env))
}
