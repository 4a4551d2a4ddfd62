package files

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/workspace/files/filestest"
)

func listAll(t *testing.T, w *Workspace, p string) []string {
	t.Helper()
	page, err := w.List(context.Background(), p, ListOptions{ShowHidden: true, Limit: MaxListLimit})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range page.Entries {
		out = append(out, e.Name)
	}
	return out
}

// TestReservedNames: the API never creates a name that could be taken for
// one of berth's temporary entries, in any spelling.
func TestReservedNames(t *testing.T) {
	w, dir := newWS(t, Options{})
	ctx := context.Background()
	mustWrite(t, w, "/f.txt", "x")
	if err := os.Mkdir(filepath.Join(dir, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A sandbox may make such names itself; moving or copying them keeps
	// the name, so that is refused too.
	if err := os.WriteFile(filepath.Join(dir, ".berth-tmp-sandbox"), []byte("s"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := filestest.OnDisk(t, dir)

	reservedSpellings := []string{
		".berth-tmp-x",
		".berth-tmp-0123456789abcdef", // berth's own exact form
		".berth-tmp-",
		".BERTH-TMP-x",       // case-insensitive (casefold) directories
		".Berth-Tmp-x",       //
		".berth-tmp-\uf7ff",  // raw byte 0xff after the prefix (escaped form)
		".berth\u00ad-tmp-x", // soft hyphen: default-ignorable
		".berth\u200d-tmp-x", // zero-width joiner
		"\uff0eberth-tmp-x",  // fullwidth full stop: compatibility form
		".ｂｅｒｔｈ－ｔｍｐ－x",       // fullwidth letters and hyphen
		".berth-tmp-x\u0301", // a combining mark after the prefix
	}
	for _, name := range reservedSpellings {
		t.Run(name, func(t *testing.T) {
			_, err := w.Write(ctx, "/"+name, strings.NewReader("q"), WriteOptions{})
			wantKind(t, err, berth.Invalid)
			_, err = w.Write(ctx, "/new/"+name+"/f", strings.NewReader("q"), WriteOptions{MakeParents: true})
			wantKind(t, err, berth.Invalid)
			_, err = w.Create(ctx, "/", name, TypeFile, strings.NewReader("q"))
			wantKind(t, err, berth.Invalid)
			_, err = w.Create(ctx, "/", name, TypeDirectory, nil)
			wantKind(t, err, berth.Invalid)
			_, err = w.Rename(ctx, "/f.txt", name, false)
			wantKind(t, err, berth.Invalid)
		})
	}
	// An escape of an ASCII byte is not canonical: refused before anything
	// else, so "\uf72e" (an escaped '.') cannot spell the prefix either.
	_, err := w.Create(ctx, "/", "\uf72eberth-tmp-x", TypeFile, nil)
	wantKind(t, err, berth.Invalid)
	_, err = w.Move(ctx, "/.berth-tmp-sandbox", "/d", false)
	wantKind(t, err, berth.Invalid)
	_, err = w.Copy(ctx, "/.berth-tmp-sandbox", "/d", false)
	wantKind(t, err, berth.Invalid)
	res, err := w.Batch(ctx, OpCopy, []string{"/.berth-tmp-sandbox"}, "/d", false)
	if err != nil || berth.KindOf(res[0].Err) != berth.Invalid {
		t.Fatalf("batch copy: %v %+v", err, res)
	}
	if after := filestest.OnDisk(t, dir); !slices.Equal(after, before) {
		t.Fatalf("refused operations changed the tree:\nbefore %q\nafter  %q", before, after)
	}

	// Near misses are ordinary names; and a sandbox's look-alike can be
	// renamed to a normal name or deleted.
	for _, name := range []string{".berth-tmpx", "berth-tmp-x", ".berth-tmp", "x.berth-tmp-"} {
		if _, err := w.Create(ctx, "/", name, TypeFile, nil); err != nil {
			t.Errorf("create %q: %v", name, err)
		}
	}
	if _, err := w.Rename(ctx, "/.berth-tmp-sandbox", "rescued", false); err != nil {
		t.Fatal(err)
	}
	if err := w.Delete(ctx, "/rescued"); err != nil {
		t.Fatal(err)
	}
}

// TestUsageCountsSandboxTempNames: a sandbox's file named like a temporary
// file takes space like any other: counted, and listed.
func TestUsageCountsSandboxTempNames(t *testing.T) {
	w, dir := newWS(t, Options{QuotaBytes: 15000})
	ctx := context.Background()
	if err := os.WriteFile(filepath.Join(dir, ".berth-tmp-big"), make([]byte, 10000), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, ".berth-tmp-dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".berth-tmp-dir", "f"), make([]byte, 3000), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := w.Usage().Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := w.Info(ctx).Used; got != 13000 {
		t.Fatalf("used %d, want 13000", got)
	}
	if got := listAll(t, w, "/"); !slices.Equal(got, []string{".berth-tmp-big", ".berth-tmp-dir"}) {
		t.Fatalf("listing %q", got)
	}
	// The quota sees them: 13000 of 15000 used.
	_, err := w.Write(ctx, "/more", strings.NewReader(strings.Repeat("m", 3000)), WriteOptions{})
	wantKind(t, err, berth.QuotaExceeded)
}

// TestInFlightTempNotCounted: a write in flight holds its bytes in its
// reservation; a scan meanwhile neither counts its temporary file again nor
// lists it, and another Workspace opened on the same directory (which
// sweeps stale temporary files) leaves it alone.
func TestInFlightTempNotCounted(t *testing.T) {
	// No background scans: the numbers below are the test's own scans'.
	w, dir := newWS(t, Options{NoUsageWatch: true})
	ctx := context.Background()
	if err := w.Usage().Wait(ctx); err != nil {
		t.Fatal(err)
	}
	s, err := w.Stage(ctx, "/staged", strings.NewReader(strings.Repeat("s", 4000)), WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Usage().Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := w.Info(ctx).Used; got != 0 {
		t.Fatalf("used %d during the write, want 0 (+4000 reserved)", got)
	}
	if got := listAll(t, w, "/"); len(got) != 0 {
		t.Fatalf("listing shows %q", got)
	}
	w2, err := Open(dir, Options{NoUsageWatch: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := w2.Usage().Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w2.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(); err != nil {
		t.Fatalf("commit after another Open: %v", err)
	}
	if got := w.Info(ctx).Used; got != 4000 {
		t.Fatalf("used %d after commit, want 4000", got)
	}
	assertNoTemp(t, w)
}

// TestSweepStaleTemps: a crash mid-write leaves temporary entries that no
// one owns; the next Open removes them, and usage does not count them.
func TestSweepStaleTemps(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "ws")
	stale := []string{
		".berth-tmp-0123456789abcdef",         // an upload cut short
		"sub/.berth-tmp-fedcba9876543210/a/b", // a copy of a tree cut short
	}
	for _, p := range stale {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), make([]byte, 5000), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "sub", "real"), make([]byte, 7), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := Open(dir, Options{NoUsageWatch: true})
	if err != nil {
		t.Fatal(err)
	}
	defer closeWS(t, w)
	if err := w.Usage().Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := filestest.OnDisk(t, dir); !slices.Equal(got, []string{"sub", "sub/real"}) {
		t.Fatalf("after Open: %q", got)
	}
	if got := w.Usage().Used(); got != 7 {
		t.Fatalf("used %d, want 7", got)
	}
}

// TestSparseFileUsage: usage counts what the disk holds, so a huge sparse
// file does not use up the quota; the summary shows both figures.
func TestSparseFileUsage(t *testing.T) {
	w, dir := newWS(t, Options{QuotaBytes: 1 << 20})
	ctx := context.Background()
	f, err := os.Create(filepath.Join(dir, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("head")); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 40); err != nil {
		t.Skipf("no 1 TiB sparse file here: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Usage().Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := w.Info(ctx).Used; got > 64<<10 {
		t.Fatalf("used %d for a sparse file holding one block", got)
	}
	if _, err := w.Write(ctx, "/after", strings.NewReader(strings.Repeat("a", 100<<10)), WriteOptions{}); err != nil {
		t.Fatalf("write next to a sparse file: %v", err)
	}
	sum, err := w.DirSummary(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	if sum.Size != 1<<40+100<<10 || sum.Allocated >= 1<<20 || sum.Allocated < 100<<10 {
		t.Fatalf("summary size %d allocated %d", sum.Size, sum.Allocated)
	}
	fs, err := w.DirSummary(ctx, "/sparse")
	if err != nil {
		t.Fatal(err)
	}
	if fs.Size != 1<<40 || fs.Allocated > 64<<10 {
		t.Fatalf("file summary size %d allocated %d", fs.Size, fs.Allocated)
	}

	// Copies stay sparse: a copy does not turn the holes into a terabyte
	// of zeros (which the quota would refuse, or the disk not hold).
	if _, err := w.Create(ctx, "/", "d", TypeDirectory, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Copy(ctx, "/sparse", "/d", false); err != nil {
		t.Fatalf("copy of the sparse file: %v", err)
	}
	if _, err := w.Create(ctx, "/", "e", TypeDirectory, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Copy(ctx, "/d", "/e", false); err != nil {
		t.Fatalf("copy of a directory holding a sparse file: %v", err)
	}
	for _, p := range []string{"/d/sparse", "/e/d/sparse"} {
		cs, err := w.DirSummary(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if cs.Size != 1<<40 || cs.Allocated > 64<<10 {
			t.Fatalf("copy %s: size %d allocated %d", p, cs.Size, cs.Allocated)
		}
		f, err := w.Open(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		head := make([]byte, 8)
		_, err = f.ReadAt(head, 0)
		_ = f.Close() // read-only: nothing to lose
		if err != nil || string(head) != "head\x00\x00\x00\x00" {
			t.Fatalf("copy %s starts %q (%v)", p, head, err)
		}
	}
	if got := w.Info(ctx).Used; got > 1<<20 {
		t.Fatalf("used %d after copying sparse files", got)
	}
}

// TestHardLinksCountedOnce: a file linked many times takes its space once;
// a dense file counts in full.
func TestHardLinksCountedOnce(t *testing.T) {
	w, dir := newWS(t, Options{QuotaBytes: 300000})
	ctx := context.Background()
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, 200000), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "links"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := os.Link(big, filepath.Join(dir, "links", strings.Repeat("l", i+1))); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Usage().Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := w.Info(ctx).Used; got != 200000 {
		t.Fatalf("used %d, want 200000 (one dense file, linked 101 times)", got)
	}
	sum, err := w.DirSummary(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	if sum.Size != 200000 || sum.Count != 102 {
		t.Fatalf("summary %+v", sum)
	}
	if _, err := w.Write(ctx, "/small", strings.NewReader(strings.Repeat("s", 50000)), WriteOptions{}); err != nil {
		t.Fatalf("write under the quota: %v", err)
	}
	_, err = w.Write(ctx, "/toomuch", strings.NewReader(strings.Repeat("s", 60000)), WriteOptions{})
	wantKind(t, err, berth.QuotaExceeded)
	// Deleting one link frees nothing.
	if err := w.Delete(ctx, "/links/l"); err != nil {
		t.Fatal(err)
	}
	if err := w.Usage().Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := w.Usage().Used(); got != 250000 {
		t.Fatalf("used %d after deleting one link, want 250000", got)
	}
}

// TestStageAbortLeavesNothing: a staged write that is aborted (a request
// that failed later) leaves no file, no temporary file and none of the
// directories it created, and gives back its quota.
func TestStageAbortLeavesNothing(t *testing.T) {
	w, dir := newWS(t, Options{QuotaBytes: 10000})
	ctx := context.Background()
	mustWrite(t, w, "/keep/old", "old")
	before := filestest.OnDisk(t, dir)
	s1, err := w.Stage(ctx, "/keep/old", strings.NewReader(strings.Repeat("1", 4000)), WriteOptions{MakeParents: true})
	if err != nil {
		t.Fatal(err)
	}
	s2, err := w.Stage(ctx, "/n1/n2/n3/f", strings.NewReader(strings.Repeat("2", 4000)), WriteOptions{MakeParents: true})
	if err != nil {
		t.Fatal(err)
	}
	// Together past the quota: the third fails while the others are held.
	_, err = w.Stage(ctx, "/keep/n4/g", strings.NewReader(strings.Repeat("3", 4000)), WriteOptions{MakeParents: true})
	wantKind(t, err, berth.QuotaExceeded)
	for _, s := range []*Staged{s2, s1} {
		if err := s.Abort(); err != nil {
			t.Fatal(err)
		}
	}
	if after := filestest.OnDisk(t, dir); !slices.Equal(after, before) {
		t.Fatalf("aborted writes left:\nbefore %q\nafter  %q", before, after)
	}
	if readAll(t, w, "/keep/old") != "old" {
		t.Fatal("old contents lost")
	}
	if _, err := w.Write(ctx, "/keep/new", strings.NewReader(strings.Repeat("n", 9000)), WriteOptions{}); err != nil {
		t.Fatalf("quota not given back: %v", err)
	}
}

// TestUsageSeesSandboxRenameFromTempName: a sandbox that writes under a
// name of berth's temporary form and renames it into place looks, to the
// watch, like one of berth's own commits; usage must still count it (not
// wait for the TTL), since berth announced no such commit.
func TestUsageSeesSandboxRenameFromTempName(t *testing.T) {
	w, dir := newWS(t, Options{})
	ctx := context.Background()
	if err := w.Usage().Wait(ctx); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, w, "/api", "12345") // an announced commit: no rescan needed
	tmp := filepath.Join(dir, ".berth-tmp-0123456789abcdef")
	if err := os.WriteFile(tmp, make([]byte, 5000), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "big")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return w.Usage().Used() == 5005 })
}
