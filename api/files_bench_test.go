package api_test

import (
	"archive/tar"
	"archive/zip"
	"compress/flate"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/server/servertest"
)

const benchFileSize = 1 << 30

// BenchmarkWorkspaceFiles measures the file API (Go client, in-process
// server, loopback) next to plain file operations on the same disk in the
// same run, and prints the table. Run it with -benchtime 1x (make bench);
// each transfer is repeated and the best run kept, interleaved with its
// baseline so that drift of the machine hits both alike.
func BenchmarkWorkspaceFiles(b *testing.B) {
	env := servertest.Start(b, "")
	ctx := context.Background()
	a := env.Admin
	w, err := a.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	// Scratch space next to the workspaces: same filesystem.
	scratch := filepath.Join(env.Config.DataDir, "scratch")
	if err := os.MkdirAll(scratch, 0o755); err != nil {
		b.Fatal(err)
	}
	src := filepath.Join(scratch, "src.bin")
	if err := writeFile(src, &patternReader{n: benchFileSize}, true); err != nil {
		b.Fatal(err)
	}
	readAllFile(b, src) // into the page cache

	type row struct {
		name     string
		berth    time.Duration
		baseline time.Duration
		baseName string
		bytes    int64
	}
	var rows []row
	best := func(d *time.Duration, fn func() error) {
		b.Helper()
		unix.Sync() // start every run with no dirty pages left by the last
		start := time.Now()
		if err := fn(); err != nil {
			b.Fatal(err)
		}
		if el := time.Since(start); *d == 0 || el < *d {
			*d = el
		}
	}
	const reps = 3
	for i := 0; i < b.N; i++ {
		// Upload: API (stream into a temporary file, fsync, rename) next to
		// a plain copy with the same fsync.
		up := row{name: "upload 1 GiB (new file, fsync)", baseName: "cp + fsync", bytes: benchFileSize}
		for range reps {
			best(&up.baseline, func() error { return copyFile(src, filepath.Join(scratch, "copy.bin"), true) })
			os.Remove(filepath.Join(scratch, "copy.bin"))
			// Like the copy, write a new file rather than replace one: freeing
			// the old 1 GiB is not part of either measurement.
			if err := a.DeleteFile(ctx, w.ID, "/big.bin"); err != nil && client.ErrorCode(err) != "not_found" {
				b.Fatal(err)
			}
			unix.Sync()
			best(&up.berth, func() error {
				f, err := os.Open(src)
				if err != nil {
					return err
				}
				defer f.Close()
				_, err = a.UploadAs(ctx, w.ID, "/", "big.bin", f)
				return err
			})
		}
		rows = append(rows, up)

		// Download into a file next to a plain copy (neither fsynced).
		down := row{name: "download 1 GiB to a file", baseName: "cp", bytes: benchFileSize}
		discard := row{name: "download 1 GiB to /dev/null", baseName: "cat > /dev/null", bytes: benchFileSize}
		for range reps {
			dst := filepath.Join(scratch, "dst.bin")
			best(&down.baseline, func() error { return copyFile(src, dst, false) })
			os.Remove(dst)
			best(&down.berth, func() error {
				resp, err := a.Download(ctx, w.ID, "/big.bin", client.DownloadOptions{})
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				f, err := os.Create(dst)
				if err != nil {
					return err
				}
				defer f.Close()
				// A large buffer: fewer, bigger reads and writes.
				_, err = io.CopyBuffer(struct{ io.Writer }{f}, resp.Body, make([]byte, 1<<20))
				return err
			})
			os.Remove(dst)
			best(&discard.baseline, func() error {
				f, err := os.Open(src)
				if err != nil {
					return err
				}
				defer f.Close()
				_, err = io.Copy(io.Discard, f)
				return err
			})
			best(&discard.berth, func() error {
				resp, err := a.Download(ctx, w.ID, "/big.bin", client.DownloadOptions{})
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				_, err = io.Copy(io.Discard, resp.Body)
				return err
			})
		}
		rows = append(rows, down, discard)

		// Listing every entry of a big directory, page by page (limit 500),
		// next to reading and sorting the names directly.
		for _, n := range []int{10_000, 100_000} {
			dir := fmt.Sprintf("/list%d", n)
			if err := mkFiles(filepath.Join(wsDir(env, w.ID), dir), n); err != nil {
				b.Fatal(err)
			}
			r := row{name: fmt.Sprintf("list %dk entries (%d pages)", n/1000, (n+499)/500), baseName: "readdir + lstat + sort"}
			first := row{name: fmt.Sprintf("list %dk: first page (500)", n/1000), baseName: "readdir + sort"}
			for range reps {
				best(&r.baseline, func() error { return readDirSorted(filepath.Join(wsDir(env, w.ID), dir), true) })
				best(&r.berth, func() error {
					cursor, got := "", 0
					for {
						es, next, err := a.ListFiles(ctx, w.ID, dir, client.ListFilesOptions{Limit: 500, Cursor: cursor})
						if err != nil {
							return err
						}
						got += len(es)
						if next == "" {
							break
						}
						cursor = next
					}
					if got != n {
						return fmt.Errorf("listed %d of %d", got, n)
					}
					return nil
				})
				best(&first.baseline, func() error { return readDirSorted(filepath.Join(wsDir(env, w.ID), dir), false) })
				best(&first.berth, func() error {
					_, _, err := a.ListFiles(ctx, w.ID, dir, client.ListFilesOptions{Limit: 500})
					return err
				})
			}
			rows = append(rows, r, first)
		}

		// Archives of a 256 MiB tree (half compressible text, half random)
		// next to reading the same files.
		tree := filepath.Join(wsDir(env, w.ID), "tree")
		treeBytes, err := mkTree(tree)
		if err != nil {
			b.Fatal(err)
		}
		readTree(b, tree)
		for _, format := range []string{"zip", "tar.gz"} {
			r := row{name: "download 256 MiB dir as " + format, baseName: format + " in-process", bytes: treeBytes}
			for range reps {
				best(&r.baseline, func() error { return archiveTree(tree, format) })
				best(&r.berth, func() error {
					resp, err := a.Download(ctx, w.ID, "/tree", client.DownloadOptions{Format: format})
					if err != nil {
						return err
					}
					defer resp.Body.Close()
					_, err = io.Copy(io.Discard, resp.Body)
					return err
				})
			}
			rows = append(rows, r)
		}
	}

	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\nworkspace files (best of 3)\tberth API\t\tbaseline\t\tberth/baseline\t")
	mbps := func(n int64, d time.Duration) string {
		if n == 0 {
			return ""
		}
		return fmt.Sprintf("%.0f MB/s", float64(n)/d.Seconds()/1e6)
	}
	for _, r := range rows {
		ratio := fmt.Sprintf("%.0f%% speed", 100*r.baseline.Seconds()/r.berth.Seconds())
		fmt.Fprintf(tw, "%s\t%v %s\t%s:\t%v %s\t%s\t\n", r.name, r.berth.Round(time.Millisecond), mbps(r.bytes, r.berth),
			r.baseName, r.baseline.Round(time.Millisecond), mbps(r.bytes, r.baseline), ratio)
	}
	tw.Flush()
}

