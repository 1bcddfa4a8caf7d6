package trust_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bundles"
	"github.com/bpfleet/bpfleet/bundles/format"
	"github.com/bpfleet/bpfleet/bundles/remote"
	"github.com/bpfleet/bpfleet/bundles/signing"
	"github.com/bpfleet/bpfleet/bundles/trust"
	"github.com/bpfleet/bpfleet/test/support/registry"
	"github.com/bpfleet/bpfleet/test/support/registry/testbundle"
)

func policy(name string, images []string, allowUnsigned bool, keys ...v1alpha1.TrustedKey) v1alpha1.BundleTrustPolicy {
	return v1alpha1.BundleTrustPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v1alpha1.BundleTrustPolicySpec{Images: images, Keys: keys, AllowUnsigned: allowUnsigned},
	}
}

// allowing returns p limited to program types.
func allowing(p v1alpha1.BundleTrustPolicy, types ...string) v1alpha1.BundleTrustPolicy {
	p.Spec.AllowedProgramTypes = types
	return p
}

func TestCovers(t *testing.T) {
	tests := []struct {
		glob string // policy image glob
		repo string // bundle repository
		want bool   // covered
	}{
		{glob: "registry.example.com/ebpf/*", repo: "registry.example.com/ebpf/xdp", want: true},
		{glob: "registry.example.com/ebpf/*", repo: "registry.example.com/ebpf/team/xdp", want: false},
		{glob: "registry.example.com/ebpf/**", repo: "registry.example.com/ebpf/team/xdp", want: true},
		{glob: "registry.example.com/ebpf/**", repo: "registry.example.com/ebpfx/xdp", want: false},
		{glob: "registry.example.com/ebpf/xdp", repo: "registry.example.com/ebpf/xdp:v1", want: true},
		{glob: "registry.example.com/ebpf/xdp:v1", repo: "registry.example.com/ebpf/xdp", want: true},
		{glob: "registry.example.com/ebpf/xdp", repo: "registry.example.com/ebpf/xdp@sha256:" + strings.Repeat("a", 64), want: true},
		{glob: "registry.example.com/ebpf/xdp", repo: "evil.example.com/ebpf/xdp", want: false},
		{glob: "*/ebpf/xdp", repo: "127.0.0.1:5000/ebpf/xdp", want: true},
		{glob: "127.0.0.1:5000/*", repo: "127.0.0.1:5000/xdp", want: true},
		{glob: "[", repo: "[", want: false},                                                     // malformed glob never matches
		{glob: "registry.example.com/ebpf/**", repo: "registry.example.com/ebpf/", want: false}, // an empty segment is no repository
		{glob: "/**", repo: "/xdp", want: false},
	}
	for _, tt := range tests {
		if got := trust.Covers(policy("p", []string{tt.glob}, false), tt.repo); got != tt.want {
			t.Errorf("Covers(%q, %q) = %v, want %v", tt.glob, tt.repo, got, tt.want)
		}
	}
}

func TestCheckProgramTypes(t *testing.T) {
	m := &format.Manifest{Programs: []format.Program{{Name: "f", Type: "xdp"}, {Name: "t", Type: "tracepoint"}}}
	tests := []struct {
		limits []trust.Limit // the covering policies' allow-lists
		want   error         // nil = allowed
	}{
		{limits: nil},
		{limits: []trust.Limit{{Policy: "p"}}},
		{limits: []trust.Limit{{Policy: "p", ProgramTypes: []string{"xdp", "tracepoint"}}}},
		{limits: []trust.Limit{{Policy: "p", ProgramTypes: []string{"xdp"}}}, want: bundles.ErrProgramTypeDenied},
		// Intersection: a lenient list next to a strict one changes nothing.
		{limits: []trust.Limit{{Policy: "a", ProgramTypes: []string{"xdp", "tracepoint"}}, {Policy: "p", ProgramTypes: []string{"xdp"}}}, want: bundles.ErrProgramTypeDenied},
		{limits: []trust.Limit{{Policy: "a"}, {Policy: "p", ProgramTypes: []string{"xdp"}}}, want: bundles.ErrProgramTypeDenied},
	}
	for _, tt := range tests {
		err := trust.CheckProgramTypes(trust.Result{Limits: tt.limits}, m)
		if !errors.Is(err, tt.want) {
			t.Errorf("CheckProgramTypes(%v) = %v, want %v", tt.limits, err, tt.want)
		}
		if tt.want != nil && !strings.Contains(err.Error(), "program t is tracepoint, policy p allows only xdp") {
			t.Errorf("error %q does not say which program and policy", err)
		}
	}
}

