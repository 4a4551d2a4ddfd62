package files

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-dev/berth"
)

func TestConcurrentWritesOneWins(t *testing.T) {
	w, _ := newWS(t, Options{NoUsageWatch: true})
	const writers, size = 8, 1 << 20
	inputs := make([]string, writers)
	for i := range inputs {
		inputs[i] = strings.Repeat(string(rune('a'+i)), size)
	}
	for round := range 5 {
		var wg sync.WaitGroup
		for i := range writers {
			wg.Go(func() {
				// Small reads interleave the writers as much as possible.
				r := io.LimitReader(&slowReader{s: inputs[i]}, size)
				if _, err := w.Write(context.Background(), "/shared", r, WriteOptions{}); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		got := readAll(t, w, "/shared")
		ok := false
		for _, in := range inputs {
			ok = ok || got == in
		}
		if !ok {
			t.Fatalf("round %d: final content is a mix (len %d)", round, len(got))
		}
	}
	assertNoTemp(t, w)
}

type slowReader struct {
	s   string
	off int
}

func (r *slowReader) Read(p []byte) (int, error) {
	if r.off >= len(r.s) {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 4096)], r.s[r.off:])
	r.off += n
	runtime.Gosched()
	return n, nil
}

type failingReader struct {
	n   int
	err error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, r.err
	}
	k := min(len(p), r.n)
	clear(p[:k])
	r.n -= k
	return k, nil
}

func TestFailedWriteKeepsOldFile(t *testing.T) {
	w, _ := newWS(t, Options{NoUsageWatch: true})
	mustWrite(t, w, "/f", "old")
	_, err := w.Write(context.Background(), "/f", &failingReader{n: 3 << 20, err: errors.New("connection reset")}, WriteOptions{})
	wantKind(t, err, berth.Invalid)
	ctx, cancel := context.WithCancel(context.Background())
	r := &cancelReader{n: 1 << 20, cancel: cancel}
	_, err = w.Write(ctx, "/f", r, WriteOptions{})
	wantKind(t, err, berth.Unavailable)
	if got := readAll(t, w, "/f"); got != "old" {
		t.Fatalf("old file replaced: %q", got)
	}
	assertNoTemp(t, w)
}

// cancelReader cancels its context (a client going away) half way through.
type cancelReader struct {
	n      int
	cancel func()
}

func (r *cancelReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		r.cancel()
	}
	k := min(len(p), 64<<10)
	r.n -= k
	return k, nil
}

// patternReader generates n bytes without holding them.
type patternReader struct{ n, off int64 }

func (r *patternReader) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, io.EOF
	}
	k := int(min(int64(len(p)), r.n-r.off))
	for i := range k {
		p[i] = byte((r.off + int64(i)) * 7)
	}
	r.off += int64(k)
	return k, nil
}

// TestStreamMemory writes and reads 1 GiB and checks the heap stays small.
func TestStreamMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("1 GiB of disk I/O")
	}
	const size = 1 << 30
	const bound = 32 << 20
	w, _ := newWS(t, Options{NoUsageWatch: true})
	runtime.GC()
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
	start := time.Now()
	if _, err := w.Write(context.Background(), "/big", &patternReader{n: size}, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	wrote := time.Since(start)
	f, err := w.Open(context.Background(), "/big")
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	n, err := io.Copy(io.Discard, f)
	_ = f.Close() // read-only: nothing to lose
	if err != nil || n != size {
		t.Fatal(n, err)
	}
	read := time.Since(start)
	close(stop)
	wg.Wait()
	t.Logf("1 GiB: write %v (%.0f MB/s), read %v (%.0f MB/s), peak HeapInuse %.1f MiB",
		wrote, size/wrote.Seconds()/1e6, read, size/read.Seconds()/1e6, float64(peak.Load())/(1<<20))
	if peak.Load() > bound {
		t.Fatalf("peak HeapInuse %d > %d", peak.Load(), bound)
	}
	if err := w.Delete(context.Background(), "/big"); err != nil {
		t.Error(err)
	}
}

