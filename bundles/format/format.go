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
)

// Endianness values of Object.Endianness.
const (
	LittleEndian = "little"
	BigEndian    = "big"
)
