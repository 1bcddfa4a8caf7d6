package attach

import "testing"

func TestHostPath(t *testing.T) {
	tests := []struct {
		hostRoot, path string
		want           string
	}{
		{"", "/bin/bash", "/bin/bash"},           // agent in the node's filesystem
		{"/host", "/bin/bash", "/host/bin/bash"}, // agent in a container
		{"/host", "/usr/lib/../lib/libc.so.6", "/host/usr/lib/libc.so.6"},
		{"/host", "relative/bin", "relative/bin"},
	}
	for _, tt := range tests {
		if got := hostPath(tt.hostRoot, tt.path); got != tt.want {
			t.Errorf("hostPath(%q, %q) = %q, want %q", tt.hostRoot, tt.path, got, tt.want)
		}
	}
}

func TestCgroup2Mount(t *testing.T) {
	tests := []struct {
		name, mounts, want string
	}{
		{"hybrid host", "cgroup /sys/fs/cgroup/memory cgroup rw 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n", "/sys/fs/cgroup/unified"},
		{"agent with the node's root at /host, listed first", "cgroup2 /host/sys/fs/cgroup/unified cgroup2 ro 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 ro 0 0\n", "/sys/fs/cgroup/unified"},
		{"no cgroup2", "cgroup /sys/fs/cgroup/memory cgroup rw 0 0\n", "/sys/fs/cgroup"},
	}
	for _, tt := range tests {
		if got := cgroup2Mount(tt.mounts, "/sys/fs/cgroup"); got != tt.want {
			t.Errorf("%s: cgroup2Mount = %q, want %q", tt.name, got, tt.want)
		}
	}
}
