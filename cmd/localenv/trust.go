package localenv

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bundles/build"
	"github.com/bpfleet/bpfleet/bundles/remote"
	"github.com/bpfleet/bpfleet/bundles/signing"
)

// TrustPolicyName is the BundleTrustPolicy local mode creates.
const TrustPolicyName = "bpfleet-local"

// PushedBundle is a shipped bundle in the local registry.
type PushedBundle struct {
	// Name is the bundle's name.
	Name string
	// Ref is registry/bpfleet/name:version.
	Ref string
	// Repository is registry/bpfleet/name.
	Repository string
	// Digest is the manifest digest.
	Digest string
	// Programs are the program names the bundle holds.
	Programs []string
}

func (e *Env) keyPaths() (priv, pub string) {
	return filepath.Join(e.opts.StateDir, "cosign.key"), filepath.Join(e.opts.StateDir, "cosign.pub")
}

func password() []byte { return []byte(os.Getenv(signing.PasswordEnv)) }

// setupTrust creates a cosign key pair unless one exists, and a
// BundleTrustPolicy that admits the local registry's bundles signed by it.
func (e *Env) setupTrust(ctx context.Context) error {
	priv, pub := e.keyPaths()
	if _, err := os.Stat(priv); errors.Is(err, fs.ErrNotExist) {
		if _, _, err := signing.GenerateKeyPair(e.opts.StateDir, password()); err != nil {
			return fmt.Errorf("generate cosign key pair: %w", err)
		}
		e.Printf("generated cosign key pair %s (password from $%s)", priv, signing.PasswordEnv)
	} else {
		e.Printf("reusing cosign key pair %s", priv)
	}
	pem, err := os.ReadFile(pub)
	if err != nil {
		return fmt.Errorf("read public key: %w", err)
	}
	policy := &v1.BundleTrustPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: TrustPolicyName},
		Spec: v1.BundleTrustPolicySpec{
			Images: []string{e.Registry + "/bpfleet/*"},
			Keys:   []v1.TrustedKey{{Name: "local", PublicKey: string(pem)}},
		},
	}
	if err := e.Client.Create(ctx, policy); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create trust policy: %w", err)
	}
	e.Printf("BundleTrustPolicy %s: %s/bpfleet/* must be signed by %s", TrustPolicyName, e.Registry, pub)
	return nil
}

// pushBundles builds every bpf/<pkg>/bundle.yaml into an OCI layout, pushes
// it to the local registry and signs the pushed digest.
func (e *Env) pushBundles(ctx context.Context) error {
	dirs, err := filepath.Glob(filepath.Join(e.opts.RepoDir, "bpf", "*", build.SpecFile))
	if err != nil {
		return fmt.Errorf("find bundles: %w", err)
	}
	if len(dirs) == 0 {
		return fmt.Errorf("no %s under %s", build.SpecFile, filepath.Join(e.opts.RepoDir, "bpf"))
	}
	slices.Sort(dirs)
	for _, spec := range dirs {
		b, err := e.BuildPushSign(ctx, filepath.Dir(spec))
		if err != nil {
			return err
		}
		e.Bundles[b.Name] = b
		e.Printf("%-55s %s  programs %v", b.Ref, v1.ShortDigest(b.Digest), b.Programs)
	}
	return nil
}

// BuildPushSign builds the bundle in dir (a bundle.yaml and its ELF files),
// pushes it as <registry>/bpfleet/<name>:<version> and signs it with the
// environment's key, like a developer shipping a new version.
func (e *Env) BuildPushSign(ctx context.Context, dir string) (PushedBundle, error) {
	layout := filepath.Join(e.opts.StateDir, "layout")
	rc := remote.New(e.RemoteOptions)
	keyPath, _ := e.keyPaths()
	spec, err := build.ReadSpec(dir)
	if err != nil {
		return PushedBundle{}, fmt.Errorf("read %s: %w", dir, err)
	}
	res, err := build.Build(ctx, dir, build.Options{LayoutDir: layout, Tag: spec.Version})
	if err != nil {
		return PushedBundle{}, fmt.Errorf("build %s: %w", dir, err)
	}
	m := res.Manifest
	repo := fmt.Sprintf("%s/bpfleet/%s", e.Registry, m.Name)
	ref := repo + ":" + m.Version
	digest, err := rc.Push(ctx, layout, ref)
	if err != nil {
		return PushedBundle{}, fmt.Errorf("push %s: %w", ref, err)
	}
	if err := signing.Sign(ctx, repo+"@"+digest, keyPath, password(), e.RemoteOptions); err != nil {
		return PushedBundle{}, fmt.Errorf("sign %s: %w", ref, err)
	}
	b := PushedBundle{Name: m.Name, Ref: ref, Repository: repo, Digest: digest}
	for _, p := range m.Programs {
		b.Programs = append(b.Programs, p.Name)
	}
	return b, nil
}
