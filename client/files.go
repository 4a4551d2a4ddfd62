package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// FileEntry is one entry of a workspace. ID is its path from the workspace
// root; Path the directory holding it.
type FileEntry struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Path     string    `json:"path"`
	Type     string    `json:"type"` // file, directory or symlink
	Size     int64     `json:"size"`
	MTime    time.Time `json:"mtime"`
	MimeType *string   `json:"mimeType"`
}

// FileSummary is an entry plus, for a directory, its recursive size (in
// Size) and entry count. Allocated is what the disk holds for it (for a
// directory, the files below it): less than Size for sparse files.
type FileSummary struct {
	FileEntry
	Allocated int64 `json:"allocated"`
	Count     int64 `json:"count"`
	Truncated bool  `json:"truncated"`
}

// Space is a workspace's used, total and free bytes; -1 means unlimited.
type Space struct {
	Used  int64 `json:"used"`
	Total int64 `json:"total"`
	Free  int64 `json:"free"`
	// SnapshotBytes is the part of Used only snapshots hold.
	SnapshotBytes int64 `json:"snapshotBytes"`
}

// BatchResult is one id's outcome of a batch operation.
type BatchResult struct {
	ID    string     `json:"id"`
	OK    bool       `json:"ok"`
	Entry *FileEntry `json:"entry"`
	Error *Error     `json:"error"`
}

// FileEvent is one change reported by WatchFiles. Type is create, write,
// remove, rename or overflow (events were lost: list again).
type FileEvent struct {
	Type    string `json:"type"`
	Path    string `json:"path"`
	OldPath string `json:"oldPath"`
}

// ListFilesOptions select a page of a listing.
type ListFilesOptions struct {
	ShowHidden bool
	Limit      int
	Cursor     string
	// Snapshot lists the directory in that snapshot (its id) instead of
	// the live tree.
	Snapshot string
}

// filesURL is /v1/workspaces/{ws}/{kind}{p}, with each segment of the
// workspace path p escaped.
func filesURL(ws, kind, p string) string {
	u := "/v1/workspaces/" + url.PathEscape(ws) + "/" + kind
	if p = strings.TrimPrefix(p, "/"); p != "" {
		segs := strings.Split(p, "/")
		for i, s := range segs {
			segs[i] = url.PathEscape(s)
		}
		u += "/" + strings.Join(segs, "/")
	}
	return u
}

// ListFiles lists one page of the directory dir ("/" for the root) and
// returns the cursor of the next page ("" on the last).
func (c *Client) ListFiles(ctx context.Context, ws, dir string, opt ListFilesOptions) ([]FileEntry, string, error) {
	var out []FileEntry
	lim := ""
	if opt.Limit > 0 {
		lim = strconv.Itoa(opt.Limit)
	}
	m, err := c.Do(ctx, "GET", filesURL(ws, "files", dir)+query("showHidden", boolStr(opt.ShowHidden), "limit", lim, "cursor", opt.Cursor, "snapshot", opt.Snapshot), nil, &out)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if m.NextCursor != nil {
		next = *m.NextCursor
	}
	return out, next, nil
}

// WorkspaceSpace reports a workspace's used, total and free bytes.
func (c *Client) WorkspaceSpace(ctx context.Context, ws string) (*Space, error) {
	var s Space
	_, err := c.Do(ctx, "GET", "/v1/workspaces/"+url.PathEscape(ws)+"/info", nil, &s)
	return &s, err
}

// FileInfo describes the entry at p; for a directory, with its recursive
// size and count.
func (c *Client) FileInfo(ctx context.Context, ws, p string) (*FileSummary, error) {
	return c.SnapshotFileInfo(ctx, ws, "", p)
}

// SnapshotFileInfo is FileInfo in snapshot snap of ws ("" is the live tree).
func (c *Client) SnapshotFileInfo(ctx context.Context, ws, snap, p string) (*FileSummary, error) {
	var s FileSummary
	_, err := c.Do(ctx, "GET", filesURL(ws, "info", p)+query("snapshot", snap), nil, &s)
	return &s, err
}

// CreateFile creates a file (with contents, which may be nil) or a
// directory (typ "directory") named name in the directory dir.
func (c *Client) CreateFile(ctx context.Context, ws, dir, name, typ string, contents *string) (*FileEntry, error) {
	body := map[string]any{"name": name, "type": typ}
	if contents != nil {
		body["contents"] = *contents
	}
	var e FileEntry
	_, err := c.Do(ctx, "POST", filesURL(ws, "files", dir), body, &e)
	return &e, err
}

// UploadPart is one file of an upload. Name is its file name, which may be
// a relative path below the upload directory ("sub/a.txt").
type UploadPart struct {
	Name string
	Body io.Reader
}

// Upload streams parts into the directory dir as one multipart request
// (nothing is held in memory); each file is replaced atomically.
func (c *Client) Upload(ctx context.Context, ws, dir string, parts ...UploadPart) ([]FileEntry, error) {
	return c.upload(ctx, ws, dir, "", parts)
}

