package workspace

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth"
)

func pinned(t *testing.T, p string) bool {
	t.Helper()
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		t.Fatalf("open %s: %v", p, err)
	}
	defer func() { _ = unix.Close(fd) }() // read-only descriptor: nothing to lose
	f, err := getFlags(fd)
	if err != nil {
		t.Fatal(err)
	}
	return f&pinFlag != 0
}

func TestPinMountPoints(t *testing.T) {
	data := t.TempDir()
	s := &Service{dataDir: data}
	if err := s.PinSupported(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but the data directory cannot pin: %v", err)
		}
		t.Skipf("cannot pin here: %v", err)
	}
	id := "ws"
	dir := s.Dir(id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := UnpinTree(dir); err != nil {
			t.Errorf("unpin: %v", err)
		}
	})

	// Two sandboxes: one mounts at a/b, the other at a (under a pinned a).
	if err := s.PinMountPoints(id, []string{"a/b"}); err != nil {
		t.Fatal(err)
	}
	if err := s.PinMountPoints(id, []string{"a", "a/c"}); err != nil {
		t.Fatalf("pin under a pinned directory: %v", err)
	}
	for _, p := range []string{"a", "a/b", "a/c"} {
		if !pinned(t, filepath.Join(dir, p)) {
			t.Errorf("%s not pinned", p)
		}
	}
	if err := os.Rename(filepath.Join(dir, "a"), filepath.Join(dir, "x")); err == nil {
		t.Errorf("renamed a pinned directory")
	}
	// The second goes: a stays pinned for a/b, a/c does not.
	if err := s.UnpinMountPoints(id, []string{"a", "a/c"}, []string{"a/b"}); err != nil {
		t.Fatal(err)
	}
	if !pinned(t, filepath.Join(dir, "a")) || !pinned(t, filepath.Join(dir, "a/b")) || pinned(t, filepath.Join(dir, "a/c")) {
		t.Errorf("after the first release: a %v, a/b %v, a/c %v", pinned(t, filepath.Join(dir, "a")), pinned(t, filepath.Join(dir, "a/b")), pinned(t, filepath.Join(dir, "a/c")))
	}
	if err := s.UnpinMountPoints(id, []string{"a/b"}, nil); err != nil {
		t.Fatal(err)
	}
	if pinned(t, filepath.Join(dir, "a")) || pinned(t, filepath.Join(dir, "a/b")) {
		t.Errorf("still pinned after the last release")
	}

	// In the way: nothing followed, nothing flagged, nothing changed.
	if err := os.Symlink("/etc", filepath.Join(dir, "l")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "d", "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{"l", "l/x", "d/f", "d/f/x"} {
		if err := s.PinMountPoints(id, []string{rel}); !berth.IsKind(err, berth.Conflict) {
			t.Errorf("pin %s: want Conflict, got %v", rel, err)
		}
	}
	if pinned(t, filepath.Join(dir, "d")) {
		t.Errorf("a refused pin left d flagged")
	}
	if b, err := os.ReadFile(filepath.Join(dir, "d", "f")); err != nil || string(b) != "x" {
		t.Errorf("the file in the way changed: %q %v", b, err)
	}

	// UnpinTree frees whatever is left, so the tree can be removed.
	if err := s.PinMountPoints(id, []string{"p/q/r", "p/s"}); err != nil {
		t.Fatal(err)
	}
	if err := UnpinTree(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Errorf("remove after UnpinTree: %v", err)
	}
}
