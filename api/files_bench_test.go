package api_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
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
// same run, and prints the table. Run it with -benchtime 1x (make bench).
// Each row is the median of interleaved pairs (baseline, then berth), so
// that drift of the machine hits both alike, with wall time and the CPU
// time of the whole test process (client and server together; the
// baselines run in-process too).
func BenchmarkWorkspaceFiles(b *testing.B) {
	env := servertest.Start(b, "")
	ctx := context.Background()
	// A plain client: env.Admin checks every answer against the OpenAPI
	// document, which would cost more than the listing itself.
	a := client.New(env.URL, env.AdminKey)
	w, err := a.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	// BERTH_BENCH_FILES=upload,download,list runs only those parts.
	part := func(name string) bool {
		only := os.Getenv("BERTH_BENCH_FILES")
		return only == "" || slices.Contains(strings.Split(only, ","), name)
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

	type sample struct{ wall, cpu time.Duration }
	type row struct {
		name, baseName string
		bytes          int64
		berth, base    []sample
	}
	var rows []row
	measure := func(out *[]sample, fn func() error) {
		b.Helper()
		unix.Sync() // start every run with no dirty pages left by the last
		c0, t0 := processCPU(), time.Now()
		if err := fn(); err != nil {
			b.Fatal(err)
		}
		*out = append(*out, sample{time.Since(t0), processCPU() - c0})
	}
	pairs := 3
	if n, err := strconv.Atoi(os.Getenv("BERTH_BENCH_PAIRS")); err == nil && n > 0 {
		pairs = n
	}
	openSrc := func() (*os.File, int64, error) {
		f, err := os.Open(src)
		if err != nil {
			return nil, 0, err
		}
		st, err := f.Stat()
		if err != nil {
			_ = f.Close() // read-only: nothing to lose
			return nil, 0, err
		}
		return f, st.Size(), nil
	}
	for i := 0; i < b.N; i++ {
		// Upload: API (stream into a temporary file, fsync, rename), raw
		// and multipart, each next to a plain copy with the same fsync.
		raw := row{name: "upload 1 GiB, raw PUT (new file, fsync)", baseName: "cp + fsync", bytes: benchFileSize}
		form := row{name: "upload 1 GiB, multipart POST (new file, fsync)", baseName: "cp + fsync", bytes: benchFileSize}
		for range pairs {
			if !part("upload") {
				break
			}
			for _, r := range []*row{&raw, &form} {
				measure(&r.base, func() error { return copyFile(src, filepath.Join(scratch, "copy.bin"), true) })
				if err := os.Remove(filepath.Join(scratch, "copy.bin")); err != nil {
					b.Fatal(err)
				}
				// Like the copy, write a new file rather than replace one:
				// freeing the old 1 GiB is not part of either measurement.
				if err := a.DeleteFile(ctx, w.ID, "/big.bin"); err != nil && client.ErrorCode(err) != "not_found" {
					b.Fatal(err)
				}
				measure(&r.berth, func() error {
					f, size, err := openSrc()
					if err != nil {
						return err
					}
					defer func() { _ = f.Close() }() // read-only: nothing to lose
					if r == &raw {
						_, err = a.PutFile(ctx, w.ID, "/big.bin", f, size)
					} else {
						_, err = a.UploadAs(ctx, w.ID, "/", "big.bin", f)
					}
					return err
				})
			}
		}
		if part("upload") {
			rows = append(rows, raw, form)
		}

		// Download into a file next to a plain copy (neither fsynced).
		down := row{name: "download 1 GiB to a file", baseName: "cp", bytes: benchFileSize}
		discard := row{name: "download 1 GiB to /dev/null", baseName: "cat > /dev/null", bytes: benchFileSize}
		if part("download") {
			// The file to download.
			f, size, err := openSrc()
			if err != nil {
				b.Fatal(err)
			}
			_, err = a.PutFile(ctx, w.ID, "/big.bin", f, size)
			_ = f.Close() // read-only: nothing to lose
			if err != nil {
				b.Fatal(err)
			}
		}
		for range pairs {
			if !part("download") {
				break
			}
			dst := filepath.Join(scratch, "dst.bin")
			measure(&down.base, func() error { return copyFile(src, dst, false) })
			if err := os.Remove(dst); err != nil {
				b.Fatal(err)
			}
			measure(&down.berth, func() (err error) {
				resp, err := a.Download(ctx, w.ID, "/big.bin", client.DownloadOptions{})
				if err != nil {
					return err
				}
				defer closeBody(resp)
				f, err := os.Create(dst)
				if err != nil {
					return err
				}
				defer func() { err = errors.Join(err, f.Close()) }()
				// A large buffer: fewer, bigger reads and writes.
				_, err = io.CopyBuffer(struct{ io.Writer }{f}, resp.Body, make([]byte, 1<<20))
				return err
			})
			if err := os.Remove(dst); err != nil {
				b.Fatal(err)
			}
			measure(&discard.base, func() error {
				f, err := os.Open(src)
				if err != nil {
					return err
				}
				defer func() { _ = f.Close() }() // read-only: nothing to lose
				_, err = io.Copy(io.Discard, f)
				return err
			})
			measure(&discard.berth, func() error {
				resp, err := a.Download(ctx, w.ID, "/big.bin", client.DownloadOptions{})
				if err != nil {
					return err
				}
				defer closeBody(resp)
				_, err = io.Copy(io.Discard, resp.Body)
				return err
			})
		}
		if part("download") {
			rows = append(rows, down, discard)
		}

		// Listing every entry of a big directory, page by page (limit 500),
		// next to reading, stat'ing and sorting the names directly (what an
		// autoindex does).
		for _, n := range []int{10_000, 100_000} {
			if !part("list") {
				break
			}
			dir := fmt.Sprintf("/list%d", n)
			if err := mkFiles(filepath.Join(wsDir(env, w.ID), dir), n); err != nil {
				b.Fatal(err)
			}
			r := row{name: fmt.Sprintf("list %dk entries (%d pages)", n/1000, (n+499)/500), baseName: "readdir + lstat + sort"}
			first := row{name: fmt.Sprintf("list %dk: first page (500)", n/1000), baseName: "readdir + sort"}
			for range pairs {
				measure(&r.base, func() error { return readDirSorted(filepath.Join(wsDir(env, w.ID), dir), true) })
				measure(&r.berth, func() error {
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
				measure(&first.base, func() error { return readDirSorted(filepath.Join(wsDir(env, w.ID), dir), false) })
				measure(&first.berth, func() error {
					_, _, err := a.ListFiles(ctx, w.ID, dir, client.ListFilesOptions{Limit: 500})
					return err
				})
			}
			rows = append(rows, r, first)
		}
	}

	median := func(ss []sample) sample {
		walls := make([]time.Duration, len(ss))
		cpus := make([]time.Duration, len(ss))
		for i, s := range ss {
			walls[i], cpus[i] = s.wall, s.cpu
		}
		slices.Sort(walls)
		slices.Sort(cpus)
		return sample{walls[len(ss)/2], cpus[len(ss)/2]}
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	_, _ = fmt.Fprintf(tw, "\nworkspace files (median of %d pairs)\tberth wall\t\tcpu\tbaseline\twall\t\tcpu\tberth/baseline\t\n", pairs)
	mbps := func(n int64, d time.Duration) string {
		if n == 0 {
			return ""
		}
		return fmt.Sprintf("%.0f MB/s", float64(n)/d.Seconds()/1e6)
	}
	for _, r := range rows {
		bm, tm := median(r.berth), median(r.base)
		ratio := fmt.Sprintf("%.0f%% speed", 100*tm.wall.Seconds()/bm.wall.Seconds())
		_, _ = fmt.Fprintf(tw, "%s\t%v\t%s\t%v\t%s:\t%v\t%s\t%v\t%s\t\n", r.name, bm.wall.Round(time.Millisecond), mbps(r.bytes, bm.wall),
			bm.cpu.Round(time.Millisecond), r.baseName, tm.wall.Round(time.Millisecond), mbps(r.bytes, tm.wall), tm.cpu.Round(time.Millisecond), ratio)
	}
	if err := tw.Flush(); err != nil { // the writes above fail here, if at all
		b.Fatal(err)
	}
}

func writeFile(p string, r io.Reader, sync bool) error {
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		return errors.Join(err, f.Close())
	}
	if sync {
		if err := f.Sync(); err != nil {
			return errors.Join(err, f.Close())
		}
	}
	return f.Close()
}

func copyFile(src, dst string, sync bool) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }() // read-only: nothing to lose
	// os.File → os.File uses copy_file_range where it can, as cp does.
	return writeFile(dst, f, sync)
}

func readAllFile(b *testing.B, p string) {
	f, err := os.Open(p)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = f.Close() }() // read-only: nothing to lose
	if _, err := io.Copy(io.Discard, f); err != nil {
		b.Fatal(err)
	}
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
		if err := unix.Close(fd); err != nil {
			return err
		}
	}
	return nil
}

