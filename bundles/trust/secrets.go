package trust

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bundles"
)

// DefaultSecretNamespace is where bpfleet reads trust-policy keys stored in
// Secrets: the namespace it is installed in. RBAC grants the operator and the
// agents `get` only on the Secrets there that a trust policy names (the
// bpfleet-trust-keys Role, kept by the operator's trustkeys reconciler).
const DefaultSecretNamespace = "bpfleet-system"

// ErrSecretNamespace: a policy names a Secret outside the namespace bpfleet
// reads keys from.
var ErrSecretNamespace = errors.New("secretRef outside the trust namespace")

// SecretKeys resolves secretRef keys with one direct get per key (so neither
// list nor watch on Secrets is needed), and only in namespace: a policy
// cannot make bpfleet read a Secret anywhere else. An API error other than
// NotFound wraps bundles.ErrKeyUnavailable: it is no verdict on the key.
func SecretKeys(r client.Reader, namespace string) KeySource {
	if namespace == "" {
		namespace = DefaultSecretNamespace
	}
	return func(ctx context.Context, ref v1alpha1.SecretKeyRef) ([]byte, error) {
		if ref.Namespace != namespace {
			return nil, fmt.Errorf("secret %s/%s: %w %q", ref.Namespace, ref.Name, ErrSecretNamespace, namespace)
		}
		var s corev1.Secret
		if err := r.Get(ctx, client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}, &s); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, fmt.Errorf("get secret %s/%s: %w", ref.Namespace, ref.Name, err)
			}
			// Anything else (timeouts, 5xx, 429, a Forbidden while the
			// trust-keys Role catches up) may pass: retry soon.
			return nil, fmt.Errorf("get secret %s/%s: %w: %w", ref.Namespace, ref.Name, bundles.ErrKeyUnavailable, err)
		}
		key := ref.Key
		if key == "" {
			key = DefaultSecretKey
		}
		data, ok := s.Data[key]
		if !ok {
			return nil, fmt.Errorf("secret %s/%s has no key %q", ref.Namespace, ref.Name, key)
		}
		return data, nil
	}
}
