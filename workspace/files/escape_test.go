package files

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth"
)

const (
	secretToken  = "TOPSECRET-7f3a"
	outsiderName = "outsider-9b2c"
	deepLevels   = 10000
)

// hostile plants, in ws/h/, every kind of object a sandbox could leave to trick
// the server, next to a secret outside the workspace. It returns the
// workspace directory and the names planted.
type hostileFixture struct {
	base, ws, outside string
	names             []string
}

func plantHostile(t *testing.T) *hostileFixture {
	t.Helper()
	base := t.TempDir()
	fx := &hostileFixture{base: base, ws: filepath.Join(base, "data", "ws"), outside: filepath.Join(base, "outside")}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(fx.outside, 0o755))
	must(os.WriteFile(filepath.Join(fx.outside, "secret.txt"), []byte(secretToken), 0o644))
	must(os.WriteFile(filepath.Join(fx.outside, outsiderName), []byte(secretToken), 0o644))
	h := filepath.Join(fx.ws, "h")
	must(os.MkdirAll(h, 0o755))
	add := func(name string, err error) {
		t.Helper()
		must(err)
		fx.names = append(fx.names, name)
	}
	add("abs-link", os.Symlink(filepath.Join(fx.outside, "secret.txt"), filepath.Join(h, "abs-link")))
	add("rel-link", os.Symlink("../../../outside/secret.txt", filepath.Join(h, "rel-link")))
	add("abs-dir-link", os.Symlink(fx.outside, filepath.Join(h, "abs-dir-link")))
	add("rel-dir-link", os.Symlink("../../../outside", filepath.Join(h, "rel-dir-link")))
	add("root-link", os.Symlink("/", filepath.Join(h, "root-link")))
	add("loop-a", os.Symlink("loop-b", filepath.Join(h, "loop-a")))
	add("loop-b", os.Symlink("loop-a", filepath.Join(h, "loop-b")))
	add("self-link", os.Symlink("self-link", filepath.Join(h, "self-link")))
	add("dot-link", os.Symlink(".", filepath.Join(h, "dot-link")))
	add("fifo", unix.Mkfifo(filepath.Join(h, "fifo"), 0o644))
	l, err := net.Listen("unix", filepath.Join(h, "sock"))
	add("sock", err)
	t.Cleanup(func() { l.Close() })
	if err := unix.Mknod(filepath.Join(h, "dev"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err == nil {
		fx.names = append(fx.names, "dev")
	} else {
		t.Logf("mknod not permitted (%v): no device node", err)
	}
	long := strings.Repeat("L", 255)
	add(long, os.WriteFile(filepath.Join(h, long), []byte("long"), 0o644))
	add("new\nline", os.WriteFile(filepath.Join(h, "new\nline"), []byte("nl"), 0o644))
	add("bad\xff\xfeutf8", os.WriteFile(filepath.Join(h, "bad\xff\xfeutf8"), []byte("bad"), 0o644))
	add(`back\..\..\slash`, os.WriteFile(filepath.Join(h, `back\..\..\slash`), []byte("bs"), 0o644))
	add("deep", mkDeep(filepath.Join(h, "deep"), deepLevels))
	return fx
}

// mkDeep makes a chain of n directories "d" below dir, with a file at the
// bottom, using *at calls since the full path is far beyond PATH_MAX.
func mkDeep(dir string, n int) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY, 0)
	if err != nil {
		return err
	}
	for range n {
		if err := unix.Mkdirat(fd, "d", 0o755); err != nil {
			unix.Close(fd)
			return err
		}
		next, err := unix.Openat(fd, "d", unix.O_DIRECTORY|unix.O_RDONLY, 0)
		unix.Close(fd)
		if err != nil {
			return err
		}
		fd = next
	}
	defer unix.Close(fd)
	ffd, err := unix.Openat(fd, "bottom", unix.O_CREAT|unix.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	unix.Write(ffd, []byte("bottom"))
	return unix.Close(ffd)
}

// snapshot records everything under base except the workspace.
func (fx *hostileFixture) snapshot(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	filepath.WalkDir(fx.base, func(p string, d fs.DirEntry, err error) error {
		if p == filepath.Join(fx.base, "data", "ws") {
			return filepath.SkipDir
		}
		info, _ := os.Lstat(p)
		fmt.Fprintf(&b, "%s %v %d\n", p, info.Mode(), info.Size())
		if info.Mode().IsRegular() {
			c, _ := os.ReadFile(p)
			b.Write(c)
			b.WriteByte('\n')
		}
		return nil
	})
	return b.String()
}

