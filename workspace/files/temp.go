package files

import (
	"crypto/rand"
	"encoding/hex"
	"io/fs"
	"strings"
	"sync"
	"syscall"
	"unicode"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"

	"github.com/berth-dev/berth"
)

// tempPrefix starts every name this package gives its temporary entries:
// in-flight writes and copies, entries moved aside to be replaced, deep
// directories flattened while a tree is deleted. The API refuses to create
// any name that starts with it (see reserved), but a sandbox can make such
// names directly on disk, so a name alone does not say whose entry it is:
// the process-wide registry below does.
const tempPrefix = ".berth-tmp-"

// tempRandLen is the number of lowercase hex digits after tempPrefix.
const tempRandLen = 16

// isTemp reports whether name has exactly the form newTemp gives. Watch does
// not report such names (their events arrive after the entry is renamed
// away, too late to ask the registry); a stale one is removed by the first
// usage scan after Open. Other names with the prefix are ordinary entries:
// listed, watched and counted.
func isTemp(name string) bool {
	if len(name) != len(tempPrefix)+tempRandLen || !strings.HasPrefix(name, tempPrefix) {
		return false
	}
	for _, c := range name[len(tempPrefix):] {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// tempKind says how a live temporary entry is accounted for.
type tempKind uint8

const (
	// tempReserved: the entry's bytes are held by a quota reservation, so
	// usage scans skip it (counting it too would count them twice).
	tempReserved tempKind = iota + 1
	// tempOnDisk: an existing entry under a temporary name (moved aside,
	// being deleted); scans count it like any other until it is gone.
	tempOnDisk
)

// temps holds the temporary names this process is using, in any workspace
// (a directory may be open through several Workspace values at once, so the
// registry is not per Workspace). A name is registered before the entry is
// created and dropped only after it is renamed away or removed, so a
// temporary-looking name on disk that is not registered is not being written
// by anyone: it was left by a crash or a failed cleanup, or a sandbox made it.
var temps = struct {
	sync.Mutex
	live map[string]tempKind
}{live: map[string]tempKind{}}

// newTemp returns a fresh temporary name, registered as live.
func newTemp(kind tempKind) string {
	var b [tempRandLen / 2]byte
	for {
		rand.Read(b[:]) // never fails (Go 1.24+)
		name := tempPrefix + hex.EncodeToString(b[:])
		temps.Lock()
		if _, dup := temps.live[name]; !dup {
			temps.live[name] = kind
			temps.Unlock()
			return name
		}
		temps.Unlock()
	}
}

// dropTemp unregisters name once its entry is gone or renamed away. If a
// cleanup failed and left it on disk, it is from then on stale: counted by
// usage and removed at the next Open.
func dropTemp(name string) {
	temps.Lock()
	delete(temps.live, name)
	temps.Unlock()
}

// liveTemp reports whether name is a temporary name this process is using.
func liveTemp(name string) (tempKind, bool) {
	temps.Lock()
	defer temps.Unlock()
	k, ok := temps.live[name]
	return k, ok
}

// reserved reports whether the raw name is one the API may not create: one
// starting with tempPrefix in any spelling that a filesystem could take for
// the same name. API names map one to one to raw bytes (see EncodeName; an
// escape of an ASCII byte is refused as non-canonical), so no escape can
// spell the prefix. But a sandbox may make a directory case-insensitive
// (ext4 casefold, chattr +F), where ".BERTH-TMP-…" opens berth's own
// temporary file, and such lookups normalise Unicode (and older kernels drop
// ignorable code points). So the check folds case, applies compatibility
// decomposition and drops default-ignorable code points before comparing:
// it refuses more spellings than any one filesystem equates, which costs
// nothing.
func reserved(raw string) bool {
	ascii := true
	for i := 0; i < len(raw); i++ {
		if raw[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return len(raw) >= len(tempPrefix) && strings.EqualFold(raw[:len(tempPrefix)], tempPrefix)
	}
	s := norm.NFKD.String(raw)
	s = strings.Map(func(r rune) rune {
		if unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r) || unicode.Is(unicode.Variation_Selector, r) {
			return -1
		}
		return r
	}, s)
	s = norm.NFKD.String(cases.Fold().String(s))
	return strings.HasPrefix(s, tempPrefix)
}

// checkDest refuses a destination path (raw, relative) any component of
// which is reserved: the API never creates, or writes into, an entry that
// could be taken for one of berth's temporary entries.
func checkDest(rel string) error {
	for seg := range strings.SplitSeq(rel, "/") {
		if reserved(seg) {
			return berth.Errorf(berth.Invalid, "name %q is reserved (names starting with %q are berth's temporary files)", EncodeName(seg), tempPrefix)
		}
	}
	return nil
}

// space is what a regular file takes: its apparent size, the bytes the
// disk allocated to it, and what counts against the quota.
type space struct {
	apparent  int64
	allocated int64
	counted   int64
}

// spaceOf measures a regular file (zero for anything else). A file counts
// its data bytes, but never more than the disk holds for it: a sparse file
// (a 1 TiB Truncate holds a few KiB) counts its allocated blocks, while a
// dense one counts its size, so that a quota is in the bytes users write,
// independent of the filesystem's block size and its rounding.
func spaceOf(info fs.FileInfo) space {
	if !info.Mode().IsRegular() {
		return space{}
	}
	s := space{apparent: info.Size(), allocated: info.Size()}
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		s.allocated = st.Blocks * 512
	}
	s.counted = min(s.apparent, s.allocated)
	return s
}

// inode identifies a file for counting hard links once.
type inode struct{ dev, ino uint64 }

// linkInfo returns a file's inode and link count (ok false when the
// platform does not say).
func linkInfo(info fs.FileInfo) (inode, uint64, bool) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return inode{}, 1, false
	}
	return inode{dev: uint64(st.Dev), ino: st.Ino}, uint64(st.Nlink), true
}

// freedBy is what removing (or replacing) one name of a regular file frees:
// nothing while other hard links keep the data.
func freedBy(info fs.FileInfo) int64 {
	if _, n, ok := linkInfo(info); ok && n > 1 {
		return 0
	}
	return spaceOf(info).counted
}
