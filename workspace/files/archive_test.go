package files

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// linkFixture plants, under /t, symlinks whose lexical reading stays inside
// /t but whose resolution, hop by hop through other links, "." and "..",
// does not; and links that are fine, one of which only resolves through
// another link. It returns what a /t archive must hold for each kept link.
func linkFixture(t *testing.T, w *Workspace, dir string) map[string]string {
	t.Helper()
	mustWrite(t, w, "/t/sub/file.txt", "inside")
	mustWrite(t, w, "/t/d1/d2/keep", "x")
	mustWrite(t, w, "/secret", "outside the archived tree")
	links := [][2]string{
		{"t/sub/up", ".."},                 // → t: kept
		{"t/d1/d2/up2", "../.."},           // → t: kept
		{"t/b", "sub/up/.."},               // lexically t/sub; really the workspace root
		{"t/a", "b/.."},                    // lexically t; really above the workspace
		{"t/c", "./a/./x"},                 // through a: above the workspace
		{"t/esc", "d1/d2/up2/./../.."},     // lexically t/d1; really above the workspace
		{"t/chain", "sub/up/d1/d2/up2/.."}, // lexically t/sub/d1; really the workspace root
		{"t/l1", "l2"},                     // loop
		{"t/l2", "./l1"},
		{"t/abs", "/etc"},
		{"t/outws", "../secret"},
		{"t/dot", "./././."},                 // t itself: kept as "."
		{"t/dang", "nothere/x"},              // dangling below t: kept
		{"t/dang2", "nothere/../../secret"},  // dangling, then up: left out
		{"t/sub/via", "up/sub/./file.txt"},   // through up: rewritten to file.txt
		{"t/sub/deep", "../d1/d2/up2/d1/d2"}, // through up2: rewritten
	}
	for _, l := range links {
		if err := os.Symlink(l[1], filepath.Join(dir, l[0])); err != nil {
			t.Fatal(err)
		}
	}
	return map[string]string{
		"t/sub/up":    "..",
		"t/d1/d2/up2": "../..",
		"t/dot":       ".",
		"t/dang":      "nothere/x",
		"t/sub/via":   "file.txt",
		"t/sub/deep":  "../d1/d2",
	}
}

// archiveLinks lists an archive's symlink entries (name → target) and all
// its names.
func archiveLinks(t *testing.T, data []byte, format string) (links map[string]string, names []string) {
	t.Helper()
	links = map[string]string{}
	if format == FormatZip {
		zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range zr.File {
			names = append(names, f.Name)
			if f.Mode()&fs.ModeSymlink != 0 {
				rc, err := f.Open()
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(rc)
				_ = rc.Close() // a reader: ReadAll reported any error
				if err != nil {
					t.Fatal(err)
				}
				links[f.Name] = string(b)
			}
		}
		return links, names
	}
	gz, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return links, names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.Typeflag == tar.TypeSymlink {
			links[h.Name] = h.Linkname
		}
	}
}

// TestArchiveLinkChains is the regression test for links that escaped
// through chains of links, "." and "..": an archive keeps only links whose
// final target is inside the archived directory, rewritten to it, and no
// extractor (Go's readers driving a naive extractor that follows links, GNU
// tar, Info-ZIP unzip) then finds a path leading outside its directory.
func TestArchiveLinkChains(t *testing.T) {
	w, dir := newWS(t, Options{NoUsageWatch: true})
	want := linkFixture(t, w, dir)
	ctx := context.Background()
	for _, format := range []string{FormatZip, FormatTarGz} {
		for _, p := range []string{"/t", "/"} {
			t.Run(format+p, func(t *testing.T) {
				var buf bytes.Buffer
				if err := w.Archive(ctx, p, &buf, format); err != nil {
					t.Fatal(err)
				}
				links, _ := archiveLinks(t, buf.Bytes(), format)
				if p == "/t" && !maps.Equal(links, want) {
					t.Errorf("links\n got %q\nwant %q", links, want)
				}
				ext := "." + format
				extractGo(t, buf.Bytes(), format)
				if bin := map[string]string{FormatZip: "unzip", FormatTarGz: "tar"}[format]; haveTool(bin) {
					extractTool(t, buf.Bytes(), ext)
				} else {
					t.Logf("%s not installed: only Go's extraction checked", bin)
				}
			})
		}
	}
}

