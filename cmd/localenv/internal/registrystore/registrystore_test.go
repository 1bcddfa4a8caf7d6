package registrystore

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	ggcrremote "github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/bpfleet/bpfleet/bundles/remote"
	"github.com/bpfleet/bpfleet/bundles/signing"
)

// server is a Registry served on a loopback port.
type server struct {
	reg  *Registry
	srv  *httptest.Server
	host string
}

func start(t *testing.T, dir string) *server {
	t.Helper()
	reg, err := Open(dir)
	if err != nil {
		t.Fatalf("open registry: %v", err)
	}
	srv := httptest.NewServer(reg)
	s := &server{reg: reg, srv: srv, host: strings.TrimPrefix(srv.URL, "http://")}
	t.Cleanup(s.stop)
	return s
}

func (s *server) stop() {
	s.srv.Close()
	_ = s.reg.Close()
}

func (s *server) ref(t *testing.T, repo, tagOrDigest string) name.Reference {
	t.Helper()
	sep := ":"
	if strings.HasPrefix(tagOrDigest, "sha256:") {
		sep = "@"
	}
	r, err := name.ParseReference(s.host + "/" + repo + sep + tagOrDigest)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// manifest is what the registry answers to GET /v2/<repo>/manifests/<ref>.
type manifest struct {
	status      int
	contentType string
	digest      string
	body        []byte
}

func (s *server) get(t *testing.T, repo, ref string) manifest {
	t.Helper()
	resp, err := http.Get(s.srv.URL + "/v2/" + repo + "/manifests/" + ref)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return manifest{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), digest: resp.Header.Get("Docker-Content-Digest"), body: body}
}