func writeFile(p string, r io.Reader, sync bool) error {
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	if sync {
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

func copyFile(src, dst string, sync bool) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	// os.File → os.File uses copy_file_range where it can, as cp does.
	return writeFile(dst, f, sync)
}

func readAllFile(b *testing.B, p string) {
	f, err := os.Open(p)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	io.Copy(io.Discard, f)
}

func mkFiles(dir string, n int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for i := range n {
		fd, err := unix.Open(filepath.Join(dir, fmt.Sprintf("file-%07d.txt", i)), unix.O_CREAT|unix.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		unix.Close(fd)
	}
	return nil
}

func readDirSorted(dir string, lstat bool) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return err
	}
	slices.Sort(names)
	if lstat {
		for _, n := range names {
			if _, err := os.Lstat(filepath.Join(dir, n)); err != nil {
				return err
			}
		}
	}
	return nil
}

// mkTree writes 256 files of 1 MiB in 16 directories: even files are
// repetitive text, odd ones random bytes.
func mkTree(dir string) (int64, error) {
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 1<<20)
	line := []byte("the quick brown fox jumps over the lazy dog 0123456789\n")
	var total int64
	for i := range 256 {
		d := filepath.Join(dir, fmt.Sprintf("d%02d", i%16))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return 0, err
		}
		if i%2 == 0 {
			for j := range buf {
				buf[j] = line[(j+i)%len(line)]
			}
		} else {
			for j := 0; j < len(buf); j += 8 {
				v := rng.Uint64()
				for k := range 8 {
					buf[j+k] = byte(v >> (8 * k))
				}
			}
		}
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%03d", i)), buf, 0o644); err != nil {
			return 0, err
		}
		total += int64(len(buf))
	}
	return total, nil
}

// archiveTree writes tree as format to io.Discard in-process, with the same
// compression level as the server (BestSpeed): the cost of the archive
// itself, without HTTP.
func archiveTree(dir, format string) error {
	var add func(name string, r io.Reader) error
	var closeAll func() error
	if format == "zip" {
		zw := zip.NewWriter(io.Discard)
		zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) { return flate.NewWriter(w, flate.BestSpeed) })
		add = func(name string, r io.Reader) error {
			w, err := zw.Create(name)
			if err == nil {
				_, err = io.Copy(w, r)
			}
			return err
		}
		closeAll = zw.Close
	} else {
		gz, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
		tw := tar.NewWriter(gz)
		add = func(name string, r io.Reader) error {
			f := r.(*os.File)
			st, _ := f.Stat()
			h, _ := tar.FileInfoHeader(st, "")
			h.Name = name
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			_, err := io.Copy(tw, r)
			return err
		}
		closeAll = func() error { tw.Close(); return gz.Close() }
	}
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || !info.Mode().IsRegular() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		rel, _ := filepath.Rel(dir, p)
		return add(rel, f)
	})
	if err != nil {
		return err
	}
	return closeAll()
}

func readTree(b *testing.B, dir string) {
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			readAllFile(b, p)
		}
		return nil
	})
}
