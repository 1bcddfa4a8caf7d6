package bundlecmd

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/bpfleet/bpfleet/bundles/check"
)

// ErrWouldFail is returned by `bundle check` when a program of the bundle
// would fail its CO-RE relocations on the target kernel.
var ErrWouldFail = errors.New("programs would fail on the target kernel")

// CheckOutput is what `bundle check -o json` prints.
type CheckOutput struct {
	// Reference is the bundle reference or directory as given.
	Reference string `json:"reference"`
	// Digest is the bundle digest when it came from a registry.
	Digest string `json:"digest,omitempty"`
	// BTF is the target BTF file.
	BTF string `json:"btf"`
	// OK is true when no program would fail.
	OK bool `json:"ok"`
	// Programs are the per-program results.
	Programs []check.Result `json:"programs"`
}

func newCheckCommand(g *globalFlags) *cobra.Command {
	var btfFile, output string
	cmd := &cobra.Command{
		Use:   "check REF|DIR --btf FILE",
		Short: "Check offline that a bundle's CO-RE relocations succeed against a kernel's BTF",
		Long: `Perform the CO-RE relocations of every program of a bundle against the BTF
of a target kernel, without loading anything into a kernel and without
privilege, and report which programs would fail and on which type or field.

REF is a registry reference (pulled and checked against its digests) or a
local directory: one written by 'bundle pull' (bundle.json and the ELF
objects) or a source directory with bundle.yaml. --btf is the target
kernel's BTF, e.g. /sys/kernel/btf/vmlinux copied from a node (raw BTF or
an ELF vmlinux with .BTF).

What it catches: a type, struct/union field or enum value a program reads
with CO-RE (BPF_CORE_READ, preserve_access_index) that the target lacks or
changed incompatibly, and ambiguous matches. An access the program guards
with bpf_core_field_exists (or type/enum-value existence) is reported as
guarded and does not fail.

What it cannot catch: everything the verifier decides on the target kernel
itself: helper and kfunc availability, program, map and attach types the
kernel lacks, verifier limits (instructions, complexity, stack, bounds),
attach targets (functions, tracepoints, interfaces), and types of kernel
modules (only the given BTF is searched). Passing here is necessary, not
sufficient: the kernel matrix in BpfProgram status.kernels shows what
really loaded.

Exits non-zero when a program would fail.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "table" && output != "json" {
				return fmt.Errorf("-o %s: want table or json", output)
			}
			// From here on an error is about the bundle or the target, not usage.
			cmd.SilenceUsage = true
			target, err := check.LoadTarget(btfFile)
			if err != nil {
				return err
			}
			res := CheckOutput{Reference: args[0], BTF: btfFile}
			var in check.Input
			if fi, statErr := os.Stat(args[0]); statErr == nil && fi.IsDir() {
				in, err = check.DirInput(args[0])
			} else {
				b, ferr := fetch(cmd.Context(), g, args[0])
				if ferr != nil {
					return ferr
				}
				res.Digest = b.Digest
				in, err = check.BundleInput(b)
			}
			if err != nil {
				return err
			}
			rep, err := check.Check(in, target)
			if err != nil {
				return err
			}
			res.Programs = rep.Programs
			failed := rep.Failed()
			res.OK = len(failed) == 0
			out := cmd.OutOrStdout()
			if output == "json" {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(res); err != nil {
					return fmt.Errorf("write json: %w", err)
				}
			} else {
				printCheck(cmd, res)
			}
			if len(failed) > 0 {
				names := make([]string, 0, len(failed))
				for _, f := range failed {
					names = append(names, f.Program)
				}
				return fmt.Errorf("%s: %w", strings.Join(names, ", "), ErrWouldFail)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&btfFile, "btf", "", "target kernel BTF file, e.g. a node's /sys/kernel/btf/vmlinux (required)")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	_ = cmd.MarkFlagRequired("btf")
	return cmd
}

func printCheck(cmd *cobra.Command, res CheckOutput) {
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "PROGRAM\tOBJECT\tRELOCATIONS\tRESULT\tKIND\tTYPE\tFIELD\tPROBLEM")
	for _, p := range res.Programs {
		result := "ok"
		if !p.OK {
			result = "FAIL"
		}
		if len(p.Problems) == 0 {
			fmt.Fprintf(w, "%s\t%s\t%d\t%s\t-\t-\t-\t-\n", p.Program, p.Object, p.Relocations, result)
			continue
		}
		for _, pr := range p.Problems {
			msg := pr.Message
			if pr.Guarded {
				msg = "guarded by an existence check: " + msg
			}
			fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", p.Program, p.Object, p.Relocations, result,
				dashIfEmpty(pr.Kind), dashIfEmpty(pr.Type), dashIfEmpty(pr.Field), msg)
		}
	}
	w.Flush()
}

func dashIfEmpty(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
