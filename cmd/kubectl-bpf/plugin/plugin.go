// Package plugin implements kubectl-bpf: read-only views of BpfPrograms and
// BpfNodeStates that work against any cluster running bpfleet.
package plugin

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bpfleet/bpfleet/api/scheme"
	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
)

// Output formats accepted by -o.
const (
	outputTable = ""
	outputWide  = "wide"
	outputJSON  = "json"
	outputYAML  = "yaml"
)

type options struct {
	flags   *genericclioptions.ConfigFlags
	streams genericiooptions.IOStreams
	output  string
	// print makes the json and yaml printers from output.
	print *genericclioptions.PrintFlags
	// newClient is replaceable so tests can pass a client built from an
	// envtest rest.Config; by default it reads the kubeconfig flags.
	newClient func() (client.Client, error)
	// sleep waits between two samples of top, or until ctx ends.
	sleep func(ctx context.Context, d time.Duration) error
}

// NewCommand returns the kubectl-bpf root command.
func NewCommand(streams genericiooptions.IOStreams) *cobra.Command {
	o := &options{flags: genericclioptions.NewConfigFlags(true), streams: streams, sleep: sleepCtx}
	o.newClient = o.clientFromFlags
	return newCommand(o)
}

// NewCommandWithClient returns the root command reading through c (for
// embedding, e.g. `bpfleet local`, and tests).
func NewCommandWithClient(streams genericiooptions.IOStreams, c client.Client) *cobra.Command {
	o := &options{flags: genericclioptions.NewConfigFlags(true), streams: streams, sleep: sleepCtx}
	o.newClient = func() (client.Client, error) { return c, nil }
	return newCommand(o)
}

func newCommand(o *options) *cobra.Command {
	// -o json|yaml go through cli-runtime's printers, as kubectl's own;
	// the table and wide views are the plugin's.
	o.print = &genericclioptions.PrintFlags{OutputFormat: &o.output, JSONYamlPrintFlags: genericclioptions.NewJSONYamlPrintFlags()}
	root := &cobra.Command{
		Use:           "kubectl-bpf",
		Short:         "Show the eBPF programs bpfleet runs, node by node",
		SilenceUsage:  true,
		SilenceErrors: false,
	}
	root.SetOut(o.streams.Out)
	root.SetErr(o.streams.ErrOut)
	o.flags.AddFlags(root.PersistentFlags())
	root.PersistentFlags().StringVarP(&o.output, "output", "o", "", "output format: wide, json or yaml")
	root.AddCommand(o.statusCommand(), o.nodesCommand(), o.programsCommand(), o.topCommand(), o.unmanagedCommand(), o.eventsCommand())
	return root
}

func (o *options) clientFromFlags() (client.Client, error) {
	cfg, err := o.flags.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		return nil, fmt.Errorf("create client: %w", err)
	}
	return c, nil
}

func (o *options) checkOutput() error {
	switch o.output {
	case outputTable, outputWide, outputJSON, outputYAML:
		return nil
	}
	return fmt.Errorf("unknown output format %q: use wide, json or yaml", o.output)
}

// printStructured writes v (rows, not API objects: cli-runtime prints them
// as raw JSON) with the -o json or yaml printer and reports whether it did.
func (o *options) printStructured(v any) (bool, error) {
	if o.output != outputJSON && o.output != outputYAML {
		return false, nil
	}
	p, err := o.print.ToPrinter()
	if err != nil {
		return true, fmt.Errorf("make %s printer: %w", o.output, err)
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return true, fmt.Errorf("encode %s: %w", o.output, err)
	}
	return true, p.PrintObj(&runtime.Unknown{Raw: raw, ContentType: runtime.ContentTypeJSON}, o.streams.Out)
}

