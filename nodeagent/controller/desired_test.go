package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bundles"
	"github.com/bpfleet/bpfleet/bundles/format"
	"github.com/bpfleet/bpfleet/bundles/trust"
)

// kernelOnly is a Dataplane that only reports a kernel; digestFor needs
// nothing else.
type kernelOnly struct {
	Dataplane
	release string
}

func (k kernelOnly) Kernel() v1alpha1.KernelInfo { return v1alpha1.KernelInfo{Release: k.release} }

func TestDigestForUsesTheNodeKernel(t *testing.T) {
	const (
		stable = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
		target = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	)
	p := &v1alpha1.BpfProgram{
		ObjectMeta: metav1.ObjectMeta{Name: "p", UID: "uid-1"},
		Status: v1alpha1.BpfProgramStatus{Rollout: &v1alpha1.RolloutStatus{
			TargetDigest: target, StableDigest: stable,
			PausedKernels: []v1alpha1.PausedKernel{{Release: "5.15.0-old", Node: "n9", Reason: "x: LoadFailed"}},
		}},
	}
	tests := []struct {
		// release is the node's own kernel release.
		release string
		// want is the digest the node must run (AllAtOnce: everyone's wave).
		want string
	}{
		{release: "5.15.0-old", want: stable},
		{release: "6.18.0", want: target},
		{release: "", want: target},
	}
	for _, tt := range tests {
		r := &Reconciler{NodeName: "n1", Dataplane: kernelOnly{release: tt.release}}
		if got := r.digestFor(p); got != tt.want {
			t.Errorf("kernel %q: digestFor = %s, want %s", tt.release, got, tt.want)
		}
	}
}

