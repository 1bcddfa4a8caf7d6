// Package scheme builds the one runtime.Scheme bpfleet's clients and
// managers use: client-go's built-in kinds and bpfleet.io/v1alpha1. The
// operator, the agent, kubectl-bpf, local mode and the tests all take it
// from here.
package scheme

import (
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
)

// builder adds every kind New registers.
var builder = runtime.NewSchemeBuilder(clientgoscheme.AddToScheme, v1alpha1.AddToScheme)

// New returns a new scheme with client-go's kinds and bpfleet's kinds. It
// panics only if a kind cannot be registered, which is a programming error
// that every test would show.
func New() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := builder.AddToScheme(s); err != nil {
		panic("register client-go and bpfleet kinds: " + err.Error())
	}
	return s
}