// UploadAs uploads body as the single file named name in the directory dir
// (the "name" field).
func (c *Client) UploadAs(ctx context.Context, ws, dir, name string, body io.Reader) (*FileEntry, error) {
	es, err := c.upload(ctx, ws, dir, name, []UploadPart{{Name: "upload", Body: body}})
	if err != nil {
		return nil, err
	}
	if len(es) != 1 {
		return nil, fmt.Errorf("upload answered %d entries, want 1", len(es))
	}
	return &es[0], nil
}

func (c *Client) upload(ctx context.Context, ws, dir, name string, parts []UploadPart) ([]FileEntry, error) {
	if body, ct, size, ok := sizedMultipart(name, parts); ok {
		req, err := c.NewRequest(ctx, "POST", filesURL(ws, "upload", dir), body)
		if err != nil {
			return nil, err
		}
		req.ContentLength = size
		req.Header.Set("Content-Type", ct)
		return c.sendUpload(req)
	}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		err := func() error {
			buf := make([]byte, 256<<10)
			if name != "" {
				if err := mw.WriteField("name", name); err != nil {
					return err
				}
			}
			for _, p := range parts {
				w, err := mw.CreateFormFile("file", p.Name)
				if err != nil {
					return err
				}
				if _, err := io.CopyBuffer(w, p.Body, buf); err != nil {
					return err
				}
			}
			return mw.Close()
		}()
		pw.CloseWithError(err)
	}()
	req, err := c.NewRequest(ctx, "POST", filesURL(ws, "upload", dir), pr)
	if err != nil {
		_ = pr.Close() // closing a pipe's reader never fails
		return nil, err
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	out, err := c.sendUpload(req)
	_ = pr.Close() // stops the writer if the server answered early; never fails
	return out, err
}

func (c *Client) sendUpload(req *http.Request) ([]FileEntry, error) {
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer closeBody(resp)
	var out []FileEntry
	_, err = decodeEnvelope(resp, &out)
	return out, err
}

// sizedMultipart lays out the multipart body of an upload whose parts all
// have a known length (files, in-memory readers) as the framing bytes and
// the bodies themselves, one after the other, with its total length. Sent
// that way the request needs no chunked encoding and no pipe, and a file
// part goes from the file to the socket by the kernel (sendfile) when the
// connection allows it.
func sizedMultipart(name string, parts []UploadPart) (io.Reader, string, int64, bool) {
	sizes := make([]int64, len(parts))
	for i, p := range parts {
		n, ok := knownLen(p.Body)
		if !ok {
			return nil, "", 0, false
		}
		sizes[i] = n
	}
	var frame bytes.Buffer
	mw := multipart.NewWriter(&frame)
	var rs []io.Reader
	var total int64
	cut := func() {
		b := bytes.Clone(frame.Bytes())
		frame.Reset()
		rs = append(rs, bytes.NewReader(b))
		total += int64(len(b))
	}
	if name != "" {
		if err := mw.WriteField("name", name); err != nil {
			return nil, "", 0, false
		}
	}
	for i, p := range parts {
		if _, err := mw.CreateFormFile("file", p.Name); err != nil {
			return nil, "", 0, false
		}
		cut()
		rs = append(rs, p.Body)
		total += sizes[i]
	}
	if err := mw.Close(); err != nil {
		return nil, "", 0, false
	}
	cut()
	return io.MultiReader(rs...), mw.FormDataContentType(), total, true
}

// knownLen is how many bytes r will yield, when that is known without
// reading it: the rest of a regular file, or of an in-memory reader.
func knownLen(r io.Reader) (int64, bool) {
	switch v := r.(type) {
	case *os.File:
		st, err := v.Stat()
		if err != nil || !st.Mode().IsRegular() {
			return 0, false
		}
		off, err := v.Seek(0, io.SeekCurrent)
		if err != nil || off > st.Size() {
			return 0, false
		}
		return st.Size() - off, true
	case interface{ Len() int }: // bytes.Reader, strings.Reader, bytes.Buffer
		return int64(v.Len()), true
	}
	return 0, false
}

// PutFile writes body, as is, to the file at p (created, or replaced
// atomically; missing parent directories are created): the raw upload, the
// cheapest way to send one file. size is body's length, or -1 when unknown
// (the request is then chunked). An *os.File body is sent by the kernel
// (sendfile) when the connection allows it.
func (c *Client) PutFile(ctx context.Context, ws, p string, body io.Reader, size int64) (*FileEntry, error) {
	return c.PutFileIf(ctx, ws, p, body, size, "")
}

