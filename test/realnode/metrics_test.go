package realnode

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bpfleet/bpfleet/test/support/envtest"
)

// TestAgentMetricsNeedAToken: the agent's /metrics, on every interface of
// the node because of hostNetwork, answers 401 without a token, 403 to a
// service account without the right, and the metrics to one bound to
// bpfleet-metrics-reader.
func TestAgentMetricsNeedAToken(t *testing.T) {
	e := requireSuite(t)
	ctx := context.Background()
	url := fmt.Sprintf("https://%s:9090/metrics", e.c.NodeIP)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // #nosec G402 -- the agent's self-signed serving certificate
	}}
	get := func(token string) (int, string) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, _ := get(""); code != http.StatusUnauthorized {
		t.Errorf("no token: %d, want 401", code)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "realnode-scraper"}}
	if err := e.client.Create(ctx, sa); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.client.Delete(context.Background(), sa) })
	token := func() string {
		tr, err := e.c.Clientset.CoreV1().ServiceAccounts("default").CreateToken(ctx, sa.Name, &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: new(int64(600))},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	if code, body := get(token()); code != http.StatusForbidden {
		t.Errorf("token without the right: %d %s, want 403", code, body)
	}
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "realnode-scraper"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "bpfleet-metrics-reader"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: "default", Name: sa.Name}},
	}
	if err := e.client.Create(ctx, crb); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.client.Delete(context.Background(), crb) })
	allowed := token() // a new token: the agent caches each token's decision for a minute
	envtest.Eventually(t, 30*time.Second, func() error {
		code, body := get(allowed)
		if code != http.StatusOK || !strings.Contains(body, "bpfleet_agent_") {
			return fmt.Errorf("bound to bpfleet-metrics-reader: %d, %.200s", code, body)
		}
		return nil
	})
}
