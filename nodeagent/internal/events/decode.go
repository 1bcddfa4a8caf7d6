// Package events turns the records eBPF programs write to ring buffers into
// structured events. A Decoder is built once from the record's BTF type (the
// bundle's declared output), so one decoder serves every bundle: integers,
// enums (by name), char arrays (as strings), bools, nested structs and
// unions, and arrays.
package events

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/cilium/ebpf/btf"
)

// maxDepth bounds nesting, so a hostile BTF cannot recurse without end.
const maxDepth = 16

type kind uint8

const (
	kindUint kind = iota
	kindInt
	kindBool
	kindFloat
	kindEnum
	kindString // char array up to its first NUL
	kindArray
	kindStruct
)

// field is one decoded value at a byte offset of its parent.
type field struct {
	name      string
	jsonKey   []byte // `"name":`
	kind      kind
	offset    uint32 // bytes
	size      uint32 // bytes of the value (for bitfields: of the storage unit)
	bitOffset uint32 // within the storage unit, for bitfields
	bits      uint32 // bitfield width, 0 for whole values
	enum      map[uint64]string
	elem      *field // array element
	count     uint32 // array length
	fields    []field
}

// Decoder decodes records of one BTF struct (or union) type.
type Decoder struct {
	name string
	size uint32
	root field
}

// NewDecoder builds a decoder for records of type typ, a struct or union
// (typedefs and qualifiers are looked through).
func NewDecoder(typ btf.Type) (*Decoder, error) {
	t := btf.UnderlyingType(typ)
	switch t.(type) {
	case *btf.Struct, *btf.Union:
	default:
		return nil, fmt.Errorf("build decoder for %s: %w: want a struct or union", typ, ErrUnsupportedType)
	}
	root, err := compile("", t, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("build decoder for %s: %w", typ.TypeName(), err)
	}
	size, err := btf.Sizeof(t)
	if err != nil {
		return nil, fmt.Errorf("build decoder for %s: %w", typ.TypeName(), err)
	}
	return &Decoder{name: typ.TypeName(), size: uint32(size), root: root}, nil
}

// Size is the record's size in bytes.
func (d *Decoder) Size() int { return int(d.size) }

func compile(name string, typ btf.Type, offset uint32, depth int) (field, error) {
	if depth > maxDepth {
		return field{}, fmt.Errorf("%s: %w: nested more than %d deep", name, ErrUnsupportedType, maxDepth)
	}
	f := field{name: name, offset: offset, jsonKey: []byte(strconv.Quote(name) + ":")}
	switch t := btf.UnderlyingType(typ).(type) {
	case *btf.Int:
		f.size = t.Size
		switch {
		case t.Encoding&btf.Bool != 0:
			f.kind = kindBool
		case t.Encoding&btf.Signed != 0:
			f.kind = kindInt
		default:
			f.kind = kindUint
		}
	case *btf.Float:
		f.kind, f.size = kindFloat, t.Size
	case *btf.Enum:
		f.kind, f.size = kindEnum, t.Size
		f.enum = make(map[uint64]string, len(t.Values))
		for _, v := range t.Values {
			f.enum[v.Value] = v.Name
		}
		if t.Signed {
			f.kind = kindInt
			f.enum = nil
		}
	case *btf.Pointer:
		f.kind, f.size = kindUint, 8
	case *btf.Array:
		elem := btf.UnderlyingType(t.Type)
		if i, ok := elem.(*btf.Int); ok && i.Size == 1 && (i.Encoding&btf.Char != 0 || i.Encoding&btf.Signed != 0 || i.Name == "char") {
			f.kind, f.size = kindString, t.Nelems
			break
		}
		e, err := compile("", t.Type, 0, depth+1)
		if err != nil {
			return field{}, fmt.Errorf("%s: %w", name, err)
		}
		esize, err := btf.Sizeof(t.Type)
		if err != nil {
			return field{}, fmt.Errorf("%s: %w", name, err)
		}
		f.kind, f.elem, f.count, f.size = kindArray, &e, t.Nelems, uint32(esize)
	case *btf.Struct:
		if err := compileMembers(&f, t.Members, depth); err != nil {
			return field{}, err
		}
		f.kind, f.size = kindStruct, t.Size
	case *btf.Union:
		if err := compileMembers(&f, t.Members, depth); err != nil {
			return field{}, err
		}
		f.kind, f.size = kindStruct, t.Size
	default:
		return field{}, fmt.Errorf("%s: %w: %T", name, ErrUnsupportedType, t)
	}
	return f, nil
}

