package files

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzClean checks Clean's contract on any input: it never panics, and what
// it accepts is a safe os.Root name whose API form maps back to it.
func FuzzClean(f *testing.F) {
	for _, s := range []string{"/", "/src/README.md", "a//b/./c/", "/a/../b", "\x00", `a\b`, "\xff", "/\uf7ff", "/\uf72e\uf72e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		rel, err := Clean(p)
		if err != nil {
			return
		}
		if rel == "." {
			return
		}
		if len(rel) > MaxPathLen || strings.HasPrefix(rel, "/") || strings.HasSuffix(rel, "/") {
			t.Fatalf("Clean(%q) = %q", p, rel)
		}
		for _, seg := range strings.Split(rel, "/") {
			if seg == "" || seg == "." || seg == ".." || len(seg) > MaxNameLen || strings.IndexByte(seg, 0) >= 0 {
				t.Fatalf("Clean(%q) = %q: bad segment %q", p, rel, seg)
			}
		}
		api := apiPath(rel)
		if !utf8.ValidString(api) || strings.ContainsRune(api, '\\') {
			t.Fatalf("API form %q of %q is not clean UTF-8", api, rel)
		}
		again, err := Clean(api)
		if err != nil || again != rel {
			t.Fatalf("round trip %q -> %q -> %q (%v)", p, rel, again, err)
		}
	})
}

// FuzzEncodeName checks that every raw name has an API form that decodes back.
func FuzzEncodeName(f *testing.F) {
	for _, s := range []string{"a", "\xff\xfe", "\uf780", "a\\b", "\xef\x9e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		enc := EncodeName(raw)
		if !utf8.ValidString(enc) || strings.ContainsRune(enc, '\\') {
			t.Fatalf("EncodeName(%q) = %q", raw, enc)
		}
		back, ok := decodeName(enc)
		if !ok || back != raw {
			t.Fatalf("decode(EncodeName(%q)) = %q, %v", raw, back, ok)
		}
	})
}
