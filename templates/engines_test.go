package templates_test

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/runtime/containerd/containerdtest"
	"github.com/berth-dev/berth/runtime/docker/dockertest"
	"github.com/berth-dev/berth/runtime/runtimetest"
	"github.com/berth-dev/berth/templates"
)

// engine is a container engine TestTemplateSameOnBothEngines loads the one
// archive into.
type engine struct {
	name string
	new  func(t *testing.T) runtime.Runtime // fails or skips t as dockertest.New does
	// Paths the engine itself adds to a container's root filesystem (not
	// mounts: those are told apart by their device and left out).
	extra []string
}

// engines is every engine berth has a backend for: Docker, and the
// containerd that .ci/containerd-up starts (containerdtest fails under
// CI=true when it does not answer). Each adds a few files of its own to a
// container: Docker its marker and mtab link; the containerd backend the
// static init it mounts as PID 1.
var engines = []engine{
	{name: "docker", new: func(t *testing.T) runtime.Runtime { return dockertest.New(t) }, extra: []string{"/.dockerenv", "/etc/mtab"}},
	{name: "containerd", new: func(t *testing.T) runtime.Runtime { return containerdtest.New(t) }},
}

// A template built once, as one docker-archive tarball, gives every engine
// the same filesystem: the archive's, file by file (type, mode, owner,
// size, time, link target, contents).
func TestTemplateSameOnBothEngines(t *testing.T) {
	ctx := testctx.Context(t)
	tmpl, err := templates.Get("base")
	if err != nil {
		t.Fatal(err)
	}
	tmpl.Image = "berth-test/same:" + randomID(t)
	arc, err := templates.Archive(ctx, tmpl, nil)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "base.tar")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(f, arc)
	if cerr := arc.Close(); err == nil {
		err = cerr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("write the archive: %v", err)
	}
	want := archiveFiles(t, file, tmpl.Image)
	if len(want) < 200 || want["/bin/busybox"].kind != "regular file" || want["/bin/sh"].link != "/bin/busybox" {
		t.Fatalf("the archive holds %d files, busybox %+v, sh %+v", len(want), want["/bin/busybox"], want["/bin/sh"])
	}

	seen := map[string]map[string]fileInfo{}
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			rt := e.new(t)
			ctx := testctx.Context(t)
			in, err := os.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = in.Close() }() // read-only
			var progress bytes.Buffer
			if err := rt.LoadImage(ctx, in, &progress); err != nil {
				t.Fatalf("load: %v\n%s", err, progress.String())
			}
			t.Cleanup(func() {
				ctx, cancel := testctx.Cleanup()
				defer cancel()
				if err := rt.RemoveImage(ctx, tmpl.Image); err != nil {
					t.Errorf("remove image %s: %v", tmpl.Image, err)
				}
			})
			got := containerFiles(t, rt, tmpl.Image, e.extra)
			compareFiles(t, want, got)
			seen[e.name] = got
		})
	}
	if len(seen) > 1 {
		t.Logf("the same %d files on %d engines", len(want), len(seen))
	}
}

// fileInfo is what the comparison holds a file to.
type fileInfo struct {
	kind     string // stat's %F: "directory", "regular file", "symbolic link"
	mode     string // permissions and sticky/setid bits, octal
	uid, gid string
	size     string // regular files only
	mtime    string // regular files and links only: directories change as the engine mounts into them
	link     string
	sha      string
}

// archiveFiles reads the filesystem of the image tagged ref in a
// docker-archive file, its layers applied in order.
func archiveFiles(t *testing.T, file, ref string) map[string]fileInfo {
	t.Helper()
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(file, &tag)
	if err != nil {
		t.Fatal(err)
	}
	rc := mutate.Extract(img)
	defer func() { _ = rc.Close() }() // read-only
	out := map[string]fileInfo{}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		p := path.Clean("/" + hdr.Name)
		fi := fileInfo{mode: strconv.FormatInt(hdr.Mode&0o7777, 8), uid: strconv.Itoa(hdr.Uid), gid: strconv.Itoa(hdr.Gid)}
		switch hdr.Typeflag {
		case tar.TypeDir:
			fi.kind = "directory"
		case tar.TypeSymlink:
			fi.kind, fi.link, fi.mtime = "symbolic link", hdr.Linkname, strconv.FormatInt(hdr.ModTime.Unix(), 10)
		case tar.TypeReg:
			h := sha256.New()
			n, err := io.Copy(h, tr)
			if err != nil {
				t.Fatal(err)
			}
			fi.kind, fi.size, fi.sha = "regular file", strconv.FormatInt(n, 10), hex.EncodeToString(h.Sum(nil))
			fi.mtime = strconv.FormatInt(hdr.ModTime.Unix(), 10)
		default:
			t.Fatalf("%s: unexpected entry type %q in a template's layer", p, hdr.Typeflag)
		}
		out[p] = fi
	}
}