func compileMembers(f *field, members []btf.Member, depth int) error {
	for i, m := range members {
		name := m.Name
		if name == "" {
			name = "_" + strconv.Itoa(i) // anonymous struct or union member
		}
		byteOff := uint32(m.Offset.Bytes())
		c, err := compile(name, m.Type, byteOff, depth+1)
		if err != nil {
			return fmt.Errorf("%s.%w", f.name, err)
		}
		if m.BitfieldSize > 0 {
			// Read the storage unit that holds the bitfield and shift.
			unit := c.size
			c.offset = uint32(m.Offset) / 8 / unit * unit
			c.bitOffset = uint32(m.Offset) - c.offset*8
			c.bits = uint32(m.BitfieldSize)
		}
		f.fields = append(f.fields, c)
	}
	return nil
}

// AppendJSON appends rec as one JSON object to dst: member names as keys,
// integers as numbers, enums by name, char arrays as strings.
func (d *Decoder) AppendJSON(dst, rec []byte) ([]byte, error) {
	if len(rec) < int(d.size) {
		return dst, fmt.Errorf("decode %s: %w: %d of %d bytes", d.name, ErrShortRecord, len(rec), d.size)
	}
	return d.root.appendJSON(dst, rec[:d.size]), nil
}

func (f *field) appendJSON(dst, b []byte) []byte {
	switch f.kind {
	case kindStruct:
		dst = append(dst, '{')
		for i := range f.fields {
			if i > 0 {
				dst = append(dst, ',')
			}
			c := &f.fields[i]
			dst = append(dst, c.jsonKey...)
			dst = c.appendJSON(dst, b[c.offset:])
		}
		return append(dst, '}')
	case kindArray:
		dst = append(dst, '[')
		for i := uint32(0); i < f.count; i++ {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = f.elem.appendJSON(dst, b[i*f.size:])
		}
		return append(dst, ']')
	case kindString:
		s := b[:f.size]
		for i, c := range s {
			if c == 0 {
				s = s[:i]
				break
			}
		}
		return appendJSONString(dst, s)
	case kindBool:
		if f.uint(b) != 0 {
			return append(dst, "true"...)
		}
		return append(dst, "false"...)
	case kindInt:
		return strconv.AppendInt(dst, f.int(b), 10)
	case kindFloat:
		if f.size == 4 {
			return strconv.AppendFloat(dst, float64(math.Float32frombits(uint32(f.uint(b)))), 'g', -1, 32)
		}
		return strconv.AppendFloat(dst, math.Float64frombits(f.uint(b)), 'g', -1, 64)
	case kindEnum:
		v := f.uint(b)
		if name, ok := f.enum[v]; ok {
			return appendJSONString(dst, []byte(name))
		}
		return strconv.AppendUint(dst, v, 10)
	default:
		return strconv.AppendUint(dst, f.uint(b), 10)
	}
}

// uint reads the little-endian value of the field at the start of b.
func (f *field) uint(b []byte) uint64 {
	var v uint64
	switch f.size {
	case 1:
		v = uint64(b[0])
	case 2:
		v = uint64(binary.LittleEndian.Uint16(b))
	case 4:
		v = uint64(binary.LittleEndian.Uint32(b))
	default:
		v = binary.LittleEndian.Uint64(b)
	}
	if f.bits > 0 {
		v = (v >> f.bitOffset) & (1<<f.bits - 1)
	}
	return v
}

func (f *field) int(b []byte) int64 {
	v := f.uint(b)
	bits := f.size * 8
	if f.bits > 0 {
		bits = f.bits
	}
	shift := 64 - bits
	return int64(v<<shift) >> shift
}

const hex = "0123456789abcdef"

// appendJSONString appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendJSONString(dst, s []byte) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && n == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+n]...)
		}
		i += n
	}
	return append(dst, '"')
}

// Keep returns a decoder that writes only the named top-level fields, in
// the record's order. No names keeps every field.
func (d *Decoder) Keep(names []string) (*Decoder, error) {
	if len(names) == 0 {
		return d, nil
	}
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	k := *d
	k.root.fields = nil
	for _, f := range d.root.fields {
		if want[f.name] {
			k.root.fields = append(k.root.fields, f)
			delete(want, f.name)
		}
	}
	for n := range want {
		return nil, fmt.Errorf("keep %q of %s: %w", n, d.name, ErrUnknownField)
	}
	return &k, nil
}

// Uint returns the top-level integer field name of rec; false when the
// record has no such integer field or is short.
func (d *Decoder) Uint(rec []byte, name string) (uint64, bool) {
	if len(rec) < int(d.size) {
		return 0, false
	}
	for i := range d.root.fields {
		f := &d.root.fields[i]
		if f.name == name && (f.kind == kindUint || f.kind == kindInt) {
			return f.uint(rec[f.offset:]), true
		}
	}
	return 0, false
}