func (s *server) referrers(t *testing.T, repo string, subject v1.Hash) []v1.Descriptor {
	t.Helper()
	idx, err := ggcrremote.Referrers(s.ref(t, repo, subject.String()).(name.Digest))
	if err != nil {
		t.Fatalf("list referrers: %v", err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	// ggcr's registry lists referrers in map order.
	slices.SortFunc(m.Manifests, func(a, b v1.Descriptor) int { return strings.Compare(a.Digest.String(), b.Digest.String()) })
	return m.Manifests
}

func (s *server) tags(t *testing.T, repo string) []string {
	t.Helper()
	r, err := name.NewRepository(s.host + "/" + repo)
	if err != nil {
		t.Fatal(err)
	}
	tags, err := ggcrremote.List(r)
	if err != nil {
		t.Fatalf("list tags: %v", err)
	}
	return tags
}

func (s *server) push(t *testing.T, repo, tag string, img v1.Image) v1.Hash {
	t.Helper()
	if err := ggcrremote.Write(s.ref(t, repo, tag), img); err != nil {
		t.Fatalf("push %s:%s: %v", repo, tag, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func randomImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestRestartKeepsEverything: a bundle pushed by tag, its cosign signature,
// a referrer and deletions all come back, byte for byte, when the registry
// is started again on the same directory (on another port).
func TestRestartKeepsEverything(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	keyDir := t.TempDir()
	password := []byte("test")
	keyPath, pubPath, err := signing.GenerateKeyPair(keyDir, password)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile(pubPath)
	if err != nil {
		t.Fatal(err)
	}
	opts := remote.Options{Timeout: 30 * time.Second}
	const repo = "bpfleet/pod-filter"

	first := start(t, dir)
	img := randomImage(t)
	digest := first.push(t, repo, "v1", img)
	if err := signing.Sign(ctx, first.host+"/"+repo+"@"+digest.String(), keyPath, password, opts); err != nil {
		t.Fatalf("sign: %v", err)
	}
	desc, err := ggcrremote.Head(first.ref(t, repo, digest.String()))
	if err != nil {
		t.Fatal(err)
	}
	sbom := mutate.ConfigMediaType(mutate.MediaType(randomImage(t), types.OCIManifestSchema1), "application/vnd.example.sbom")
	sbom = mutate.Subject(sbom, *desc).(v1.Image)
	sbomDigest, err := sbom.Digest()
	if err != nil {
		t.Fatal(err)
	}
	first.push(t, repo, sbomDigest.String(), sbom)
	// A tag deleted, and another image deleted by digest: both stay gone.
	first.push(t, repo, "v2", randomImage(t))
	if err := ggcrremote.Delete(first.ref(t, repo, "v2")); err != nil {
		t.Fatalf("delete tag: %v", err)
	}
	goneDigest := first.push(t, repo, "v3", randomImage(t))
	if err := ggcrremote.Delete(first.ref(t, repo, goneDigest.String())); err != nil {
		t.Fatalf("delete digest: %v", err)
	}

	sigTag := "sha256-" + digest.Hex + ".sig"
	refs := []string{"v1", digest.String(), sigTag, sbomDigest.String(), "v2", goneDigest.String(), "v3"}
	before := map[string]manifest{}
	for _, ref := range refs {
		before[ref] = first.get(t, repo, ref)
	}
	for _, ref := range []string{"v1", digest.String(), sigTag, sbomDigest.String(), "v3"} {
		if before[ref].status != http.StatusOK {
			t.Fatalf("before the restart, %s answered %d", ref, before[ref].status)
		}
	}
	for _, ref := range []string{"v2", goneDigest.String()} {
		if before[ref].status != http.StatusNotFound {
			t.Fatalf("before the restart, deleted %s answered %d", ref, before[ref].status)
		}
	}
	tagsBefore := first.tags(t, repo)
	referrersBefore := first.referrers(t, repo, digest)
	if len(referrersBefore) != 1 || referrersBefore[0].Digest != sbomDigest {
		t.Fatalf("before the restart, referrers of %s are %+v, want the sbom %s", digest, referrersBefore, sbomDigest)
	}
	first.stop()

	second := start(t, dir)
	if second.host == first.host {
		t.Fatalf("second registry on the same address %s: the test would not show a fresh server", second.host)
	}
	if second.reg.TornBytes != 0 {
		t.Errorf("TornBytes = %d after a clean stop, want 0", second.reg.TornBytes)
	}
	// PUT v1, PUT sig, PUT sbom, PUT v2, DELETE v2, PUT v3, DELETE digest.
	if second.reg.Restored != 7 {
		t.Errorf("Restored = %d, want 7 manifest writes", second.reg.Restored)
	}
	for _, ref := range refs {
		got, want := second.get(t, repo, ref), before[ref]
		if got.status != want.status || got.contentType != want.contentType || got.digest != want.digest || !bytes.Equal(got.body, want.body) {
			t.Errorf("after the restart, %s answered %d %q %s (%d bytes), before %d %q %s (%d bytes)",
				ref, got.status, got.contentType, got.digest, len(got.body), want.status, want.contentType, want.digest, len(want.body))
		}
	}
	if got := second.tags(t, repo); !slices.Equal(got, tagsBefore) {
		t.Errorf("tags after the restart %v, before %v", got, tagsBefore)
	}
	if got := second.referrers(t, repo, digest); !slices.EqualFunc(got, referrersBefore, func(a, b v1.Descriptor) bool {
		return a.Digest == b.Digest && a.MediaType == b.MediaType && a.Size == b.Size && a.ArtifactType == b.ArtifactType
	}) {
		t.Errorf("referrers after the restart %+v, before %+v", got, referrersBefore)
	}
	pulled, err := ggcrremote.Image(second.ref(t, repo, "v1"))
	if err != nil {
		t.Fatalf("pull v1 after the restart: %v", err)
	}
	if err := validate.Image(pulled); err != nil {
		t.Errorf("v1 after the restart does not validate (blobs): %v", err)
	}
	if _, err := signing.Verify(ctx, second.host+"/"+repo, digest.String(), [][]byte{pub}, opts); err != nil {
		t.Errorf("signature after the restart: %v", err)
	}
	if n, err := signing.Count(ctx, second.host+"/"+repo, digest.String(), opts); err != nil || n != 1 {
		t.Errorf("signatures after the restart: %d, %v; want 1", n, err)
	}
}

// TestTornJournalTail: whatever a crash leaves after the last whole record
// is cut off at the next start, which restores every record before it and
// appends after them.
func TestTornJournalTail(t *testing.T) {
	whole, err := encode(record{Method: http.MethodPut, Repo: "r", Reference: "t", ContentType: "application/json", Body: []byte("{}")})
	if err != nil {
		t.Fatal(err)
	}
	badSum := slices.Clone(whole)
	badSum[len(badSum)-2] ^= 0xff
	tooLong := make([]byte, headerSize, headerSize+10)
	binary.BigEndian.PutUint32(tooLong, 1000)
	tooLong = append(tooLong, "0123456789"...)

	tests := []struct {
		name string
		tail []byte
	}{
		{"part of a header", []byte{0, 0, 1}},
		{"record cut short", whole[:len(whole)-3]},
		{"header promising more than follows", tooLong},
		{"checksum mismatch", badSum},
		{"zeroes (allocated, never written)", make([]byte, 4096)},
		{"length beyond any manifest", []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 'x'}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			const repo = "bpfleet/exec-trace"
			s := start(t, dir)
			digest := s.push(t, repo, "v1", randomImage(t))
			s.stop()
			f, err := os.OpenFile(filepath.Join(dir, JournalFile), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write(tt.tail); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}

			s = start(t, dir)
			if s.reg.TornBytes != int64(len(tt.tail)) || s.reg.Restored != 1 {
				t.Errorf("Restored %d, TornBytes %d; want 1 and %d", s.reg.Restored, s.reg.TornBytes, len(tt.tail))
			}
			if got := s.get(t, repo, "v1"); got.status != http.StatusOK || got.digest != digest.String() {
				t.Fatalf("v1 after the torn tail: %d %s, want 200 %s", got.status, got.digest, digest)
			}
			digest2 := s.push(t, repo, "v2", randomImage(t))
			s.stop()

			s = start(t, dir)
			if s.reg.TornBytes != 0 || s.reg.Restored != 2 {
				t.Errorf("after the cut: Restored %d, TornBytes %d; want 2 and 0", s.reg.Restored, s.reg.TornBytes)
			}
			for tag, want := range map[string]v1.Hash{"v1": digest, "v2": digest2} {
				if got := s.get(t, repo, tag); got.status != http.StatusOK || got.digest != want.String() {
					t.Errorf("%s: %d %s, want 200 %s", tag, got.status, got.digest, want)
				}
			}
		})
	}
}

// TestReplayRefusesWhatTheRegistryRefuses: a whole, checksummed record the
// registry does not accept is no torn tail: Open says which one and stops.
func TestReplayRefusesWhatTheRegistryRefuses(t *testing.T) {
	dir := t.TempDir()
	b, err := encode(record{Method: http.MethodDelete, Repo: "bpfleet/x", Reference: "v9"})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, JournalFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	reg, err := Open(dir)
	if err == nil {
		reg.Close()
		t.Fatal("Open replayed a DELETE of a manifest that never was")
	}
	if want := "record 1 at offset 0 (DELETE bpfleet/x:v9) answered 404"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not contain %q", err, want)
	}
}

// TestManifestTarget: only what ggcr's registry routes to its manifest
// handler is journaled, with its repository and reference.
func TestManifestTarget(t *testing.T) {
	tests := []struct {
		path      string
		repo, ref string
		ok        bool
	}{
		{"/v2/bpfleet/pod-filter/manifests/v1", "bpfleet/pod-filter", "v1", true},
		{"/v2/r/manifests/sha256:abc", "r", "sha256:abc", true},
		{"/v2/r/manifests/sha256-abc.sig", "r", "sha256-abc.sig", true},
		{"/v2/r/blobs/sha256:abc", "", "", false},
		{"/v2/r/blobs/uploads/1234", "", "", false},
		{"/v2/r/blobs/manifests/", "", "", false}, // ggcr: a blob (trailing slash dropped)
		{"/v2/r/referrers/sha256:abc", "", "", false},
		{"/v2/r/tags/list", "", "", false},
		{"/v2/manifests/v1", "", "", false},
		{"/v2/", "", "", false},
	}
	for _, tt := range tests {
		repo, ref, ok := manifestTarget(tt.path)
		if repo != tt.repo || ref != tt.ref || ok != tt.ok {
			t.Errorf("manifestTarget(%q) = %q, %q, %v; want %q, %q, %v", tt.path, repo, ref, ok, tt.repo, tt.ref, tt.ok)
		}
	}
}
