package plugin

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
)

// UnmanagedRow is one program a node runs that bpfleet did not load.
type UnmanagedRow struct {
	Node string `json:"node"`
	v1.UnmanagedProgram
}

func (o *options) unmanagedCommand() *cobra.Command {
	var node string
	cmd := &cobra.Command{
		Use:   "unmanaged",
		Short: "Per node, the eBPF programs bpfleet did not load: counts by type and the newest 20",
		Long: "Lists what each agent reports in status.unmanaged: programs in the node's kernel that are neither\n" +
			"among its managed programs nor pinned under its bpffs root (systemd's cgroup programs, other\n" +
			"agents', a third-party loader's). bpfleet never modifies them. Agents write a changed\n" +
			"inventory at most once per 30s by default, so it may lag that much behind the kernel.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			states, err := o.listNodeStates(cmd.Context())
			if err != nil {
				return err
			}
			var rows []UnmanagedRow
			var nodes []v1.BpfNodeState
			for _, s := range states {
				if node != "" && s.Name != node {
					continue
				}
				nodes = append(nodes, s)
				if s.Status.Unmanaged == nil {
					continue
				}
				for _, p := range s.Status.Unmanaged.Programs {
					rows = append(rows, UnmanagedRow{Node: s.Name, UnmanagedProgram: p})
				}
			}
			if done, err := o.printStructured(rows); done {
				return err
			}
			return printUnmanaged(o.streams.Out, nodes, rows)
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "show only this node")
	return cmd
}

func printUnmanaged(w io.Writer, nodes []v1.BpfNodeState, rows []UnmanagedRow) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tUNMANAGED\tBY TYPE")
	for _, s := range nodes {
		u := s.Status.Unmanaged
		if u == nil {
			fmt.Fprintf(tw, "%s\t-\t-\n", s.Name)
			continue
		}
		types := make([]string, 0, len(u.ByType))
		for t, n := range u.ByType {
			types = append(types, fmt.Sprintf("%s:%d", t, n))
		}
		slices.Sort(types)
		fmt.Fprintf(tw, "%s\t%d\t%s\n", s.Name, u.Count, dash(strings.Join(types, ",")))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(rows) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tID\tTYPE\tNAME\tTAG\tLOADED\tATTACH POINT\tOWNERS")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Node, r.ID, r.Type, dash(r.Name), dash(r.Tag), age(r.LoadedAt), dash(r.AttachPoint), dash(r.Owners))
	}
	return tw.Flush()
}
