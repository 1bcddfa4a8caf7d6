// Package bundlecmd implements `bpfleet bundle …`: build, push, pull, inspect,
// sign, verify, generate-key-pair and check. Commands print results on
// stdout and return errors (the caller prints them and exits non-zero).
package bundlecmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/bpfleet/bpfleet/bundles"
	"github.com/bpfleet/bpfleet/bundles/build"
	"github.com/bpfleet/bpfleet/bundles/format"
	"github.com/bpfleet/bpfleet/bundles/remote"
	"github.com/bpfleet/bpfleet/bundles/signing"
)

// LayoutEnv overrides the default OCI layout directory build and push share.
const LayoutEnv = "BPFLEET_LAYOUT"

type globalFlags struct {
	insecure     bool
	plainHTTP    bool
	dockerConfig string
	timeout      time.Duration
}

func (g *globalFlags) options() remote.Options {
	return remote.Options{PlainHTTP: g.plainHTTP, Insecure: g.insecure, DockerConfig: g.dockerConfig, Timeout: g.timeout}
}

// NewBundleCommand returns the `bundle` command with its subcommands.
func NewBundleCommand() *cobra.Command {
	g := &globalFlags{}
	cmd := &cobra.Command{
		Use:   "bundle",
		Short: "Build, push, pull, inspect, sign and verify eBPF bundles",
		Long: `A bundle is an OCI artifact holding eBPF ELF objects and a manifest of their
programs and maps. Signatures are cosign signatures (keys only, no
transparency log), compatible with stock cosign.`,
	}
	f := cmd.PersistentFlags()
	f.BoolVar(&g.insecure, "insecure", false, "allow plain HTTP (with --plain-http) or unverified TLS to a non-loopback registry")
	f.BoolVar(&g.plainHTTP, "plain-http", false, "use plain HTTP for a non-loopback registry (needs --insecure; loopback registries always use HTTP)")
	f.StringVar(&g.dockerConfig, "docker-config", "", "docker config.json with registry credentials (default $DOCKER_CONFIG/config.json or ~/.docker/config.json)")
	f.DurationVar(&g.timeout, "timeout", remote.DefaultTimeout, "timeout of each registry operation")
	cmd.AddCommand(
		newBuildCommand(),
		newPushCommand(g),
		newPullCommand(g),
		newInspectCommand(g),
		newSignCommand(g),
		newVerifyCommand(g),
		newGenerateKeyPairCommand(),
		newCheckCommand(g),
	)
	return cmd
}

func defaultLayout() string {
	if dir := os.Getenv(LayoutEnv); dir != "" {
		return dir
	}
	if dir, err := os.UserCacheDir(); err == nil {
		return filepath.Join(dir, "bpfleet", "layout")
	}
	return filepath.Join(os.TempDir(), "bpfleet-layout")
}

func newBuildCommand() *cobra.Command {
	var tag, layout string
	cmd := &cobra.Command{
		Use:   "build DIR -t REF",
		Short: "Build a bundle from DIR/bundle.yaml and its ELF objects into an OCI layout",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := remote.ParseReference(tag)
			if err != nil {
				return err
			}
			if r.Digest != "" {
				return fmt.Errorf("-t %s: give a tag, the digest is computed", tag)
			}
			res, err := build.Build(cmd.Context(), args[0], build.Options{LayoutDir: layout, Tag: r.String()})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Built %s (%s %s, %d bytes) in %s\n", r, res.Manifest.Name, res.Manifest.Version, res.Size, layout)
			fmt.Fprintf(out, "Digest: %s\n", res.Digest)
			printPrograms(out, res.Manifest)
			return nil
		},
	}
	cmd.Flags().StringVarP(&tag, "tag", "t", "", "reference to name the bundle, registry/repo:tag (required)")
	cmd.Flags().StringVar(&layout, "layout", defaultLayout(), "OCI layout directory to write (env "+LayoutEnv+")")
	_ = cmd.MarkFlagRequired("tag")
	return cmd
}

func newPushCommand(g *globalFlags) *cobra.Command {
	var layout string
	cmd := &cobra.Command{
		Use:   "push REF",
		Short: "Push a built bundle from the OCI layout to a registry",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			digest, err := remote.New(g.options()).Push(cmd.Context(), layout, args[0])
			if err != nil {
				return err
			}
			r, _ := remote.ParseReference(args[0])
			fmt.Fprintf(cmd.OutOrStdout(), "Pushed %s\n%s@%s\n", args[0], r.Repository, digest)
			return nil
		},
	}
	cmd.Flags().StringVar(&layout, "layout", defaultLayout(), "OCI layout directory to read (env "+LayoutEnv+")")
	return cmd
}

