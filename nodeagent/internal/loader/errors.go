package loader

import "errors"

// Sentinel errors, wrapped by the functions of this package.
var (
	// ErrInvalidConstant: a constant names no .rodata variable or its value
	// does not fit the variable.
	ErrInvalidConstant = errors.New("invalid constant")
	// ErrInvalidMapEntry: a map entry names no map, or its key or value has
	// the wrong size or encoding.
	ErrInvalidMapEntry = errors.New("invalid map entry")
	// ErrNoProgram: the object holds no program of that name.
	ErrNoProgram = errors.New("no such program in object")
	// ErrMapIncompatible: a map the bundle preserves across versions
	// cannot re-use the running map of its name (type, key size, value
	// size, max entries or flags differ).
	ErrMapIncompatible = errors.New("preserved map incompatible with the running map")
)
