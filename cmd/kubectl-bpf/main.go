// Command kubectl-bpf is the kubectl plugin that shows, per node, which eBPF
// programs bpfleet runs: kubectl bpf status|nodes|programs|top.
package main

import (
	"os"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/bpfleet/bpfleet/cmd/kubectl-bpf/plugin"
)

func main() {
	cmd := plugin.NewCommand(genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr})
	if err := cmd.Execute(); err != nil {
		os.Exit(1)
	}
}
