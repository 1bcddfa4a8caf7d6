// Command bpfleet builds, signs and ships eBPF bundles.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/bpfleet/bpfleet/bundles/cli"
	"github.com/bpfleet/bpfleet/cmd/bpfleet/local"
)

func main() {
	root := &cobra.Command{
		Use:           "bpfleet",
		Short:         "Manage eBPF bundles for a bpfleet fleet",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(cli.NewBundleCommand(), local.NewCommand())
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "bpfleet:", err)
		os.Exit(1)
	}
}