// containerFiles lists the root filesystem of a container of image, less
// the engine's extra files; the engine's mounts (files on other devices)
// are listed as of kind "mount".
func containerFiles(t *testing.T, rt runtime.Runtime, image string, extra []string) map[string]fileInfo {
	t.Helper()
	ctx := testctx.Context(t)
	id, err := rt.Create(ctx, runtime.Spec{Name: "berth-tmpl-same-" + randomID(t), Image: image,
		Labels: map[string]string{runtimetest.LabelTest: "templates"}})
	if err != nil {
		t.Fatal(err)
	}
	runtimetest.RemoveOnCleanup(t, rt, id)
	if err := rt.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	script := `stat -c %d / && find / -xdev -exec stat -c '%d|%F|%a|%u|%g|%s|%Y|%N' {} + && echo -- && find / -xdev -type f -exec sha256sum {} +`
	code, err := rt.Exec(ctx, id, runtime.ExecSpec{Cmd: []string{"/bin/sh", "-c", script}, Stdout: &out, Stderr: &errb})
	if err != nil || code != 0 {
		t.Fatalf("list the container's files: code %d, %v\n%s", code, err, errb.String())
	}
	listing, sums, _ := strings.Cut(out.String(), "--\n")
	lines := strings.Split(strings.TrimSpace(listing), "\n")
	rootDev, lines := lines[0], lines[1:]
	files := map[string]fileInfo{}
	for _, line := range lines {
		f := strings.SplitN(line, "|", 8)
		if len(f) != 8 {
			t.Fatalf("bad listing line %q", line)
		}
		p, link, _ := strings.Cut(f[7], " -> ")
		p, link = strings.Trim(p, "'"), strings.Trim(link, "'")
		if f[0] != rootDev {
			files[p] = fileInfo{kind: "mount"} // the engine's: /proc, /dev, /etc/hosts, ...
			continue
		}
		if p == "/" || slices.Contains(extra, p) {
			continue
		}
		fi := fileInfo{kind: strings.Replace(f[1], "regular empty file", "regular file", 1), mode: f[2], uid: f[3], gid: f[4], link: link}
		if fi.kind != "directory" {
			fi.mtime = f[6]
		}
		if fi.kind == "regular file" {
			fi.size = f[5]
		}
		files[p] = fi
	}
	for _, line := range strings.Split(strings.TrimSpace(sums), "\n") {
		sum, p, ok := strings.Cut(line, "  ")
		if fi, found := files[p]; ok && found {
			fi.sha = sum
			files[p] = fi
		}
	}
	return files
}

func compareFiles(t *testing.T, want, got map[string]fileInfo) {
	t.Helper()
	var diffs []string
	for p, w := range want {
		if p == "/" {
			continue
		}
		g, ok := got[p]
		switch {
		case !ok:
			diffs = append(diffs, "missing in the container: "+p)
		case g.kind == "mount":
			// The engine mounted something over it (/proc, /dev, ...).
		case g != w:
			diffs = append(diffs, fmt.Sprintf("%s: container %+v, archive %+v", p, g, w))
		}
	}
	for p, g := range got {
		if _, ok := want[p]; !ok && g.kind != "mount" {
			diffs = append(diffs, "not in the archive: "+p)
		}
	}
	slices.Sort(diffs)
	if len(diffs) > 0 {
		t.Errorf("%d differences between the archive and the container:\n%s", len(diffs), strings.Join(diffs[:min(len(diffs), 40)], "\n"))
	}
}
