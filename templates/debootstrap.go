package templates

import (
	"archive/tar"
	"bufio"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/berth-dev/berth"
)

// DebootstrapCache, when set, is an absolute directory where debootstrap
// keeps the packages it downloads (its --cache-dir, made if missing), so
// that a rebuild of a debootstrap template downloads only what changed on
// the mirror. The build itself still runs in full. Empty: every build
// downloads everything.
var DebootstrapCache string

// debootstrapRootfs runs debootstrap into a temporary directory and returns
// the path of the resulting tree as a tar file, with a cleanup that removes
// everything. debootstrap's own log lines go to progress as they come.
func debootstrapRootfs(ctx context.Context, b *Build, progress io.Writer) (string, func(), error) {
	bin, err := exec.LookPath("debootstrap")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/debootstrap"); serr != nil {
			return "", nil, berth.Wrap(berth.Unavailable, err, "debian template needs debootstrap (apt-get install debootstrap)")
		}
		bin = "/usr/sbin/debootstrap"
	}
	tmp, err := tempDir("berth-debootstrap-")
	if err != nil {
		return "", nil, berth.Wrap(berth.Internal, err, "debootstrap: temp dir")
	}
	root := filepath.Join(tmp, "rootfs")
	cleanup := func() {
		unmountUnder(root)
		_ = os.RemoveAll(tmp)
	}

	args := []string{}
	if b.Variant != "" {
		args = append(args, "--variant="+b.Variant)
	}
	if DebootstrapCache != "" {
		if !filepath.IsAbs(DebootstrapCache) {
			cleanup()
			return "", nil, berth.Errorf(berth.Invalid, "debootstrap cache %q: not an absolute path", DebootstrapCache)
		}
		if err := os.MkdirAll(DebootstrapCache, 0o755); err != nil {
			cleanup()
			return "", nil, berth.Wrap(berth.Internal, err, "debootstrap cache")
		}
		args = append(args, "--cache-dir="+DebootstrapCache)
	}
	args = append(args, b.Suite, root, b.Mirror)
	// Progress is informational: a reader that went away must not fail
	// the build (the build's context ends with it).
	_, _ = fmt.Fprintf(progress, "running debootstrap %s\n", strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = progress, progress
	// debootstrap runs dpkg and friends in a chroot: on cancellation kill
	// the whole process group, not just the script.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		cleanup()
		if ctx.Err() != nil {
			return "", nil, berth.Wrap(berth.Unavailable, ctx.Err(), "debootstrap cancelled")
		}
		return "", nil, berth.Wrap(berth.Unavailable, err, "debootstrap failed (is the Debian mirror reachable? see the build log)")
	}
	// Downloaded packages are not part of the system: leave them out.
	for _, glob := range []string{"var/cache/apt/archives/*.deb", "var/lib/apt/lists/*_Packages", "var/log/bootstrap.log"} {
		matches, _ := filepath.Glob(filepath.Join(root, glob))
		for _, m := range matches {
			_ = os.Remove(m)
		}
	}
	unmountUnder(root)
	for _, d := range b.dirs() {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil && !os.IsExist(err) {
			cleanup()
			return "", nil, berth.Wrap(berth.Internal, err, "debootstrap: make "+d)
		}
	}

	_, _ = fmt.Fprintln(progress, "packing root filesystem") // informational, as above
	name := filepath.Join(tmp, "rootfs.tar")
	f, err := os.Create(name)
	if err != nil {
		cleanup()
		return "", nil, berth.Wrap(berth.Internal, err, "debootstrap: rootfs.tar")
	}
	err = tarTree(ctx, f, root)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		cleanup()
		return "", nil, berth.Wrap(berth.Internal, err, "debootstrap: pack rootfs")
	}
	_ = os.RemoveAll(root) // the tar is all the build needs; free the space now
	return name, cleanup, nil
}

// tarTree writes the tree at root as a tar archive with numeric owners, modes,
// symlinks and hard links kept. The contents of dev, proc and sys are left
// out (the engine provides them), and so are device nodes and sockets.
func tarTree(ctx context.Context, w io.Writer, root string) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	tw := tar.NewWriter(bw)
	links := map[[2]uint64]string{} // (dev, inode) → first name, for hard links
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch rel {
		case "dev", "proc", "sys":
			if err := writeHeader(tw, rel, fi, ""); err != nil {
				return err
			}
			return fs.SkipDir
		}
		mode := fi.Mode()
		switch {
		case mode&(fs.ModeDevice|fs.ModeCharDevice|fs.ModeSocket) != 0:
			return nil
		case mode&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return writeHeader(tw, rel, fi, target)
		case mode.IsRegular():
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
				key := [2]uint64{uint64(st.Dev), st.Ino}
				if first, ok := links[key]; ok {
					hdr, err := header(rel, fi, "")
					if err != nil {
						return err
					}
					hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
					return tw.WriteHeader(hdr)
				}
				links[key] = rel
			}
			if err := writeHeader(tw, rel, fi, ""); err != nil {
				return err
			}
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer func() { _ = f.Close() }() // opened read-only: nothing to flush
			_, err = io.Copy(tw, f)
			return err
		}
		return writeHeader(tw, rel, fi, "") // directories, FIFOs
	})
	if err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

func header(name string, fi fs.FileInfo, link string) (*tar.Header, error) {
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return nil, err
	}
	hdr.Name = name
	if fi.IsDir() {
		hdr.Name += "/"
	}
	// Owners by number only: the names are the host's, not the image's.
	hdr.Uname, hdr.Gname = "", ""
	// Access and change times say when the tree was read, not what is in
	// it: left out, the layer depends on the files alone.
	hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
	hdr.Format = tar.FormatPAX
	return hdr, nil
}

func writeHeader(tw *tar.Writer, name string, fi fs.FileInfo, link string) error {
	hdr, err := header(name, fi, link)
	if err != nil {
		return err
	}
	return tw.WriteHeader(hdr)
}

// unmountUnder detaches whatever is still mounted below dir (debootstrap
// mounts proc and sys into the target and an interrupted run leaves them),
// deepest first, so that removing dir never reaches into a live filesystem.
func unmountUnder(dir string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := strings.ReplaceAll(f[4], `\040`, " ")
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			points = append(points, mp)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(points)))
	for _, mp := range points {
		_ = syscall.Unmount(mp, syscall.MNT_DETACH)
	}
}