func TestCheckAttachTypes(t *testing.T) {
	programs := []v1alpha1.ProgramAttachment{
		{Name: "count", Cgroup: &v1alpha1.CgroupAttach{Path: "/", AttachType: "egress"}},
		{Name: "dev", Cgroup: &v1alpha1.CgroupAttach{Path: "/", AttachType: "device"}},
	}
	tests := []struct {
		limits []trust.Limit // the covering policies' allow-lists
		want   error         // nil = allowed
	}{
		{limits: nil},
		{limits: []trust.Limit{{Policy: "p", ProgramTypes: []string{"cgroup_skb"}}}},
		{limits: []trust.Limit{{Policy: "p", AttachTypes: []string{"cgroup/*"}}}},
		{limits: []trust.Limit{{Policy: "p", AttachTypes: []string{"cgroup/egress", "cgroup/device"}}}},
		// The type cgroup_skb is allowed, but only on egress: a device hook is not.
		{limits: []trust.Limit{{Policy: "p", AttachTypes: []string{"cgroup/ingress", "cgroup/egress"}}}, want: bundles.ErrAttachTypeDenied},
		{limits: []trust.Limit{{Policy: "a", AttachTypes: []string{"cgroup/*"}}, {Policy: "p", AttachTypes: []string{"cgroup/egress"}}}, want: bundles.ErrAttachTypeDenied},
		{limits: []trust.Limit{{Policy: "p", AttachTypes: []string{"tc/*", "xdp"}}}, want: bundles.ErrAttachTypeDenied},
	}
	for _, tt := range tests {
		err := trust.CheckAttachTypes(trust.Result{Limits: tt.limits}, programs)
		if !errors.Is(err, tt.want) {
			t.Errorf("CheckAttachTypes(%v) = %v, want %v", tt.limits, err, tt.want)
		}
		if tt.want != nil && !strings.Contains(err.Error(), "policy p allows only") {
			t.Errorf("error %q does not name the policy", err)
		}
	}
}

