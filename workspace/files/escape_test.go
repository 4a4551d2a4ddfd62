package files

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/workspace/files/filestest"
)

const (
	secretToken  = filestest.Secret
	outsiderName = filestest.OutsiderName
)

// hostileFixture is a workspace planted by filestest.Plant, with the secret
// directory next to it.
type hostileFixture struct {
	base, ws, outside string
	names             []string
}

func plantHostile(t *testing.T) *hostileFixture {
	t.Helper()
	base := t.TempDir()
	fx := &hostileFixture{base: base, ws: filepath.Join(base, "data", "ws"), outside: filepath.Join(base, "outside")}
	fx.names = filestest.Plant(t, fx.ws, fx.outside)
	return fx
}

// snapshot records everything under base except the workspace.
func (fx *hostileFixture) snapshot(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(fx.base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == filepath.Join(fx.base, "data", "ws") {
			return filepath.SkipDir
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %v %d\n", p, info.Mode(), info.Size())
		if info.Mode().IsRegular() {
			c, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b.Write(c)
			b.WriteByte('\n')
		}
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot outside the workspace: %v", err)
	}
	return b.String()
}

// guarded runs fn and fails the test if it returned an Internal error or
// leaked the secret. fn runs on the test's goroutine with the test's
// deadline (testctx): a hang fails the test with fn's error while its
// cleanups still remove the tree, and a slow machine never fails it (a
// wall-clock guard once gave up on deleting the 10,000-deep tree while
// the delete went on, racing the temp dir's removal).
func guarded(t *testing.T, what string, fn func(ctx context.Context) (string, error)) {
	t.Helper()
	out, err := fn(testctx.Context(t))
	if err != nil && berth.KindOf(err) == berth.Internal {
		t.Errorf("%s: internal error: %v", what, err)
	}
	if strings.Contains(out, secretToken) || strings.Contains(out, outsiderName) {
		t.Errorf("%s: returned data from outside the workspace", what)
	}
}

func TestEscape(t *testing.T) {
	fx := plantHostile(t)
	before := fx.snapshot(t)
	w, err := Open(fx.ws, Options{UsageDebounce: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeWS(t, w) })
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
	sawLast := make(chan struct{}) // the watch reported /h/last, written last
	go func() {
		last := sawLast
		for e := range events {
			seen = append(seen, e)
			if e.Path == "/h/last" && last != nil {
				close(last)
				last = nil
			}
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
				b, err := io.ReadAll(f)
				return string(b), errors.Join(err, f.Close())
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
	if err := os.WriteFile(filepath.Join(fx.outside, outsiderName+"-late"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(fx.outside, outsiderName+"-late")); err != nil {
		t.Fatal(err)
	}
	// /h/last is written after the outside change: once the watch reports
	// it, it has had every chance to report the outside change too.
	mustWrite(t, w, "/h/last", "x")
	select {
	case <-sawLast:
	case <-testctx.Context(t).Done():
		t.Fatal("the watch never reported /h/last")
	}
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

// closeWS closes w at the end of a test, failing it if that fails.
func closeWS(t *testing.T, w *Workspace) {
	if err := w.Close(); err != nil {
		t.Errorf("close workspace: %v", err)
	}
}

// TestEscapeOpenErrors pins the kinds returned for hostile reads.
func TestEscapeOpenErrors(t *testing.T) {
	fx := plantHostile(t)
	w, err := Open(fx.ws, Options{NoUsageWatch: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeWS(t, w) })
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
