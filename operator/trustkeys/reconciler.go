// Package trustkeys keeps the Role that lets the operator and the agents read
// trust-policy key Secrets (bpfleet-trust-keys, shipped empty in
// config/rbac/common) granting `get` on exactly the Secrets that
// BundleTrustPolicies name in the trust namespace, and nothing else.
package trustkeys

import (
	"context"
	"fmt"
	"slices"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bundles/trust"
)

// RoleName is the Role in the trust namespace whose rules this package
// writes; config/rbac/common binds it to the operator's and the agent's
// service accounts, and an admission policy confines its rules to `get` on
// named Secrets.
const RoleName = "bpfleet-trust-keys"

// The operator may read, watch (with a metadata.name field selector) and
// rewrite that one Role. escalate: RBAC refuses a Role write granting what
// the writer does not hold, and the operator holds no Secret until the Role
// names it. config/rbac/common/trust_keys_policy.yaml confines what any
// writer may put in it.
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,namespace=bpfleet-system,resources=roles,resourceNames=bpfleet-trust-keys,verbs=get;list;watch;update;escalate
// +kubebuilder:rbac:groups=bpfleet.io,resources=bundletrustpolicies,verbs=get;list;watch

// Reconciler rewrites the Role's rules from the BundleTrustPolicies. It keeps
// no state between requests: every request lists the policies and compares
// with the Role as the API server has it.
type Reconciler struct {
	// Client lists policies through the manager's cache and writes the Role.
	Client client.Client
	// APIReader reads the Role directly: the manager's cache cannot (the
	// operator may not list Roles).
	APIReader client.Reader
	// Namespace holds the Role and the Secrets; empty means
	// trust.DefaultSecretNamespace.
	Namespace string
}

func (r *Reconciler) namespace() string {
	if r.Namespace == "" {
		return trust.DefaultSecretNamespace
	}
	return r.Namespace
}

// Rules returns the Role's rules for these policies: one rule granting get
// on the Secrets in namespace that a secretRef key names, sorted and without
// duplicates, or no rule at all when none does (a rule without resourceNames
// would grant every Secret). Secrets named in other namespaces are left out:
// bpfleet refuses to read them.
func Rules(policies []v1alpha1.BundleTrustPolicy, namespace string) []rbacv1.PolicyRule {
	var names []string
	for _, p := range policies {
		for _, k := range p.Spec.Keys {
			if k.SecretRef != nil && k.SecretRef.Namespace == namespace && k.SecretRef.Name != "" {
				names = append(names, k.SecretRef.Name)
			}
		}
	}
	if len(names) == 0 {
		return nil
	}
	slices.Sort(names)
	return []rbacv1.PolicyRule{{
		APIGroups:     []string{""},
		Resources:     []string{"secrets"},
		Verbs:         []string{"get"},
		ResourceNames: slices.Compact(names),
	}}
}

// Reconcile makes the Role's rules equal Rules of every policy, writing only
// when they differ.
func (r *Reconciler) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	ns := r.namespace()
	var policies v1alpha1.BundleTrustPolicyList
	if err := r.Client.List(ctx, &policies); err != nil {
		return ctrl.Result{}, fmt.Errorf("list BundleTrustPolicies: %w", err)
	}
	want := Rules(policies.Items, ns)
	role := &rbacv1.Role{}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: ns, Name: RoleName}, role); err != nil {
		if apierrors.IsNotFound(err) {
			// Installed without config/rbac (bpfleet local, tests as cluster
			// admin): nothing to keep. The Role watch brings us back if it
			// is created.
			log.FromContext(ctx).V(1).Info("no trust-keys Role: Secret access is not managed", "namespace", ns, "role", RoleName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("get Role %s/%s: %w", ns, RoleName, err)
	}
	if sameRules(role.Rules, want) {
		return ctrl.Result{}, nil
	}
	role.Rules = want
	if err := r.Client.Update(ctx, role); err != nil {
		return ctrl.Result{}, fmt.Errorf("update Role %s/%s: %w", ns, RoleName, err)
	}
	log.FromContext(ctx).Info("trust-keys Role updated", "namespace", ns, "rules", want)
	return ctrl.Result{}, nil
}

// sameRules is rule equality where no rules and an empty list are the same.
func sameRules(a, b []rbacv1.PolicyRule) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return equality.Semantic.DeepEqual(a, b)
}

// SetupWithManager reconciles on every policy change and on every change to
// the Role itself (so an edited or re-created Role is put right at once).
// The Role is watched through a cache of its own holding that one object:
// the operator may list and watch it only with its name as field selector.
func (r *Reconciler) SetupWithManager(_ context.Context, mgr ctrl.Manager) error {
	ns := r.namespace()
	roles, err := cache.New(mgr.GetConfig(), cache.Options{
		HTTPClient:        mgr.GetHTTPClient(),
		Scheme:            mgr.GetScheme(),
		Mapper:            mgr.GetRESTMapper(),
		DefaultNamespaces: map[string]cache.Config{ns: {}},
		ByObject: map[client.Object]cache.ByObject{
			&rbacv1.Role{}: {Field: fields.OneTermEqualSelector("metadata.name", RoleName)},
		},
	})
	if err != nil {
		return fmt.Errorf("create trust-keys Role cache: %w", err)
	}
	if err := mgr.Add(roles); err != nil {
		return fmt.Errorf("add trust-keys Role cache: %w", err)
	}
	one := []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: ns, Name: RoleName}}}
	err = ctrl.NewControllerManagedBy(mgr).
		Named("trustkeys").
		Watches(&v1alpha1.BundleTrustPolicy{},
			handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request { return one }),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WatchesRawSource(source.Kind(roles, &rbacv1.Role{},
			handler.TypedEnqueueRequestsFromMapFunc(func(context.Context, *rbacv1.Role) []reconcile.Request { return one }))).
		Complete(r)
	if err != nil {
		return fmt.Errorf("build trustkeys controller: %w", err)
	}
	return nil
}
