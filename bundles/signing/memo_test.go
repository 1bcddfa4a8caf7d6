package signing_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bpfleet/bpfleet/bundles"
	"github.com/bpfleet/bpfleet/bundles/signing"
	"github.com/bpfleet/bpfleet/test/support/registry"
	"github.com/bpfleet/bpfleet/test/support/registry/testbundle"
)

// TestMemoRemembersSuccessesOnly: a signature check that succeeded is
// answered from memory for TTL (the registry may be gone meanwhile), for
// the same keys only; a refusal is asked again, so a signature pushed
// after it counts at once.
func TestMemoRemembersSuccessesOnly(t *testing.T) {
	reg := registry.Start(t, registry.Options{})
	ref, digest := testbundle.Push(t, reg, "ebpf/memo", "v1", testbundle.Source{})
	repo := reg.Repository("ebpf/memo")
	alice, bob := newKeys(t), newKeys(t)
	keys := [][]byte{readPEM(t, alice.pub)}
	ctx := context.Background()
	now := time.Unix(1_000_000, 0)
	m := &signing.Memo{TTL: time.Minute, Now: func() time.Time { return now }}

	if _, err := m.VerifyKeys(ctx, repo, digest, keys, opts); !errors.Is(err, bundles.ErrUnsigned) {
		t.Fatalf("VerifyKeys(unsigned) = %v, want ErrUnsigned", err)
	}
	if err := signing.Sign(ctx, ref, alice.priv, password, opts); err != nil {
		t.Fatal(err)
	}
	if idx, err := m.VerifyKeys(ctx, repo, digest, keys, opts); err != nil || len(idx) != 1 || idx[0] != 0 {
		t.Fatalf("VerifyKeys after signing = %v, %v; want [0] (the refusal must not be remembered)", idx, err)
	}

	reg.Stop()
	now = now.Add(59 * time.Second)
	if idx, err := m.VerifyKeys(ctx, repo, digest, keys, opts); err != nil || len(idx) != 1 || idx[0] != 0 {
		t.Fatalf("VerifyKeys within TTL, registry down = %v, %v; want [0] from memory", idx, err)
	}
	other := [][]byte{readPEM(t, bob.pub), readPEM(t, alice.pub)}
	if _, err := m.VerifyKeys(ctx, repo, digest, other, opts); !errors.Is(err, bundles.ErrRegistryUnavailable) {
		t.Fatalf("VerifyKeys with other keys, registry down = %v, want ErrRegistryUnavailable (not from memory)", err)
	}
	now = now.Add(2 * time.Second)
	if _, err := m.VerifyKeys(ctx, repo, digest, keys, opts); !errors.Is(err, bundles.ErrRegistryUnavailable) {
		t.Fatalf("VerifyKeys past TTL, registry down = %v, want ErrRegistryUnavailable", err)
	}
}

// TestNilMemoVerifiesEveryTime: a nil *Memo is plain VerifyKeys.
func TestNilMemoVerifiesEveryTime(t *testing.T) {
	reg := registry.Start(t, registry.Options{})
	ref, digest := testbundle.Push(t, reg, "ebpf/nomemo", "v1", testbundle.Source{})
	repo := reg.Repository("ebpf/nomemo")
	k := newKeys(t)
	ctx := context.Background()
	if err := signing.Sign(ctx, ref, k.priv, password, opts); err != nil {
		t.Fatal(err)
	}
	var m *signing.Memo
	if _, err := m.VerifyKeys(ctx, repo, digest, [][]byte{readPEM(t, k.pub)}, opts); err != nil {
		t.Fatal(err)
	}
	reg.Stop()
	if _, err := m.VerifyKeys(ctx, repo, digest, [][]byte{readPEM(t, k.pub)}, opts); !errors.Is(err, bundles.ErrRegistryUnavailable) {
		t.Fatalf("nil memo, registry down = %v, want ErrRegistryUnavailable", err)
	}
}
