package attach

import "testing"

func TestHostPath(t *testing.T) {
	tests := []struct {
		path   string
		sameNS bool // agent in the node's mount namespace
		want   string
	}{
		{"/bin/bash", true, "/bin/bash"},
		{"/bin/bash", false, "/proc/1/root/bin/bash"},
		{"/usr/lib/../lib/libc.so.6", false, "/proc/1/root/usr/lib/libc.so.6"},
		{"relative/bin", false, "relative/bin"},
	}
	for _, tt := range tests {
		if got := hostPath(tt.path, tt.sameNS); got != tt.want {
			t.Errorf("hostPath(%q, %v) = %q, want %q", tt.path, tt.sameNS, got, tt.want)
		}
	}
	if !sameMountNamespace("/proc/self/ns/mnt", "/proc/self/ns/mnt") {
		t.Error("a namespace differs from itself")
	}
}
