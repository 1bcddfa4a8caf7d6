package events_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"testing"
	"time"
)

// BenchmarkDecodeExecJSON: exec-trace records to JSON lines, the generic
// BTF decoder against the baseline the issue names, encoding/json over a
// struct decoded by reflection (encoding/binary.Read), in the same run.
func BenchmarkDecodeExecJSON(b *testing.B) {
	rec := execRecord("kube-apiserver", "/usr/local/bin/kube-apiserver")
	d := execDecoder(b)
	run := func(b *testing.B, fn func() int) float64 {
		var n int
		start := time.Now()
		for b.Loop() {
			n += fn()
		}
		perSec := float64(b.N) / time.Since(start).Seconds()
		b.SetBytes(int64(n / max(b.N, 1)))
		return perSec
	}
	b.Run("btf", func(b *testing.B) {
		buf := make([]byte, 0, 512)
		generic := run(b, func() int {
			out, err := d.AppendJSON(buf[:0], rec)
			if err != nil {
				b.Fatal(err)
			}
			return len(out)
		})
		b.ReportMetric(generic, "events/s")
	})
	b.Run("reflect", func(b *testing.B) {
		type raw struct {
			CgroupID            uint64
			PID, PPID, UID, GID uint32
			Comm                [16]byte
			Filename            [256]byte
		}
		type event struct {
			CgroupID uint64 `json:"cgroup_id"`
			PID      uint32 `json:"pid"`
			PPID     uint32 `json:"ppid"`
			UID      uint32 `json:"uid"`
			GID      uint32 `json:"gid"`
			Comm     string `json:"comm"`
			Filename string `json:"filename"`
		}
		cstr := func(s []byte) string {
			if i := bytes.IndexByte(s, 0); i >= 0 {
				s = s[:i]
			}
			return string(s)
		}
		baseline := run(b, func() int {
			var r raw
			if err := binary.Read(bytes.NewReader(rec), binary.LittleEndian, &r); err != nil {
				b.Fatal(err)
			}
			out, err := json.Marshal(event{r.CgroupID, r.PID, r.PPID, r.UID, r.GID, cstr(r.Comm[:]), cstr(r.Filename[:])})
			if err != nil {
				b.Fatal(err)
			}
			return len(out)
		})
		b.ReportMetric(baseline, "events/s")
	})
}
