package plugin

import (
	"context"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// NewCommandWithSleep is NewCommand with top's wait between two samples
// replaced, so that a test can write the agents' next statistics in between.
func NewCommandWithSleep(streams genericiooptions.IOStreams, sleep func(ctx context.Context, d time.Duration) error) *cobra.Command {
	o := &options{flags: genericclioptions.NewConfigFlags(true), streams: streams, sleep: sleep}
	o.newClient = o.clientFromFlags
	return newCommand(o)
}
