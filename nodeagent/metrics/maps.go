package metrics

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"reflect"
	"strconv"

	"github.com/cilium/ebpf"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
)

// Bounds of what one metric map exports, so that a large map cannot blow up
// a scrape.
const (
	// MaxMapKeys is the number of keys exported per map.
	MaxMapKeys = 1024
	// MaxValueFields is the number of 64-bit fields exported per value.
	MaxValueFields = 8
)

type programDigest struct {
	name   string
	uid    types.UID
	digest string
}

// collectMaps exports the declared metric maps of every running program.
func collectMaps(ch chan<- prometheus.Metric, states []v1alpha1.ProgramState, lookup func(types.UID, string) map[string]string) {
	seen := map[programDigest]bool{}
	for _, s := range states {
		pd := programDigest{s.BpfProgram, s.UID, s.Digest}
		if s.ID == 0 || s.Digest == "" || seen[pd] {
			continue
		}
		seen[pd] = true
		for name, path := range lookup(s.UID, s.Digest) {
			values, err := ReadMap(path)
			if err != nil {
				ch <- prometheus.NewInvalidMetric(descMapValue, fmt.Errorf("read metric map %s of %s: %w", name, s.BpfProgram, err))
				continue
			}
			for _, v := range values {
				for i, f := range v.Fields {
					ch <- prometheus.MustNewConstMetric(descMapValue, prometheus.GaugeValue, float64(f),
						s.BpfProgram, name, v.Key, strconv.Itoa(i))
				}
			}
		}
	}
}

// MapValue is one key of a metric map with its value as 64-bit fields,
// summed over CPUs for per-CPU maps.
type MapValue struct {
	// Key is the key as a decimal number for 4- and 8-byte keys, else hex.
	Key string
	// Fields are the value's 64-bit words in host byte order.
	Fields []uint64
}

// ReadMap reads up to MaxMapKeys keys of the pinned map at path. Values must
// be a whole number of 64-bit words (counters); per-CPU values are summed.
func ReadMap(path string) ([]MapValue, error) {
	m, err := ebpf.LoadPinnedMap(path, &ebpf.LoadPinOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("open pinned map: %w", err)
	}
	defer m.Close()
	if m.ValueSize()%8 != 0 || m.ValueSize() == 0 {
		return nil, fmt.Errorf("value size %d is not a whole number of 64-bit counters", m.ValueSize())
	}
	words := int(m.ValueSize() / 8)
	keyPtr := reflect.New(reflect.ArrayOf(int(m.KeySize()), reflect.TypeFor[byte]()))
	valType := reflect.ArrayOf(words, reflect.TypeFor[uint64]())
	perCPU := isPerCPU(m.Type())
	var valPtr reflect.Value
	if perCPU {
		valPtr = reflect.New(reflect.SliceOf(valType))
	} else {
		valPtr = reflect.New(valType)
	}
	var out []MapValue
	it := m.Iterate()
	for len(out) < MaxMapKeys && it.Next(keyPtr.Interface(), valPtr.Interface()) {
		fields := make([]uint64, min(words, MaxValueFields))
		add := func(arr reflect.Value) {
			for i := range fields {
				fields[i] += arr.Index(i).Uint()
			}
		}
		if perCPU {
			cpus := valPtr.Elem()
			for c := 0; c < cpus.Len(); c++ {
				add(cpus.Index(c))
			}
		} else {
			add(valPtr.Elem())
		}
		out = append(out, MapValue{Key: formatKey(keyPtr.Elem()), Fields: fields})
	}
	if err := it.Err(); err != nil {
		return out, fmt.Errorf("iterate map: %w", err)
	}
	return out, nil
}

func isPerCPU(t ebpf.MapType) bool {
	switch t {
	case ebpf.PerCPUArray, ebpf.PerCPUHash, ebpf.LRUCPUHash:
		return true
	}
	return false
}

func formatKey(arr reflect.Value) string {
	b := make([]byte, arr.Len())
	for i := range b {
		b[i] = byte(arr.Index(i).Uint())
	}
	switch len(b) {
	case 4:
		return strconv.FormatUint(uint64(binary.NativeEndian.Uint32(b)), 10)
	case 8:
		return strconv.FormatUint(binary.NativeEndian.Uint64(b), 10)
	}
	return hex.EncodeToString(b)
}
