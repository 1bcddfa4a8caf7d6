// Package netns creates network namespaces and veth pairs for tests, named
// with a test-unique prefix and always removed when the test ends, so that
// packages running in parallel never collide.
package netns

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netns"
)

// UniqueName returns prefix plus random hex, at most 15 bytes (IFNAMSIZ-1).
func UniqueName(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := prefix + hex.EncodeToString(b)
	if len(name) > 15 {
		name = name[len(name)-15:]
	}
	return name
}

// NS is a named network namespace created by a test.
type NS struct {
	Name string
}

// New creates a network namespace "bpfl<rand>" with loopback up, deleted at
// the end of the test.
func New(tb testing.TB) *NS {
	tb.Helper()
	ns := &NS{Name: UniqueName("bpfl")}
	Run(tb, "ip", "netns", "add", ns.Name)
	tb.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns.Name).Run() })
	ns.Exec(tb, "ip", "link", "set", "lo", "up")
	return ns
}

// Exec runs a command inside the namespace and fails the test on error.
func (ns *NS) Exec(tb testing.TB, name string, args ...string) string {
	tb.Helper()
	return Run(tb, "ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

// Do runs fn with the calling goroutine's OS thread inside the namespace.
func (ns *NS) Do(tb testing.TB, fn func() error) error {
	tb.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return fmt.Errorf("get current netns: %w", err)
	}
	defer orig.Close()
	target, err := netns.GetFromName(ns.Name)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", ns.Name, err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		return fmt.Errorf("enter netns %s: %w", ns.Name, err)
	}
	defer func() { _ = netns.Set(orig) }()
	return fn()
}

// Veth is a veth pair: A in namespace NSA, B in namespace NSB ("" means the
// test's own namespace).
type Veth struct {
	A, B     string
	NSA, NSB *NS
}

// NewVeth creates a veth pair with unique names, moves each end into its
// namespace (nil keeps it in the current one), sets both up and assigns the
// given CIDR addresses (empty skips). Deleted at the end of the test.
func NewVeth(tb testing.TB, nsA *NS, addrA string, nsB *NS, addrB string) *Veth {
	tb.Helper()
	v := &Veth{A: UniqueName("bva"), B: UniqueName("bvb"), NSA: nsA, NSB: nsB}
	Run(tb, "ip", "link", "add", v.A, "type", "veth", "peer", "name", v.B)
	tb.Cleanup(func() {
		// Deleting one end deletes the pair, wherever it lives.
		_ = exec.Command("ip", "link", "del", v.A).Run()
		if nsA != nil {
			_ = exec.Command("ip", "-n", nsA.Name, "link", "del", v.A).Run()
		}
	})
	setup := func(ns *NS, dev, addr string) {
		ip := []string{}
		if ns != nil {
			Run(tb, "ip", "link", "set", dev, "netns", ns.Name)
			ip = append(ip, "-n", ns.Name)
		}
		if addr != "" {
			args := append(ip, "addr", "add", addr, "dev", dev)
			if strings.Contains(addr, ":") {
				args = append(args, "nodad") // usable at once, no duplicate address detection
			}
			Run(tb, "ip", args...)
		}
		Run(tb, "ip", append(ip, "link", "set", dev, "up")...)
	}
	setup(nsA, v.A, addrA)
	setup(nsB, v.B, addrB)
	return v
}

// Run runs a command and fails the test with its output on error.
func Run(tb testing.TB, name string, args ...string) string {
	tb.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// XDPProgramID is the id of the XDP program the kernel runs on dev in ns
// (nil: the current namespace), 0 when none.
func XDPProgramID(tb testing.TB, ns *NS, dev string) uint32 {
	tb.Helper()
	args := []string{"-j", "link", "show", "dev", dev}
	if ns != nil {
		args = append([]string{"-n", ns.Name}, args...)
	}
	out := Run(tb, "ip", args...)
	var links []struct {
		XDP struct {
			Prog struct {
				ID uint32 `json:"id"`
			} `json:"prog"`
		} `json:"xdp"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		tb.Fatalf("parse ip link show %s: %v: %s", dev, err, out)
	}
	return links[0].XDP.Prog.ID
}
