// Command bpfleet-local runs the whole of bpfleet on this machine (make demo):
// a real control plane, an OCI registry, the operator and one node agent per
// simulated node, and shows them at work. It is a thin caller of
// cmd/localenv, which the e2e and fault suites use as their environment.
//
// It is its own binary, not a subcommand of bpfleet: it links the operator,
// the agent and the control-plane launcher, which a bundle author's bpfleet
// (build, push, sign, inspect) has no use for.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := newCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "bpfleet-local:", err)
		os.Exit(1)
	}
}
