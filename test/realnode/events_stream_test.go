package realnode

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bpfleet/bpfleet/bpf/openfilter"
	"github.com/bpfleet/bpfleet/nodeagent/bpffs"
	"github.com/bpfleet/bpfleet/nodeagent/metrics"
	"github.com/bpfleet/bpfleet/test/support/envtest"
)

// Flood rate and stall of the slow-consumer check (the figures).
const (
	floodRate  = 50_000
	stallFor   = 30 * time.Second
	rssAllowed = 20 << 20
)

// TestEventsStream: open-filter with a prefix rule and spec.events, read
// through the agents' event streams: only matching opens come through; a
// client that stops reading for 30 s under 50k events/s is cut off, told
// how many it lost, and that number is the slow-consumer drop counter,
// with the agent's RSS near idle; the kernel's drop counter is exported;
// --since replays the kept lines; and kubectl bpf events reconnects after
// the agent pod is deleted.
func TestEventsStream(t *testing.T) {
	e := requireSuite(t)
	const name = "realnode-open-events"
	prefix := e.openFilterEvents(t, name)
	viewer := e.serviceAccountKubeconfig(t, "realnode-open-viewer", true)
	scrape := e.metricsScraper(t)

	t.Run("only matching opens", func(t *testing.T) { e.onlyMatchingOpens(t, name, prefix, viewer) })
	t.Run("slow consumer", func(t *testing.T) { e.slowConsumer(t, name, prefix, viewer, scrape) })
	t.Run("kernel drops exported", func(t *testing.T) { e.kernelDropsExported(t, name, scrape) })
	t.Run("since", func(t *testing.T) { e.sinceReplays(t, name, prefix, viewer) })
	t.Run("reconnect after agent restart", func(t *testing.T) { e.reconnects(t, name, prefix, viewer) })
}

// openFilterEvents applies open-filter as BpfProgram name with one prefix
// rule, a new directory under /tmp, and spec.events (pid, prefix_id and
// path, up to 1M events/s), waits until its reader runs, and returns the
// prefix.
func (e *env) openFilterEvents(t testing.TB, name string) string {
	t.Helper()
	ref := e.pushBundle(t, filepath.Join(repoDir, "bpf", "openfilter"), openfilter.BundleName, "0.1.0")
	prefix, err := os.MkdirTemp("/tmp", "bpfleet-open-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(prefix) })
	prefix += "/"
	key, value, err := openfilter.PrefixMapEntry(prefix, 1)
	if err != nil {
		t.Fatal(err)
	}
	e.deleteProgram(t, name)
	e.apply(t, fmt.Sprintf(`apiVersion: bpfleet.io/v1alpha1
kind: BpfProgram
metadata: {name: %s}
spec:
  bundle: {image: %s}
  programs:
    - {name: %s, tracepoint: {group: %s, name: %s}}
  mapEntries:
    - {map: %s, key: "%s", value: "%s"}
  events: {enabled: true, rateLimit: 1000000, fields: [pid, prefix_id, path]}
`, name, ref, openfilter.ProgramName, openfilter.TracepointGroup, openfilter.TracepointName, openfilter.PrefixesMap, key, value))
	e.waitAttached(t, name, 1, applyTimeout)
	time.Sleep(2 * time.Second) // the agent's reader starts within a second of Attached
	return prefix
}

// openStream opens the agent's event stream of program name directly
// (hostNetwork: the node's address) with token.
func (e *env) openStream(t testing.TB, name, token string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, fmt.Sprintf("https://%s:9093/events?bpfProgram=%s", e.c.NodeIP, name), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // #nosec G402 -- the agent's self-signed certificate
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("agent answered %s: %s", resp.Status, b)
	}
	return resp
}

// bpfEvents runs kubectl bpf events -o json as the viewer and collects its
// output lines.
type bpfEvents struct {
	mu     sync.Mutex
	lines  []string
	stderr strings.Builder
}

