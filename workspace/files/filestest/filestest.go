// Package filestest plants in a workspace directory everything a hostile
// sandbox could leave there, next to a secret outside it. The escape suites
// of workspace/files and of the HTTP file API both drive their operations at
// this one fixture.
package filestest

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Secret is the content of the files planted outside the workspace; no
// answer may ever contain it.
const Secret = "TOPSECRET-7f3a"

// OutsiderName names a second secret file outside, so that a listing that
// wandered out would show it.
const OutsiderName = "outsider-9b2c"

// DeepLevels is the depth of the planted directory chain "deep/d/d/...".
const DeepLevels = 10000

// Plant writes secret.txt and OutsiderName into outside, then fills ws/h
// with absolute and relative symlinks to them and to outside itself, a link
// to /, symlink loops, a FIFO, a unix socket, a device node (when mknod is
// permitted), a 255-byte name, names with a newline, invalid UTF-8 and
// backslashes, and a DeepLevels-deep tree. It returns the names under ws/h.
func Plant(t testing.TB, ws, outside string) []string {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(outside, 0o755))
	must(os.WriteFile(filepath.Join(outside, "secret.txt"), []byte(Secret), 0o644))
	must(os.WriteFile(filepath.Join(outside, OutsiderName), []byte(Secret), 0o644))
	h := filepath.Join(ws, "h")
	must(os.MkdirAll(h, 0o755))
	rel, err := filepath.Rel(h, outside)
	must(err)
	var names []string
	add := func(name string, err error) {
		t.Helper()
		must(err)
		names = append(names, name)
	}
	add("abs-link", os.Symlink(filepath.Join(outside, "secret.txt"), filepath.Join(h, "abs-link")))
	add("rel-link", os.Symlink(filepath.Join(rel, "secret.txt"), filepath.Join(h, "rel-link")))
	add("abs-dir-link", os.Symlink(outside, filepath.Join(h, "abs-dir-link")))
	add("rel-dir-link", os.Symlink(rel, filepath.Join(h, "rel-dir-link")))
	add("root-link", os.Symlink("/", filepath.Join(h, "root-link")))
	add("loop-a", os.Symlink("loop-b", filepath.Join(h, "loop-a")))
	add("loop-b", os.Symlink("loop-a", filepath.Join(h, "loop-b")))
	add("self-link", os.Symlink("self-link", filepath.Join(h, "self-link")))
	add("dot-link", os.Symlink(".", filepath.Join(h, "dot-link")))
	add("fifo", unix.Mkfifo(filepath.Join(h, "fifo"), 0o644))
	l, err := net.Listen("unix", filepath.Join(h, "sock"))
	add("sock", err)
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("close the planted socket's listener: %v", err)
		}
	})
	if err := unix.Mknod(filepath.Join(h, "dev"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err == nil {
		names = append(names, "dev")
	} else {
		t.Logf("mknod not permitted (%v): no device node", err)
	}
	long := strings.Repeat("L", 255)
	add(long, os.WriteFile(filepath.Join(h, long), []byte("long"), 0o644))
	add("new\nline", os.WriteFile(filepath.Join(h, "new\nline"), []byte("nl"), 0o644))
	add("bad\xff\xfeutf8", os.WriteFile(filepath.Join(h, "bad\xff\xfeutf8"), []byte("bad"), 0o644))
	add(`back\..\..\slash`, os.WriteFile(filepath.Join(h, `back\..\..\slash`), []byte("bs"), 0o644))
	add("deep", MkDeep(filepath.Join(h, "deep"), DeepLevels))
	return names
}

// MkDeep makes a chain of n directories "d" below dir, with a file "bottom"
// at the end, using *at calls since the full path is far beyond PATH_MAX.
func MkDeep(dir string, n int) (err error) {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY, 0)
	if err != nil {
		return err
	}
	// Closing a directory opened read-only loses nothing; its error is
	// still reported, after any earlier one.
	defer func() { err = errors.Join(err, unix.Close(fd)) }()
	for range n {
		if err := unix.Mkdirat(fd, "d", 0o755); err != nil {
			return err
		}
		next, err := unix.Openat(fd, "d", unix.O_DIRECTORY|unix.O_RDONLY, 0)
		if err != nil {
			return err
		}
		if err := unix.Close(fd); err != nil {
			_ = unix.Close(next) // the error above is the one to report
			return err
		}
		fd = next
	}
	ffd, err := unix.Openat(fd, "bottom", unix.O_CREAT|unix.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, werr := unix.Write(ffd, []byte("bottom"))
	return errors.Join(werr, unix.Close(ffd))
}

// OnDisk lists every name below dir, relative and sorted, berth's temporary
// files included: what a failed operation may have left behind.
func OnDisk(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}
