package files

import (
	"strings"
	"unicode/utf8"

	"github.com/berth-dev/berth"
)

// Limits on request paths. Linux refuses longer components anyway; the total
// bound keeps a hostile request from making us resolve megabytes of path.
const (
	MaxNameLen = 255   // bytes of one raw path component
	MaxPathLen = 16384 // bytes of a raw workspace-relative path
)

// Names on disk are raw bytes; the API speaks JSON, which can only carry valid
// UTF-8. Bytes that cannot travel as they are get escaped to a private-use code
// point, U+F700+byte: every byte of an invalid UTF-8 sequence, and the
// backslash (which request paths may not contain, so that "a\..\b" can never
// be read as a traversal by a client). A real name that itself contains
// U+F700..U+F7FF has those characters' bytes escaped the same way, so the
// mapping is one to one. Decode accepts only the canonical form Encode
// produces, so each file has exactly one API name.
const escapeBase = 0xF700

func needsEscape(b byte) bool { return b == '\\' || b >= 0x80 }

// EncodeName returns the API (valid UTF-8) form of a raw on-disk name or path.
func EncodeName(raw string) string {
	if utf8.ValidString(raw) && strings.IndexByte(raw, '\\') < 0 && !hasEscapeRange(raw) {
		return raw // the common case: nothing to do
	}
	var b strings.Builder
	for i := 0; i < len(raw); {
		r, size := utf8.DecodeRuneInString(raw[i:])
		switch {
		case r == utf8.RuneError && size <= 1, r >= escapeBase && r <= escapeBase+0xFF:
			for j := 0; j < max(size, 1); j++ {
				b.WriteRune(escapeBase + rune(raw[i+j]))
			}
		case r == '\\':
			b.WriteRune(escapeBase + '\\')
		default:
			b.WriteString(raw[i : i+size])
		}
		i += max(size, 1)
	}
	return b.String()
}

func hasEscapeRange(s string) bool {
	for _, r := range s {
		if r >= escapeBase && r <= escapeBase+0xFF {
			return true
		}
	}
	return false
}

// decodeName reverses EncodeName. ok is false when s is not valid UTF-8,
// contains a raw backslash, or is not in canonical form.
func decodeName(s string) (raw string, ok bool) {
	if !utf8.ValidString(s) || strings.ContainsRune(s, '\\') {
		return "", false
	}
	if !hasEscapeRange(s) {
		return s, true
	}
	buf := make([]byte, 0, len(s))
	for _, r := range s {
		if r >= escapeBase && r <= escapeBase+0xFF {
			c := byte(r - escapeBase)
			if !needsEscape(c) {
				return "", false
			}
			buf = append(buf, c)
			continue
		}
		buf = utf8.AppendRune(buf, r)
	}
	raw = string(buf)
	return raw, EncodeName(raw) == s
}

// Clean validates an API path ("/", "/src/README.md"; the leading slash is
// optional) and returns the raw workspace-relative form that os.Root takes:
// "." for the root, "src/README.md" otherwise. Empty and "." segments are
// dropped; "..", NUL, backslashes, invalid UTF-8, non-canonical escapes and
// names longer than MaxNameLen bytes are refused with berth.Invalid.
//
// Clean is lexical only: it never touches the disk. Confinement is os.Root's
// job, not this function's.
func Clean(p string) (string, error) {
	if len(p) > 3*MaxPathLen {
		return "", berth.Errorf(berth.Invalid, "path too long")
	}
	if strings.IndexByte(p, 0) >= 0 {
		return "", berth.Errorf(berth.Invalid, "path contains a NUL byte")
	}
	if strings.IndexByte(p, '\\') >= 0 {
		return "", berth.Errorf(berth.Invalid, "path contains a backslash")
	}
	if !utf8.ValidString(p) {
		return "", berth.Errorf(berth.Invalid, "path is not valid UTF-8")
	}
	var out []string
	total := 0
	for seg := range strings.SplitSeq(p, "/") {
		switch seg {
		case "", ".":
			continue
		case "..":
			return "", berth.Errorf(berth.Invalid, "path contains a \"..\" segment")
		}
		raw, err := rawName(seg)
		if err != nil {
			return "", err
		}
		total += len(raw) + 1
		if total > MaxPathLen {
			return "", berth.Errorf(berth.Invalid, "path too long")
		}
		out = append(out, raw)
	}
	if len(out) == 0 {
		return ".", nil
	}
	return strings.Join(out, "/"), nil
}

// rawName decodes and checks one API path component.
func rawName(seg string) (string, error) {
	raw, ok := decodeName(seg)
	if !ok {
		return "", berth.Errorf(berth.Invalid, "invalid name %q", seg)
	}
	switch {
	case raw == "" || raw == "." || raw == "..":
		return "", berth.Errorf(berth.Invalid, "invalid name %q", seg)
	case len(raw) > MaxNameLen:
		return "", berth.Errorf(berth.Invalid, "name longer than %d bytes", MaxNameLen)
	case strings.ContainsAny(raw, "/\x00"):
		return "", berth.Errorf(berth.Invalid, "invalid name %q", seg)
	}
	return raw, nil
}

// ValidName checks a single name given for create, rename or upload: one
// component, not "." or "..", no "/", NUL or backslash, canonical escapes.
// It returns the raw on-disk name.
func ValidName(name string) (string, error) {
	if strings.IndexByte(name, '/') >= 0 {
		return "", berth.Errorf(berth.Invalid, "name may not contain \"/\"")
	}
	if name == "" {
		return "", berth.Errorf(berth.Invalid, "name is empty")
	}
	return rawName(name)
}

// apiPath turns a raw relative path ("." or "a/b") into its API form ("/" or "/a/b").
func apiPath(rel string) string {
	if rel == "." || rel == "" {
		return "/"
	}
	return "/" + EncodeName(rel)
}

// splitRel splits a raw relative path into its parent ("." at the top) and base name.
func splitRel(rel string) (dir, base string) {
	i := strings.LastIndexByte(rel, '/')
	if i < 0 {
		return ".", rel
	}
	return rel[:i], rel[i+1:]
}

// joinRel joins a raw relative directory and a name.
func joinRel(dir, name string) string {
	if dir == "." || dir == "" {
		return name
	}
	return dir + "/" + name
}

// within reports whether rel is dir or below it (both cleaned, raw).
func within(rel, dir string) bool {
	if dir == "." {
		return true
	}
	return rel == dir || strings.HasPrefix(rel, dir+"/")
}
