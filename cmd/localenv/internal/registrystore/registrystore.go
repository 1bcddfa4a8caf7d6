// Package registrystore serves go-containerregistry's in-process OCI
// registry with all of its data on disk, so that tags, manifests, cosign
// signature tags and referrers survive a restart on the same directory.
//
// ggcr's registry keeps blobs in a BlobHandler (here its disk handler) but
// manifests and tags only in memory. Registry wraps it: every successful
// manifest PUT or DELETE is appended to a journal file (length, CRC-32C,
// record) and fsynced before the client gets its answer, and Open replays
// the journal into a fresh handler before anything is served. The manifest
// state of ggcr's registry is a function of the sequence of manifest writes
// alone, so the replayed registry answers byte for byte as before: same
// digests, same manifest bytes and content types, same tags, same referrers.
//
// A torn last record (a crash in the middle of an append) does not stop
// Open: it is cut off, and Open says how many bytes it dropped.
//
// Layout of dir: sha256/<hex> blobs (ggcr's disk handler), upload-* partial
// uploads, and manifests.journal.
//
// Usage:
//
//	reg, err := registrystore.Open(dir)
//	srv := &http.Server{Handler: reg}
//	... serve, then srv.Shutdown(ctx) ...
//	err = reg.Close()
package registrystore

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
)

// JournalFile is the journal's name inside the registry directory.
const JournalFile = "manifests.journal"

// MaxManifestSize is the largest manifest accepted (distribution's limit).
const MaxManifestSize = 4 << 20

// headerSize is a record's length (uint32) and CRC-32C (uint32), big endian.
const headerSize = 8

// maxRecordSize bounds a record's payload: a base64 manifest plus its names.
const maxRecordSize = 2*MaxManifestSize + 64<<10

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Registry is an http.Handler serving the OCI distribution API from dir.
type Registry struct {
	// Restored is how many journal records Open replayed.
	Restored int
	// TornBytes is how many bytes of a torn or unreadable journal tail Open
	// dropped (0 normally).
	TornBytes int64

	inner   http.Handler
	mu      sync.Mutex // orders manifest writes with their journal records
	journal *os.File
}

// record is one successful manifest write.
type record struct {
	Method      string `json:"method"` // PUT or DELETE
	Repo        string `json:"repo"`
	Reference   string `json:"reference"` // tag or digest
	ContentType string `json:"contentType,omitempty"`
	Body        []byte `json:"body,omitempty"`
}

// Open serves the registry stored in dir (created if missing): it replays
// the journal, cutting off a torn tail, and opens it for appending.
func Open(dir string) (*Registry, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create registry dir: %w", err)
	}
	r := &Registry{inner: ggcrregistry.New(
		ggcrregistry.WithBlobHandler(ggcrregistry.NewDiskBlobHandler(dir)),
		ggcrregistry.WithReferrersSupport(true),
		ggcrregistry.Logger(log.New(io.Discard, "", 0)),
	)}
	path := filepath.Join(dir, JournalFile)
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open manifest journal: %w", err)
	}
	if errors.Is(statErr, os.ErrNotExist) {
		// A new journal's directory entry must outlive a crash too.
		if err := syncDir(dir); err != nil {
			f.Close()
			return nil, err
		}
	}
	good, err := r.replay(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("replay %s: %w", path, err)
	}
	if r.TornBytes > 0 {
		if err := f.Truncate(good); err != nil {
			f.Close()
			return nil, fmt.Errorf("cut torn tail of %s: %w", path, err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, fmt.Errorf("sync %s: %w", path, err)
		}
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("seek end of %s: %w", path, err)
	}
	r.journal = f
	return r, nil
}

// replay applies every whole record of f to the fresh handler and returns
// the offset after the last one; what follows it is counted in TornBytes.
func (r *Registry) replay(f *os.File) (good int64, err error) {
	data, err := io.ReadAll(f)
	if err != nil {
		return 0, fmt.Errorf("read journal: %w", err)
	}
	for off := 0; off < len(data); {
		rec, n, ok := decode(data[off:])
		if !ok {
			r.TornBytes = int64(len(data) - off)
			return int64(off), nil
		}
		res := r.apply(rec)
		if !succeeded(rec.Method, res.code) {
			return 0, fmt.Errorf("record %d at offset %d (%s %s:%s) answered %d: %s",
				r.Restored+1, off, rec.Method, rec.Repo, rec.Reference, res.code, bytes.TrimSpace(res.body.Bytes()))
		}
		r.Restored++
		off += n
	}
	return int64(len(data)), nil
}

// decode reads one record from the start of b; ok is false when b holds no
// whole record with a matching checksum.
func decode(b []byte) (rec record, n int, ok bool) {
	if len(b) < headerSize {
		return record{}, 0, false
	}
	size := binary.BigEndian.Uint32(b[0:4])
	sum := binary.BigEndian.Uint32(b[4:8])
	if size > maxRecordSize || uint64(len(b)-headerSize) < uint64(size) {
		return record{}, 0, false
	}
	payload := b[headerSize : headerSize+int(size)]
	if crc32.Checksum(payload, castagnoli) != sum {
		return record{}, 0, false
	}
	if err := json.Unmarshal(payload, &rec); err != nil {
		return record{}, 0, false
	}
	return rec, headerSize + int(size), true
}

