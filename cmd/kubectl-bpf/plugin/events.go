package plugin

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
)

// eventsPort is where agents serve event streams (--events-bind-address).
const eventsPort = 9093

func (o *options) eventsCommand() *cobra.Command {
	var node, pod, agentNamespace string
	var since time.Duration
	cmd := &cobra.Command{
		Use:   "events BPFPROGRAM",
		Short: "Stream a BpfProgram's events from every node (or one), tagged with their pods",
		Long: `Streams the events a BpfProgram's programs write (spec.events.enabled), one
line per event, merged from the agents of every node. Each agent is reached
through a port-forward with your credentials and checks your bearer token
itself: you see the events of programs you may get. -n NS [--pod P] keeps
one namespace's (and pod's) events. --since D starts with the events of the
last D that each agent still keeps (its last 1,024 lines per program).

When an agent's stream ends (the agent restarted, or cut this client off
for falling behind) the command says so on stderr and connects again, with
backoff, to the agent then running on that node; it ends only on an error
the agent answers (such as a token that may not get the program) or ^C.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.events(cmd.Context(), args[0], node, pod, agentNamespace, since)
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "only this node's events")
	cmd.Flags().StringVar(&pod, "pod", "", "only this pod's events (with -n)")
	cmd.Flags().StringVar(&agentNamespace, "agent-namespace", "bpfleet-system", "namespace of the bpfleet agents")
	cmd.Flags().DurationVar(&since, "since", 0, "first the kept events of this recent past, e.g. 1m")
	return cmd
}

// Errors that end kubectl bpf events instead of reconnecting.
var (
	// errAgentRefused is an answer of an agent that reconnecting will not
	// change (no token, no right, no such program).
	errAgentRefused = errors.New("the agent refused")
	// errOutput is a failed write of the events (a closed pipe).
	errOutput = errors.New("write events")
)

// Reconnect backoff after an agent's stream ends.
const (
	firstBackoff = 500 * time.Millisecond
	maxBackoff   = 10 * time.Second
)

func (o *options) events(ctx context.Context, name, node, pod, agentNamespace string, since time.Duration) error {
	cfg, err := o.flags.ToRESTConfig()
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	c, err := o.newClient()
	if err != nil {
		return err
	}
	var p v1.BpfProgram
	if err := c.Get(ctx, client.ObjectKey{Name: name}, &p); err != nil {
		switch {
		case apierrors.IsNotFound(err):
			return fmt.Errorf("no BpfProgram %s", name)
		case apierrors.IsForbidden(err):
			return fmt.Errorf("you may not get BpfProgram %s, so not read its events: %w", name, err)
		}
		return fmt.Errorf("get BpfProgram %s: %w", name, err)
	}
	if p.Spec.Events == nil || !p.Spec.Events.Enabled {
		return fmt.Errorf("BpfProgram %s does not ask for events: set spec.events.enabled: true", name)
	}
	token, err := bearerToken(cfg)
	if err != nil {
		return err
	}
	agents, err := runningAgents(ctx, c, agentNamespace, node)
	if err != nil {
		return err
	}
	if len(agents) == 0 {
		if node != "" {
			return fmt.Errorf("no bpfleet agent runs on node %s", node)
		}
		return fmt.Errorf("no bpfleet agent runs in %s", agentNamespace)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("create client: %w", err)
	}
	q := url.Values{"bpfProgram": {name}}
	if ns, _, _ := o.flags.ToRawKubeConfigLoader().Namespace(); o.namespaceSet() && ns != "" {
		q.Set("namespace", ns)
	}
	if pod != "" {
		q.Set("pod", pod)
	}
	if since > 0 {
		q.Set("since", since.String())
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make([]error, len(agents))
	for i, ap := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = o.followNode(ctx, cfg, cs, c, ap, token, q, &mu)
			if errs[i] != nil {
				mu.Lock()
				fmt.Fprintf(o.streams.ErrOut, "node %s: %v\n", ap.Spec.NodeName, errs[i])
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// runningAgents are the running agent pods (of node, or every node) that
// are not being deleted.
func runningAgents(ctx context.Context, c client.Reader, agentNamespace, node string) ([]corev1.Pod, error) {
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(agentNamespace), client.MatchingLabels{"app.kubernetes.io/name": "bpfleet-agent"}); err != nil {
		return nil, fmt.Errorf("list agents in %s: %w", agentNamespace, err)
	}
	var agents []corev1.Pod
	for _, ap := range pods.Items {
		if ap.Status.Phase == corev1.PodRunning && ap.DeletionTimestamp == nil && (node == "" || ap.Spec.NodeName == node) {
			agents = append(agents, ap)
		}
	}
	return agents, nil
}

// followNode streams the events of ap's node until ctx ends or an agent
// refuses; when a stream ends it connects again, with backoff, to the agent
// running on that node then (a restarted agent is a new pod). Later
// connections ask for no history: a restarted agent has none.
func (o *options) followNode(ctx context.Context, cfg *rest.Config, cs kubernetes.Interface, c client.Reader, ap corev1.Pod, token string, q url.Values, mu *sync.Mutex) error {
	node := ap.Spec.NodeName
	backoff := firstBackoff
	for {
		opened, err := o.streamAgent(ctx, cfg, cs, ap, token, q, mu)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errAgentRefused) || errors.Is(err, errOutput) {
			return err
		}
		if opened {
			backoff = firstBackoff
		}
		why := "the stream ended"
		if err != nil {
			why = err.Error()
		}
		mu.Lock()
		fmt.Fprintf(o.streams.ErrOut, "node %s: %s; reconnecting in %s\n", node, why, backoff)
		mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
		q = maps.Clone(q)
		q.Del("since")
		for {
			agents, err := runningAgents(ctx, c, ap.Namespace, node)
			if err == nil && len(agents) > 0 {
				ap = agents[0]
				break
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, maxBackoff)
		}
	}
}

func (o *options) namespaceSet() bool {
	return o.flags.Namespace != nil && *o.flags.Namespace != ""
}

// bearerToken is the token the agent reviews: the kubeconfig's, or its
// token file's.
func bearerToken(cfg *rest.Config) (string, error) {
	if cfg.BearerToken != "" {
		return cfg.BearerToken, nil
	}
	if cfg.BearerTokenFile != "" {
		b, err := os.ReadFile(cfg.BearerTokenFile)
		if err != nil {
			return "", fmt.Errorf("read token file: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return "", errors.New("kubectl bpf events needs a bearer-token credential (service-account or OIDC token): each agent checks it with the API server (TokenReview), which a client certificate cannot give it")
}

// streamAgent opens a port-forward to one agent pod and copies its event
// stream to the output until ctx ends or the agent ends it. opened says the
// agent accepted the stream.
func (o *options) streamAgent(ctx context.Context, cfg *rest.Config, cs kubernetes.Interface, ap corev1.Pod, token string, q url.Values, mu *sync.Mutex) (opened bool, err error) {
	rt, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		return false, fmt.Errorf("set up port-forward: %w", err)
	}
	pfURL := cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(ap.Namespace).Name(ap.Name).SubResource("portforward").URL()
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: rt}, http.MethodPost, pfURL)
	stop, ready := make(chan struct{}), make(chan struct{})
	defer close(stop)
	fw, err := portforward.New(dialer, []string{fmt.Sprintf("0:%d", eventsPort)}, stop, ready, io.Discard, io.Discard)
	if err != nil {
		return false, fmt.Errorf("port-forward to %s: %w", ap.Name, err)
	}
	fwErr := make(chan error, 1)
	go func() { fwErr <- fw.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-fwErr:
		return false, fmt.Errorf("port-forward to %s: %w", ap.Name, err)
	case <-ctx.Done():
		return false, ctx.Err()
	}
	ports, err := fw.GetPorts()
	if err != nil || len(ports) == 0 {
		return false, fmt.Errorf("port-forward to %s: no local port: %w", ap.Name, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("https://127.0.0.1:%d/events?%s", ports[0].Local, q.Encode()), nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	// The tunnel, opened with your credentials to this pod, is what
	// authenticates the agent; its certificate is self-signed.
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // #nosec G402
	resp, err := hc.Do(req)
	if err != nil {
		return false, fmt.Errorf("open event stream: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		var e struct{ Error string }
		err := fmt.Errorf("%s", resp.Status)
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			err = fmt.Errorf("%s: %s", resp.Status, e.Error)
		}
		if resp.StatusCode >= 500 { // not ready yet, or cannot reach the API server: try again
			return false, fmt.Errorf("the agent answered %w", err)
		}
		return false, fmt.Errorf("%w: %w", errAgentRefused, err)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	sc.Split(wholeLines)
	for sc.Scan() {
		line := o.formatEvent(sc.Bytes())
		mu.Lock()
		_, err := o.streams.Out.Write(line)
		mu.Unlock()
		if err != nil {
			return true, fmt.Errorf("%w: %w", errOutput, err)
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return true, fmt.Errorf("read event stream: %w", err)
	}
	return true, nil
}

// wholeLines splits at newlines like bufio.ScanLines, but drops a last line
// without one: a stream cut mid-line (the agent died) ends there.
func wholeLines(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF {
		return len(data), nil, nil
	}
	return 0, nil, nil
}

// formatEvent is the line as the agent sent it with -o json, else
// NODE NAMESPACE/POD CONTAINER RECORD.
func (o *options) formatEvent(line []byte) []byte {
	if o.output == outputJSON {
		return append(append([]byte(nil), line...), '\n')
	}
	var ev struct {
		Node, Namespace, Pod, Container, Error string
		Host                                   bool
		Record                                 json.RawMessage
	}
	if json.Unmarshal(line, &ev) != nil {
		return append(append([]byte(nil), line...), '\n')
	}
	if ev.Error != "" {
		return []byte("error: " + ev.Error + "\n")
	}
	who := ev.Namespace + "/" + ev.Pod
	if ev.Host {
		who = "(host)"
	}
	return fmt.Appendf(nil, "%s\t%s\t%s\t%s\n", ev.Node, who, ev.Container, ev.Record)
}
