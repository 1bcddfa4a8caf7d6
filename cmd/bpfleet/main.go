// Command bpfleet builds, signs and ships eBPF bundles. Local mode (the
// whole product on one machine) is a separate command, bpfleet-local, so
// that this one links no operator, agent or control plane.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/bpfleet/bpfleet/cmd/bpfleet/internal/bundlecmd"
)

func main() {
	root := &cobra.Command{
		Use:           "bpfleet",
		Short:         "Manage eBPF bundles for a bpfleet fleet",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(bundlecmd.NewBundleCommand())
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "bpfleet:", err)
		os.Exit(1)
	}
}
