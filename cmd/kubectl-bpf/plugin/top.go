package plugin

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
)

// topKey identifies one kernel program on one node: the kernel's run-time
// statistics are per program, whatever the number of its attach points.
type topKey struct {
	node string
	id   uint32
}

// topSample is one kernel program's statistics as its agent last wrote them.
type topSample struct {
	bpfProgram, program string
	attachPoints        []string
	runCount, runTimeNs uint64
	// at is when the agent read the statistics (status.statsAt), or when
	// this sample was taken from an agent that does not say.
	at time.Time
}

// TopRow is one kernel program's activity between two samples.
type TopRow struct {
	Node        string  `json:"node"`
	BpfProgram  string  `json:"bpfProgram"`
	Program     string  `json:"program"`
	AttachPoint string  `json:"attachPoint,omitempty"`
	ID          uint32  `json:"id"`
	RunsPerSec  float64 `json:"runsPerSecond"`
	NsPerRun    float64 `json:"nsPerRun"`
	// CPUPercent is the run time per wall time, in percent of one core.
	CPUPercent float64 `json:"cpuPercent"`
	// Sampled is false when no newer statistics arrived between the two
	// samples (the rates are then unknown, not zero).
	Sampled bool `json:"sampled"`
}

func (o *options) topCommand() *cobra.Command {
	var (
		node     string
		interval time.Duration
		once     bool
	)
	cmd := &cobra.Command{
		Use:   "top [BPFPROGRAM]",
		Short: "Per node and program: runs/s, ns/run and CPU % of one core, busiest first, refreshing",
		Long: "Shows, across nodes, how often each managed eBPF program runs and how much CPU it takes:\n" +
			"runs/s, ns/run and CPU % of one core (Δ run time / Δ wall time), sorted by CPU, refreshed every --interval.\n" +
			"With --once it takes two samples --interval apart, prints one table and exits (for scripts).\n\n" +
			"It needs agents started with --stats (the kernel's run-time statistics) and --stats-interval\n" +
			"(how often each agent writes them into its BpfNodeState; choose --interval at least as long,\n" +
			"or rows show '-' until a newer sample arrives). Rates are computed over the agent's own\n" +
			"sampling times (status.statsAt), not over when this command read them.\n\n" +
			"It reads BpfNodeState statuses rather than each agent's /metrics endpoint on purpose: that works\n" +
			"on any cluster with only API access (get/list on bpfnodestates), while scraping the agents goes\n" +
			"through the node proxy (nodes/proxy), which needs extra RBAC and reaches into every node.",
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: o.programNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.checkOutput(); err != nil {
				return err
			}
			if interval <= 0 {
				return fmt.Errorf("--interval must be positive, got %s", interval)
			}
			c, err := o.newClient()
			if err != nil {
				return err
			}
			program := ""
			if len(args) == 1 {
				program = args[0]
			}
			t := &topper{c: c, program: program, node: node}
			ctx := cmd.Context()
			if err := t.sample(ctx); err != nil {
				return err
			}
			for {
				if err := o.sleep(ctx, interval); err != nil {
					return nil // interrupted: leave quietly
				}
				if err := t.sample(ctx); err != nil {
					return err
				}
				rows := t.rows()
				if once {
					if done, err := o.printStructured(rows); done {
						return err
					}
					return printTop(o.streams.Out, rows, interval)
				}
				if !o.structured() {
					fmt.Fprint(o.streams.Out, "\033[H\033[2J") // clear the terminal
				}
				if done, err := o.printStructured(rows); done {
					if err != nil {
						return err
					}
					continue
				}
				if err := printTop(o.streams.Out, rows, interval); err != nil {
					return err
				}
			}
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "show only this node")
	cmd.Flags().DurationVar(&interval, "interval", 2*time.Second, "time between two samples")
	cmd.Flags().BoolVar(&once, "once", false, "take two samples --interval apart, print one table and exit")
	return cmd
}

func (o *options) structured() bool { return o.output == outputJSON || o.output == outputYAML }

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// topper keeps, per kernel program, the last two distinct samples and the
// rows computed from them, so that a refresh between two agent writes
// shows the last known rates.
type topper struct {
	c             client.Client
	program, node string

	prev, cur map[topKey]topSample
}