func TestVerify(t *testing.T) {
	reg := registry.Start(t, registry.Options{})
	opts := remote.Options{Timeout: 10 * time.Second}
	ref, signedDigest := testbundle.Push(t, reg, "ebpf/xdp", "v1", testbundle.Source{Return: 2})
	_, unsignedDigest := testbundle.Push(t, reg, "ebpf/xdp", "v2", testbundle.Source{Return: 1})
	repo := reg.Repository("ebpf/xdp")
	dir := t.TempDir()
	password := []byte("pw")
	priv, pub, err := signing.GenerateKeyPair(dir, password)
	if err != nil {
		t.Fatal(err)
	}
	if err := signing.Sign(context.Background(), ref, priv, password, opts); err != nil {
		t.Fatal(err)
	}
	pubPEM, _ := os.ReadFile(pub)
	_, otherPub, _ := signing.GenerateKeyPair(t.TempDir(), password)
	otherPEM, _ := os.ReadFile(otherPub)
	fp, _ := signing.Fingerprint(pubPEM)

	good := v1alpha1.TrustedKey{Name: "release", PublicKey: string(pubPEM)}
	wrong := v1alpha1.TrustedKey{Name: "other", PublicKey: string(otherPEM)}
	secret := v1alpha1.TrustedKey{Name: "from-secret", SecretRef: &v1alpha1.SecretKeyRef{Namespace: "bpfleet", Name: "keys"}}
	here := []string{reg.Host + "/ebpf/*"}
	elsewhere := []string{"registry.example.com/**"}
	secrets := func(_ context.Context, ref v1alpha1.SecretKeyRef) ([]byte, error) {
		switch {
		case ref.Namespace == "bpfleet" && ref.Name == "keys" && ref.Key == trust.DefaultSecretKey:
			return pubPEM, nil
		case ref.Name == "flaky":
			return nil, fmt.Errorf("get secret: %w: the server is currently unable to handle the request", bundles.ErrKeyUnavailable)
		}
		return nil, fmt.Errorf("no secret %v", ref)
	}
	missing := v1alpha1.TrustedKey{Name: "missing", SecretRef: &v1alpha1.SecretKeyRef{Namespace: "bpfleet", Name: "gone"}}
	flaky := v1alpha1.TrustedKey{Name: "flaky", SecretRef: &v1alpha1.SecretKeyRef{Namespace: "bpfleet", Name: "flaky"}}
	garbage := v1alpha1.TrustedKey{Name: "garbage", PublicKey: "-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n"}

	tests := []struct {
		name     string
		digest   string                       // bundle to verify
		policies []v1alpha1.BundleTrustPolicy // cluster policies
		keys     trust.KeySource              // secretRef resolver
		want     trust.Result                 // on success
		wantErr  error                        // sentinel on failure
		// deniedTypes are program types CheckProgramTypes must refuse
		// with the result.
		deniedTypes []string
	}{
		{name: "no policy", digest: signedDigest, wantErr: bundles.ErrNoTrustPolicy},
		{name: "policy for another registry", digest: signedDigest, policies: []v1alpha1.BundleTrustPolicy{policy("p", elsewhere, true)}, wantErr: bundles.ErrNoTrustPolicy},
		{name: "signed by trusted key", digest: signedDigest, policies: []v1alpha1.BundleTrustPolicy{policy("prod", here, false, wrong, good)},
			want: trust.Result{Policy: "prod", KeyName: "release", Fingerprint: fp}},
		{name: "wrong key", digest: signedDigest, policies: []v1alpha1.BundleTrustPolicy{policy("prod", here, false, wrong)}, wantErr: bundles.ErrSignatureMismatch},
		{name: "unsigned", digest: unsignedDigest, policies: []v1alpha1.BundleTrustPolicy{policy("prod", here, false, good)}, wantErr: bundles.ErrUnsigned},
		{name: "unsigned allowed", digest: unsignedDigest, policies: []v1alpha1.BundleTrustPolicy{policy("dev", here, true)},
			want: trust.Result{Policy: "dev", Unsigned: true}},
		{name: "signed policy wins over lenient one", digest: signedDigest,
			policies: []v1alpha1.BundleTrustPolicy{policy("a-dev", here, true), policy("b-prod", here, false, good)},
			want:     trust.Result{Policy: "b-prod", KeyName: "release", Fingerprint: fp}},
		// A lenient policy never overrides a stricter one (intersection).
		{name: "wrong key, lenient policy does not admit", digest: signedDigest,
			policies: []v1alpha1.BundleTrustPolicy{policy("prod", here, false, wrong), policy("dev", here, true)},
			wantErr:  bundles.ErrSignatureMismatch},
		{name: "unsigned, lenient policy does not admit", digest: unsignedDigest,
			policies: []v1alpha1.BundleTrustPolicy{policy("a-dev", here, true), policy("b-prod", here, false, good)},
			wantErr:  bundles.ErrUnsigned},
		{name: "allowUnsigned with keys refuses a foreign signature", digest: signedDigest,
			policies: []v1alpha1.BundleTrustPolicy{policy("dev", here, true, wrong)}, wantErr: bundles.ErrSignatureMismatch},
		{name: "allowUnsigned with keys admits no signature", digest: unsignedDigest,
			policies: []v1alpha1.BundleTrustPolicy{policy("dev", here, true, wrong)},
			want:     trust.Result{Policy: "dev", Unsigned: true}},
		{name: "every keyed policy must be satisfied", digest: signedDigest,
			policies: []v1alpha1.BundleTrustPolicy{policy("a", here, false, good), policy("b", here, false, wrong)},
			wantErr:  bundles.ErrSignatureMismatch},
		{name: "two keyed policies satisfied", digest: signedDigest,
			policies: []v1alpha1.BundleTrustPolicy{policy("a", here, false, good), policy("b", here, false, wrong, good)},
			want:     trust.Result{Policy: "a", KeyName: "release", Fingerprint: fp}},
		{name: "program types intersect", digest: signedDigest,
			policies: []v1alpha1.BundleTrustPolicy{allowing(policy("a", here, false, good), "xdp", "tracepoint"), allowing(policy("b", here, false, good), "xdp")},
			want:     trust.Result{Policy: "a", KeyName: "release", Fingerprint: fp}, deniedTypes: []string{"tracepoint"}},
		{name: "lenient types do not widen strict ones", digest: signedDigest,
			policies: []v1alpha1.BundleTrustPolicy{allowing(policy("a-dev", here, true), "xdp", "tracepoint"), allowing(policy("b-prod", here, false, good), "xdp")},
			want:     trust.Result{Policy: "b-prod", KeyName: "release", Fingerprint: fp}, deniedTypes: []string{"tracepoint"}},
		{name: "secretRef without KeySource", digest: signedDigest, policies: []v1alpha1.BundleTrustPolicy{policy("prod", here, false, secret)}, wantErr: trust.ErrSecretRefRefused},
		{name: "secretRef with KeySource", digest: signedDigest, policies: []v1alpha1.BundleTrustPolicy{policy("prod", here, false, secret)}, keys: secrets,
			want: trust.Result{Policy: "prod", KeyName: "from-secret", Fingerprint: fp}},
		// One key that cannot be had does not disable the policy's others.
		{name: "unreadable key skipped", digest: signedDigest, keys: secrets,
			policies: []v1alpha1.BundleTrustPolicy{policy("prod", here, false, missing, garbage, good)},
			want:     trust.Result{Policy: "prod", KeyName: "release", Fingerprint: fp}},
		{name: "unavailable key skipped when another verifies", digest: signedDigest, keys: secrets,
			policies: []v1alpha1.BundleTrustPolicy{policy("prod", here, false, flaky, good)},
			want:     trust.Result{Policy: "prod", KeyName: "release", Fingerprint: fp}},
		// An API error reading the only key is no verdict: transient.
		{name: "unavailable key is transient", digest: signedDigest, keys: secrets,
			policies: []v1alpha1.BundleTrustPolicy{policy("prod", here, false, flaky, wrong)},
			wantErr:  bundles.ErrKeyUnavailable},
		{name: "a covering policy without a usable key refuses", digest: signedDigest,
			policies: []v1alpha1.BundleTrustPolicy{policy("a", here, false, secret), policy("b", here, false, good)},
			wantErr:  trust.ErrSecretRefRefused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := &trust.Verifier{Remote: opts, Keys: tt.keys}
			got, err := v.Verify(context.Background(), repo, tt.digest, tt.policies)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Verify = %+v, %v; want %v", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if got.Policy != tt.want.Policy || got.KeyName != tt.want.KeyName || got.Fingerprint != tt.want.Fingerprint || got.Unsigned != tt.want.Unsigned {
				t.Fatalf("Verify = %+v, want %+v", got, tt.want)
			}
			for _, typ := range tt.deniedTypes {
				m := &format.Manifest{Programs: []format.Program{{Name: "p", Type: typ}}}
				if err := trust.CheckProgramTypes(got, m); !errors.Is(err, bundles.ErrProgramTypeDenied) {
					t.Errorf("CheckProgramTypes(%s) = %v, want ErrProgramTypeDenied", typ, err)
				}
			}
		})
	}

	reg.Stop()
	v := &trust.Verifier{Remote: opts}
	_, err = v.Verify(context.Background(), repo, signedDigest, []v1alpha1.BundleTrustPolicy{policy("prod", here, true, good)})
	if !errors.Is(err, bundles.ErrRegistryUnavailable) {
		t.Fatalf("Verify(registry down, allowUnsigned) = %v, want ErrRegistryUnavailable, never a silent unsigned admit", err)
	}
}