// guarded runs fn with a deadline and fails the test if it does not return
// in time (a hang) or if it returned an Internal error or leaked the secret.
func guarded(t *testing.T, what string, fn func(ctx context.Context) (string, error)) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := fn(ctx)
		done <- result{out, err}
	}()
	select {
	case r := <-done:
		if r.err != nil && berth.KindOf(r.err) == berth.Internal {
			t.Errorf("%s: internal error: %v", what, r.err)
		}
		if strings.Contains(r.out, secretToken) || strings.Contains(r.out, outsiderName) {
			t.Errorf("%s: returned data from outside the workspace", what)
		}
		return r.err
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: hung", what)
		return nil
	}
}

func TestEscape(t *testing.T) {
	fx := plantHostile(t)
	before := fx.snapshot(t)
	w, err := Open(fx.ws, Options{UsageDebounce: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx := context.Background()
	if _, err := w.Create(ctx, "/", "dst", TypeDirectory, nil); err != nil {
		t.Fatal(err)
	}

	// Watch the hostile directory throughout: no event may name anything outside.
	wctx, wcancel := context.WithCancel(ctx)
	events, err := w.Watch(wctx, "/h")
	if err != nil {
		t.Fatal(err)
	}
	var seen []Event
	watchDone := make(chan struct{})
	go func() {
		for e := range events {
			seen = append(seen, e)
		}
		close(watchDone)
	}()

	entryDump := func(es ...Entry) string { return fmt.Sprintf("%+v", es) }
	archive := func(p, format string) func(ctx context.Context) (string, error) {
		return func(ctx context.Context) (string, error) {
			var buf bytes.Buffer
			err := w.Archive(ctx, p, &buf, format)
			return buf.String(), err
		}
	}
	// Whole-directory operations first, with everything in place.
	guarded(t, "summary /h", func(ctx context.Context) (string, error) {
		s, err := w.DirSummary(ctx, "/h")
		if err == nil && !s.Truncated {
			t.Error("summary of the deep tree not marked truncated")
		}
		return fmt.Sprint(s), err
	})
	guarded(t, "list /h", func(ctx context.Context) (string, error) {
		p, err := w.List(ctx, "/h", ListOptions{ShowHidden: true, Limit: 500})
		if err == nil && len(p.Entries) != len(fx.names) {
			t.Errorf("listed %d entries, planted %d", len(p.Entries), len(fx.names))
		}
		return entryDump(p.Entries...), err
	})
	guarded(t, "usage", func(ctx context.Context) (string, error) { return "", w.Usage().Refresh(ctx) })
	guarded(t, "zip /h", archive("/h", FormatZip))
	guarded(t, "tgz /h", archive("/h", FormatTarGz))
	guarded(t, "zip /", archive("/", FormatZip))
	guarded(t, "copy /h", func(ctx context.Context) (string, error) {
		e, err := w.Copy(ctx, "/h", "/dst", false)
		wantKind(t, err, berth.Invalid) // the 10,000-deep tree is past MaxDepth
		return entryDump(e), nil
	})

	for _, name := range fx.names {
		p := "/h/" + EncodeName(name)
		t.Run(strings.ReplaceAll(EncodeName(name), "\n", `\n`)[:min(len(EncodeName(name)), 20)], func(t *testing.T) {
			guarded(t, "stat", func(ctx context.Context) (string, error) {
				e, err := w.Stat(ctx, p)
				if err == nil && e.ID != p {
					t.Errorf("id %q, want %q", e.ID, p)
				}
				return entryDump(e), err
			})
			guarded(t, "summary", func(ctx context.Context) (string, error) {
				s, err := w.DirSummary(ctx, p)
				return fmt.Sprint(s), err
			})
			guarded(t, "list", func(ctx context.Context) (string, error) {
				pg, err := w.List(ctx, p, ListOptions{ShowHidden: true})
				return entryDump(pg.Entries...), err
			})
			guarded(t, "open", func(ctx context.Context) (string, error) {
				f, err := w.Open(ctx, p)
				if err != nil {
					return "", err
				}
				defer f.Close()
				b, err := io.ReadAll(f)
				return string(b), err
			})
			guarded(t, "zip", archive(p, FormatZip))
			guarded(t, "tgz", archive(p, FormatTarGz))
			guarded(t, "copy", func(ctx context.Context) (string, error) {
				e, err := w.Copy(ctx, p, "/dst", true)
				return entryDump(e), err
			})
			guarded(t, "create inside", func(ctx context.Context) (string, error) {
				e, err := w.Create(ctx, p, "planted", TypeFile, strings.NewReader("x"))
				return entryDump(e), err
			})
			guarded(t, "write inside", func(ctx context.Context) (string, error) {
				e, err := w.Write(ctx, p+"/planted2", strings.NewReader("x"), WriteOptions{MakeParents: true})
				return entryDump(e), err
			})
			guarded(t, "write through", func(ctx context.Context) (string, error) {
				e, err := w.Write(ctx, p+"/secret.txt", strings.NewReader("overwritten"), WriteOptions{})
				return entryDump(e), err
			})
			guarded(t, "move out and back", func(ctx context.Context) (string, error) {
				if _, err := w.Move(ctx, p, "/", false); err != nil {
					return "", err
				}
				e, err := w.Move(ctx, "/"+EncodeName(name), "/h", false)
				return entryDump(e), err
			})
			guarded(t, "rename", func(ctx context.Context) (string, error) {
				if _, err := w.Rename(ctx, p, "renamed", false); err != nil {
					return "", err
				}
				e, err := w.Rename(ctx, "/h/renamed", EncodeName(name), false)
				return entryDump(e), err
			})
			guarded(t, "delete inside", func(ctx context.Context) (string, error) {
				return "", w.Delete(ctx, p+"/secret.txt")
			})
			guarded(t, "delete", func(ctx context.Context) (string, error) {
				err := w.Delete(ctx, p)
				if err != nil {
					t.Errorf("delete %q: %v", p, err)
				}
				return "", err
			})
			guarded(t, "write", func(ctx context.Context) (string, error) {
				e, err := w.Write(ctx, p, strings.NewReader("replaced"), WriteOptions{})
				return entryDump(e), err
			})
		})
	}

	// A change outside, through a directory symlink, must not be reported.
	os.WriteFile(filepath.Join(fx.outside, outsiderName+"-late"), []byte("x"), 0o644)
	os.Remove(filepath.Join(fx.outside, outsiderName+"-late"))
	mustWrite(t, w, "/h/last", "x")
	waitFor(t, func() bool {
		_, err := os.Stat(filepath.Join(fx.ws, "h", "last"))
		return err == nil
	})
	time.Sleep(100 * time.Millisecond)
	wcancel()
	<-watchDone
	for _, e := range seen {
		if strings.Contains(e.Path, outsiderName) {
			t.Errorf("watch reported an outside change: %+v", e)
		}
	}
	if len(seen) == 0 {
		t.Error("watch saw no events at all")
	}

	if after := fx.snapshot(t); after != before {
		t.Errorf("outside the workspace changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	assertNoTemp(t, w)
}

// TestEscapeOpenErrors pins the kinds returned for hostile reads.
func TestEscapeOpenErrors(t *testing.T) {
	fx := plantHostile(t)
	w, err := Open(fx.ws, Options{NoUsageWatch: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	want := map[string]berth.Kind{
		"abs-link": berth.Invalid, "rel-link": berth.Invalid, "loop-a": berth.Invalid,
		"fifo": berth.Invalid, "sock": berth.Invalid, "deep": berth.Invalid,
	}
	for name, kind := range want {
		_, err := w.Open(context.Background(), "/h/"+name)
		wantKind(t, err, kind)
	}
	got := []string{}
	for _, n := range fx.names {
		e, err := w.Stat(context.Background(), "/h/"+EncodeName(n))
		if err != nil {
			t.Fatalf("stat %q: %v", n, err)
		}
		got = append(got, e.Type)
	}
	sort.Strings(got)
	if got[len(got)-1] != TypeSymlink {
		t.Fatalf("types %v", got)
	}
	var st syscall.Stat_t
	if syscall.Stat(filepath.Join(fx.outside, "secret.txt"), &st) != nil {
		t.Fatal("secret gone")
	}
}