// fetch resolves ref and downloads the bundle, verifying digests.
func fetch(ctx context.Context, g *globalFlags, ref string) (*format.Bundle, error) {
	r, err := remote.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	c := remote.New(g.options())
	digest, err := c.Resolve(ctx, ref)
	if err != nil {
		return nil, err
	}
	return c.Fetch(ctx, r.Repository, digest)
}

func newPullCommand(g *globalFlags) *cobra.Command {
	var outDir string
	var keys []string
	cmd := &cobra.Command{
		Use:   "pull REF",
		Short: "Download a bundle's ELF objects and manifest (bundle.json) into a directory",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := fetch(cmd.Context(), g, args[0])
			if err != nil {
				return err
			}
			if len(keys) > 0 {
				if _, err := verifyWith(cmd.Context(), g, b.Repository, b.Digest, keys); err != nil {
					return err
				}
			}
			if err := os.MkdirAll(outDir, 0o755); err != nil {
				return fmt.Errorf("create %s: %w", outDir, err)
			}
			out := cmd.OutOrStdout()
			for _, o := range b.Manifest.Objects {
				data, err := b.Object(o.Name)
				if err != nil {
					return err
				}
				// o.Name passed format.CheckFileName: a plain file name.
				if err := os.WriteFile(filepath.Join(outDir, o.Name), data, 0o644); err != nil {
					return fmt.Errorf("write %s: %w", o.Name, err)
				}
				fmt.Fprintf(out, "%s\t%d bytes\n", filepath.Join(outDir, o.Name), len(data))
			}
			if err := os.WriteFile(filepath.Join(outDir, "bundle.json"), b.Config(), 0o644); err != nil {
				return fmt.Errorf("write bundle.json: %w", err)
			}
			fmt.Fprintf(out, "Pulled %s@%s\n", b.Repository, b.Digest)
			return nil
		},
	}
	cmd.Flags().StringVarP(&outDir, "output", "o", ".", "directory to write into")
	cmd.Flags().StringArrayVar(&keys, "key", nil, "verify the signature with this cosign public key first (repeatable)")
	return cmd
}

// InspectOutput is what `bundle inspect -o json` prints.
type InspectOutput struct {
	// Reference as given.
	Reference string `json:"reference"`
	// Repository and Digest the reference resolved to.
	Repository string `json:"repository"`
	Digest     string `json:"digest"`
	// Size of manifest, config and objects in bytes.
	Size int64 `json:"size"`
	// Signatures is the number of cosign signatures found (not verified).
	Signatures int `json:"signatures"`
	// Manifest is the bundle manifest.
	Manifest *format.Manifest `json:"manifest"`
}

func newInspectCommand(g *globalFlags) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "inspect REF",
		Short: "Show a bundle's digest, programs, maps, sizes and signatures",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("-o %s: want text or json", output)
			}
			b, err := fetch(cmd.Context(), g, args[0])
			if err != nil {
				return err
			}
			n, err := signing.Count(cmd.Context(), b.Repository, b.Digest, g.options())
			if err != nil {
				return fmt.Errorf("count signatures: %w", err)
			}
			res := InspectOutput{Reference: args[0], Repository: b.Repository, Digest: b.Digest, Size: b.Size(), Signatures: n, Manifest: b.Manifest}
			out := cmd.OutOrStdout()
			if output == "json" {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			m := b.Manifest
			fmt.Fprintf(out, "Reference:  %s\nDigest:     %s\nBundle:     %s %s\n", res.Reference, res.Digest, m.Name, m.Version)
			if m.Description != "" {
				fmt.Fprintf(out, "About:      %s\n", m.Description)
			}
			fmt.Fprintf(out, "Size:       %d bytes\nSignatures: %d\n", res.Size, n)
			if m.MinKernel != "" {
				fmt.Fprintf(out, "Min kernel: %s\n", m.MinKernel)
			}
			fmt.Fprintln(out, "Objects:")
			for _, o := range m.Objects {
				fmt.Fprintf(out, "  %s\t%d bytes\t%s\t%s\n", o.Name, o.Size, o.Endianness, o.Digest)
			}
			printPrograms(out, m)
			if len(m.Maps) > 0 {
				fmt.Fprintln(out, "Maps:")
				w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "  NAME\tTYPE\tKEY\tVALUE\tMAX\tMETRIC\tPRESERVE")
				for _, mp := range m.Maps {
					metric := ""
					for _, mm := range m.MetricMaps {
						if mm == mp.Name {
							metric = "yes"
						}
					}
					preserve := ""
					if mp.Preserve {
						preserve = "yes"
					}
					fmt.Fprintf(w, "  %s\t%s\t%d\t%d\t%d\t%s\t%s\n", mp.Name, mp.Type, mp.KeySize, mp.ValueSize, mp.MaxEntries, metric, preserve)
				}
				w.Flush()
			}
			if len(m.Outputs) > 0 {
				fmt.Fprintln(out, "Outputs:")
				w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "  MAP\tRECORD\tSIZE")
				for _, o := range m.Outputs {
					fmt.Fprintf(w, "  %s\tstruct %s\t%d\n", o.Map, o.Record, o.RecordSize)
				}
				w.Flush()
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