func (e *env) startEvents(t *testing.T, viewer saCredential, args ...string) *bpfEvents {
	t.Helper()
	ev := &bpfEvents{}
	cmd := exec.Command(e.kubectlBPF, append(append([]string{"events"}, args...), "--kubeconfig", viewer.kubeconfig, "-o", "json")...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = &lockedWriter{mu: &ev.mu, w: &ev.stderr}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			ev.mu.Lock()
			ev.lines = append(ev.lines, sc.Text())
			ev.mu.Unlock()
		}
	}()
	return ev
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// paths are the record paths of the event lines so far.
func (ev *bpfEvents) paths(t *testing.T) []string {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	var out []string
	for _, l := range ev.lines {
		var line eventLine
		if err := json.Unmarshal([]byte(l), &line); err != nil || line.Schema != "bpfleet.io/events/v1" {
			t.Errorf("kubectl bpf events printed %q, not a v1 event line", l)
			continue
		}
		if p, ok := line.Record["path"].(string); ok {
			out = append(out, p)
		}
	}
	return out
}

// describe is how many lines were printed, the last, and stderr.
func (ev *bpfEvents) describe() string {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	last := ""
	if len(ev.lines) > 0 {
		last = ev.lines[len(ev.lines)-1]
	}
	return fmt.Sprintf("%d lines, the last %.300q; stderr %q", len(ev.lines), last, ev.stderr.String())
}

