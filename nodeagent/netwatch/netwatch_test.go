package netwatch_test

import (
	"testing"

	"github.com/bpfleet/bpfleet/nodeagent/netwatch"
)

func TestSelect(t *testing.T) {
	ifaces := []netwatch.Interface{{Name: "lo", Index: 1}, {Name: "ens5", Index: 2}, {Name: "veth0a", Index: 3}, {Name: "veth1a", Index: 4}, {Name: "cni0", Index: 5}}
	for _, tc := range []struct {
		name    string
		sel     netwatch.Selector
		primary string
		// want lists the picked names, sorted.
		want []string
		bad  bool
	}{
		{name: "exact", sel: netwatch.Selector{Names: []string{"cni0"}}, want: []string{"cni0"}},
		{name: "star", sel: netwatch.Selector{Names: []string{"veth*"}}, want: []string{"veth0a", "veth1a"}},
		{name: "question mark", sel: netwatch.Selector{Names: []string{"veth?a"}}, want: []string{"veth0a", "veth1a"}},
		{name: "class", sel: netwatch.Selector{Names: []string{"veth[1-9]a"}}, want: []string{"veth1a"}},
		{name: "primary", sel: netwatch.Selector{Primary: true}, primary: "ens5", want: []string{"ens5"}},
		{name: "primary unknown", sel: netwatch.Selector{Primary: true}, primary: ""},
		{name: "primary and names overlap once", sel: netwatch.Selector{Primary: true, Names: []string{"ens*", "*5"}}, primary: "ens5", want: []string{"ens5"}},
		{name: "nothing", sel: netwatch.Selector{Names: []string{"wlan0"}}},
		{name: "bad pattern", sel: netwatch.Selector{Names: []string{"veth["}}, bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := netwatch.Select(tc.sel, ifaces, tc.primary)
			if tc.bad {
				if err == nil {
					t.Fatal("want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, g := range got {
				names = append(names, g.Name)
			}
			if len(names) != len(tc.want) {
				t.Fatalf("got %v, want %v", names, tc.want)
			}
			for i := range names {
				if names[i] != tc.want[i] {
					t.Fatalf("got %v, want %v", names, tc.want)
				}
			}
		})
	}
}