func readDirSorted(dir string, lstat bool) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }() // a directory read: nothing to lose
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

func readTree(b *testing.B, dir string) {
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			readAllFile(b, p)
		}
		return nil // warming the page cache: an unreadable entry is skipped
	})
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkWorkspaceArchives measures directory downloads (Go client,
// in-process server, loopback, body discarded) next to the raw tools on the
// same tree: `tar c | gzip -1` and `zip -1 -r` (the server compresses at
// gzip's/deflate's fastest level too), writing to a pipe that discards.
// Each row is the median of interleaved pairs (tool, then berth), with wall
// time and CPU time (berth: the whole test process, client included; tools:
// the process and its children). It ends with the live heap of four
// concurrent zips of a 200k-entry tree. Run with -benchtime 1x (make bench).
func BenchmarkWorkspaceArchives(b *testing.B) {
	env := servertest.Start(b, "")
	ctx := context.Background()
	a := env.Admin
	w, err := a.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	root := wsDir(env, w.ID)
	tree := filepath.Join(root, "tree")
	treeBytes, err := mkTree(tree)
	if err != nil {
		b.Fatal(err)
	}
	readTree(b, tree)
	// 20,000 empty files: the cost per entry, which a compressor per zip
	// entry made 40 times that of tar.gz.
	if err := mkFilesIn(filepath.Join(root, "empty"), 20_000, 20); err != nil {
		b.Fatal(err)
	}

	type sample struct{ wall, cpu time.Duration }
	type row struct {
		name, baseName string
		bytes          int64
		berth, base    []sample
	}
	var rows []row
	const pairs = 5
	for i := 0; i < b.N; i++ {
		for _, dir := range []string{"tree", "empty"} {
			for _, format := range []string{"zip", "tar.gz"} {
				r := row{name: "download 20k empty files as " + format}
				if dir == "tree" {
					r.name, r.bytes = "download 256 MiB dir as "+format, treeBytes
				}
				r.baseName = map[string]string{"zip": "zip -1 -r", "tar.gz": "tar c | gzip -1"}[format]
				for range pairs {
					s, err := toolArchive(filepath.Join(root, dir), format)
					if err != nil {
						b.Fatal(err)
					}
					r.base = append(r.base, sample(s))
					c0, t0 := processCPU(), time.Now()
					resp, err := a.Download(ctx, w.ID, "/"+dir, client.DownloadOptions{Format: format})
					if err != nil {
						b.Fatal(err)
					}
					_, err = io.Copy(io.Discard, resp.Body)
					closeBody(resp)
					if err != nil {
						b.Fatal(err)
					}
					r.berth = append(r.berth, sample{time.Since(t0), processCPU() - c0})
				}
				rows = append(rows, r)
			}
		}
	}
	median := func(ss []sample) sample {
		walls := make([]time.Duration, len(ss))
		cpus := make([]time.Duration, len(ss))
		for i, s := range ss {
			walls[i], cpus[i] = s.wall, s.cpu
		}
		slices.Sort(walls)
		slices.Sort(cpus)
		return sample{walls[len(ss)/2], cpus[len(ss)/2]}
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	_, _ = fmt.Fprintf(tw, "\nworkspace archives (median of %d pairs)\tberth wall\tcpu\tbaseline\twall\tcpu\tberth/baseline wall\t\n", pairs)
	for _, r := range rows {
		bm, tm := median(r.berth), median(r.base)
		_, _ = fmt.Fprintf(tw, "%s\t%v\t%v\t%s:\t%v\t%v\t%.2fx\t\n", r.name, bm.wall.Round(time.Millisecond), bm.cpu.Round(time.Millisecond),
			r.baseName, tm.wall.Round(time.Millisecond), tm.cpu.Round(time.Millisecond), bm.wall.Seconds()/tm.wall.Seconds())
	}
	if err := tw.Flush(); err != nil { // the writes above fail here, if at all
		b.Fatal(err)
	}

	// Memory: four zips of a 200k-entry tree at once (archive/zip and a
	// compressor per entry held 815 MiB), next to one `zip -r` of it.
	if err := mkFilesIn(filepath.Join(root, "many"), 200_000, 200); err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	base := m.HeapInuse
	peak := base
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapInuse)
		}
	}()
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			resp, err := a.Download(ctx, w.ID, "/many", client.DownloadOptions{})
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				closeBody(resp)
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	close(stop)
	<-sampled
	cmd := exec.Command("zip", "-q", "-1", "-r", "-", ".")
	cmd.Dir = filepath.Join(root, "many")
	cmd.Stdout = io.Discard
	zipRSS := "zip not installed"
	if err := cmd.Run(); err == nil {
		zipRSS = fmt.Sprintf("%d MiB max RSS", cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss>>10)
	}
	fmt.Printf("4 concurrent zips of 200k entries: heap in use grew by at most %d MiB (whole server process); one zip -r: %s\n",
		(peak-base)>>20, zipRSS)
}

