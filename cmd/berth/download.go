package main

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/client"
)

type getOptions struct {
	format  string // zip or tar.gz, for a directory
	extract bool
	retries int
}

// get downloads a file, or a directory as an archive (or extracted).
func (a *app) get(ctx context.Context, arg, local string, opt getOptions) error {
	c, ws, rp, err := a.remote(ctx, arg)
	if err != nil {
		return err
	}
	if opt.format != "" && opt.format != "zip" && opt.format != "tar.gz" {
		return fmt.Errorf("--format %q: want zip or tar.gz", opt.format)
	}
	// The root has no entry of its own (its /info is the workspace's space).
	isDir := rp.path == "/"
	if !isDir {
		info, err := c.FileInfo(ctx, ws.ID, rp.path)
		if err != nil {
			return err
		}
		isDir = info.Type == "directory"
	}
	if isDir {
		return a.getDir(ctx, c, ws, rp, local, opt)
	}
	if opt.extract {
		return fmt.Errorf("%s is a file: --extract is for directories", rp)
	}
	return a.getFile(ctx, c, ws, rp, local, opt.retries)
}

// getFile downloads one file through LOCAL.partial, resuming a cut-off
// transfer with a Range request that holds only if the file is still the
// one begun (If-Range with the ETag kept in LOCAL.partial.etag).
func (a *app) getFile(ctx context.Context, c *client.Client, ws *client.Workspace, rp remotePath, local string, retries int) error {
	if local == "-" {
		return a.getToStdout(ctx, c, ws, rp, retries)
	}
	if local == "" {
		local = path.Base(rp.path)
	} else if isDir(local) || strings.HasSuffix(local, string(os.PathSeparator)) {
		local = filepath.Join(local, path.Base(rp.path))
	}
	partial, etagFile := local+".partial", local+".partial.etag"
	var (
		resumedAt int64 = -1
		total     int64
	)
	bar := a.newProgress(-1, "download "+path.Base(rp.path))
	defer bar.Finish()
	for attempt := 0; ; attempt++ {
		var offset int64
		etag := ""
		if st, err := os.Stat(partial); err == nil {
			if b, err := os.ReadFile(etagFile); err == nil && len(b) > 0 {
				offset, etag = st.Size(), strings.TrimSpace(string(b))
			}
		}
		h := http.Header{}
		if offset > 0 {
			h.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
			h.Set("If-Range", etag)
		}
		resp, err := c.Download(ctx, ws.ID, rp.path, client.DownloadOptions{Header: h})
		var ae *client.Error
		if errors.As(err, &ae) && ae.Status == http.StatusRequestedRangeNotSatisfiable {
			// The partial file is as long as the file or longer: it is not
			// a prefix worth keeping. Start over.
			if err := removeFiles(partial, etagFile); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		flags := os.O_WRONLY | os.O_CREATE
		switch resp.StatusCode {
		case http.StatusPartialContent:
			if start, ok := rangeStart(resp.Header.Get("Content-Range")); !ok || start != offset {
				closeQuietly(resp.Body)
				return fmt.Errorf("the server answered range %q to bytes=%d-", resp.Header.Get("Content-Range"), offset)
			}
			flags |= os.O_APPEND
			if resumedAt < 0 {
				resumedAt = offset
			}
			total = offset + resp.ContentLength
		case http.StatusOK:
			// A new transfer, or the file changed since the partial one.
			offset = 0
			flags |= os.O_TRUNC
			total = resp.ContentLength
			if err := writeFile0600(etagFile, resp.Header.Get("ETag")); err != nil {
				closeQuietly(resp.Body)
				return err
			}
		default:
			closeQuietly(resp.Body)
			return fmt.Errorf("download answered %s", resp.Status)
		}
		f, err := os.OpenFile(partial, flags, 0o644)
		if err != nil {
			closeQuietly(resp.Body)
			return err
		}
		if bar.bar != nil {
			bar.bar.ChangeMax64(total)
		}
		bar.Set(offset)
		n, cerr := io.Copy(bar.Writer(f), resp.Body)
		closeQuietly(resp.Body)
		if err := f.Close(); err != nil && cerr == nil {
			cerr = err
		}
		if cerr == nil {
			break
		}
		if ctx.Err() != nil {
			return fmt.Errorf("download of %s interrupted after %d bytes: run the same command again to resume", rp, offset+n)
		}
		if attempt >= retries {
			return fmt.Errorf("download of %s cut off after %d bytes (%v): run the same command again to resume from %s", rp, offset+n, cerr, partial)
		}
		a.warnf("berth: download of %s cut off after %d bytes (%v); resuming\n", rp, offset+n, cerr)
	}
	if err := os.Rename(partial, local); err != nil {
		return err
	}
	if err := removeFiles(etagFile); err != nil {
		return err
	}
	bar.Finish()
	res := map[string]any{"workspaceId": ws.ID, "path": rp.path, "local": local, "bytes": total}
	if resumedAt >= 0 {
		res["resumedAt"] = resumedAt
		return a.mutated(res, local, "downloaded %s to %s (%s, resumed at byte %d)", rp, local, bytesCell(total), resumedAt)
	}
	return a.mutated(res, local, "downloaded %s to %s (%s)", rp, local, bytesCell(total))
}

// getToStdout streams a file to stdout; a cut-off transfer resumes with a
// Range request if the file is unchanged (what was written cannot be taken
// back).
func (a *app) getToStdout(ctx context.Context, c *client.Client, ws *client.Workspace, rp remotePath, retries int) error {
	var written int64
	etag := ""
	for attempt := 0; ; attempt++ {
		h := http.Header{}
		if written > 0 {
			h.Set("Range", "bytes="+strconv.FormatInt(written, 10)+"-")
			h.Set("If-Range", etag)
		}
		resp, err := c.Download(ctx, ws.ID, rp.path, client.DownloadOptions{Header: h})
		if err != nil {
			return err
		}
		if written > 0 && resp.StatusCode != http.StatusPartialContent {
			closeQuietly(resp.Body)
			return fmt.Errorf("%s changed during the download, after %d bytes had been written", rp, written)
		}
		etag = resp.Header.Get("ETag")
		n, cerr := io.Copy(a.stdout, resp.Body)
		closeQuietly(resp.Body)
		written += n
		if cerr == nil {
			return nil
		}
		if ctx.Err() != nil || attempt >= retries || etag == "" {
			return fmt.Errorf("download of %s cut off after %d bytes: %w", rp, written, cerr)
		}
	}
}

// rangeStart reads the first byte of "bytes 100-199/200".
func rangeStart(cr string) (int64, bool) {
	s, ok := strings.CutPrefix(cr, "bytes ")
	if !ok {
		return 0, false
	}
	s, _, ok = strings.Cut(s, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

func writeFile0600(name, s string) error { return os.WriteFile(name, []byte(s), 0o600) }

// removeFiles removes files that may not exist.
func removeFiles(names ...string) error {
	for _, n := range names {
		if err := os.Remove(n); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// getDir downloads a directory as an archive the server makes as it
// sends, saved as LOCAL or, with --extract, unpacked into the directory
// LOCAL (default "."). An archive has no validator to resume against: a
// cut-off one is fetched again from the start.
func (a *app) getDir(ctx context.Context, c *client.Client, ws *client.Workspace, rp remotePath, local string, opt getOptions) error {
	base := path.Base(rp.path)
	if rp.path == "/" {
		base = ws.Slug
	}
	format := opt.format
	if format == "" {
		switch {
		case opt.extract:
			format = "tar.gz" // streams: nothing lands on disk but the files
		case strings.HasSuffix(local, ".tar.gz"), strings.HasSuffix(local, ".tgz"):
			format = "tar.gz"
		default:
			format = "zip"
		}
	}
	ext := "." + format
	for attempt := 0; ; attempt++ {
		err := a.getArchive(ctx, c, ws, rp, local, base, ext, format, opt.extract)
		if err == nil || ctx.Err() != nil || attempt >= opt.retries {
			return err
		}
		var ae *client.Error
		switch {
		case errors.As(err, &ae) && ae.Code == "unavailable" && ae.RetryAfter > 0:
			// The server makes a few archives at a time and says when to
			// come back.
			a.warnf("berth: %s; trying again in %v\n", ae.Message, ae.RetryAfter)
			t := time.NewTimer(ae.RetryAfter)
			select {
			case <-ctx.Done():
				t.Stop()
				return err
			case <-t.C:
			}
		case transferCut(err):
			a.warnf("berth: download of %s cut off (%v); an archive cannot resume: starting over\n", rp, err)
		default:
			return err
		}
	}
}

// transferCut says whether err is a transfer that broke off (worth trying
// again), not an answer or a local failure.
func transferCut(err error) bool {
	var ae *client.Error
	if errors.As(err, &ae) {
		return false
	}
	var pe *os.PathError
	return !errors.As(err, &pe)
}

func (a *app) getArchive(ctx context.Context, c *client.Client, ws *client.Workspace, rp remotePath, local, base, ext, format string, extract bool) error {
	resp, err := c.Download(ctx, ws.ID, rp.path, client.DownloadOptions{Attachment: true, Format: format})
	if err != nil {
		return err
	}
	defer closeQuietly(resp.Body)
	bar := a.newProgress(-1, "download "+base+ext)
	defer bar.Finish()
	body := bar.Reader(resp.Body)
	if extract {
		dest := firstOf(local, ".")
		if err := os.MkdirAll(dest, 0o755); err != nil {
			return err
		}
		var n int
		if format == "tar.gz" {
			n, err = untar(body, dest)
		} else {
			n, err = unzipStream(body, dest)
		}
		if err != nil {
			return err
		}
		bar.Finish()
		return a.mutated(map[string]any{"workspaceId": ws.ID, "path": rp.path, "local": dest, "files": n}, dest,
			"extracted %s into %s (%d files)", rp, dest, n)
	}
	if local == "" {
		local = base + ext
	} else if isDir(local) {
		local = filepath.Join(local, base+ext)
	}
	partial := local + ".partial"
	f, err := os.Create(partial)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(partial, local); err != nil {
		return err
	}
	bar.Finish()
	return a.mutated(map[string]any{"workspaceId": ws.ID, "path": rp.path, "local": local, "bytes": n}, local,
		"downloaded %s to %s (%s)", rp, local, bytesCell(n))
}

// safeJoin is dest joined with an archive's entry name, refused if the
// name would land outside dest.
func safeJoin(dest, name string) (string, error) {
	clean := path.Clean("/" + strings.ReplaceAll(name, "\\", "/"))
	if clean == "/" {
		return dest, nil
	}
	if strings.HasPrefix(name, "/") || strings.Contains("/"+name+"/", "/../") {
		return "", fmt.Errorf("archive entry %q leaves the target directory", name)
	}
	return filepath.Join(dest, filepath.FromSlash(clean[1:])), nil
}

// untar unpacks a tar.gz stream into dest: directories and regular files
// (other entries are skipped). It returns the number of files.
func untar(r io.Reader, dest string) (int, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return 0, err
	}
	tr := tar.NewReader(gz)
	n := 0
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return n, gz.Close()
		}
		if err != nil {
			return n, err
		}
		p, err := safeJoin(dest, h.Name)
		if err != nil {
			return n, err
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return n, err
			}
		case tar.TypeReg:
			if err := writeEntry(p, tr, h.FileInfo().Mode().Perm()); err != nil {
				return n, err
			}
			n++
		}
	}
}

// unzipStream saves a zip stream to a temporary file (a zip's directory is
// at its end) and unpacks it into dest.
func unzipStream(r io.Reader, dest string) (int, error) {
	tmp, err := os.CreateTemp("", "berth-*.zip")
	if err != nil {
		return 0, err
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	size, err := io.Copy(tmp, r)
	if err != nil {
		_ = tmp.Close()
		return 0, err
	}
	defer closeQuietly(tmp)
	zr, err := zip.NewReader(tmp, size)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, zf := range zr.File {
		p, err := safeJoin(dest, zf.Name)
		if err != nil {
			return n, err
		}
		mode := zf.Mode()
		switch {
		case mode.IsDir():
			if err := os.MkdirAll(p, 0o755); err != nil {
				return n, err
			}
		case mode.IsRegular():
			rc, err := zf.Open()
			if err != nil {
				return n, err
			}
			err = writeEntry(p, rc, mode.Perm())
			closeQuietly(rc)
			if err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

func writeEntry(p string, r io.Reader, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if perm == 0 {
		perm = 0o644
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
