package events

import (
	"testing"
	"time"
)

func TestParseCgroupPath(t *testing.T) {
	const uid = "e2b632ce-7e59-40d1-90df-4e34eb53d438"
	const cid = "f4b084598db8e78d11d3a9c0063738a77c9035475bd8253a64a589b22dc67184"
	tests := []struct {
		path string
		want Container
		ok   bool
	}{
		{"/kubepods/besteffort/pod" + uid + "/" + cid, Container{uid, cid}, true},
		{"/kubepods/pod" + uid, Container{PodUID: uid}, true}, // guaranteed QoS, pod level
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + "e2b632ce_7e59_40d1_90df_4e34eb53d438" + ".slice/cri-containerd-" + cid + ".scope", Container{uid, cid}, true},
		{"/system.slice/containerd.service", Container{}, false},
		{"/kubepods/besteffort", Container{}, false},
		{"/user.slice/" + cid, Container{}, false}, // an id outside a pod is no container of one
	}
	for _, tt := range tests {
		got, ok := parseCgroupPath(tt.path)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseCgroupPath(%q) = %+v, %v; want %+v, %v", tt.path, got, ok, tt.want, tt.ok)
		}
	}
}

func TestBucket(t *testing.T) {
	b := newBucket(3)
	now := time.Unix(1000, 0)
	got := 0
	for range 10 {
		if b.take(now) {
			got++
		}
	}
	if got != 3 {
		t.Fatalf("a burst took %d tokens, want 3 (one second's)", got)
	}
	if !b.take(now.Add(400 * time.Millisecond)) {
		t.Error("no token 400 ms later at 3/s")
	}
	if b.take(now.Add(410 * time.Millisecond)) {
		t.Error("a second token 10 ms after the first")
	}
}
