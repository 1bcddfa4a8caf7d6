package caps_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/bpfleet/bpfleet/nodeagent/attach"
	"github.com/bpfleet/bpfleet/test/caps"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

// cgroupSetupCaps returns what creating a directory in the cgroup v2 root
// needs beyond the grant: the tests make their own cgroup there, the agent
// never does (it only attaches to existing ones). Where the root is mode
// 0555 (as on this VM) mkdir needs CAP_DAC_OVERRIDE even as uid 0.
func cgroupSetupCaps(t *testing.T) []string {
	t.Helper()
	fi, err := os.Stat(attach.CgroupRoot())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o200 == 0 {
		return []string{"DAC_OVERRIDE"}
	}
	return nil
}

// compileTests builds the test binary of pkg (relative to the module root)
// into dir.
func compileTests(t *testing.T, dir, pkg string) string {
	t.Helper()
	out := filepath.Join(dir, filepath.Base(pkg)+".test")
	cmd := exec.Command("go", "test", "-c", "-o", out, "./"+pkg)
	cmd.Dir = "../.."
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go test -c %s: %v\n%s", pkg, err, b)
	}
	return out
}

// TestKernelTestsWithGrant runs the agent's own kernel tests holding only
// the capabilities the DaemonSet grants, with CI=true so that none can pass
// by skipping. The tests also do their own setup inside, which the agent
// never does: `ip netns add` (unshare and a bind mount: CAP_SYS_ADMIN),
// veths in them (CAP_NET_ADMIN), entering namespaces (setns: CAP_SYS_ADMIN),
// `bpftool prog show id` and link.NewFromID in TestDrift (BPF_*_GET_FD_BY_ID:
// CAP_SYS_ADMIN) — all inside the grant — and mkdir in the cgroup root (see
// cgroupSetupCaps), the one step that may need more.
func TestKernelTestsWithGrant(t *testing.T) {
	privileged.RequireBPFFS(t)
	privileged.RequireTracefs(t)
	privileged.RequireCommand(t, "setpriv")
	privileged.RequireCommand(t, "go")
	granted := grant(t)
	bins := t.TempDir()
	for _, tc := range []struct {
		name, pkg string
		// tests are the test names run; each must PASS (none skip).
		tests []string
		// setup are capabilities the tests' own setup needs beyond the grant.
		setup []string
	}{
		// XDP native and generic on a veth in a netns, tcx, stats compared
		// with bpftool, pin + re-adopt under traffic, drift, a deep uprobe,
		// map entries, reboot, programs bpfleet did not load.
		{name: "dataplane", pkg: "nodeagent/dataplane", tests: []string{
			"TestStatusMatchesBpftool", "TestForeignProgramsUntouched", "TestReadoptAndUpgradeUnderTraffic",
			"TestDrift", "TestPinRemovedWhileDown", "TestReadoptDeepUprobe", "TestMapEntries", "TestReboot",
		}},
		// Every hook kind (xdp, tcx, tracepoint, raw_tp, uprobe, cgroup) and
		// upgrades of each swap style: these make a cgroup first.
		{name: "dataplane-cgroup", pkg: "nodeagent/dataplane", tests: []string{
			"TestHooks", "TestUpgradeKinds", "TestCgroupAttachTypeChange",
		}, setup: cgroupSetupCaps(t)},
		// Link.Update of an XDP link.
		{name: "attach", pkg: "nodeagent/attach", tests: []string{"TestXDPUpdate"}},
	} {
		bin := filepath.Join(bins, filepath.Base(tc.pkg)+".test")
		// The grant, then the grant without each capability CAP_SYS_ADMIN
		// shadows: the kernel tests agree with TestEachCapabilityNeeded that
		// those removals change nothing. (Without CAP_NET_ADMIN or
		// CAP_SYS_ADMIN they fail in their own netns setup, which proves
		// nothing about the agent: TestEachCapabilityNeeded covers those.)
		for _, without := range []string{"", "BPF", "PERFMON"} {
			name := tc.name
			if without != "" {
				name += "-" + without
			}
			t.Run(name, func(t *testing.T) {
				if _, err := os.Stat(bin); err != nil {
					bin = compileTests(t, bins, tc.pkg)
				}
				capset := append(caps.Without(granted, without), tc.setup...)
				if len(tc.setup) > 0 {
					t.Logf("test setup needs %v beyond the grant (not the agent)", tc.setup)
				}
				run := "^(" + strings.Join(tc.tests, "|") + ")$"
				out, took, err := confined(t, capset, []string{"CI=true"}, nil, bin, "-test.run="+run, "-test.count=1", "-test.v")
				t.Logf("%s -test.run=%s with %v: %s", filepath.Base(bin), run, capset, took)
				if err != nil {
					t.Fatalf("failed with %v: %v\n%s", capset, err, tail(out, 60))
				}
				for _, name := range tc.tests {
					if !regexp.MustCompile(`(?m)^--- PASS: ` + name + ` `).MatchString(out) {
						t.Errorf("%s did not pass:\n%s", name, tail(out, 60))
					}
				}
				if strings.Contains(out, "--- SKIP") {
					t.Errorf("something skipped:\n%s", tail(out, 60))
				}
			})
		}
	}
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