func haveTool(name string) bool { _, err := exec.LookPath(name); return err == nil }

// extractionDirs makes outer/x (the extraction directory) and a sentinel
// file next to it that links must not reach.
func extractionDirs(t *testing.T) (outer, x string) {
	outer = t.TempDir()
	x = filepath.Join(outer, "x")
	if err := os.Mkdir(x, 0o755); err != nil {
		t.Fatal(err)
	}
	return outer, x
}

// extractGo extracts like a naive tool would: parents made with MkdirAll
// and files created by path, both following any link already extracted.
func extractGo(t *testing.T, data []byte, format string) {
	t.Helper()
	outer, x := extractionDirs(t)
	put := func(name string, mode fs.FileMode, linkTarget string, r io.Reader) {
		if filepath.IsAbs(name) || slices.Contains(strings.Split(name, "/"), "..") {
			t.Fatalf("entry name %q leaves the extraction directory", name)
		}
		p := filepath.Join(x, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		switch {
		case mode.IsDir():
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case mode&fs.ModeSymlink != 0:
			if err := os.Symlink(linkTarget, p); err != nil {
				t.Fatal(err)
			}
		default:
			f, err := os.Create(p)
			if err != nil {
				t.Fatal(err)
			}
			_, err = io.Copy(f, r)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if format == FormatZip {
		zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range zr.File {
			rc, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			var target string
			if f.Mode()&fs.ModeSymlink != 0 {
				b, _ := io.ReadAll(rc)
				target = string(b)
			}
			put(strings.TrimSuffix(f.Name, "/"), f.Mode(), target, rc)
			_ = rc.Close() // a reader: put reported any read error
		}
	} else {
		gz, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(gz)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			put(strings.TrimSuffix(h.Name, "/"), h.FileInfo().Mode(), h.Linkname, tr)
		}
	}
	checkConfined(t, outer, x)
}

func extractTool(t *testing.T, data []byte, ext string) {
	t.Helper()
	outer, x := extractionDirs(t)
	arch := filepath.Join(t.TempDir(), "a"+ext)
	if err := os.WriteFile(arch, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var cmd *exec.Cmd
	if ext == ".zip" {
		cmd = exec.Command("unzip", "-q", arch, "-d", x)
	} else {
		cmd = exec.Command("tar", "xzf", arch, "-C", x)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
	}
	checkConfined(t, outer, x)
}

// checkConfined fails if anything resolves outside x or was put next to it.
func checkConfined(t *testing.T, outer, x string) {
	t.Helper()
	if es, err := os.ReadDir(outer); err != nil || len(es) != 1 {
		t.Fatalf("extraction wrote next to its directory: %v %v", es, err)
	}
	err := filepath.WalkDir(x, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			return nil // dangling or a loop: leads nowhere
		}
		if real != x && !strings.HasPrefix(real, x+"/") {
			t.Errorf("%s leads to %s, outside %s", strings.TrimPrefix(p, x+"/"), real, x)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestArchiveZipAllocations is the regression test for a new compressor per
// zip entry (hundreds of KiB each): archiving many small files must
// allocate a small constant per entry. Measured in bytes allocated, not time.
func TestArchiveZipAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	w, dir := newWS(t, Options{NoUsageWatch: true})
	const n = 2000
	mkEntries(t, filepath.Join(dir, "many"), n, 20, []byte("x"))
	ctx := context.Background()
	for _, format := range []string{FormatZip, FormatTarGz} {
		t.Run(format, func(t *testing.T) {
			// One run first: pools filled, lazily built tables done.
			if err := w.Archive(ctx, "/many", io.Discard, format); err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			if err := w.Archive(ctx, "/many", io.Discard, format); err != nil {
				t.Fatal(err)
			}
			runtime.ReadMemStats(&after)
			perEntry := (after.TotalAlloc - before.TotalAlloc) / n
			t.Logf("%s: %d bytes allocated per entry", format, perEntry)
			if perEntry > 8<<10 {
				t.Errorf("%s allocates %d bytes per entry; want a small constant (one compressor per archive)", format, perEntry)
			}
		})
	}
}

// TestArchiveBoundedMemory archives 100k entries (directories of 10k, ten
// walk batches each) and samples the live heap as the archive streams out:
// it must not grow with the number of entries (archive/zip kept ~270 bytes
// per entry for its central directory; the walk kept every name of a
// directory). The zip then needs zip64 end records (over 65535 entries),
// checked with Go's reader and unzip.
func TestArchiveBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("makes 100k files")
	}
	if raceEnabled {
		t.Skip("heap sizes are not meaningful under the race detector")
	}
	w, dir := newWS(t, Options{NoUsageWatch: true})
	const dirs, per = 10, 10_000
	for d := range dirs {
		mkEntries(t, filepath.Join(dir, "big", fmt.Sprintf("d%02d", d)), per, 0, nil)
	}
	ctx := context.Background()
	for _, format := range []string{FormatZip, FormatTarGz} {
		t.Run(format, func(t *testing.T) {
			out := &heapSampler{every: 256 << 10}
			if format == FormatZip {
				out.keep = &bytes.Buffer{}
			}
			runtime.GC()
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			base := m.HeapAlloc
			if err := w.Archive(ctx, "/big", out, format); err != nil {
				t.Fatal(err)
			}
			out.sample()
			grow := out.peak - int64(base)
			t.Logf("%s: %d samples, live heap grew at most %d KiB over %d entries", format, out.samples, grow>>10, dirs*per)
			if grow > 4<<20 {
				t.Errorf("%s: live heap grew by %d MiB while archiving; want it bounded", format, grow>>20)
			}
			if format != FormatZip {
				return
			}
			data := out.keep.Bytes()
			zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			if got, want := len(zr.File), 1+dirs+dirs*per; got != want {
				t.Fatalf("%d entries, want %d", got, want)
			}
			seen := make(map[string]bool, len(zr.File))
			for _, f := range zr.File {
				if seen[f.Name] {
					t.Fatalf("%s twice", f.Name)
				}
				seen[f.Name] = true
			}
			if haveTool("unzip") {
				p := filepath.Join(t.TempDir(), "big.zip")
				if err := os.WriteFile(p, data, 0o644); err != nil {
					t.Fatal(err)
				}
				if out, err := exec.Command("unzip", "-tq", p).CombinedOutput(); err != nil {
					t.Fatalf("unzip -t: %v\n%s", err, out)
				}
			}
		})
	}
}

// heapSampler is an archive's output that measures the live heap (after a
// collection) every so many bytes written, less what it keeps of the output.
type heapSampler struct {
	every, since int
	peak         int64
	samples      int
	keep         *bytes.Buffer
}

func (h *heapSampler) Write(p []byte) (int, error) {
	if h.keep != nil {
		h.keep.Write(p)
	}
	h.since += len(p)
	if h.since >= h.every {
		h.since = 0
		h.sample()
	}
	return len(p), nil
}

func (h *heapSampler) sample() {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	h.samples++
	v := int64(m.HeapAlloc)
	if h.keep != nil {
		v -= int64(h.keep.Cap())
	}
	h.peak = max(h.peak, v)
}

// mkEntries makes n files in dir, directly (fast), each holding content,
// spread over sub directories when sub > 0.
func mkEntries(t testing.TB, dir string, n, sub int, content []byte) {
	t.Helper()
	for i := range n {
		d := dir
		if sub > 0 {
			d = filepath.Join(dir, fmt.Sprintf("s%02d", i%sub))
		}
		if i < max(sub, 1) {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		fd, err := unix.Open(filepath.Join(d, fmt.Sprintf("f%06d", i)), unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if len(content) > 0 {
			if _, err := unix.Write(fd, content); err != nil {
				_ = unix.Close(fd) // the write failed already: that is the error
				t.Fatal(err)
			}
		}
		if err := unix.Close(fd); err != nil {
			t.Fatal(err)
		}
	}
}

// TestZipWriterRoundTrip reads back what the zip writer makes, with and
// without zip64 records, past the in-memory part of its central directory:
// names (UTF-8 too), modes, times, contents, links; and unzip agrees.
func TestZipWriterRoundTrip(t *testing.T) {
	mtime := time.Date(2024, 5, 6, 7, 8, 10, 0, time.UTC)
	text := bytes.Repeat([]byte("compressible line of text\n"), 5000)
	for _, force64 := range []bool{false, true} {
		t.Run(fmt.Sprint("zip64=", force64), func(t *testing.T) {
			var buf bytes.Buffer
			z := newZipWriter(&buf, t.TempDir())
			z.force64 = force64
			type want struct {
				mode fs.FileMode
				data []byte
			}
			wants := map[string]want{}
			add := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			add(z.dir("d/", mtime))
			wants["d/"] = want{fs.ModeDir | 0o755, nil}
			add(z.file("d/text", fakeInfo{size: int64(len(text)), mode: 0o640, mtime: mtime}, bytes.NewReader(text)))
			wants["d/text"] = want{0o640, text}
			add(z.file("d/empty", fakeInfo{mode: 0o600, mtime: mtime}, bytes.NewReader(nil)))
			wants["d/empty"] = want{0o600, nil}
			add(z.file("d/été", fakeInfo{size: 3, mode: 0o644, mtime: mtime}, strings.NewReader("abc")))
			wants["d/été"] = want{0o644, []byte("abc")}
			add(z.symlink("d/link", "text", mtime))
			wants["d/link"] = want{fs.ModeSymlink | 0o777, []byte("text")}
			// Enough entries to spill the central directory to its file.
			for i := range 20_000 {
				name := fmt.Sprintf("d/many/%05d-%s", i, strings.Repeat("n", 40))
				add(z.file(name, fakeInfo{mode: 0o644, mtime: mtime}, bytes.NewReader(nil)))
			}
			if z.cd.f == nil {
				t.Fatal("central directory never spilled")
			}
			add(z.close())

			zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
			if err != nil {
				t.Fatal(err)
			}
			if len(zr.File) != len(wants)+20_000 {
				t.Fatalf("%d entries", len(zr.File))
			}
			for _, f := range zr.File {
				wt, ok := wants[f.Name]
				if !ok {
					continue
				}
				if f.Mode() != wt.mode || !f.Modified.Equal(mtime) {
					t.Errorf("%s: mode %v time %v, want %v %v", f.Name, f.Mode(), f.Modified, wt.mode, mtime)
				}
				rc, err := f.Open()
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(rc) // checks the CRC too
				_ = rc.Close()             // a reader: ReadAll reported any error
				if err != nil || !bytes.Equal(got, wt.data) {
					t.Errorf("%s: %d bytes, %v", f.Name, len(got), err)
				}
			}
			if haveTool("unzip") {
				p := filepath.Join(t.TempDir(), "a.zip")
				if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				if out, err := exec.Command("unzip", "-tq", p).CombinedOutput(); err != nil {
					t.Fatalf("unzip -t: %v\n%s", err, out)
				}
			}
		})
	}
}

type fakeInfo struct {
	size  int64
	mode  fs.FileMode
	mtime time.Time
}

func (f fakeInfo) Name() string       { return "f" }
func (f fakeInfo) Size() int64        { return f.size }
func (f fakeInfo) Mode() fs.FileMode  { return f.mode }
func (f fakeInfo) ModTime() time.Time { return f.mtime }
func (f fakeInfo) IsDir() bool        { return f.mode.IsDir() }
func (f fakeInfo) Sys() any           { return nil }
