package livetraffic_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/bpfleet/bpfleet/test/support/frame"
	"github.com/bpfleet/bpfleet/test/support/livetraffic"
	"github.com/bpfleet/bpfleet/test/support/netns"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

// TestStreamArrivesWhole sends a paced stream of two kinds of frames over a
// veth pair into a namespace whose UDP sink counts datagrams by kind: the
// kernel's count of frames sent equals what arrived, kind by kind.
func TestStreamArrivesWhole(t *testing.T) {
	privileged.RequireBPFFS(t)
	ethtool := privileged.RequireCommand(t, "ethtool")
	sinkNS := netns.New(t)
	veth := netns.NewVeth(t, nil, "10.79.0.1/24", sinkNS, "10.79.0.2/24")
	sinkNS.Exec(t, ethtool, "-K", veth.B, "gro", "on") // NAPI for XDP frames
	enter := func(fn func() error) error { return sinkNS.Do(t, fn) }

	sinkMAC, err := livetraffic.HardwareAddr(enter, veth.B)
	if err != nil {
		t.Fatal(err)
	}
	sink, err := livetraffic.ListenUDP(enter, netip.MustParseAddrPort("10.79.0.2:9999"), []byte("red"))
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	src, err := livetraffic.Open(veth.A)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	hostMAC, err := livetraffic.HardwareAddr(nil, veth.A)
	if err != nil {
		t.Fatal(err)
	}
	spec := frame.Spec{
		Src: netip.MustParseAddr("10.79.0.1"), Dst: netip.MustParseAddr("10.79.0.2"),
		Protocol: frame.ProtocolUDP, SrcPort: 40000, DstPort: 9999,
	}
	copy(spec.SrcMAC[:], hostMAC)
	copy(spec.DstMAC[:], sinkMAC)
	spec.Payload = []byte("red frame")
	red := frame.Build(spec)
	spec.Payload = []byte("blue frame")
	blue := frame.Build(spec)

	start := time.Now()
	st := src.Start(time.Millisecond, 256, nil, red, blue)
	time.Sleep(time.Second)
	sent, err := st.Stop()
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	total, err := src.Sent()
	if err != nil {
		t.Fatal(err)
	}
	got := sink.Settle(100 * time.Millisecond)
	t.Logf("sent red %d, blue %d in %s (%.0f frames/s); arrived red %d, blue %d",
		sent[0], sent[1], elapsed.Round(time.Millisecond), float64(sent[0]+sent[1])/elapsed.Seconds(), got[0], got[1])
	if sent[0] == 0 || sent[1] == 0 || sent[0]+sent[1] != total {
		t.Errorf("stream counted %v sent, the source %d in all", sent, total)
	}
	for i, kind := range []string{"red", "blue"} {
		if got[i] != sent[i] {
			t.Errorf("%s: %d frames arrived of %d sent", kind, got[i], sent[i])
		}
	}
}
