// Package format defines the bpfleet bundle: its OCI media types, the bundle
// manifest carried in the config blob, the limits every reader enforces, and
// Bundle, a fully verified bundle held in memory.
//
// A bundle is one OCI image manifest with artifactType ArtifactType, a config
// blob of media type ConfigMediaType holding the JSON Manifest, and one layer
// per ELF object of media type ELFMediaType, annotated with its file name
// (AnnotationTitle) and byte order (AnnotationEndianness).
package format

// Media types and annotations of the bundle format.
const (
	// ArtifactType is the artifactType of a bundle's OCI image manifest.
	ArtifactType = "application/vnd.bpfleet.bundle.v1"
	// ConfigMediaType is the media type of the config blob (the JSON Manifest).
	ConfigMediaType = "application/vnd.bpfleet.bundle.config.v1+json"
	// ELFMediaType is the media type of each ELF object layer.
	ELFMediaType = "application/vnd.bpfleet.elf.v1"
	// AnnotationTitle names the file of a layer (never a path).
	AnnotationTitle = "org.opencontainers.image.title"
	// AnnotationEndianness is "little" or "big", the byte order of an ELF layer.
	AnnotationEndianness = "io.bpfleet.endianness"
	// SchemaVersion is the Manifest schema version this package writes and reads.
	SchemaVersion = 1
)

// Limits every reader enforces before trusting a bundle.
const (
	// MaxConfigSize bounds the config blob (the JSON Manifest).
	MaxConfigSize = 1 << 20
	// MaxImageManifestSize bounds the OCI image manifest.
	MaxImageManifestSize = 64 << 10
	// MaxObjects bounds the number of ELF layers.
	MaxObjects = 16
	// MaxObjectSize bounds one ELF layer.
	MaxObjectSize = 16 << 20
	// MaxPrograms bounds the number of programs.
	MaxPrograms = 64
	// MaxMaps bounds the number of maps (and of metric maps).
	MaxMaps = 64
	// MaxNameLength bounds every name (bundle, object, program, map, section).
	MaxNameLength = 128
	// MaxDescriptionLength bounds the free-text description.
	MaxDescriptionLength = 1024
	// MaxMapBytes bounds the memory one map may ask for (see MapBytes): a
	// bundle cannot make every node of a fleet pin gigabytes of kernel
	// memory by declaring an absurd capacity.
	MaxMapBytes = 512 << 20
	// MaxBundleMapBytes bounds the memory all maps of a bundle (and of the
	// one ELF object a BpfProgram loads) may ask for together: many maps
	// each under MaxMapBytes must not add up to more.
	MaxBundleMapBytes = 1 << 30
	// MaxRecordSize bounds one event record: a ring-buffer record is at
	// most a page here in practice; 64 KiB leaves room.
	MaxRecordSize = 64 << 10
)

// Kernel bookkeeping per element that MapBytes counts, from the kernel's
// structures on 64-bit hosts (Linux 6.x): a hash element carries a struct
// htab_elem (48 bytes) before its key, and a hash table one 16-byte
// bucket per entry rounded up to a power of two; an LPM trie node a
// struct lpm_trie_node (40 bytes); a per-CPU array one pointer per entry.
// Map types not listed count as hash maps.
const (
	htabElemBytes   = 48
	htabBucketBytes = 16
	lpmNodeBytes    = 40
	pointerBytes    = 8
)

// MapBytes is the kernel memory a map asks for, as far as its declaration
// says, counting what the kernel adds per element: keys and values rounded
// up to 8 bytes, per-element headers and hash buckets (a preallocated hash
// with 1-byte keys and values costs some 80 bytes an entry, not 2), values
// times cpus for per-CPU maps, and the buffer size (max entries) for ring
// buffers. It is an upper bound for maps allocated on demand.
func MapBytes(typ string, keySize, valueSize, maxEntries uint32, cpus int) uint64 {
	k, v, n := round8(keySize), round8(valueSize), uint64(maxEntries)
	c := uint64(max(cpus, 1))
	switch typ {
	case "ringbuf", "userringbuf":
		return n
	case "array", "programarray", "perfeventarray", "cgrouparray", "arrayofmaps", "reuseportsockarray", "devmap", "cpumap", "xskmap", "sockmap":
		return v * n
	case "percpuarray":
		return (pointerBytes + v*c) * n
	case "lpmtrie":
		return (lpmNodeBytes + k + v) * n
	case "percpuhash", "lrucpuhash", "percpucgroupstorage":
		return (htabElemBytes+k+pointerBytes+v*c)*n + htabBucketBytes*pow2(n)
	}
	return (htabElemBytes+k+v)*n + htabBucketBytes*pow2(n)
}

func round8(n uint32) uint64 { return (uint64(n) + 7) &^ 7 }

// pow2 rounds n up to a power of two (0 stays 0).
func pow2(n uint64) uint64 {
	p := uint64(1)
	for p < n {
		p <<= 1
	}
	if n == 0 {
		return 0
	}
	return p
}

// Endianness values of Object.Endianness.
const (
	LittleEndian = "little"
	BigEndian    = "big"
)
