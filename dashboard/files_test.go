package dashboard_test

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/internal/testctx"
)

// TestFileBrowser drives the file browser as a person would: create a
// workspace, upload two files and a folder, rename, move, copy, delete,
// download a file and a folder as a zip, checking the workspace on disk
// after each step.
func TestFileBrowser(t *testing.T) {
	env, b := start(t)
	ctx := testctx.Context(t)
	b.SignIn(env.AdminKey)

	// Create a workspace through the UI.
	b.Click("#create-ws")
	b.Type("#ws-name", "Project files")
	b.Click("#ws-create")
	b.WaitText("#org-workspaces", "Project files")
	list, err := env.Admin.Workspaces(ctx, false)
	must(t, err)
	var ws *client.Workspace
	for i := range list.Workspaces {
		if list.Workspaces[i].Name == "Project files" {
			ws = &list.Workspaces[i]
		}
	}
	if ws == nil {
		t.Fatalf("the workspace created in the UI is not in the API's list: %+v", list.Workspaces)
	}
	disk := env.API.Workspaces.Dir(ws.ID)
	b.Click(`.ws-card[data-slug="` + ws.Slug + `"] .ws-name a`)
	b.WaitText(".crumbs", "Project files")
	b.WaitText(".listing", "This folder is empty")
	b.WaitJS(`document.querySelector('.live.on') !== null`) // the watch stream is up

	// Upload two files with the file input.
	src := t.TempDir()
	a := bytes.Repeat([]byte("alpha\n"), 1000)
	bin := make([]byte, 300<<10)
	for i := range bin {
		bin[i] = byte(i * 7)
	}
	mustWrite(t, filepath.Join(src, "a.txt"), a)
	mustWrite(t, filepath.Join(src, "b.bin"), bin)
	b.Run(chromedp.SetUploadFiles(chromedp.CSS("#upload-files"), []string{filepath.Join(src, "a.txt"), filepath.Join(src, "b.bin")}))
	b.WaitRow("/a.txt")
	b.WaitRow("/b.bin")
	b.WaitText("#upload-summary", "Uploaded 2/2")
	if !bytes.Equal(mustRead(t, filepath.Join(disk, "a.txt")), a) || !bytes.Equal(mustRead(t, filepath.Join(disk, "b.bin")), bin) {
		t.Fatal("uploaded files differ on disk")
	}

	// Upload a folder by dropping it on the listing.
	folder := filepath.Join(src, "folder")
	mustWrite(t, filepath.Join(folder, "one.txt"), []byte("one"))
	mustWrite(t, filepath.Join(folder, "sub", "two.txt"), []byte("two"))
	b.DropFiles(".listing", []string{folder})
	b.WaitRow("/folder")
	b.WaitText("#upload-summary", "Uploaded 2/2")
	if got := string(mustRead(t, filepath.Join(disk, "folder", "sub", "two.txt"))); got != "two" {
		t.Fatalf("folder upload: sub/two.txt holds %q", got)
	}
	if got := string(mustRead(t, filepath.Join(disk, "folder", "one.txt"))); got != "one" {
		t.Fatalf("folder upload: one.txt holds %q", got)
	}

	// Rename a.txt.
	b.Select("/a.txt")
	b.Click("#act-rename")
	b.Type("#rename-name", "renamed.txt")
	b.Run(chromedp.KeyEvent("\r"))
	b.WaitRow("/renamed.txt")
	b.WaitNoRow("/a.txt")
	mustNotExist(t, filepath.Join(disk, "a.txt"))
	if !bytes.Equal(mustRead(t, filepath.Join(disk, "renamed.txt")), a) {
		t.Fatal("renamed file differs")
	}

	// New folder, then move renamed.txt into it with the folder picker.
	b.Click("#new-folder")
	b.Type("#new-name", "dest")
	b.Run(chromedp.KeyEvent("\r"))
	b.WaitRow("/dest")
	b.Select("/renamed.txt")
	b.Click("#act-move")
	b.WaitPicker()
	b.Click(`.pick-dir[data-id="/dest"]`)
	b.WaitText("#pick-at", "/dest")
	b.WaitPicker()
	b.Press("#pick-confirm")
	b.WaitNoRow("/renamed.txt")
	mustNotExist(t, filepath.Join(disk, "renamed.txt"))
	if !bytes.Equal(mustRead(t, filepath.Join(disk, "dest", "renamed.txt")), a) {
		t.Fatal("moved file differs")
	}

	// Copy b.bin into dest.
	b.Select("/b.bin")
	b.Click("#act-copy")
	b.WaitPicker()
	b.Click(`.pick-dir[data-id="/dest"]`)
	b.WaitText("#pick-at", "/dest")
	b.WaitPicker()
	b.Press("#pick-confirm")
	b.WaitJS(`document.querySelector('#act-copy') === null`)
	if !bytes.Equal(mustRead(t, filepath.Join(disk, "dest", "b.bin")), bin) || !bytes.Equal(mustRead(t, filepath.Join(disk, "b.bin")), bin) {
		t.Fatal("copy: source or copy differs")
	}

	// Delete b.bin and the uploaded folder in one batch.
	b.Select("/b.bin")
	b.Select("/folder")
	b.WaitText("#sel-count", "2 selected")
	b.Click("#act-delete")
	b.Click("#delete-confirm")
	b.WaitNoRow("/b.bin")
	b.WaitNoRow("/folder")
	mustNotExist(t, filepath.Join(disk, "b.bin"))
	mustNotExist(t, filepath.Join(disk, "folder"))

	// Download a file (inside dest, reached by opening the folder).
	b.Click(rowSel("/dest") + " button.name")
	b.WaitText(".crumbs", "dest")
	b.WaitRow("/dest/renamed.txt")
	b.Select("/dest/renamed.txt")
	b.Click("#act-download")
	if got := b.WaitDownload("renamed.txt"); !bytes.Equal(got, a) {
		t.Fatalf("downloaded file: %d bytes, want %d", len(got), len(a))
	}

	// Download the folder as a zip, from the root by the breadcrumbs.
	b.Click(`.crumbs li:nth-child(2) a`)
	b.WaitRow("/dest")
	b.Select("/dest")
	b.Click("#act-download")
	b.Click("#dl-zip")
	z := b.WaitDownload("dest.zip")
	zr, err := zip.NewReader(bytes.NewReader(z), int64(len(z)))
	must(t, err)
	got := map[string][]byte{}
	for _, f := range zr.File {
		if strings.HasSuffix(f.Name, "/") {
			continue
		}
		rc, err := f.Open()
		must(t, err)
		data, err := io.ReadAll(rc)
		must(t, err)
		must(t, rc.Close())
		got[f.Name] = data
	}
	want := map[string][]byte{}
	must(t, filepath.WalkDir(filepath.Join(disk, "dest"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(disk, p)
		if err != nil {
			return err
		}
		want[filepath.ToSlash(rel)] = mustRead(t, p)
		return nil
	}))
	if len(want) != 2 {
		t.Fatalf("dest on disk holds %d files, want 2", len(want))
	}
	names := func(m map[string][]byte) []string {
		var out []string
		for k := range m {
			out = append(out, k)
		}
		slices.Sort(out)
		return out
	}
	// Entries may be named with or without the folder as prefix; compare
	// by the part below dest.
	norm := map[string][]byte{}
	for k, v := range got {
		norm[strings.TrimPrefix(k, "dest/")] = v
	}
	for k, v := range want {
		k = strings.TrimPrefix(k, "dest/")
		if !bytes.Equal(norm[k], v) {
			t.Fatalf("zip entry %s differs from disk (zip has %v, disk %v)", k, names(got), names(want))
		}
	}
	if len(norm) != len(want) {
		t.Fatalf("zip has %v, disk %v", names(got), names(want))
	}

	// And as a tar.gz (dest is still selected).
	b.WaitText("#sel-count", "1 selected")
	b.Click("#act-download")
	b.Click("#dl-targz")
	tgz := b.WaitDownload("dest.tar.gz")
	zr2, err := gzip.NewReader(bytes.NewReader(tgz))
	must(t, err)
	tr := tar.NewReader(zr2)
	tgot := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		must(t, err)
		if h.Typeflag != tar.TypeReg {
			continue
		}
		data, err := io.ReadAll(tr)
		must(t, err)
		tgot[strings.TrimPrefix(strings.TrimPrefix(h.Name, "./"), "dest/")] = data
	}
	if len(tgot) != len(want) {
		t.Fatalf("tar.gz has %v, disk %v", names(tgot), names(want))
	}
	for k, v := range want {
		if k = strings.TrimPrefix(k, "dest/"); !bytes.Equal(tgot[k], v) {
			t.Fatalf("tar.gz entry %s differs from disk (tar has %v)", k, names(tgot))
		}
	}
}