// waitPath opens path every 200 ms until kubectl bpf events printed it.
func (ev *bpfEvents) waitPath(t *testing.T, path string, timeout time.Duration) {
	t.Helper()
	envtest.Eventually(t, timeout, func() error {
		touch(path)
		deadline := time.Now().Add(200 * time.Millisecond)
		for time.Now().Before(deadline) {
			for _, p := range ev.paths(t) {
				if p == path {
					return nil
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		return fmt.Errorf("no event for %s yet: %s", path, ev.describe())
	})
}

// touch opens path (which need not exist): one openat(2).
func touch(path string) {
	if fd, err := unix.Open(path, unix.O_RDONLY, 0); err == nil {
		_ = unix.Close(fd)
	}
}

// onlyMatchingOpens: the stream carries the opens under the prefix, and
// none of the many other opens of the node, not even ours of a path
// outside the prefix.
func (e *env) onlyMatchingOpens(t *testing.T, name, prefix string, viewer saCredential) {
	ev := e.startEvents(t, viewer, name)
	outside := strings.TrimSuffix(prefix, "/") + "-outside/file"
	for i := range 5 {
		touch(outside)
		ev.waitPath(t, fmt.Sprintf("%smatch-%d", prefix, i), 20*time.Second)
	}
	paths := ev.paths(t)
	for _, p := range paths {
		if !strings.HasPrefix(p, prefix) {
			t.Errorf("the stream carried an open of %s, outside the prefix %s", p, prefix)
		}
	}
	t.Logf("%d opens streamed, all under %s", len(paths), prefix)
}

// slowConsumer: a client that stops reading for stallFor while the host
// opens matching paths at floodRate gets the lines that were in flight and
// queued, then a cut-off line whose lost count is what
// bpfleet_events_dropped_total{reason="slow-consumer"} grew by; the agent's
// RSS stays within rssAllowed of its idle value.
func (e *env) slowConsumer(t *testing.T, name, prefix string, viewer saCredential, scrape func(t testing.TB) string) {
	ctx := context.Background()
	agent, err := e.agentPod(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pid := e.containerPID(t, agent, "agent")
	idle := rss(t, pid)
	labels := fmt.Sprintf(`bpfprogram=%q,node=%q,output=%q`, name, e.c.NodeName, openfilter.EventsMap)
	// A stream of an earlier subtest whose client is gone ends on the
	// agent only when a line fails to go out, and counts what it held as
	// lost: make that happen before the counter is read.
	for i := range 200 {
		touch(fmt.Sprintf("%ssettle-%d", prefix, i))
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	before := scrape(t)

	resp := e.openStream(t, name, viewer.token)

	stop := make(chan struct{})
	var opened atomic.Int64
	floodDone := make(chan time.Duration)
	go func() { floodDone <- flood(prefix+"flood-", floodRate, stop, &opened) }()
	var took time.Duration
	stopFlood := sync.OnceFunc(func() { close(stop); took = <-floodDone })
	defer stopFlood() // also when the test fails: the flood must not outlive it

	body := bufio.NewReaderSize(resp.Body, 64<<10)
	var received int
	var last []byte
	read := func(until time.Time) error {
		for time.Now().Before(until) {
			line, err := body.ReadBytes('\n')
			if err != nil {
				return err
			}
			if strings.Contains(string(line), `"error"`) {
				last = line
				return io.EOF
			}
			received++
		}
		return nil
	}
	if err := read(time.Now().Add(2 * time.Second)); err != nil {
		t.Fatalf("read the stream: %v (after %d lines, %q)", err, received, last)
	}
	atStall := received
	// Stop reading; watch the agent's memory meanwhile.
	peak := idle
	for end := time.Now().Add(stallFor); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		peak = max(peak, rss(t, pid))
	}
	stopFlood()
	if err := read(time.Now().Add(time.Minute)); !errors.Is(err, io.EOF) {
		t.Fatalf("no cut-off line after the stall: %v (%d lines read)", err, received)
	}
	peak = max(peak, rss(t, pid))
	var cut struct {
		Schema, Error string
		Lost, Sent    int
	}
	if err := json.Unmarshal(last, &cut); err != nil || cut.Error == "" {
		t.Fatalf("last line %q is no cut-off line: %v", last, err)
	}
	after := scrape(t)
	grew := metricValue(after, "bpfleet_events_dropped_total", labels+`,reason="slow-consumer"`) -
		metricValue(before, "bpfleet_events_dropped_total", labels+`,reason="slow-consumer"`)
	rate := float64(opened.Load()) / took.Seconds()
	readGrew := metricValue(after, "bpfleet_events_read_total", labels) - metricValue(before, "bpfleet_events_read_total", labels)
	kernelGrew := metricValue(after, "bpfleet_events_dropped_total", labels+`,reason="kernel"`) -
		metricValue(before, "bpfleet_events_dropped_total", labels+`,reason="kernel"`)
	t.Logf("flood: %d opens in %s (%.0f/s); agent read %.0f records, kernel dropped %.0f; client read %d lines before the stall, %d in all; cut-off line: %s",
		opened.Load(), took.Round(time.Millisecond), rate, readGrew, kernelGrew, atStall, received, strings.TrimSpace(string(last)))
	t.Logf("agent RSS idle %.1f MiB, peak %.1f MiB (+%.1f MiB) over a %s stall", mib(idle), mib(peak), mib(peak-idle), stallFor)
	if rate < 0.9*floodRate {
		t.Errorf("the flood reached %.0f opens/s, want about %d", rate, floodRate)
	}
	if cut.Lost == 0 || float64(cut.Lost) != grew {
		t.Errorf("cut-off line says %d lost, slow-consumer counter grew by %v: want them equal and not 0", cut.Lost, grew)
	}
	if cut.Sent != received {
		t.Errorf("cut-off line says %d sent, the client read %d lines", cut.Sent, received)
	}
	if peak-idle > rssAllowed {
		t.Errorf("agent RSS grew %.1f MiB over idle under a stalled client, allowed %.0f MiB", mib(peak-idle), mib(rssAllowed))
	}
}

// flood opens prefix+N at rate per second until stop, from two threads
// (one could not keep 50k/s while the other test packages of `make test`
// share the machine's two cores), and returns how long it ran.
func flood(prefix string, rate int, stop <-chan struct{}, opened *atomic.Int64) time.Duration {
	began := time.Now()
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			for {
				select {
				case <-stop:
					return
				default:
				}
				due := int64(time.Since(began).Seconds() * float64(rate))
				if opened.Load() >= due {
					time.Sleep(200 * time.Microsecond)
					continue
				}
				touch(prefix + strconv.FormatInt(opened.Add(1)-1, 10))
			}
		})
	}
	wg.Wait()
	return time.Since(began)
}

// kernelDropsExported: bpfleet_events_dropped_total{reason="kernel"} is the
// program's own count of records its full ring buffer refused.
func (e *env) kernelDropsExported(t *testing.T, name string, scrape func(t testing.TB) string) {
	pin := bpffs.Layout{Root: agentBPFFS}.Map(e.uid(t, name), openfilter.StatsMap)
	labels := fmt.Sprintf(`bpfprogram=%q,node=%q,output=%q,reason="kernel"`, name, e.c.NodeName, openfilter.EventsMap)
	var inKernel uint64
	var exported float64
	envtest.Eventually(t, 10*time.Second, func() error {
		values, err := metrics.ReadMap(pin)
		if err != nil {
			return err
		}
		for _, v := range values {
			if v.Key == strconv.Itoa(int(openfilter.StatLost)) {
				inKernel = v.Fields[0]
			}
		}
		exported = metricValue(scrape(t), "bpfleet_events_dropped_total", labels)
		if exported != float64(inKernel) {
			return fmt.Errorf("kernel counted %d lost records, the agent exports %v", inKernel, exported)
		}
		return nil
	})
	t.Logf("kernel drops: %d counted by the program, %v exported", inKernel, exported)
}

// sinceReplays: kubectl bpf events --since prints a kept line of the
// recent past without any new open; without --since it does not.
func (e *env) sinceReplays(t *testing.T, name, prefix string, viewer saCredential) {
	marker := prefix + "since-marker"
	touch(marker)
	time.Sleep(2 * time.Second)
	without := e.startEvents(t, viewer, name)
	with := e.startEvents(t, viewer, name, "--since", "1m")
	envtest.Eventually(t, 20*time.Second, func() error {
		for _, p := range with.paths(t) {
			if p == marker {
				return nil
			}
		}
		return fmt.Errorf("--since 1m has not printed %s: %s", marker, with.describe())
	})
	for _, p := range without.paths(t) {
		if p == marker {
			t.Errorf("a stream without --since printed %s, opened before it started", marker)
		}
	}
}

// reconnects: kubectl bpf events keeps running when the agent pod is
// deleted, says so, and prints the events the new agent reads.
func (e *env) reconnects(t *testing.T, name, prefix string, viewer saCredential) {
	ctx := context.Background()
	ev := e.startEvents(t, viewer, name)
	ev.waitPath(t, prefix+"before-restart", 20*time.Second)
	old, err := e.agentPod(ctx)
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if err := e.client.Delete(ctx, old); err != nil {
		t.Fatal(err)
	}
	// The old agent runs until its grace period ends: wait for the new one.
	envtest.Eventually(t, 2*time.Minute, func() error {
		p, err := e.agentPod(ctx)
		if err != nil {
			return err
		}
		if p.UID == old.UID {
			return fmt.Errorf("old agent pod %s still ready", old.Name)
		}
		return nil
	})
	ready := time.Since(began)
	ev.waitPath(t, prefix+"after-restart", 2*time.Minute)
	t.Logf("new agent ready %s after the old pod was deleted; its events printed by the same kubectl bpf events %s after",
		ready.Round(100*time.Millisecond), time.Since(began).Round(100*time.Millisecond))
	ev.mu.Lock()
	stderr := ev.stderr.String()
	ev.mu.Unlock()
	if !strings.Contains(stderr, "reconnecting") {
		t.Errorf("kubectl bpf events said nothing of the lost stream: %q", stderr)
	}
}

// metricsScraper returns a function that reads the agent's /metrics with
// a token bound to bpfleet-metrics-reader.
func (e *env) metricsScraper(t testing.TB) func(t testing.TB) string {
	ctx := context.Background()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "realnode-events-scraper"}}
	if err := e.client.Create(ctx, sa); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.client.Delete(context.Background(), sa) })
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "realnode-events-scraper"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "bpfleet-metrics-reader"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: "default", Name: sa.Name}},
	}
	if err := e.client.Create(ctx, crb); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.client.Delete(context.Background(), crb) })
	tr, err := e.c.Clientset.CoreV1().ServiceAccounts("default").CreateToken(ctx, sa.Name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: new(int64(3600))},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // #nosec G402 -- the agent's self-signed certificate
	return func(t testing.TB) string {
		t.Helper()
		var body string
		envtest.Eventually(t, 30*time.Second, func() error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("https://%s:9090/metrics", e.c.NodeIP), nil)
			if err != nil {
				return err
			}
			req.Header.Set("Authorization", "Bearer "+tr.Status.Token)
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("/metrics: %s %.200s", resp.Status, b)
			}
			body = string(b)
			return nil
		})
		return body
	}
}

// metricValue is the value of name{labels} in a Prometheus text page
// (labels in the page's sorted order); 0 when absent.
func metricValue(page, name, labels string) float64 {
	prefix := name + "{" + labels + "} "
	for _, l := range strings.Split(page, "\n") {
		if v, ok := strings.CutPrefix(l, prefix); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}

// rss is the resident set of process pid in bytes.
func rss(t testing.TB, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