// fakeBundle assembles a bundle whose manifest holds one program per type
// (named after it), around a stand-in object: what the agent checks before
// a load reads only the manifest.
func fakeBundle(t testing.TB, types ...string) *format.Bundle {
	t.Helper()
	elf := []byte("\x7fELF stand-in object")
	m := &format.Manifest{SchemaVersion: format.SchemaVersion, Name: "fake",
		Objects: []format.Object{{Name: "fake.o", Digest: format.Digest(elf), Size: int64(len(elf)), Endianness: format.LittleEndian}}}
	for _, typ := range types {
		m.Programs = append(m.Programs, format.Program{Name: typ, Object: "fake.o", Section: typ, Type: typ,
			License: "GPL", Attach: format.AttachHint{Kind: "xdp"}})
	}
	config, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	im := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, ArtifactType: format.ArtifactType,
		Config: ocispec.Descriptor{MediaType: format.ConfigMediaType, Digest: digest.Digest(format.Digest(config)), Size: int64(len(config))},
		Layers: []ocispec.Descriptor{{MediaType: format.ELFMediaType, Digest: digest.Digest(format.Digest(elf)), Size: int64(len(elf)),
			Annotations: map[string]string{format.AnnotationTitle: "fake.o", format.AnnotationEndianness: format.LittleEndian}}},
	}
	raw, err := json.Marshal(im)
	if err != nil {
		t.Fatal(err)
	}
	b, err := format.Assemble(format.Parts{Digest: format.Digest(raw), ImageManifest: raw, Config: config,
		Layers: map[string][]byte{format.Digest(elf): elf}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// cachedBundles serves one bundle from the "node cache".
type cachedBundles struct{ b *format.Bundle }

func (c cachedBundles) Get(context.Context, string, string) (*format.Bundle, error) { return c.b, nil }

// TestRunningBundleIntersectsPolicies: with the registry down, the digest a
// node runs is kept only if every covering policy still allows its program
// types; a lenient policy next to a strict one widens nothing.
func TestRunningBundleIntersectsPolicies(t *testing.T) {
	pol := func(name string, types ...string) v1alpha1.BundleTrustPolicy {
		return v1alpha1.BundleTrustPolicy{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: v1alpha1.BundleTrustPolicySpec{Images: []string{"r.example.com/ebpf/*"}, AllowedProgramTypes: types}}
	}
	p := &v1alpha1.BpfProgram{ObjectMeta: metav1.ObjectMeta{Name: "p"},
		Spec: v1alpha1.BpfProgramSpec{Bundle: v1alpha1.BundleSource{Image: "r.example.com/ebpf/x:v1"}}}
	tests := []struct {
		name     string
		policies []v1alpha1.BundleTrustPolicy // cluster policies
		want     error                        // nil: kept
	}{
		{name: "one policy allows", policies: []v1alpha1.BundleTrustPolicy{pol("a", "xdp", "tracepoint")}},
		{name: "unrestricted policies", policies: []v1alpha1.BundleTrustPolicy{pol("a"), pol("b")}},
		{name: "a strict policy refuses despite a lenient one", policies: []v1alpha1.BundleTrustPolicy{pol("a", "xdp", "tracepoint"), pol("b", "xdp")},
			want: bundles.ErrProgramTypeDenied},
		{name: "no covering policy", want: bundles.ErrNoTrustPolicy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Reconciler{Bundles: cachedBundles{fakeBundle(t, "xdp", "tracepoint")}}
			_, err := r.runningBundle(context.Background(), p, "sha256:1111111111111111111111111111111111111111111111111111111111111111", tt.policies)
			if !errors.Is(err, tt.want) {
				t.Fatalf("runningBundle = %v, want %v", err, tt.want)
			}
		})
	}
}

// verifiedBy is a Verifier that admits every digest with a fixed result.
type verifiedBy trust.Result

func (v verifiedBy) Verify(context.Context, string, string, []v1alpha1.BundleTrustPolicy) (trust.Result, error) {
	return trust.Result(v), nil
}

// TestFetchVerifiedChecksAttachTypes: the agent, not only the operator,
// refuses a hook that a covering policy's allowedAttachTypes leaves out,
// with a reason that is no transient hold.
func TestFetchVerifiedChecksAttachTypes(t *testing.T) {
	cgroup := func(hook v1alpha1.CgroupAttachType) v1alpha1.BpfProgram {
		return v1alpha1.BpfProgram{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: v1alpha1.BpfProgramSpec{
			Bundle:   v1alpha1.BundleSource{Image: "r.example.com/ebpf/x:v1"},
			Programs: []v1alpha1.ProgramAttachment{{Name: "cgroup_skb", Cgroup: &v1alpha1.CgroupAttach{Path: "/", AttachType: hook}}},
		}}
	}
	res := trust.Result{Policy: "p", KeyName: "k", Limits: []trust.Limit{{Policy: "p", AttachTypes: []string{"cgroup/egress"}}}}
	r := &Reconciler{Bundles: cachedBundles{fakeBundle(t, "cgroup_skb")}, Verifier: &VerifyMemo{Verifier: verifiedBy(res)}}
	const digest = "sha256:1111111111111111111111111111111111111111111111111111111111111111"

	egress := cgroup("egress")
	if _, _, err := r.fetchVerified(context.Background(), &egress, digest, nil, true, &phaseTimes{}); err != nil {
		t.Fatalf("egress allowed, got %v", err)
	}
	ingress := cgroup("ingress")
	_, _, err := r.fetchVerified(context.Background(), &ingress, digest, nil, true, &phaseTimes{})
	if !errors.Is(err, bundles.ErrAttachTypeDenied) || holdReason(err) != v1alpha1.ReasonVerifyFailed || transientHold(err) {
		t.Fatalf("ingress: %v (reason %s), want ErrAttachTypeDenied held as VerifyFailed", err, holdReason(err))
	}
}

// TestPinnedDigestIsBinding: when spec.bundle.image is pinned with
// @sha256:, the agent runs that digest only, whatever status.rollout (which
// more hands may write than the spec) tells it: a forged rollout back to an
// older signed release is refused, and what runs keeps running.
func TestPinnedDigestIsBinding(t *testing.T) {
	const (
		older  = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
		pinned = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	)
	tests := []struct {
		name            string
		image           string // spec.bundle.image
		target, stable  string // status.rollout
		wantHoldReason  string // "" when the digest is fetched and verified
		wantDigestTaken string // the digest the desired entry carries
	}{
		{name: "pinned, status names it", image: "r.example.com/ebpf/x@" + pinned, target: pinned, stable: pinned, wantDigestTaken: pinned},
		{name: "pinned, status rolls back", image: "r.example.com/ebpf/x@" + pinned, target: older, stable: older,
			wantHoldReason: v1alpha1.ReasonDigestNotPinned, wantDigestTaken: older},
		{name: "pinned, status halts to the stable digest", image: "r.example.com/ebpf/x@" + pinned, target: pinned, stable: older,
			wantHoldReason: v1alpha1.ReasonDigestNotPinned, wantDigestTaken: older},
		{name: "a tag follows status", image: "r.example.com/ebpf/x:v1", target: older, stable: older, wantDigestTaken: older},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &v1alpha1.BpfProgram{
				ObjectMeta: metav1.ObjectMeta{Name: "p", UID: "uid-1"},
				Spec: v1alpha1.BpfProgramSpec{Bundle: v1alpha1.BundleSource{Image: tt.image},
					Programs: []v1alpha1.ProgramAttachment{{Name: "xdp", XDP: &v1alpha1.XDPAttach{}}}},
				Status: v1alpha1.BpfProgramStatus{Rollout: &v1alpha1.RolloutStatus{TargetDigest: tt.target, StableDigest: tt.stable}},
			}
			if tt.target != tt.stable {
				p.Status.Rollout.HaltedReason = "halted"
			}
			r := &Reconciler{NodeName: "n1", Dataplane: kernelOnly{}, Bundles: cachedBundles{fakeBundle(t, "xdp")},
				Verifier: &VerifyMemo{Verifier: verifiedBy(trust.Result{Policy: "p", KeyName: "k"})}}
			out, _ := r.desired(context.Background(), []*v1alpha1.BpfProgram{p}, nil, nil, nil, &phaseTimes{})
			if len(out) != 1 {
				t.Fatalf("desired = %+v", out)
			}
			d := out[0]
			if d.Digest != tt.wantDigestTaken {
				t.Errorf("digest %s, want %s", d.Digest, tt.wantDigestTaken)
			}
			if tt.wantHoldReason == "" {
				if d.Hold != nil || d.Bundle == nil {
					t.Fatalf("held: %v", d.Hold)
				}
				return
			}
			if d.Hold == nil || d.Bundle != nil {
				t.Fatalf("not held (bundle set: %v)", d.Bundle != nil)
			}
			if got := holdReason(d.Hold); got != tt.wantHoldReason || heldPhase(d.Hold) != v1alpha1.PhasePending || transientHold(d.Hold) {
				t.Errorf("hold %q reason %s phase %s; want %s, Pending, not transient", d.Hold, got, heldPhase(d.Hold), tt.wantHoldReason)
			}
		})
	}
}

