// Package cli implements `bpfleet bundle …`: build, push, pull, inspect,
// sign, verify and generate-key-pair.
package cli

import (
	"github.com/spf13/cobra"
)

// NewBundleCommand returns the `bundle` command with its subcommands.
func NewBundleCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bundle",
		Short: "Build, push, pull, inspect, sign and verify eBPF bundles",
	}
	return cmd
}