// toolArchive runs the raw tool on dir, its output discarded through a pipe.
func toolArchive(dir, format string) (struct{ wall, cpu time.Duration }, error) {
	var cmd *exec.Cmd
	if format == "zip" {
		cmd = exec.Command("zip", "-q", "-1", "-r", "-", ".")
	} else {
		cmd = exec.Command("sh", "-c", "tar cf - . | gzip -1")
	}
	cmd.Dir = dir
	cmd.Stdout = io.Discard
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return struct{ wall, cpu time.Duration }{}, fmt.Errorf("%v: %w", cmd.Args, err)
	}
	wall := time.Since(start)
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	// The shell's rusage includes its waited-for children (tar, gzip).
	return struct{ wall, cpu time.Duration }{wall, time.Duration(ru.Utime.Nano() + ru.Stime.Nano())}, nil
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// mkFilesIn makes n empty files spread over sub directories of dir.
func mkFilesIn(dir string, n, sub int) error {
	for d := range sub {
		if err := os.MkdirAll(filepath.Join(dir, fmt.Sprintf("d%03d", d)), 0o755); err != nil {
			return err
		}
	}
	for i := range n {
		fd, err := unix.Open(filepath.Join(dir, fmt.Sprintf("d%03d", i%sub), fmt.Sprintf("file-%07d.txt", i)), unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return err
		}
		if err := unix.Close(fd); err != nil {
			return err
		}
	}
	return nil
}
