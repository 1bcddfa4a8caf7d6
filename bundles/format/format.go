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
	// MaxRecordSize bounds one event record: a ring-buffer record is at
	// most a page here in practice; 64 KiB leaves room.
	MaxRecordSize = 64 << 10
)

// MapBytes is the memory a map asks for, as far as its declaration says:
// (key + value) × max entries, times cpus for per-CPU maps; max entries (the
// buffer size) for ring buffers. It is an upper bound for maps allocated on
// demand.
func MapBytes(typ string, keySize, valueSize, maxEntries uint32, cpus int) uint64 {
	switch typ {
	case "ringbuf", "userringbuf":
		return uint64(maxEntries)
	case "percpuhash", "percpuarray", "lrucpuhash", "percpucgroupstorage":
		return (uint64(keySize) + uint64(valueSize)*uint64(max(cpus, 1))) * uint64(maxEntries)
	}
	return (uint64(keySize) + uint64(valueSize)) * uint64(maxEntries)
}

// Endianness values of Object.Endianness.
const (
	LittleEndian = "little"
	BigEndian    = "big"
)
