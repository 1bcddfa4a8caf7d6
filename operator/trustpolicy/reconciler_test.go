package trustpolicy_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bundles"
	"github.com/bpfleet/bpfleet/operator/trustpolicy"
)

func publicKeyPEM(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// TestUnreadableKeyIsSkippedAndReported: a policy whose key Secret cannot
// be read keeps its other keys, says which key it skipped and why in its
// Ready condition, and is reconciled again within seconds when the cause
// is an API error, since that is no verdict on the key.
func TestUnreadableKeyIsSkippedAndReported(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	secretKey := func(name string) v1alpha1.TrustedKey {
		return v1alpha1.TrustedKey{Name: name, SecretRef: &v1alpha1.SecretKeyRef{Namespace: "bpfleet-system", Name: name}}
	}
	keys := func(_ context.Context, ref v1alpha1.SecretKeyRef) ([]byte, error) {
		switch ref.Name {
		case "flaky":
			return nil, fmt.Errorf("get secret: %w: etcdserver: request timed out", bundles.ErrKeyUnavailable)
		case "gone":
			return nil, errors.New(`secrets "gone" not found`)
		}
		return nil, errors.New("unexpected")
	}
	tests := []struct {
		name       string
		key        v1alpha1.TrustedKey // next to a good inline key
		wantReason string
		// wantRequeue is how soon the policy is looked at again.
		wantRequeue time.Duration
	}{
		{name: "API error", key: secretKey("flaky"), wantReason: v1alpha1.ReasonKeyUnavailable, wantRequeue: 3 * time.Second},
		{name: "missing Secret", key: secretKey("gone"), wantReason: v1alpha1.ReasonKeyInvalid, wantRequeue: time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pol := &v1alpha1.BundleTrustPolicy{
				ObjectMeta: metav1.ObjectMeta{Name: "p", Generation: 1},
				Spec: v1alpha1.BundleTrustPolicySpec{Images: []string{"r.example.com/*"},
					Keys: []v1alpha1.TrustedKey{{Name: "good", PublicKey: publicKeyPEM(t)}, tt.key}},
			}
			c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(pol).WithStatusSubresource(pol).Build()
			r := &trustpolicy.Reconciler{Client: c, Keys: keys, Recorder: events.NewFakeRecorder(10)}
			res, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(pol)})
			if err != nil || res.RequeueAfter != tt.wantRequeue {
				t.Fatalf("Reconcile = %+v, %v; want requeue after %s", res, err, tt.wantRequeue)
			}
			got := &v1alpha1.BundleTrustPolicy{}
			if err := c.Get(context.Background(), client.ObjectKeyFromObject(pol), got); err != nil {
				t.Fatal(err)
			}
			ready := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady)
			if ready == nil || ready.Reason != tt.wantReason || !strings.Contains(ready.Message, "1 of 2 key(s) usable") ||
				!strings.Contains(ready.Message, "key "+tt.key.Name) {
				t.Errorf("Ready %+v, want %s naming key %s", ready, tt.wantReason, tt.key.Name)
			}
			if got.Status.KeyCount != 1 || len(got.Status.KeyFingerprints) != 1 || !strings.HasPrefix(got.Status.KeyFingerprints[0], "good SHA256:") {
				t.Errorf("keys %d %q, want the good key only", got.Status.KeyCount, got.Status.KeyFingerprints)
			}
		})
	}
}
