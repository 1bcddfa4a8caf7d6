package deploy_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/bpfleet/bpfleet/test/support/privileged"
)

// helmTemplate renders config/helm/bpfleet with the Helm v4 CLI (built
// from helm.sh/helm/v4 in test/tools/mod) and the given values file.
func helmTemplate(t *testing.T, values string) string {
	t.Helper()
	helm := privileged.RequireCommand(t, "helm")
	args := []string{"template", "bpfleet", configDir(t, "helm/bpfleet"), "--include-crds"}
	if values != "" {
		f := filepath.Join(t.TempDir(), "values.yaml")
		if err := os.WriteFile(f, []byte(values), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-f", f)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(helm, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// objects decodes a YAML stream into objects by kind/name.
func objects(t *testing.T, stream string) map[string]*unstructured.Unstructured {
	t.Helper()
	out := map[string]*unstructured.Unstructured{}
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(stream), 4096)
	for {
		var o unstructured.Unstructured
		err := dec.Decode(&o.Object)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if len(o.Object) == 0 {
			continue
		}
		out[o.GetKind()+"/"+o.GetName()] = &o
	}
}

// dryRun applies manifests to the real apiserver with a server-side dry run.
func dryRun(t *testing.T, manifests string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "chart.yaml")
	if err := os.WriteFile(f, []byte(manifests), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := env.Kubectl(context.Background(), "apply", "--dry-run=server", "-f", f)
	if err != nil {
		t.Fatalf("server-side dry run of the chart: %v\n%s", err, out)
	}
	return out
}

// normalize rewrites what two renderings of one source may spell
// differently: the registries config's YAML text (comments, layout) is
// compared as the config it parses to, and CEL expressions with their
// whitespace collapsed (YAML libraries disagree on the line breaks of a
// folded scalar's more-indented lines; CEL does not care).
func normalize(o *unstructured.Unstructured) {
	switch o.GetKind() {
	case "ConfigMap":
		if raw, found, _ := unstructured.NestedString(o.Object, "data", "registries.yaml"); found {
			var cfg map[string]any
			if err := yaml.Unmarshal([]byte(raw), &cfg); err == nil {
				canonical, _ := yaml.Marshal(cfg)
				_ = unstructured.SetNestedField(o.Object, string(canonical), "data", "registries.yaml")
			}
		}
	case "ValidatingAdmissionPolicy":
		vs, _, _ := unstructured.NestedSlice(o.Object, "spec", "validations")
		for i, v := range vs {
			m := v.(map[string]any)
			if e, ok := m["expression"].(string); ok {
				m["expression"] = strings.Join(strings.Fields(e), " ")
			}
			vs[i] = m
		}
		_ = unstructured.SetNestedSlice(o.Object, vs, "spec", "validations")
	}
}

// TestHelmChartDefaultsAreKustomize: the chart rendered by Helm with its
// default values is config/default, object for object, and the real
// apiserver accepts it.
func TestHelmChartDefaultsAreKustomize(t *testing.T) {
	ensureNamespace(t)
	rendered := helmTemplate(t, "")
	kust, err := env.Kubectl(context.Background(), "kustomize", configDir(t, "default"))
	if err != nil {
		t.Fatalf("kubectl kustomize: %v\n%s", err, kust)
	}
	chart, want := objects(t, rendered), objects(t, kust)
	for key, w := range want {
		got, ok := chart[key]
		if !ok {
			t.Errorf("the chart lacks %s", key)
			continue
		}
		normalize(got)
		normalize(w)
		if !equality.Semantic.DeepEqual(got.Object, w.Object) {
			t.Errorf("%s differs between the chart and kustomize:\nchart     %v\nkustomize %v", key, got.Object, w.Object)
		}
	}
	for key := range chart {
		if _, ok := want[key]; !ok {
			t.Errorf("the chart renders %s, which config/default does not hold", key)
		}
	}
	out := dryRun(t, rendered)
	for _, want := range []string{"deployment.apps/bpfleet-operator", "daemonset.apps/bpfleet-agent", "configmap/bpfleet-registries"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run output lacks %s:\n%s", want, out)
		}
	}
}

// TestHelmChartValues: each value lands where it should, and the result
// passes the real apiserver's validation.
func TestHelmChartValues(t *testing.T) {
	const ns = "fleet-ops"
	if err := env.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	const (
		opImage    = "registry.example.com/bpfleet/bpfleet-operator@sha256:1111111111111111111111111111111111111111111111111111111111111111"
		agentImage = "registry.example.com/bpfleet/bpfleet-agent@sha256:2222222222222222222222222222222222222222222222222222222222222222"
	)
	values := fmt.Sprintf(`namespace: %s
createNamespace: false
operator: {image: "%s", replicas: 3, resources: {limits: {memory: 300Mi}}}
agent: {image: "%s", resources: {requests: {cpu: 30m}}}
metrics: {enabled: false}
registry:
  registries:
    - {host: "registry.example.com:5000", ca: /etc/bpfleet/registry-ca/ca.crt}
  dockerconfigjson: '{"auths":{"registry.example.com:5000":{"auth":"dTpw"}}}'
  ca: |
    -----BEGIN CERTIFICATE-----
    MIIB
    -----END CERTIFICATE-----
allowUnsigned: {enabled: true, images: ["127.0.0.1:5000/dev/*"]}
`, ns, opImage, agentImage)
	rendered := helmTemplate(t, values)
	objs := objects(t, rendered)
	if _, ok := objs["Namespace/bpfleet-system"]; ok {
		t.Error("createNamespace: false still renders the Namespace")
	}
	op, agent := objs["Deployment/bpfleet-operator"], objs["DaemonSet/bpfleet-agent"]
	if op == nil || agent == nil {
		t.Fatalf("operator or agent missing from the render: %v", slices.Collect(maps.Keys(objs)))
	}
	checks := []struct {
		what string
		obj  *unstructured.Unstructured
		path []string
		want any
	}{
		{"operator namespace", op, []string{"metadata", "namespace"}, ns},
		{"agent namespace", agent, []string{"metadata", "namespace"}, ns},
		{"operator replicas", op, []string{"spec", "replicas"}, 3},
	}
	for _, c := range checks {
		got, _, _ := unstructured.NestedFieldNoCopy(c.obj.Object, c.path...)
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s = %v, want %v", c.what, got, c.want)
		}
	}
	opYAML, agentYAML := yamlOf(t, op), yamlOf(t, agent)
	for _, want := range []string{opImage, "--metrics-bind-address=0", "--trust-namespace=$(POD_NAMESPACE)", "memory: 300Mi"} {
		if !strings.Contains(opYAML, want) {
			t.Errorf("operator lacks %q:\n%s", want, opYAML)
		}
	}
	for _, want := range []string{agentImage, "--metrics-bind-address=0", "--trust-namespace=$(POD_NAMESPACE)", "cpu: 30m"} {
		if !strings.Contains(agentYAML, want) {
			t.Errorf("agent lacks %q:\n%s", want, agentYAML)
		}
	}
	if n := strings.Count(agentYAML, agentImage); n != 2 {
		t.Errorf("agent image in %d places, want 2 (the init step and the agent)", n)
	}
	cm := objs["ConfigMap/bpfleet-registries"]
	if cfg, _, _ := unstructured.NestedString(cm.Object, "data", "registries.yaml"); !strings.Contains(cfg, "host: registry.example.com:5000") ||
		!strings.Contains(cfg, "credentials: /etc/bpfleet/registry-credentials/.dockerconfigjson") {
		t.Errorf("registries config:\n%s", cfg)
	}
	for _, key := range []string{"Secret/bpfleet-registry-credentials", "ConfigMap/bpfleet-registry-ca", "BundleTrustPolicy/dev-unsigned"} {
		if objs[key] == nil {
			t.Errorf("%s not rendered", key)
		}
	}
	if typ, _, _ := unstructured.NestedString(objs["Secret/bpfleet-registry-credentials"].Object, "type"); typ != string(corev1.SecretTypeDockerConfigJson) {
		t.Errorf("registry Secret type %q", typ)
	}
	out := dryRun(t, rendered)
	if !strings.Contains(out, "bundletrustpolicy.bpfleet.io/dev-unsigned") {
		t.Errorf("dry run output lacks the dev policy:\n%s", out)
	}

	// The CRD refuses allowUnsigned for every host; the chart does not
	// get around it.
	bad := strings.Replace(values, `images: ["127.0.0.1:5000/dev/*"]`, `images: ["**"]`, 1)
	f := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(f, []byte(helmTemplate(t, bad)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := env.Kubectl(context.Background(), "apply", "--dry-run=server", "-f", f); err == nil {
		t.Errorf("allowUnsigned for ** passed the apiserver:\n%s", out)
	}
}

func yamlOf(t *testing.T, o *unstructured.Unstructured) string {
	t.Helper()
	y, err := yaml.Marshal(o.Object)
	if err != nil {
		t.Fatal(err)
	}
	return string(y)
}
