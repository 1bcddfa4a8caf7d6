package cgroupcount

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/bpfleet/bpfleet/test/support/cgroupv2"
	"github.com/bpfleet/bpfleet/test/support/netns"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

// helperEnv makes the test binary act as a UDP client: it sends
// BPFLEET_CGC_COUNT datagrams of BPFLEET_CGC_SIZE bytes to BPFLEET_CGC_ADDR
// and waits for a reply to each.
const helperEnv = "BPFLEET_CGC_ADDR"

func TestMain(m *testing.M) {
	if addr := os.Getenv(helperEnv); addr != "" {
		os.Exit(udpClient(addr))
	}
	os.Exit(m.Run())
}

func udpClient(addr string) int {
	count, _ := strconv.Atoi(os.Getenv("BPFLEET_CGC_COUNT"))
	size, _ := strconv.Atoi(os.Getenv("BPFLEET_CGC_SIZE"))
	conn, err := net.Dial("udp4", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	buf := make([]byte, 2048)
	for range count {
		if _, err := conn.Write(make([]byte, size)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := conn.Read(buf); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return 0
}

func TestCountsCgroupTraffic(t *testing.T) {
	privileged.RequireRoot(t)
	const (
		datagrams = 25
		size      = 100
		ipUDP     = 20 + 8 // IPv4 and UDP headers: cgroup_skb sees IP packets
	)
	cg := filepath.Join(cgroupv2.Root(t), netns.UniqueName("bpfl-cgc-"))
	if err := os.Mkdir(cg, 0o755); err != nil {
		privileged.SkipOrFail(t, "create cgroup v2 directory: %v", err)
	}
	t.Cleanup(func() { _ = os.Remove(cg) })

	var objs cgroupcountObjects
	if err := loadCgroupcountObjects(&objs, nil); err != nil {
		t.Fatalf("load: %v", err)
	}
	defer objs.Close()
	for _, a := range []struct {
		prog *ebpf.Program
		typ  ebpf.AttachType
	}{{objs.CgroupSkbIngress, ebpf.AttachCGroupInetIngress}, {objs.CgroupSkbEgress, ebpf.AttachCGroupInetEgress}} {
		l, err := link.AttachCgroup(link.CgroupOptions{Path: cg, Attach: a.typ, Program: a.prog})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
	}

	// The server runs here, outside the cgroup: only the client's side counts.
	srv, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := srv.ReadFromUDP(buf)
			if err != nil {
				return
			}
			_, _ = srv.WriteToUDP(buf[:n], from)
		}
	}()

	dir, err := os.Open(cg)
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), helperEnv+"="+srv.LocalAddr().String(),
		"BPFLEET_CGC_COUNT="+strconv.Itoa(datagrams), "BPFLEET_CGC_SIZE="+strconv.Itoa(size))
	// Start the client directly inside the cgroup (clone3 CLONE_INTO_CGROUP).
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(dir.Fd())}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("client: %v: %s", err, out)
	}

	for _, d := range []struct {
		dir  Direction
		name string
	}{{Egress, "egress"}, {Ingress, "ingress"}} {
		var perCPU []Counter
		if err := objs.CgroupTraffic.Lookup(uint32(d.dir), &perCPU); err != nil {
			t.Fatal(err)
		}
		got := Sum(perCPU)
		want := Counter{Packets: datagrams, Bytes: datagrams * (ipUDP + size)}
		if got != want {
			t.Errorf("%s: %+v, want %+v", d.name, got, want)
		}
	}
}
