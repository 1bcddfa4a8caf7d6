package frame

import (
	"bytes"
	"net/netip"
	"testing"
)

func TestBuildParseRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
	}{
		{
			name: "udp4",
			spec: Spec{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"),
				Protocol: ProtocolUDP, SrcPort: 1000, DstPort: 53, Payload: []byte("hello")},
		},
		{
			name: "tcp6 with two tags, odd payload",
			spec: Spec{VLANs: []uint16{100, 200}, Src: netip.MustParseAddr("fd00::1"), Dst: netip.MustParseAddr("fd00::2"),
				Protocol: ProtocolTCP, SrcPort: 40000, DstPort: 443, Payload: []byte("abc")},
		},
		{
			name: "udp6 one tag",
			spec: Spec{VLANs: []uint16{7}, Src: netip.MustParseAddr("fd00::1"), Dst: netip.MustParseAddr("fd00::2"),
				Protocol: ProtocolUDP, SrcPort: 1, DstPort: 2, Payload: bytes.Repeat([]byte{0xff}, 33)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := Build(tt.spec)
			p, err := Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			if !p.ChecksumsOK {
				t.Error("checksums invalid")
			}
			if p.Src != tt.spec.Src || p.Dst != tt.spec.Dst || p.SrcPort != tt.spec.SrcPort ||
				p.DstPort != tt.spec.DstPort || p.Protocol != tt.spec.Protocol ||
				!bytes.Equal(p.Payload, tt.spec.Payload) || len(p.VLANs) != len(tt.spec.VLANs) {
				t.Errorf("parsed %+v from %+v", p, tt.spec)
			}
			// A flipped payload bit must break the checksum.
			b[len(b)-1] ^= 1
			if p, _ := Parse(b); p.ChecksumsOK {
				t.Error("checksum still valid after corrupting the payload")
			}
		})
	}
}

func TestParseRejectsTruncated(t *testing.T) {
	b := Build(Spec{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"),
		Protocol: ProtocolUDP, SrcPort: 1, DstPort: 2, Payload: []byte("x")})
	for n := 0; n < len(b)-1; n++ {
		if _, err := Parse(b[:n]); err == nil {
			t.Errorf("Parse of %d of %d bytes succeeded", n, len(b))
		}
	}
}