func (o *options) programNames(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	c, err := o.newClient()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var list v1.BpfProgramList
	if err := c.List(cmd.Context(), &list); err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []string
	for _, p := range list.Items {
		if strings.HasPrefix(p.Name, toComplete) {
			names = append(names, p.Name)
		}
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

// StatusRow is one program at one attach point on one node.
type StatusRow struct {
	Node string `json:"node"`
	v1.ProgramState
}

func (o *options) statusCommand() *cobra.Command {
	var node string
	cmd := &cobra.Command{
		Use:   "status [BPFPROGRAM]",
		Short: "Per node, what is loaded: program, attach point, state, ids, tag, sizes, run stats",
		Long: "Lists every program entry of every BpfNodeState, like `bpftool prog show` run on each node.\n" +
			"Filter by BpfProgram name (argument) and by node (--node).\n" +
			"With -n NAMESPACE it lists that namespace's BpfPodPrograms instead (argument: a BpfPodProgram),\n" +
			"which needs only read access to BpfPodPrograms there (the bpfleet-view role).",
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: o.programNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.checkOutput(); err != nil {
				return err
			}
			c, err := o.newClient()
			if err != nil {
				return err
			}
			if ns := o.namespace(); ns != "" {
				name := ""
				if len(args) == 1 {
					name = args[0]
				}
				rows, err := podProgramRows(cmd.Context(), c, ns, name)
				if err != nil {
					return err
				}
				if done, err := o.printStructured(rows); done {
					return err
				}
				return printPodPrograms(o.streams.Out, rows, o.output == outputWide)
			}
			program := ""
			if len(args) == 1 {
				program = args[0]
				if err := c.Get(cmd.Context(), client.ObjectKey{Name: program}, &v1.BpfProgram{}); err != nil {
					return fmt.Errorf("get bpfprogram %s: %w", program, err)
				}
			}
			rows, err := statusRows(cmd.Context(), c, program, node)
			if err != nil {
				return err
			}
			if done, err := o.printStructured(rows); done {
				return err
			}
			return printStatus(o.streams.Out, rows, o.output == outputWide)
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "show only this node")
	return cmd
}

func statusRows(ctx context.Context, c client.Client, program, node string) ([]StatusRow, error) {
	var states v1.BpfNodeStateList
	if err := c.List(ctx, &states); err != nil {
		return nil, fmt.Errorf("list bpfnodestates: %w", err)
	}
	rows := []StatusRow{}
	for _, s := range states.Items {
		if node != "" && s.Name != node {
			continue
		}
		for _, p := range s.Status.Programs {
			if program != "" && p.BpfProgram != program {
				continue
			}
			rows = append(rows, StatusRow{Node: s.Name, ProgramState: p})
		}
	}
	slices.SortStableFunc(rows, func(a, b StatusRow) int {
		return cmp.Or(strings.Compare(a.Node, b.Node), strings.Compare(a.BpfProgram, b.BpfProgram), strings.Compare(a.AttachPoint, b.AttachPoint))
	})
	return rows, nil
}

func printStatus(w io.Writer, rows []StatusRow, wide bool) error {
	t := newTable(w, wide, "NODE\tBPFPROGRAM\tPROGRAM\tATTACH POINT\tSTATE\tSIGNER\tID\tTAG\tLOADED\tXLATED\tJITED\tMAPS\tRUNS\tNS/RUN",
		"LINK\tDIGEST\tKEY\tREASON\tMESSAGE")
	for _, r := range rows {
		t.row([]string{
			r.Node, r.BpfProgram, r.Program, dash(r.AttachPoint), string(r.State), shortSigner(r.Signer), num(uint64(r.ID)), dash(r.Tag),
			age(r.LoadedAt), num(uint64(r.BytesXlated)), num(uint64(r.BytesJited)), ids(r.MapIDs),
			num(r.RunCount), num(r.NsPerRun),
		}, num(uint64(r.LinkID)), short(r.Digest), signerKey(r.Signer), dash(r.Reason), dash(oneLine(r.Message)))
	}
	return t.flush()
}

func (o *options) nodesCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "nodes",
		Short: "Per node: kernel release, BTF, programs attached and failed, unmanaged programs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			states, err := o.listNodeStates(cmd.Context())
			if err != nil {
				return err
			}
			if done, err := o.printStructured(states); done {
				return err
			}
			tw := tabwriter.NewWriter(o.streams.Out, 0, 8, 2, ' ', 0)
			fmt.Fprintln(tw, "NODE\tKERNEL\tBTF\tPROGRAMS\tATTACHED\tFAILED\tUNMANAGED\tREADY")
			for _, s := range states {
				unmanaged := "-"
				if s.Status.Unmanaged != nil {
					unmanaged = fmt.Sprint(s.Status.Unmanaged.Count)
				}
				ready := "Unknown"
				if c := meta.FindStatusCondition(s.Status.Conditions, v1.ConditionReady); c != nil {
					ready = string(c.Status)
				}
				fmt.Fprintf(tw, "%s\t%s\t%t\t%d\t%d\t%d\t%s\t%s\n", s.Name, dash(s.Status.Kernel.Release), s.Status.Kernel.BTF,
					s.Status.Summary.Programs, s.Status.Summary.Attached, s.Status.Summary.Failed, unmanaged, ready)
			}
			return tw.Flush()
		},
	}
}