func printPrograms(out io.Writer, m *format.Manifest) {
	fmt.Fprintln(out, "Programs:")
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "  NAME\tTYPE\tSECTION\tATTACH\tTARGET\tLICENSE")
	for _, p := range m.Programs {
		fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.Type, p.Section, p.Attach.Kind, p.Attach.Target, p.License)
	}
	w.Flush()
}

func password() []byte { return []byte(os.Getenv(signing.PasswordEnv)) }

func newSignCommand(g *globalFlags) *cobra.Command {
	var key string
	cmd := &cobra.Command{
		Use:   "sign --key cosign.key REF",
		Short: "Sign a bundle with a cosign private key (password from " + signing.PasswordEnv + ")",
		Long: `Sign the bundle's manifest digest with a cosign private key and push the
signature to the registry, as 'cosign sign --key KEY --tlog-upload=false'
does. No transparency log, no certificate authority: fully offline.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := remote.New(g.options())
			digest, err := c.Resolve(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			r, _ := remote.ParseReference(args[0])
			byDigest := r.Repository + "@" + digest
			if err := signing.Sign(cmd.Context(), byDigest, key, password(), g.options()); err != nil {
				if strings.Contains(err.Error(), "load key") && os.Getenv(signing.PasswordEnv) == "" {
					return fmt.Errorf("%w (is %s set?)", err, signing.PasswordEnv)
				}
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Signed %s\n", byDigest)
			return nil
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "cosign private key file (required)")
	_ = cmd.MarkFlagRequired("key")
	return cmd
}

func verifyWith(ctx context.Context, g *globalFlags, repository, digest string, keyFiles []string) (string, error) {
	pems := make([][]byte, len(keyFiles))
	for i, f := range keyFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("read key: %w", err)
		}
		pems[i] = b
	}
	idx, err := signing.Verify(ctx, repository, digest, pems, g.options())
	if err != nil {
		return "", err
	}
	return keyFiles[idx], nil
}

func newVerifyCommand(g *globalFlags) *cobra.Command {
	var keys []string
	cmd := &cobra.Command{
		Use:   "verify --key cosign.pub REF",
		Short: "Verify a bundle's cosign signature with one or more public keys",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := remote.ParseReference(args[0])
			if err != nil {
				return err
			}
			digest, err := remote.New(g.options()).Resolve(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			key, err := verifyWith(cmd.Context(), g, r.Repository, digest, keys)
			if err != nil {
				if errors.Is(err, bundles.ErrUnsigned) {
					return fmt.Errorf("%s@%s is not signed: %w", r.Repository, digest, err)
				}
				return err
			}
			pem, _ := os.ReadFile(key)
			fp, _ := signing.Fingerprint(pem)
			fmt.Fprintf(cmd.OutOrStdout(), "Verified %s@%s\nSigned by %s (%s)\n", r.Repository, digest, key, fp)
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&keys, "key", nil, "cosign public key file (required, repeatable: any one may have signed)")
	_ = cmd.MarkFlagRequired("key")
	return cmd
}

func newGenerateKeyPairCommand() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "generate-key-pair",
		Short: "Write cosign.key (encrypted with " + signing.PasswordEnv + ") and cosign.pub",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if os.Getenv(signing.PasswordEnv) == "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s is empty, the private key is encrypted with an empty password\n", signing.PasswordEnv)
			}
			priv, pub, err := signing.GenerateKeyPair(dir, password())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Private key written to %s\nPublic key written to %s\n", priv, pub)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "output-dir", ".", "directory to write the keys into")
	return cmd
}
