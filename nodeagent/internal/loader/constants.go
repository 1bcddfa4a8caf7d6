package loader

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/bits"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// Constant sets a `volatile const` variable of the programs before load
// (the BpfProgram's constants, as the dataplane hands them over).
type Constant struct {
	// Name is the variable's name in .rodata.
	Name string
	// Value is an integer (decimal or 0x hex), true or false, or
	// 0x-prefixed hex bytes for arrays.
	Value string
}

// SetConstants writes consts into the constant (.rodata) variables of spec.
// Each value is parsed according to the variable's BTF type: integers
// (decimal or 0x hex, signed or not), true/false for bools, 0x hex bytes for
// arrays and other types (exactly the variable's size).
func SetConstants(spec *ebpf.CollectionSpec, consts []Constant) error {
	for _, c := range consts {
		v, ok := spec.Variables[c.Name]
		if !ok || !v.Constant() {
			return fmt.Errorf("set constant %s: no volatile const variable of that name: %w", c.Name, ErrInvalidConstant)
		}
		buf, err := EncodeConstant(v, c.Value)
		if err != nil {
			return fmt.Errorf("set constant %s: %w", c.Name, err)
		}
		if err := v.Set(buf); err != nil {
			return fmt.Errorf("set constant %s: %w", c.Name, err)
		}
	}
	return nil
}

// EncodeConstant parses value for variable v into v.Size() bytes in host
// byte order.
func EncodeConstant(v *ebpf.VariableSpec, value string) ([]byte, error) {
	size := int(v.Size())
	if size == 0 {
		return nil, fmt.Errorf("variable %s has no size: %w", v.Name, ErrInvalidConstant)
	}
	var typ btf.Type
	if v.Type != nil {
		typ = btf.UnderlyingType(v.Type.Type)
	}
	if in, ok := typ.(*btf.Int); ok || isEnum(typ) {
		signed := ok && in.Encoding&btf.Signed != 0
		isBool := ok && in.Encoding&btf.Bool != 0
		return encodeInt(value, size, signed, isBool)
	}
	if !strings.HasPrefix(value, "0x") && !strings.HasPrefix(value, "0X") {
		return nil, fmt.Errorf("variable %s (%d bytes) takes 0x-prefixed hex bytes, got %q: %w", v.Name, size, value, ErrInvalidConstant)
	}
	b, err := hex.DecodeString(value[2:])
	if err != nil {
		return nil, fmt.Errorf("variable %s: decode hex %q: %v: %w", v.Name, value, err, ErrInvalidConstant)
	}
	if len(b) != size {
		return nil, fmt.Errorf("variable %s is %d bytes, value has %d: %w", v.Name, size, len(b), ErrInvalidConstant)
	}
	return b, nil
}

func isEnum(t btf.Type) bool {
	_, ok := t.(*btf.Enum)
	return ok
}

func encodeInt(value string, size int, signed, isBool bool) ([]byte, error) {
	if size > 8 || size&(size-1) != 0 {
		return nil, fmt.Errorf("integer of %d bytes: %w", size, ErrInvalidConstant)
	}
	var u uint64
	switch {
	case isBool || value == "true" || value == "false":
		switch value {
		case "true":
			u = 1
		case "false":
			u = 0
		default:
			return nil, fmt.Errorf("bool takes true or false, got %q: %w", value, ErrInvalidConstant)
		}
	case signed:
		n, err := strconv.ParseInt(value, 0, size*8)
		if err != nil {
			return nil, fmt.Errorf("parse %d-byte signed integer %q: %v: %w", size, value, err, ErrInvalidConstant)
		}
		u = uint64(n) & (^uint64(0) >> (64 - size*8))
	default:
		n, err := strconv.ParseUint(value, 0, size*8)
		if err != nil {
			return nil, fmt.Errorf("parse %d-byte unsigned integer %q: %v: %w", size, value, err, ErrInvalidConstant)
		}
		u = n
	}
	if bits.Len64(u) > size*8 {
		return nil, fmt.Errorf("%q does not fit %d bytes: %w", value, size, ErrInvalidConstant)
	}
	buf := make([]byte, 8)
	binary.NativeEndian.PutUint64(buf, u)
	if binary.NativeEndian.Uint16([]byte{1, 0}) == 1 { // little endian: low bytes first
		return buf[:size], nil
	}
	return buf[8-size:], nil
}