// sample reads the statuses once. A program's sample only moves on when
// its agent wrote newer statistics.
func (t *topper) sample(ctx context.Context) error {
	var states v1.BpfNodeStateList
	if err := t.c.List(ctx, &states); err != nil {
		return fmt.Errorf("list bpfnodestates: %w", err)
	}
	next := collectSamples(states.Items, t.program, t.node, time.Now())
	if t.cur == nil {
		t.prev, t.cur = map[topKey]topSample{}, next
		return nil
	}
	prev := map[topKey]topSample{}
	for k, s := range next {
		old, ok := t.cur[k]
		switch {
		case !ok:
		case s.at.After(old.at):
			prev[k] = old
		default:
			// No newer statistics: keep both samples as they were.
			s = old
			if p, ok := t.prev[k]; ok {
				prev[k] = p
			}
		}
		next[k] = s
	}
	t.prev, t.cur = prev, next
	return nil
}

// rows are the rates between the last two samples, busiest first.
func (t *topper) rows() []TopRow { return topRows(t.prev, t.cur) }

// collectSamples takes one sample per kernel program of the attached
// entries of states, filtered by BpfProgram and node names when given.
// Statistics without a read time are stamped with now.
func collectSamples(states []v1.BpfNodeState, program, node string, now time.Time) map[topKey]topSample {
	out := map[topKey]topSample{}
	for _, s := range states {
		if node != "" && s.Name != node {
			continue
		}
		at := now
		if s.Status.StatsAt != nil {
			at = s.Status.StatsAt.Time
		}
		for _, p := range s.Status.Programs {
			if p.ID == 0 || p.State != v1.PhaseAttached || (program != "" && p.BpfProgram != program) {
				continue
			}
			k := topKey{node: s.Name, id: p.ID}
			smp, ok := out[k]
			if !ok {
				smp = topSample{bpfProgram: p.BpfProgram, program: p.Program, runCount: p.RunCount, runTimeNs: p.RunTimeNs, at: at}
			}
			if p.AttachPoint != "" {
				smp.attachPoints = append(smp.attachPoints, p.AttachPoint)
			}
			out[k] = smp
		}
	}
	return out
}

// topRows computes, for every program of cur, its rates since its sample in
// prev, and sorts by CPU, then runs, then name. A program without an earlier
// sample, or whose counters went back (reloaded), is not Sampled.
func topRows(prev, cur map[topKey]topSample) []TopRow {
	rows := make([]TopRow, 0, len(cur))
	for k, c := range cur {
		slices.Sort(c.attachPoints)
		r := TopRow{
			Node: k.node, ID: k.id, BpfProgram: c.bpfProgram, Program: c.program,
			AttachPoint: strings.Join(c.attachPoints, ","),
		}
		if p, ok := prev[k]; ok && c.at.After(p.at) && c.runCount >= p.runCount && c.runTimeNs >= p.runTimeNs {
			dt := c.at.Sub(p.at).Seconds()
			runs, ns := float64(c.runCount-p.runCount), float64(c.runTimeNs-p.runTimeNs)
			r.Sampled = true
			r.RunsPerSec = runs / dt
			r.CPUPercent = ns / (dt * 1e9) * 100
			if runs > 0 {
				r.NsPerRun = ns / runs
			}
		}
		rows = append(rows, r)
	}
	sort.Slice(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.Sampled != b.Sampled {
			return a.Sampled
		}
		if a.CPUPercent != b.CPUPercent {
			return a.CPUPercent > b.CPUPercent
		}
		if a.RunsPerSec != b.RunsPerSec {
			return a.RunsPerSec > b.RunsPerSec
		}
		if a.Node != b.Node {
			return a.Node < b.Node
		}
		if a.BpfProgram != b.BpfProgram {
			return a.BpfProgram < b.BpfProgram
		}
		return a.ID < b.ID
	})
	return rows
}

func printTop(w io.Writer, rows []TopRow, interval time.Duration) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tBPFPROGRAM\tPROGRAM\tATTACH POINT\tID\tRUNS/S\tNS/RUN\tCPU%")
	for _, r := range rows {
		runs, ns, cpu := "-", "-", "-"
		if r.Sampled {
			runs = compact(r.RunsPerSec)
			ns = fmt.Sprintf("%.0f", r.NsPerRun)
			cpu = fmt.Sprintf("%.2f", r.CPUPercent)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", r.Node, r.BpfProgram, r.Program, dash(r.AttachPoint), r.ID, runs, ns, cpu)
	}
	if len(rows) == 0 {
		fmt.Fprintf(tw, "no attached programs (interval %s)\n", interval)
	}
	return tw.Flush()
}

// compact prints a rate with a k or M suffix beyond a thousand.
func compact(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	default:
		return fmt.Sprintf("%.1f", v)
	}
}
