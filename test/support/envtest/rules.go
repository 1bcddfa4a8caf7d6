package envtest

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// WithoutRules removes the x-kubernetes-validations (CEL rules) at field of
// the first version of CRD crd, e.g. "spec.nodeSelector", and puts them back
// at cleanup: the API server then takes objects an older CRD admitted, which
// tests of what agents and the operator do with them need. The API server
// may take a moment to apply the change; retry the write.
func (e *Env) WithoutRules(t testing.TB, crd, field string) {
	t.Helper()
	ctx := context.Background()
	obj := &unstructured.Unstructured{}
	obj.SetAPIVersion("apiextensions.k8s.io/v1")
	obj.SetKind("CustomResourceDefinition")
	if err := e.Client.Get(ctx, types.NamespacedName{Name: crd}, obj); err != nil {
		t.Fatalf("get CRD %s: %v", crd, err)
	}
	fields := []string{"schema", "openAPIV3Schema"}
	path := "/spec/versions/0/schema/openAPIV3Schema"
	for _, f := range strings.Split(field, ".") {
		fields = append(fields, "properties", f)
		path += "/properties/" + f
	}
	fields = append(fields, "x-kubernetes-validations")
	path += "/x-kubernetes-validations"
	versions, _, _ := unstructured.NestedSlice(obj.Object, "spec", "versions")
	if len(versions) == 0 {
		t.Fatalf("CRD %s has no versions", crd)
	}
	v0, _ := versions[0].(map[string]any)
	rules, ok, _ := unstructured.NestedFieldCopy(v0, fields...)
	if !ok {
		t.Fatalf("CRD %s has no rules at %s", crd, field)
	}
	patch := func(op string, value any) {
		b, err := json.Marshal([]map[string]any{{"op": op, "path": path, "value": value}})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Client.Patch(ctx, obj, client.RawPatch(types.JSONPatchType, b)); err != nil {
			t.Fatalf("%s rules of CRD %s at %s: %v", op, crd, field, err)
		}
	}
	patch("remove", nil)
	t.Cleanup(func() { patch("add", rules) })
}
