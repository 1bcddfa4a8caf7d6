package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubectlbpf "github.com/bpfleet/bpfleet/cmd/kubectl-bpf/plugin"
	"github.com/bpfleet/bpfleet/cmd/localenv"
)

// Names of the demo's BpfPrograms.
const (
	demoFilter    = "pod-filter"
	demoExecTrace = "exec-trace"
)

// newCommand returns the bpfleet-local command.
func newCommand() *cobra.Command {
	var (
		opts localenv.Options
		keep bool
	)
	cmd := &cobra.Command{
		Use:   "bpfleet-local",
		Short: "Run bpfleet on this machine: control plane, registry, operator and simulated nodes",
		Long: `Runs the whole product on this machine, as root: a real etcd and kube-apiserver on
127.0.0.1, an OCI registry on 127.0.0.1, a cosign key pair and a BundleTrustPolicy,
the shipped bundles built, pushed and signed, the operator, and one node agent per
simulated node (each with its own Node object, labels, bpffs subtree and network
namespace). It then deploys a packet-of-death XDP filter on the labelled nodes and
an exec tracer on all, sends good and bad packets to every node, and shows what
each node runs.

Without --keep it tears everything down when done; with --keep it runs until
Ctrl-C. Ctrl-C at any point tears down: no network namespace, pin or process is
left behind.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.RepoDir == "" {
				wd, err := os.Getwd()
				if err != nil {
					return err
				}
				opts.RepoDir = wd
			}
			opts.Out = cmd.OutOrStdout()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return demo(ctx, opts, keep)
		},
	}
	cmd.Flags().StringVar(&opts.RepoDir, "repo", "", "bpfleet checkout holding bin/k8s, config/crd and bpf/ (default: the working directory)")
	cmd.Flags().StringVar(&opts.StateDir, "state-dir", "", "where the kubeconfig, keys, registry data and node state go (default <repo>/bin/local)")
	cmd.Flags().IntVar(&opts.Nodes, "nodes", 3, "simulated nodes")
	cmd.Flags().IntVar(&opts.APIPort, "api-port", 6443, "apiserver port on 127.0.0.1")
	cmd.Flags().IntVar(&opts.RegistryPort, "registry-port", 5000, "registry port on 127.0.0.1")
	cmd.Flags().StringVar(&opts.Prefix, "prefix", "bpfleet", "names the nodes, network namespaces, host interfaces and pin root, so that two environments never collide (at most 10 characters)")
	cmd.Flags().BoolVar(&keep, "keep", false, "keep everything running until Ctrl-C")
	return cmd
}

// demo starts the environment, shows the packet-of-death filter and the exec
// tracer at work, and tears down (at once, or on Ctrl-C with keep).
func demo(ctx context.Context, opts localenv.Options, keep bool) (err error) {
	out := opts.Out
	start := time.Now()
	e, err := localenv.Start(ctx, opts)
	if err != nil {
		return err
	}
	// controller-runtime's package-level logs (client warnings, the control
	// plane's) go to the environment's log file too.
	ctrl.SetLogger(e.Log)
	defer func() {
		fmt.Fprintln(out, "tearing down ...")
		cleanup, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		derr := e.DeleteAll(cleanup, 30*time.Second)
		serr := e.Stop(cleanup)
		if derr != nil || serr != nil {
			err = errors.Join(err, derr, serr)
			return
		}
		fmt.Fprintln(out, "torn down: no BpfProgram, pin, network namespace or process left")
	}()

	selected := int32(0)
	for _, n := range e.Nodes {
		if n.Labels[localenv.FilterLabel] == "enabled" {
			selected++
		}
	}
	if err := e.Step(ctx, "apply BpfPrograms: pod-filter (nodes with "+localenv.FilterLabel+"=enabled), exec-trace (all nodes)", func(ctx context.Context) error {
		filter, err := e.FilterProgram(demoFilter)
		if err != nil {
			return err
		}
		trace, err := e.ExecTraceProgram(demoExecTrace)
		if err != nil {
			return err
		}
		for _, p := range []client.Object{filter, trace} {
			if err := e.Client.Create(ctx, p); err != nil {
				return fmt.Errorf("create %s: %w", p.GetName(), err)
			}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := e.Step(ctx, "wait until the operator verified them and every selected node attached them", func(ctx context.Context) error {
		p, err := e.WaitReady(ctx, demoFilter, selected, 2*time.Minute)
		if err != nil {
			return err
		}
		e.Printf("%s: digest %s signed by %s, %s nodes attached", p.Name, p.Status.ShortDigest, p.Status.Signer, p.Status.Nodes.Summary)
		p, err = e.WaitReady(ctx, demoExecTrace, int32(len(e.Nodes)), 2*time.Minute)
		if err != nil {
			return err
		}
		e.Printf("%s: digest %s signed by %s, %s nodes attached", p.Name, p.Status.ShortDigest, p.Status.Signer, p.Status.Nodes.Summary)
		return nil
	}); err != nil {
		return err
	}
	if err := e.Step(ctx, "send good packets and packets of death to every node", func(ctx context.Context) error {
		_ = exec.CommandContext(ctx, "/bin/true").Run() // something for exec-trace to count
		for _, n := range e.Nodes {
			t, err := e.SendTraffic(ctx, n, 20)
			if err != nil {
				return err
			}
			filtered := "no filter (not selected)"
			if n.Labels[localenv.FilterLabel] == "enabled" {
				filtered = "filter attached"
			}
			e.Printf("%s (%s): %s", n.Name, filtered, t)
		}
		return nil
	}); err != nil {
		return err
	}
	// The agents refresh run-time statistics every 2 s: wait for one so the
	// table below shows run counts for the traffic just sent.
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(3 * time.Second):
	}
	fmt.Fprintln(out, "\nkubectl bpf status:")
	status := kubectlbpf.NewCommandWithClient(genericiooptions.IOStreams{In: os.Stdin, Out: out, ErrOut: out}, e.Client)
	status.SetArgs([]string{"status"})
	if err := status.ExecuteContext(ctx); err != nil {
		return err
	}
	printNext(out, e, opts)
	fmt.Fprintf(out, "\ndemo done in %s\n", time.Since(start).Round(100*time.Millisecond))
	if keep {
		fmt.Fprintln(out, "running until Ctrl-C (--keep) ...")
		<-ctx.Done()
	}
	return nil
}

func printNext(out io.Writer, e *localenv.Env, opts localenv.Options) {
	bin := filepath.Join(opts.RepoDir, "bin")
	fmt.Fprintf(out, `
What to look at next (with --keep, from another shell):
  export KUBECONFIG=%s PATH=%s:%s:$PATH
  kubectl get bpfprograms -o wide         # TYPES, IMAGE, DIGEST, NODES, READY per program
  kubectl get bpfnodestates               # KERNEL, PROGRAMS, ATTACHED, FAILED per node
  kubectl bpf status -o wide              # per node: ids, tag, sizes, maps, runs, ns/run, signer
  kubectl bpf programs -o wide            # rollout, signer, kernel matrix
  kubectl describe bpfprogram %s          # conditions and events
`, e.Kubeconfig, filepath.Join(bin, "k8s"), bin, demoFilter)
}