// TestKeyUnavailableIsTransient: a trust key that could not be read (an API
// error) holds the program as Pending and is retried soon, never reported
// as VerifyFailed, even when joined with a signature mismatch.
func TestKeyUnavailableIsTransient(t *testing.T) {
	err := fmt.Errorf("verify r/x@d: %w", errors.Join(
		fmt.Errorf("trust policy p refuses: %w", bundles.ErrSignatureMismatch),
		fmt.Errorf("policy p key k: %w", bundles.ErrKeyUnavailable)))
	if got := holdReason(err); got != v1alpha1.ReasonKeyUnavailable || !transientHold(err) || heldPhase(err) != v1alpha1.PhasePending {
		t.Errorf("hold reason %s transient %v phase %s; want KeyUnavailable, transient, Pending", got, transientHold(err), heldPhase(err))
	}
	if got := holdReason(fmt.Errorf("x: %w", bundles.ErrSignatureMismatch)); got != v1alpha1.ReasonVerifyFailed {
		t.Errorf("a mismatch alone: %s, want VerifyFailed", got)
	}
}

// remounting is a Dataplane that reports bpffs remounts once.
type remounting struct {
	Dataplane
	n int
}

func (r *remounting) TakeBPFFSRemounts() int { n := r.n; r.n = 0; return n }

func TestReportRemounts(t *testing.T) {
	tests := []struct {
		// remounts the dataplane reports.
		remounts int
		// wantEvent: one Warning BPFFSRemounted Event.
		wantEvent bool
	}{
		{remounts: 0},
		{remounts: 1, wantEvent: true},
		{remounts: 3, wantEvent: true},
	}
	for _, tt := range tests {
		rec := events.NewFakeRecorder(4)
		dp := &remounting{n: tt.remounts}
		r := &Reconciler{NodeName: "n1", Dataplane: dp, Recorder: rec}
		r.reportRemounts(context.Background())
		r.reportRemounts(context.Background()) // reported once
		var got []string
		for len(rec.Events) > 0 {
			got = append(got, <-rec.Events)
		}
		if want := map[bool]int{true: 1, false: 0}[tt.wantEvent]; len(got) != want {
			t.Fatalf("%d remounts: events %q, want %d", tt.remounts, got, want)
		}
		if tt.wantEvent && !strings.HasPrefix(got[0], "Warning "+v1alpha1.ReasonBPFFSRemounted) {
			t.Errorf("event %q, want a Warning %s", got[0], v1alpha1.ReasonBPFFSRemounted)
		}
	}
}
