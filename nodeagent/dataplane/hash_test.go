package dataplane

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"testing"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/internal/loader"
)

// TestHashEntriesAsRecorded: records on disk hold the hash of the API's map
// entries as an earlier agent computed it; the same entries in the loader's
// types must hash the same, or an upgraded agent rewrites every map.
func TestHashEntriesAsRecorded(t *testing.T) {
	for _, tc := range []struct {
		name string
		api  []v1alpha1.MapEntry
	}{
		{name: "none", api: nil},
		{name: "empty", api: []v1alpha1.MapEntry{}},
		{name: "hex without encoding", api: []v1alpha1.MapEntry{{Map: "deny", Key: "0f27", Value: "01"}}},
		{name: "base64", api: []v1alpha1.MapEntry{{Map: "deny", Key: "QR8=", Value: "AQ==", Encoding: v1alpha1.MapEncodingBase64},
			{Map: "allow", Key: "01", Value: "02", Encoding: v1alpha1.MapEncodingHex}}},
	} {
		b, err := json.Marshal(tc.api)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		recorded := hex.EncodeToString(sum[:])
		var entries []loader.MapEntry
		if tc.api != nil {
			entries = []loader.MapEntry{}
		}
		for _, e := range tc.api {
			entries = append(entries, loader.MapEntry{Map: e.Map, Key: e.Key, Value: e.Value, Encoding: loader.Encoding(e.Encoding)})
		}
		if got := hashEntries(entries); got != recorded {
			t.Errorf("%s: hash %s, recorded %s", tc.name, got, recorded)
		}
	}
}
