package trust_test

import (
	"context"
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bundles"
	"github.com/bpfleet/bpfleet/bundles/trust"
)

// secretReader answers every Get with err, or with a Secret holding data.
type secretReader struct {
	client.Reader
	data map[string][]byte
	err  error
}

func (r secretReader) Get(_ context.Context, _ client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	if r.err != nil {
		return r.err
	}
	obj.(*corev1.Secret).Data = r.data
	return nil
}

func TestSecretKeys(t *testing.T) {
	secrets := schema.GroupResource{Resource: "secrets"}
	tests := []struct {
		name      string
		reader    secretReader
		namespace string // of the reference
		fails     bool   // no key is read
		transient bool   // the error wraps ErrKeyUnavailable
		want      error  // a sentinel the error wraps, if any
	}{
		{name: "read", reader: secretReader{data: map[string][]byte{"cosign.pub": []byte("pem")}}, namespace: "bpfleet-system"},
		{name: "no such key in the secret", reader: secretReader{data: map[string][]byte{}}, namespace: "bpfleet-system", fails: true},
		{name: "not found", reader: secretReader{err: apierrors.NewNotFound(secrets, "k")}, namespace: "bpfleet-system", fails: true},
		{name: "API server unavailable", reader: secretReader{err: apierrors.NewServiceUnavailable("etcd")}, namespace: "bpfleet-system",
			fails: true, transient: true},
		{name: "forbidden until the Role names it", reader: secretReader{err: apierrors.NewForbidden(secrets, "k", errors.New("rbac"))},
			namespace: "bpfleet-system", fails: true, transient: true},
		{name: "timeout", reader: secretReader{err: context.DeadlineExceeded}, namespace: "bpfleet-system", fails: true, transient: true},
		{name: "other namespace", reader: secretReader{data: map[string][]byte{"cosign.pub": []byte("pem")}}, namespace: "kube-system", fails: true, want: trust.ErrSecretNamespace},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := trust.SecretKeys(tt.reader, "")(context.Background(), v1alpha1.SecretKeyRef{Namespace: tt.namespace, Name: "k", Key: "cosign.pub"})
			if !tt.fails {
				if err != nil || string(got) != "pem" {
					t.Fatalf("SecretKeys = %q, %v", got, err)
				}
				return
			}
			if err == nil {
				t.Fatal("SecretKeys succeeded")
			}
			if errors.Is(err, bundles.ErrKeyUnavailable) != tt.transient {
				t.Errorf("%v: transient %v, want %v", err, !tt.transient, tt.transient)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("%v, want %v", err, tt.want)
			}
		})
	}
}