// PutFileIf is PutFile that refuses (412 precondition_failed) to replace a
// file whose ETag is no longer ifMatch ("*": any existing file; "": no
// condition).
func (c *Client) PutFileIf(ctx context.Context, ws, p string, body io.Reader, size int64, ifMatch string) (*FileEntry, error) {
	if size == 0 || body == nil {
		body, size = http.NoBody, 0
	}
	req, err := c.NewRequest(ctx, "PUT", filesURL(ws, "upload", p), body)
	if err != nil {
		return nil, err
	}
	if size >= 0 {
		req.ContentLength = size
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	if ifMatch != "" {
		req.Header.Set("If-Match", ifMatch)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer closeBody(resp)
	var out FileEntry
	if _, err := decodeEnvelope(resp, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// WriteFile replaces (or creates) the file at p with contents.
func (c *Client) WriteFile(ctx context.Context, ws, p, contents string) (*FileEntry, error) {
	return c.fileOp(ctx, ws, p, map[string]any{"operation": "write", "contents": contents}, false)
}

// RenameFile gives the entry at p a new name in the same directory.
func (c *Client) RenameFile(ctx context.Context, ws, p, newName string, overwrite bool) (*FileEntry, error) {
	return c.fileOp(ctx, ws, p, map[string]any{"operation": "rename", "target": newName}, overwrite)
}

// MoveFile moves the entry at p into the directory target.
func (c *Client) MoveFile(ctx context.Context, ws, p, target string, overwrite bool) (*FileEntry, error) {
	return c.fileOp(ctx, ws, p, map[string]any{"operation": "move", "target": target}, overwrite)
}

// CopyFile copies the entry at p (recursively) into the directory target.
func (c *Client) CopyFile(ctx context.Context, ws, p, target string, overwrite bool) (*FileEntry, error) {
	return c.fileOp(ctx, ws, p, map[string]any{"operation": "copy", "target": target}, overwrite)
}

func (c *Client) fileOp(ctx context.Context, ws, p string, body map[string]any, overwrite bool) (*FileEntry, error) {
	var e FileEntry
	_, err := c.Do(ctx, "PUT", filesURL(ws, "files", p)+query("overwrite", boolStr(overwrite)), body, &e)
	return &e, err
}

// BatchFiles copies or moves (op) up to 250 entries into the directory target.
func (c *Client) BatchFiles(ctx context.Context, ws, op string, ids []string, target string, overwrite bool) ([]BatchResult, error) {
	var out []BatchResult
	_, err := c.Do(ctx, "PUT", filesURL(ws, "files", "")+query("overwrite", boolStr(overwrite)),
		map[string]any{"operation": op, "ids": ids, "target": target}, &out)
	return out, err
}

// DeleteFile deletes the entry at p (a directory with everything below it).
func (c *Client) DeleteFile(ctx context.Context, ws, p string) error {
	_, err := c.Do(ctx, "DELETE", filesURL(ws, "files", p), nil, nil)
	return err
}

// DeleteFiles deletes up to 250 entries.
func (c *Client) DeleteFiles(ctx context.Context, ws string, ids []string) ([]BatchResult, error) {
	var out []BatchResult
	_, err := c.Do(ctx, "DELETE", filesURL(ws, "files", ""), map[string]any{"ids": ids}, &out)
	return out, err
}

// DownloadOptions tune Download.
type DownloadOptions struct {
	Attachment bool   // download=true: Content-Disposition attachment
	Format     string // for a directory: "zip" (default) or "tar.gz"
	Header     http.Header
	Snapshot   string // read from this snapshot (its id) instead of the live tree
}

// Download opens the file at p (a directory: an archive of it). The caller
// reads and closes the response body; headers such as Range go in
// opt.Header. An error status is returned as *Error.
func (c *Client) Download(ctx context.Context, ws, p string, opt DownloadOptions) (*http.Response, error) {
	req, err := c.NewRequest(ctx, "GET", "/v1/workspaces/"+url.PathEscape(ws)+"/direct"+
		query("id", p, "download", boolStr(opt.Attachment), "format", opt.Format, "snapshot", opt.Snapshot), nil)
	if err != nil {
		return nil, err
	}
	for k, v := range opt.Header {
		req.Header[k] = v
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 400 {
		defer closeBody(resp)
		return nil, ErrorFrom(resp)
	}
	return resp, nil
}

// WatchFiles calls fn for each change below the directory dir until ctx
// ends or fn returns an error. ready (may be nil) is called once the watch is
// in place.
func (c *Client) WatchFiles(ctx context.Context, ws, dir string, ready func(), fn func(FileEvent) error) error {
	return c.Stream(ctx, "GET", "/v1/workspaces/"+url.PathEscape(ws)+"/watch"+query("path", dir), nil, func(e Event) error {
		if e.Name == "ready" {
			if ready != nil {
				ready()
			}
			return nil
		}
		var fe FileEvent
		if err := json.Unmarshal([]byte(e.Data), &fe); err != nil {
			return fmt.Errorf("watch event %q: %w", e.Name, err)
		}
		return fn(fe)
	})
}