func TestSigner(t *testing.T) {
	r := trust.Result{Policy: "prod", KeyName: "release", Fingerprint: "SHA256:" + strings.Repeat("ab", 32)}
	if got, want := r.Signer(), "prod/release SHA256:abababababababab…"; got != want {
		t.Errorf("Signer() = %q, want %q", got, want)
	}
	two := trust.Result{Signatures: []trust.Signature{
		{Policy: "a", KeyName: "k1", Fingerprint: "SHA256:" + strings.Repeat("01", 32)},
		{Policy: "b", KeyName: "k2", Fingerprint: "SHA256:" + strings.Repeat("02", 32)},
	}}
	if got, want := two.Signer(), "a/k1 SHA256:0101010101010101…, b/k2 SHA256:0202020202020202…"; got != want {
		t.Errorf("Signer() = %q, want %q", got, want)
	}
	if got := (trust.Result{Policy: "dev", Unsigned: true}).Signer(); got != "dev (unsigned, allowed by policy)" {
		t.Errorf("Signer() = %q", got)
	}
}

func ExampleCovers() {
	p := v1alpha1.BundleTrustPolicy{Spec: v1alpha1.BundleTrustPolicySpec{
		Images: []string{"registry.example.com/ebpf/*"},
	}}
	fmt.Println(trust.Covers(p, "registry.example.com/ebpf/xdp-filter"))
	fmt.Println(trust.Covers(p, "registry.example.com/other/xdp-filter"))
	// Output:
	// true
	// false
}