func TestWatch(t *testing.T) {
	w, dir := newWS(t, Options{NoUsageWatch: true})
	ctx, cancel := context.WithCancel(context.Background())
	mustWrite(t, w, "/sub/keep", "x")
	mustWrite(t, w, "/d1/f", "x")
	ch, err := w.Watch(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, w, "/sub/api.txt", "v1") // API write: one "write"
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "sub", "direct.txt"), []byte("x"), 0o644)) // sandbox: create + write
	must(os.Mkdir(filepath.Join(dir, "newdir"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "newdir", "inner"), nil, 0o644)) // in a directory made after Watch
	must(os.Rename(filepath.Join(dir, "sub", "direct.txt"), filepath.Join(dir, "sub", "moved.txt")))
	must(os.Remove(filepath.Join(dir, "sub", "keep")))
	must(os.Rename(filepath.Join(dir, "d1"), filepath.Join(dir, "d2"))) // a watched directory moved:
	must(os.WriteFile(filepath.Join(dir, "d2", "after"), nil, 0o644))   // still watched, under its new name
	must(os.WriteFile(filepath.Join(dir, "zz-marker"), nil, 0o644))     // the last event: a barrier
	want := []string{
		"write /sub/api.txt", "create /sub/direct.txt", "write /sub/direct.txt", "create /newdir",
		"create /newdir/inner", "rename /sub/moved.txt", "remove /sub/keep",
		"create /d2/after",
	}
	var got []string
	for e := range ch {
		if e.Type == EventCreate && e.Path == "/zz-marker" {
			break
		}
		got = append(got, e.Type+" "+e.Path)
	}
	for _, wnt := range want {
		found := false
		for _, g := range got {
			found = found || g == wnt
		}
		if !found {
			t.Errorf("missing event %q in %q", wnt, got)
		}
	}
	// The move is one rename, unless the kernel's two halves of it came in
	// different reads: then it is a removal and a creation (rescanned).
	if !slices.Contains(got, "rename /d2") && !(slices.Contains(got, "remove /d1") && slices.Contains(got, "create /d2")) {
		t.Errorf("moved directory not reported as moved: %q", got)
	}
	cancel()
	for range ch { // must close
	}
	_, err = w.Watch(context.Background(), "/sub/api.txt")
	wantKind(t, err, berth.Invalid)
}

func TestWatchReleasesEverything(t *testing.T) {
	w, _ := newWS(t, Options{NoUsageWatch: true})
	mustWrite(t, w, "/a/b/c", "x")
	runtime.GC()
	goroutines, fds := runtime.NumGoroutine(), openFDs(t)
	for range 20 {
		ctx, cancel := context.WithCancel(context.Background())
		var chans []<-chan Event
		for range 3 {
			ch, err := w.Watch(ctx, "/a")
			if err != nil {
				t.Fatal(err)
			}
			chans = append(chans, ch)
		}
		cancel()
		for _, ch := range chans {
			for range ch {
			}
		}
	}
	waitFor(t, func() bool { return runtime.NumGoroutine() <= goroutines && openFDs(t) <= fds })
	w.hub.mu.Lock()
	running := w.hub.f != nil
	w.hub.mu.Unlock()
	if running {
		t.Fatal("inotify instance still open with no watchers")
	}
	// Close ends watches too.
	ch, err := w.Watch(context.Background(), "/")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case _, ok := <-ch:
		for ok {
			_, ok = <-ch
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the watch")
	}
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc")
	}
	return len(ents)
}

func TestWatchBoundedDirs(t *testing.T) {
	w, dir := newWS(t, Options{NoUsageWatch: true, MaxWatchDirs: 10})
	for i := range 50 {
		if err := os.MkdirAll(filepath.Join(dir, fmt.Sprintf("d%02d", i), "x"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := w.Watch(ctx, "/"); err != nil {
		t.Fatal(err)
	}
	w.hub.mu.Lock()
	n := len(w.hub.dirs)
	w.hub.mu.Unlock()
	if n != 10 {
		t.Fatalf("watching %d dirs, want 10", n)
	}
}

// A directory tree made in one quick burst (mkdir -p a/b/c && touch
// a/b/c/f) is reported completely: each new directory is watched first and
// then scanned, so entries made before its watch landed are not lost. A
// marker file made after each burst is the barrier: one inotify instance
// queues events in order, and the scans run while the event that triggered
// them is handled, so once the marker is reported everything before it is.
func TestWatchNewDirectoryBurst(t *testing.T) {
	w, dir := newWS(t, Options{NoUsageWatch: true})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := w.Watch(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	const rounds = 200
	missed := 0
	for i := range rounds {
		top := fmt.Sprintf("r%03d", i)
		if err := os.MkdirAll(filepath.Join(dir, top, "a", "b", "c"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, top, "a", "b", "c", "f"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, top+".done"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		want := map[string]bool{}
		for _, p := range []string{"", "/a", "/a/b", "/a/b/c", "/a/b/c/f"} {
			want["/"+top+p] = false
		}
		for done := false; !done; {
			e, ok := <-ch
			if !ok {
				t.Fatal("watch ended")
			}
			switch {
			case e.Type == EventOverflow:
				t.Fatalf("round %d: overflow", i)
			case e.Type == EventCreate && e.Path == "/"+top+".done":
				done = true
			case e.Type == EventCreate:
				if _, ok := want[e.Path]; ok {
					want[e.Path] = true
				}
			}
		}
		for p, seen := range want {
			if !seen {
				missed++
				t.Errorf("round %d: no create for %s", i, p)
			}
		}
		if missed > 20 {
			t.Fatalf("giving up after %d missed creates", missed)
		}
	}
}