func encode(rec record) ([]byte, error) {
	payload, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("encode journal record: %w", err)
	}
	b := make([]byte, headerSize, headerSize+len(payload))
	binary.BigEndian.PutUint32(b[0:4], uint32(len(payload)))
	binary.BigEndian.PutUint32(b[4:8], crc32.Checksum(payload, castagnoli))
	return append(b, payload...), nil
}

// ServeHTTP serves the registry; manifest PUTs and DELETEs that succeed are
// journaled before they are answered.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	repo, ref, ok := manifestTarget(req.URL.Path)
	if !ok || (req.Method != http.MethodPut && req.Method != http.MethodDelete) {
		r.inner.ServeHTTP(w, req)
		return
	}
	rec := record{Method: req.Method, Repo: repo, Reference: ref}
	if req.Method == http.MethodPut {
		body, err := io.ReadAll(io.LimitReader(req.Body, MaxManifestSize+1))
		if err != nil {
			http.Error(w, fmt.Sprintf("read manifest: %v", err), http.StatusBadRequest)
			return
		}
		if len(body) > MaxManifestSize {
			http.Error(w, fmt.Sprintf("manifest larger than %d bytes", MaxManifestSize), http.StatusRequestEntityTooLarge)
			return
		}
		rec.ContentType = req.Header.Get("Content-Type")
		rec.Body = body
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	res := r.apply(rec)
	if succeeded(rec.Method, res.code) {
		if err := r.append(rec); err != nil {
			// The in-memory registry has the write, the disk not: the
			// client sees the failure and may retry.
			http.Error(w, fmt.Sprintf("persist manifest: %v", err), http.StatusInternalServerError)
			return
		}
	}
	for k, v := range res.header {
		w.Header()[k] = v
	}
	w.WriteHeader(res.code)
	_, _ = w.Write(res.body.Bytes())
}

// append writes rec to the journal and syncs it to disk.
func (r *Registry) append(rec record) error {
	if r.journal == nil {
		return errors.New("registry closed")
	}
	b, err := encode(rec)
	if err != nil {
		return err
	}
	if _, err := r.journal.Write(b); err != nil {
		return fmt.Errorf("append to manifest journal: %w", err)
	}
	if err := r.journal.Sync(); err != nil {
		return fmt.Errorf("sync manifest journal: %w", err)
	}
	return nil
}

// apply runs rec against the in-memory handler.
func (r *Registry) apply(rec record) *response {
	req, _ := http.NewRequest(rec.Method, "/", bytes.NewReader(rec.Body))
	req.URL.Path = "/v2/" + rec.Repo + "/manifests/" + rec.Reference // as decoded, not re-parsed
	if rec.ContentType != "" {
		req.Header.Set("Content-Type", rec.ContentType)
	}
	res := &response{header: http.Header{}, code: http.StatusOK}
	r.inner.ServeHTTP(res, req)
	return res
}

// Close closes the journal; later manifest writes fail. Stop serving first.
func (r *Registry) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.journal == nil {
		return nil
	}
	err := r.journal.Close()
	r.journal = nil
	if err != nil {
		return fmt.Errorf("close manifest journal: %w", err)
	}
	return nil
}

// succeeded reports whether ggcr's registry accepted a manifest write.
func succeeded(method string, code int) bool {
	if method == http.MethodPut {
		return code == http.StatusCreated
	}
	return code == http.StatusAccepted
}

// manifestTarget returns the repository and reference of a path that ggcr's
// registry serves as a manifest (its isBlob and isManifest tests, in that
// order, on any prefix, as it routes).
func manifestTarget(path string) (repo, ref string, ok bool) {
	elem := strings.Split(path, "/")[1:]
	blob := elem
	if len(blob) > 0 && blob[len(blob)-1] == "" {
		blob = blob[:len(blob)-1]
	}
	if len(blob) >= 3 && (blob[len(blob)-2] == "blobs" || (blob[len(blob)-3] == "blobs" && blob[len(blob)-2] == "uploads")) {
		return "", "", false
	}
	if len(elem) < 4 || elem[len(elem)-2] != "manifests" {
		return "", "", false
	}
	return strings.Join(elem[1:len(elem)-2], "/"), elem[len(elem)-1], true
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open registry dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync registry dir: %w", err)
	}
	return nil
}

// response records what the in-memory handler answered.
type response struct {
	header http.Header
	code   int
	body   bytes.Buffer
	wrote  bool
}

func (r *response) Header() http.Header { return r.header }

func (r *response) WriteHeader(code int) {
	if !r.wrote {
		r.code, r.wrote = code, true
	}
}

func (r *response) Write(b []byte) (int, error) {
	r.wrote = true
	return r.body.Write(b)
}