// FuzzCovers feeds arbitrary image globs and repositories to Covers (globs
// come from any policy author, repositories from any BpfProgram). It never
// panics, and where the answer is known without path.Match it is that: a
// tag or digest on the repository changes nothing, a glob without
// metacharacters covers exactly itself, and "prefix/**" covers what is
// strictly below prefix, never prefix itself.
func FuzzCovers(f *testing.F) {
	for _, s := range [][2]string{
		{"registry.example.com/ebpf/*", "registry.example.com/ebpf/xdp"},
		{"registry.example.com/ebpf/**", "registry.example.com/ebpf/team/xdp"},
		{"registry.example.com/ebpf/**", "registry.example.com/ebpf"},
		{"registry.example.com/ebpf/xdp:v1", "registry.example.com/ebpf/xdp"},
		{"*/ebpf/xdp", "127.0.0.1:5000/ebpf/xdp"},
		{"[", "["},
		{"a/**", "a/"},
		{"/**", "/x"},
		{"**", "a/b"},
	} {
		f.Add(s[0], s[1])
	}
	literal := func(s string) bool { return !strings.ContainsAny(s, "*?[\\") }
	// clean: nothing stripReference would strip.
	clean := func(s string) bool {
		slash := strings.LastIndex(s, "/")
		return !strings.Contains(s, "@") && !strings.Contains(s[slash+1:], ":")
	}
	f.Fuzz(func(t *testing.T, glob, repo string) {
		p := policy("p", []string{glob}, false)
		got := trust.Covers(p, repo)
		if clean(repo) && strings.Contains(repo, "/") {
			for _, ref := range []string{repo + ":v1", repo + "@sha256:" + strings.Repeat("a", 64)} {
				if trust.Covers(p, ref) != got {
					t.Fatalf("Covers(%q, %q) = %v but Covers(%q, %q) = %v", glob, repo, got, glob, ref, !got)
				}
			}
		}
		if !clean(repo) || !clean(glob) || !literal(repo) {
			return
		}
		if prefix, ok := strings.CutSuffix(glob, "/**"); ok && literal(prefix) {
			want := strings.HasPrefix(repo, prefix+"/") && validRepository(repo)
			if got != want {
				t.Fatalf("Covers(%q, %q) = %v, want %v", glob, repo, got, want)
			}
			return
		}
		if literal(glob) {
			if want := glob == repo && validRepository(repo); got != want {
				t.Fatalf("Covers(%q, %q) = %v, want %v", glob, repo, got, want)
			}
		}
	})
}

// validRepository: registry/path segments, none empty.
func validRepository(repo string) bool {
	for _, seg := range strings.Split(repo, "/") {
		if seg == "" {
			return false
		}
	}
	return true
}
