package dataplane

import (
	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/loader"
)

// constants hands a spec's constants to the loader, which knows no API types.
func constants(cs []v1alpha1.Constant) []loader.Constant {
	out := make([]loader.Constant, 0, len(cs))
	for _, c := range cs {
		out = append(out, loader.Constant{Name: c.Name, Value: c.Value})
	}
	return out
}

// mapEntries hands a spec's map entries to the loader.
func mapEntries(es []v1alpha1.MapEntry) []loader.MapEntry {
	out := make([]loader.MapEntry, 0, len(es))
	for _, e := range es {
		out = append(out, loader.MapEntry{Map: e.Map, Key: e.Key, Value: e.Value, Encoding: loader.Encoding(e.Encoding)})
	}
	return out
}
