package counters_test

import (
	"testing"

	"github.com/bpfleet/bpfleet/bpf/internal/counters"
)

func TestSum(t *testing.T) {
	for _, tc := range []struct {
		name   string
		perCPU []counters.Counter
		want   counters.Counter
	}{
		{"no CPU", nil, counters.Counter{}},
		{"one CPU", []counters.Counter{{Packets: 2, Bytes: 120}}, counters.Counter{Packets: 2, Bytes: 120}},
		{"two CPUs", []counters.Counter{{Packets: 2, Bytes: 120}, {Packets: 1, Bytes: 60}}, counters.Counter{Packets: 3, Bytes: 180}},
	} {
		if got := counters.Sum(tc.perCPU); got != tc.want {
			t.Errorf("%s: Sum = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