func (o *options) programsCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "programs",
		Short: "Per BpfProgram: rollout state, digest, signer, nodes attached/selected",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.checkOutput(); err != nil {
				return err
			}
			c, err := o.newClient()
			if err != nil {
				return err
			}
			var list v1.BpfProgramList
			if err := c.List(cmd.Context(), &list); err != nil {
				return fmt.Errorf("list bpfprograms: %w", err)
			}
			slices.SortFunc(list.Items, func(a, b v1.BpfProgram) int { return strings.Compare(a.Name, b.Name) })
			if done, err := o.printStructured(list.Items); done {
				return err
			}
			return printPrograms(o.streams.Out, list.Items, o.output == outputWide)
		},
	}
}

func printPrograms(w io.Writer, items []v1.BpfProgram, wide bool) error {
	t := newTable(w, wide, "NAME\tDIGEST\tSIGNER\tNODES\tFAILED\tREADY\tROLLOUT", "IMAGE\tKERNELS")
	for _, p := range items {
		ready := "Unknown"
		if c := meta.FindStatusCondition(p.Status.Conditions, v1.ConditionReady); c != nil {
			ready = string(c.Status)
		}
		t.row([]string{
			p.Name, short(p.Status.ResolvedDigest), dash(p.Status.Signer),
			fmt.Sprintf("%d/%d", p.Status.Nodes.Attached, p.Status.Nodes.Selected),
			fmt.Sprint(p.Status.Nodes.Failed), ready, rolloutState(p),
		}, p.Spec.Bundle.Image, kernels(p.Status.Kernels))
	}
	return t.flush()
}

func rolloutState(p v1.BpfProgram) string {
	r := p.Status.Rollout
	switch {
	case r == nil || r.TargetDigest == "":
		if c := meta.FindStatusCondition(p.Status.Conditions, v1.ConditionRolledOut); c != nil {
			return c.Reason
		}
		return "-"
	case r.HaltedReason != "":
		return "Halted"
	default:
		waves := len(p.Spec.Rollout.Waves)
		if waves == 0 {
			waves = 1
		}
		return fmt.Sprintf("wave %d/%d → %s", r.Wave+1, waves, short(r.TargetDigest))
	}
}

func kernels(ks []v1.KernelCompatibility) string {
	if len(ks) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(ks))
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%s:%d/%d", k.Release, k.Attached, k.Attached+k.Failed))
	}
	return strings.Join(parts, ",")
}

// shortSigner is the policy/key part of a signer ("policy/key SHA256:…"),
// or "policy (unsigned)" for a bundle admitted unsigned.
func shortSigner(signer string) string {
	if policy, ok := strings.CutSuffix(signer, " (unsigned, allowed by policy)"); ok {
		return policy + " (unsigned)"
	}
	if i := strings.IndexByte(signer, ' '); i > 0 {
		return signer[:i]
	}
	return dash(signer)
}

// signerKey is the key fingerprint part of a signer, for the wide view.
func signerKey(signer string) string {
	if strings.HasSuffix(signer, " (unsigned, allowed by policy)") {
		return "unsigned"
	}
	if i := strings.IndexByte(signer, ' '); i > 0 {
		return signer[i+1:]
	}
	return "-"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func num(n uint64) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprint(n)
}

func ids(v []uint32) string {
	if len(v) == 0 {
		return "-"
	}
	s := make([]string, len(v))
	for i, id := range v {
		s[i] = fmt.Sprint(id)
	}
	return strings.Join(s, ",")
}

func short(digest string) string { return dash(v1.ShortDigest(digest)) }

func oneLine(s string) string { return v1.Truncate(strings.Join(strings.Fields(s), " "), 80) }

func age(t *metav1.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return duration.HumanDuration(time.Since(t.Time))
}

// listNodeStates checks -o, then lists every BpfNodeState, sorted by node.
func (o *options) listNodeStates(ctx context.Context) ([]v1.BpfNodeState, error) {
	if err := o.checkOutput(); err != nil {
		return nil, err
	}
	c, err := o.newClient()
	if err != nil {
		return nil, err
	}
	var states v1.BpfNodeStateList
	if err := c.List(ctx, &states); err != nil {
		return nil, fmt.Errorf("list bpfnodestates: %w", err)
	}
	slices.SortFunc(states.Items, func(a, b v1.BpfNodeState) int { return strings.Compare(a.Name, b.Name) })
	return states.Items, nil
}
