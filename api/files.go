package api

import (
	"bufio"
	"context"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/workspace"
	"github.com/berth-dev/berth/workspace/files"
)

func (s *Server) fileRoutes() []route {
	return []route{
		{Method: "GET", Pattern: "/v1/workspaces/{id}/files", Summary: "list the workspace root (?showHidden, sort=name|size|mtime, order=asc|desc, limit, cursor)", Scope: "files:read", Paged: true, Query: []param{qHidden, qSort, qOrder, qSnapshot}, Out: []files.Entry{}, handler: s.listFiles},
		{Method: "GET", Pattern: "/v1/workspaces/{id}/files/*", Summary: "list a directory (?showHidden, sort=name|size|mtime, order=asc|desc, limit, cursor)", Scope: "files:read", Paged: true, Query: []param{qHidden, qSort, qOrder, qSnapshot}, Out: []files.Entry{}, handler: s.listFiles},
		{Method: "GET", Pattern: "/v1/workspaces/{id}/info", Summary: "space used, total and free (-1: unlimited)", Scope: "files:read", Query: []param{qSnapshot}, Out: files.Info{}, handler: s.workspaceSpace},
		{Method: "GET", Pattern: "/v1/workspaces/{id}/info/*", Summary: "one entry; for a directory its recursive size and count", Scope: "files:read", Query: []param{qSnapshot}, Out: files.Summary{}, handler: s.fileInfo},
		{Method: "POST", Pattern: "/v1/workspaces/{id}/files", Summary: "create a file or directory in the root", Scope: "files:write", Success: []int{201}, In: fileCreate{}, Out: files.Entry{}, handler: s.createFile},
		{Method: "POST", Pattern: "/v1/workspaces/{id}/files/*", Summary: "create a file or directory in a directory", Scope: "files:write", Success: []int{201}, In: fileCreate{}, Out: files.Entry{}, handler: s.createFile},
		{Method: "POST", Pattern: "/v1/workspaces/{id}/upload", Summary: "multipart upload into the root", Scope: "files:write", Success: []int{201}, Upload: true, Out: []files.Entry{}, handler: s.uploadFiles},
		{Method: "POST", Pattern: "/v1/workspaces/{id}/upload/*", Summary: "multipart upload into a directory (created if missing)", Scope: "files:write", Success: []int{201}, Upload: true, Out: []files.Entry{}, handler: s.uploadFiles},
		{Method: "PUT", Pattern: "/v1/workspaces/{id}/upload/*", Summary: "write the request body, as is, to the file at the path (created or replaced atomically, parents created; If-Match: 412 when changed)", Scope: "files:write", Success: []int{200, 201}, RawIn: true,
			Query: []param{qIfMatch}, Out: files.Entry{}, handler: s.putFile},
		{Method: "PUT", Pattern: "/v1/workspaces/{id}/files", Summary: "batch copy or move (?overwrite)", Scope: "files:write", Query: []param{qOverwrite}, In: fileBatch{}, Out: []batchResult{}, handler: s.batchFiles},
		{Method: "PUT", Pattern: "/v1/workspaces/{id}/files/*", Summary: "rename, move, copy or write an entry (?overwrite; a write honours If-Match: 412 when changed)", Scope: "files:write", Query: []param{qOverwrite, qIfMatch}, In: fileUpdate{}, Out: files.Entry{}, handler: s.updateFile},
		{Method: "DELETE", Pattern: "/v1/workspaces/{id}/files", Summary: "batch delete", Scope: "files:write", In: fileBatchDelete{}, Out: []batchResult{}, handler: s.batchDeleteFiles},
		{Method: "DELETE", Pattern: "/v1/workspaces/{id}/files/*", Summary: "delete a file or directory (recursive)", Scope: "files:write", Out: deleted{}, handler: s.deleteFile},
		{Method: "GET", Pattern: "/v1/workspaces/{id}/direct", Summary: "download a file (?id=/path, download, Range); a directory as zip or tar.gz (format)", Scope: "files:read",
			Query: []param{
				{Name: "id", Desc: "the file's or directory's path", Required: true},
				qBool("download", "Content-Disposition: attachment instead of inline"),
				qString("format", "a directory's archive format (default zip)", archiveFormats...),
				{Name: "Range", Header: true, Desc: "bytes=first-last: part of a file (206), to resume a download"},
				{Name: "If-Range", Header: true, Desc: "the ETag the Range applies to"},
				{Name: "If-None-Match", Header: true, Desc: "an ETag: 304 when unchanged"},
				qSnapshot,
			},
			Raw: []rawBody{
				{Types: []string{"*/*", "application/zip", "application/gzip"}, Desc: "the file with its own media type (Range, If-None-Match and If-Range honoured); a directory as a zip or tar.gz archive",
					Headers: []string{"ETag", "Content-Disposition", "Accept-Ranges"}},
				{Status: 206, Types: []string{"*/*"}, Desc: "the requested range (multipart/byteranges for several)", Headers: []string{"ETag", "Content-Range"}},
				{Status: 416, Types: []string{"text/plain"}, Desc: "the range cannot be satisfied (net/http's plain answer)"},
			}, handler: s.downloadFile},
		{Method: "GET", Pattern: "/v1/workspaces/{id}/watch", Summary: "Server-Sent Events of changes below ?path=", Scope: "files:read",
			Query: []param{{Name: "path", Desc: "the directory to watch (default /)"}},
			Stream: &stream{When: "Always", Events: append([]sseEvent{
				{Name: "ready", Data: watchReady{}, Desc: "first: the watch is in place"},
			}, fileChangeEvents()...)}, handler: s.watchFiles},
	}
}

// openFiles resolves the route's workspace for scope and acquires its open
// directory; release it when done. With ?snapshot=<id> it opens that
// snapshot's read-only tree instead, through the same confined file layer
// (reads only: a write names a snapshot with 400).
func (s *Server) openFiles(r *http.Request, scope string) (*workspace.Workspace, *files.Workspace, func(), error) {
	if s.Files == nil {
		return nil, nil, nil, berth.Errorf(berth.Unavailable, "workspace files are not configured")
	}
	if sid := r.URL.Query().Get("snapshot"); sid != "" || r.URL.Query().Has("snapshot") {
		if scope != "files:read" {
			return nil, nil, nil, berth.FieldErrorf(berth.Invalid, "snapshot", "snapshots are read-only: ?snapshot= is for listing, info and downloads; restore the snapshot or clone it to change its files")
		}
		w, snap, err := s.Workspaces.ResolveSnapshot(r.Context(), chi.URLParam(r, "id"), sid, scope)
		if err != nil {
			return nil, nil, nil, berth.WithField(err, "snapshot")
		}
		fw, err := s.Files.OpenSnapshot(r.Context(), w, snap)
		if err != nil {
			return nil, nil, nil, err
		}
		return w, fw, sync.OnceFunc(func() { _ = fw.Close() }), nil // read-only handles
	}
	w, err := s.Workspaces.Resolve(r.Context(), chi.URLParam(r, "id"), scope)
	if err != nil {
		return nil, nil, nil, err
	}
	fw, release, err := s.Files.Acquire(r.Context(), w)
	if err != nil {
		return nil, nil, nil, err
	}
	return w, fw, release, nil
}

// routePath returns the workspace path in the route's "*" wildcard. chi
// matches on the escaped path (URL.RawPath) whenever the request has one, and
// the wildcard is then still escaped; otherwise it is already decoded. Either
// way it is decoded exactly once here, so "%252e%252e" names a file called
// "%2e%2e", never "..". files.Clean then validates it.
func routePath(r *http.Request) (string, error) {
	p := chi.URLParam(r, "*")
	if r.URL.RawPath != "" {
		var err error
		if p, err = url.PathUnescape(p); err != nil {
			return "", berth.Errorf(berth.Invalid, "malformed escape in the path")
		}
	}
	p = "/" + p
	if _, err := files.Clean(p); err != nil {
		return "", err
	}
	return p, nil
}

func (s *Server) listFiles(w http.ResponseWriter, r *http.Request) {
	p, err := routePath(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	hidden, err := boolParam(r, "showHidden")
	if err != nil {
		writeError(w, r, err)
		return
	}
	limit, err := limitParam(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	_, fw, release, err := s.openFiles(r, "files:read")
	if err != nil {
		writeError(w, r, err)
		return
	}
	defer release()
	q := r.URL.Query()
	desc := false
	switch o := q.Get("order"); o {
	case "", "asc":
	case "desc":
		desc = true
	default:
		writeError(w, r, berth.Errorf(berth.Invalid, "query parameter order must be asc or desc, not %q", o))
		return
	}
	page, err := fw.List(r.Context(), p, files.ListOptions{ShowHidden: hidden, Limit: limit, Cursor: q.Get("cursor"), Sort: q.Get("sort"), Desc: desc})
	if err != nil {
		writeError(w, r, err)
		return
	}
	writePage(w, r, page.Entries, page.NextCursor)
}

func (s *Server) workspaceSpace(w http.ResponseWriter, r *http.Request) {
	ws, fw, release, err := s.openFiles(r, "files:read")
	if err != nil {
		writeError(w, r, err)
		return
	}
	defer release()
	if r.URL.Query().Has("snapshot") {
		// A snapshot's own tree, as the storage driver counts it (no
		// quota; the tree is never scanned).
		info, err := s.Files.SnapshotSpace(r.Context(), ws, r.URL.Query().Get("snapshot"))
		if err != nil {
			writeError(w, r, err)
			return
		}
		writeData(w, r, http.StatusOK, info)
		return
	}
	info, err := s.Files.Space(r.Context(), ws, fw)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeData(w, r, http.StatusOK, info)
}

func (s *Server) fileInfo(w http.ResponseWriter, r *http.Request) {
	p, err := routePath(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	_, fw, release, err := s.openFiles(r, "files:read")
	if err != nil {
		writeError(w, r, err)
		return
	}
	defer release()
	sum, err := fw.DirSummary(r.Context(), p)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeData(w, r, http.StatusOK, sum)
}

// fileCreate is the body of POST /v1/workspaces/{id}/files[/dir].
type fileCreate struct {
	Name     string  `json:"name"`
	Type     string  `json:"type"`
	Contents *string `json:"contents"`
}

func (s *Server) createFile(w http.ResponseWriter, r *http.Request) {
	dir, err := routePath(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var in fileCreate
	if err := decode(w, r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	var contents io.Reader
	if in.Contents != nil {
		if in.Type != files.TypeFile {
			writeError(w, r, berth.Errorf(berth.Invalid, "contents may only be given for type %q", files.TypeFile))
			return
		}
		contents = strings.NewReader(*in.Contents)
	}
	_, fw, release, err := s.openFiles(r, "files:write")
	if err != nil {
		writeError(w, r, err)
		return
	}
	defer release()
	e, err := fw.Create(r.Context(), dir, in.Name, in.Type, contents)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeData(w, r, http.StatusCreated, e)
}

// uploadBuffer is the read buffer in front of the multipart parser, which
// itself reads in 4 KiB steps: it turns those into few large socket reads.
const uploadBuffer = 1 << 20

// uploadFiles streams each "file" part of a multipart body straight into a
// temporary file next to its target; nothing is buffered beyond a few small
// buffers, whatever the size. Only when the whole body has been read and
// every part written are the files renamed into place, so a request that
// fails (a bad or late field, a bad name, the quota, a client that goes
// away) leaves nothing behind: no file, no temporary file, no directory it
// created. A "name" field, which must come before the (single) file part,
// overrides the part's file name.
func (s *Server) uploadFiles(w http.ResponseWriter, r *http.Request) {
	dir, err := routePath(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	_, fw, release, err := s.openFiles(r, "files:write")
	if err != nil {
		writeError(w, r, err)
		return
	}
	defer release()
	mr, err := multipartReader(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	entries, err := upload(r.Context(), fw, dir, mr)
	if err != nil {
		// The client may still be sending: do not try to reuse the connection.
		w.Header().Set("Connection", "close")
		writeError(w, r, err)
		return
	}
	writeData(w, r, http.StatusCreated, entries)
}

func multipartReader(r *http.Request) (*multipart.Reader, error) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return nil, berth.Errorf(berth.Invalid, "an upload must be a multipart/form-data body")
	}
	return multipart.NewReader(bufio.NewReaderSize(r.Body, uploadBuffer), params["boundary"]), nil
}

func upload(ctx context.Context, fw *files.Workspace, dir string, mr *multipart.Reader) (_ []files.Entry, err error) {
	var staged []*files.Staged
	defer func() {
		if err == nil {
			return
		}
		for i := len(staged) - 1; i >= 0; i-- {
			if aerr := staged[i].Abort(); aerr != nil {
				loggerFrom(ctx).Warn("upload: removing a staged file", "err", aerr, "requestId", requestID(ctx), "path", staged[i].Path())
			}
		}
	}()
	targets := map[string]struct{}{}
	name, nfiles := "", 0
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, berth.Wrap(berth.Invalid, err, "malformed multipart body")
		}
		switch part.FormName() {
		case "name":
			if nfiles > 0 {
				return nil, berth.Errorf(berth.Invalid, "the name field must come before the file part")
			}
			b, err := io.ReadAll(io.LimitReader(part, 4*files.MaxNameLen+1))
			if err != nil {
				return nil, berth.Wrap(berth.Invalid, err, "malformed multipart body")
			}
			if _, err := files.ValidName(string(b)); err != nil {
				return nil, err
			}
			name = string(b)
		case "file":
			nfiles++
			target, err := uploadTarget(dir, name, part, nfiles)
			if err != nil {
				return nil, err
			}
			s, err := fw.Stage(ctx, target, fillReader{part}, files.WriteOptions{MakeParents: true})
			if err != nil {
				return nil, err
			}
			staged = append(staged, s)
			if _, dup := targets[s.Path()]; dup {
				return nil, berth.Errorf(berth.Invalid, "two file parts name %s", s.Path())
			}
			targets[s.Path()] = struct{}{}
		default:
			return nil, berth.Errorf(berth.Invalid, "unknown form field %q: an upload takes \"file\" parts and an optional \"name\"", part.FormName())
		}
	}
	if nfiles == 0 {
		return nil, berth.Errorf(berth.Invalid, "no \"file\" part in the upload")
	}
	// All parts are written. Find conflicts before replacing anything; the
	// renames themselves fail only if the tree changes under us meanwhile,
	// and then the parts already renamed stay in place.
	for _, s := range staged {
		if err := s.Check(); err != nil {
			return nil, err
		}
	}
	entries := make([]files.Entry, 0, len(staged))
	for _, s := range staged {
		e, err := s.Commit()
		if err != nil {
			return nil, err
		}
		entries = append(entries, e)
	}
	return entries, nil
}

// uploadTarget is where file part number n goes: dir joined with the name
// field, or else with the part's file name, which may be a relative path
// (folder uploads send "sub/file.txt"). The raw Content-Disposition value is
// used rather than Part.FileName, which would silently drop directories and
// turn "../x" into "x" instead of refusing it.
func uploadTarget(dir, name string, part *multipart.Part, n int) (string, error) {
	if name != "" {
		if n > 1 {
			return "", berth.Errorf(berth.Invalid, "the name field may only be given with a single file part")
		}
		return strings.TrimSuffix(dir, "/") + "/" + name, nil
	}
	_, params, err := mime.ParseMediaType(part.Header.Get("Content-Disposition"))
	fn := params["filename"]
	if err != nil || fn == "" {
		return "", berth.Errorf(berth.Invalid, "file part %d has no filename (or give a name field)", n)
	}
	if strings.HasPrefix(fn, "/") {
		return "", berth.Errorf(berth.Invalid, "file name %q must be relative", fn)
	}
	rel, err := files.Clean(fn)
	if err != nil {
		return "", err
	}
	if rel == "." {
		return "", berth.Errorf(berth.Invalid, "invalid file name %q", fn)
	}
	return strings.TrimSuffix(dir, "/") + "/" + fn, nil
}

// fillReader fills the caller's buffer before returning, so that the write
// loop behind it issues large writes rather than one per multipart chunk.
// Errors, including an unexpected EOF from a client that went away, pass
// through unchanged.
type fillReader struct{ r io.Reader }

func (f fillReader) Read(p []byte) (n int, err error) {
	for n < len(p) && err == nil {
		var m int
		m, err = f.r.Read(p[n:])
		n += m
	}
	return n, err
}

// putFile writes the request body, byte for byte, to the file at the path:
// the raw upload, with no multipart to parse (the cheapest way in for one
// file). Like every write it streams into a temporary file next to the
// target, checks the quota as the bytes come, fsyncs and renames: a request
// that fails (the quota, a client that goes away, a body shorter than its
// Content-Length) leaves the old file, or nothing, and no directory it
// created. Content-Length is optional (chunked bodies are fine). 201 when
// the file is new, 200 when it replaced one; the answer's ETag is the new
// version's.
func (s *Server) putFile(w http.ResponseWriter, r *http.Request) {
	p, err := routePath(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	_, fw, release, err := s.openFiles(r, "files:write")
	if err != nil {
		writeError(w, r, err)
		return
	}
	defer release()
	ctx := r.Context()
	status := http.StatusCreated
	if _, err := fw.Stat(ctx, p); err == nil {
		status = http.StatusOK
	}
	if err = checkIfMatch(ctx, fw, p, r.Header.Get("If-Match")); err == nil {
		var e files.Entry
		if e, err = fw.Write(ctx, p, r.Body, files.WriteOptions{MakeParents: true}); err == nil {
			if f, oerr := fw.Open(ctx, p); oerr == nil {
				w.Header().Set("ETag", f.ETag)
				_ = f.Close() // opened read-only: nothing to flush
			}
			writeData(w, r, status, e)
			return
		}
	}
	// The client may still be sending: do not try to reuse the connection.
	w.Header().Set("Connection", "close")
	writeError(w, r, err)
}

// fileUpdate is the body of PUT /v1/workspaces/{id}/files/{path}.
type fileUpdate struct {
	Operation string  `json:"operation"`
	Target    *string `json:"target"`
	Contents  *string `json:"contents"`
}

func (s *Server) updateFile(w http.ResponseWriter, r *http.Request) {
	p, err := routePath(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	overwrite, err := boolParam(r, "overwrite")
	if err != nil {
		writeError(w, r, err)
		return
	}
	var in fileUpdate
	if err := decode(w, r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	switch in.Operation {
	case "rename", "move", "copy":
		if in.Target == nil || in.Contents != nil {
			writeError(w, r, berth.Errorf(berth.Invalid, "%s takes a target and no contents", in.Operation))
			return
		}
	case "write":
		if in.Contents == nil || in.Target != nil {
			writeError(w, r, berth.Errorf(berth.Invalid, "write takes contents and no target"))
			return
		}
	default:
		writeError(w, r, berth.Errorf(berth.Invalid, "operation must be rename, move, copy or write"))
		return
	}
	_, fw, release, err := s.openFiles(r, "files:write")
	if err != nil {
		writeError(w, r, err)
		return
	}
	defer release()
	ctx := r.Context()
	var e files.Entry
	switch in.Operation {
	case "rename":
		e, err = fw.Rename(ctx, p, *in.Target, overwrite)
	case "move":
		e, err = fw.Move(ctx, p, *in.Target, overwrite)
	case "copy":
		e, err = fw.Copy(ctx, p, *in.Target, overwrite)
	case "write":
		if err = checkIfMatch(ctx, fw, p, r.Header.Get("If-Match")); err == nil {
			e, err = fw.Write(ctx, p, strings.NewReader(*in.Contents), files.WriteOptions{})
		}
		if err == nil {
			// The new version's validator, for the client's next If-Match.
			if f, oerr := fw.Open(ctx, p); oerr == nil {
				w.Header().Set("ETag", f.ETag)
				_ = f.Close() // opened read-only: nothing to flush
			}
		}
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeData(w, r, http.StatusOK, e)
}

// checkIfMatch refuses a write whose If-Match names another version of the
// file than the one on disk (the ETag of a download): the editor then shows a
// conflict instead of overwriting a newer version. "*" only needs the file to
// exist. The check and the write are two steps, so a change landing between
// them is not caught; the window is one stat, the case it guards (a human
// editing for minutes) is not.
func checkIfMatch(ctx context.Context, fw *files.Workspace, p, ifMatch string) error {
	if ifMatch == "" {
		return nil
	}
	f, err := fw.Open(ctx, p)
	if err != nil {
		if berth.IsKind(err, berth.NotFound) {
			return berth.Errorf(berth.PreconditionFailed, "%s no longer exists (If-Match %s)", p, ifMatch)
		}
		return err
	}
	current := f.ETag
	_ = f.Close() // opened read-only: nothing to flush
	if ifMatch == "*" {
		return nil
	}
	for _, tag := range strings.Split(ifMatch, ",") {
		if strings.TrimPrefix(strings.TrimSpace(tag), "W/") == current {
			return nil
		}
	}
	return berth.Errorf(berth.PreconditionFailed, "%s was changed since it was read (its version is now %s, If-Match was %s)", p, current, ifMatch)
}

func (s *Server) deleteFile(w http.ResponseWriter, r *http.Request) {
	p, err := routePath(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	_, fw, release, err := s.openFiles(r, "files:write")
	if err != nil {
		writeError(w, r, err)
		return
	}
	defer release()
	if err := fw.Delete(r.Context(), p); err != nil {
		writeError(w, r, err)
		return
	}
	writeData(w, r, http.StatusOK, deleted{ID: p, Deleted: true})
}

// batchResult is one id's outcome in a batch answer.
type batchResult struct {
	ID    string       `json:"id"`
	OK    bool         `json:"ok"`
	Entry *files.Entry `json:"entry,omitempty"`
	Error *errorBody   `json:"error,omitempty"`
}

// fileBatch is the body of PUT /v1/workspaces/{id}/files.
type fileBatch struct {
	Operation string   `json:"operation"`
	IDs       []string `json:"ids"`
	Target    *string  `json:"target"`
}

// fileBatchDelete is the body of DELETE /v1/workspaces/{id}/files.
type fileBatchDelete struct {
	IDs []string `json:"ids"`
}

func (s *Server) batchFiles(w http.ResponseWriter, r *http.Request) {
	var in fileBatch
	if err := decode(w, r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	if in.Operation != files.OpCopy && in.Operation != files.OpMove {
		writeError(w, r, berth.Errorf(berth.Invalid, "operation must be copy or move (delete with DELETE)"))
		return
	}
	if in.Target == nil {
		writeError(w, r, berth.Errorf(berth.Invalid, "target is required"))
		return
	}
	s.batch(w, r, in.Operation, in.IDs, *in.Target)
}

func (s *Server) batchDeleteFiles(w http.ResponseWriter, r *http.Request) {
	var in fileBatchDelete
	if err := decode(w, r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	s.batch(w, r, files.OpDelete, in.IDs, "")
}

// batch runs one validated batch and answers every id's outcome (200 even
// when some failed: each result says so).
func (s *Server) batch(w http.ResponseWriter, r *http.Request, op string, ids []string, target string) {
	overwrite, err := boolParam(r, "overwrite")
	if err != nil {
		writeError(w, r, err)
		return
	}
	_, fw, release, err := s.openFiles(r, "files:write")
	if err != nil {
		writeError(w, r, err)
		return
	}
	defer release()
	res, err := fw.Batch(r.Context(), op, ids, target, overwrite)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := make([]batchResult, len(res))
	for i, br := range res {
		out[i] = batchResult{ID: br.ID, OK: br.Err == nil, Entry: br.Entry}
		if br.Err != nil {
			kind := berth.KindOf(br.Err)
			if kind == berth.Internal {
				loggerFrom(r.Context()).Error("batch item failed", "err", br.Err, "requestId", requestID(r.Context()), "id", br.ID)
			}
			eb := errorBodyOf(r, br.Err)
			out[i].Error = &eb
		}
	}
	writeData(w, r, http.StatusOK, out)
}

// downloadFile serves a file with http.ServeContent (Range, conditional
// requests) or streams a directory as an archive.
func (s *Server) downloadFile(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p := q.Get("id")
	if p == "" {
		writeError(w, r, berth.Errorf(berth.Invalid, "query parameter id (the file's path) is required"))
		return
	}
	if _, err := files.Clean(p); err != nil {
		writeError(w, r, err)
		return
	}
	attach, err := boolParam(r, "download")
	if err != nil {
		writeError(w, r, err)
		return
	}
	format := q.Get("format")
	if format != "" && format != files.FormatZip && format != files.FormatTarGz {
		writeError(w, r, berth.Errorf(berth.Invalid, "format must be %q or %q", files.FormatZip, files.FormatTarGz))
		return
	}
	// Whatever a workspace holds stays inert on the dashboard's origin:
	// never sniffed into another type, and if a browser renders it after
	// all, in a sandbox (a unique origin: no cookies, no script, no
	// requests).
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", fileCSP)
	ws, fw, release, err := s.openFiles(r, "files:read")
	if err != nil {
		writeError(w, r, err)
		return
	}
	defer release()
	ctx := r.Context()
	e, err := fw.Stat(ctx, p)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if e.Type == files.TypeDirectory {
		s.downloadArchive(w, r, fw, e, ws.Slug, format)
		return
	}
	f, err := fw.Open(ctx, p)
	if err != nil {
		writeError(w, r, err)
		return
	}
	// Opened read-only: closing has nothing to flush.
	defer func() { _ = f.Close() }()
	h.Set("Content-Type", servedType(f.MimeType))
	h.Set("ETag", f.ETag)
	h.Set("Content-Disposition", disposition(attach || !inertInline(f.MimeType), f.Name))
	http.ServeContent(w, r, f.Name, f.ModTime, f)
}

// fileCSP is the Content-Security-Policy of every file response.
const fileCSP = "sandbox; default-src 'none'"

// inertInline reports whether a file of media type mt may be shown inline:
// only types that a browser displays without running anything (images
// other than SVG, audio, video, plain text, JSON). HTML, SVG, XML,
// JavaScript and every type not known here are attachments, which a
// browser saves rather than renders.
func inertInline(mt string) bool {
	base, _, err := mime.ParseMediaType(mt)
	if err != nil {
		return false
	}
	switch base {
	case "image/svg+xml":
		return false
	case "text/plain", "text/markdown", "text/x-markdown", "text/csv", "text/tab-separated-values", "application/json":
		return true
	}
	top, _, _ := strings.Cut(base, "/")
	return top == "image" || top == "audio" || top == "video"
}

// servedType is the Content-Type a file is sent with. Types a page can
// load as code from its own origin (script, style, WebAssembly) go out as
// plain text: with nosniff the browser then refuses to run them, so a
// user's file can never become a script of the dashboard, even through
// markup injected there (its CSP allows scripts from 'self').
func servedType(mt string) string {
	base, _, err := mime.ParseMediaType(mt)
	if err != nil {
		return mt
	}
	switch base {
	case "text/javascript", "application/javascript", "application/x-javascript", "application/ecmascript",
		"text/ecmascript", "text/jscript", "application/x-ecmascript", "text/css", "application/wasm":
		return "text/plain; charset=utf-8"
	}
	return mt
}

func disposition(attach bool, name string) string {
	t := "inline"
	if attach {
		t = "attachment"
	}
	if v := mime.FormatMediaType(t, map[string]string{"filename": name}); v != "" {
		return v
	}
	return t
}

// archiveBuffer batches the archive writers' small writes into large ones.
const archiveBuffer = 256 << 10

func (s *Server) downloadArchive(w http.ResponseWriter, r *http.Request, fw *files.Workspace, e files.Entry, slug, format string) {
	name := e.Name
	if e.ID == "/" {
		name = slug
	}
	ext, ct := ".zip", "application/zip"
	if format == files.FormatTarGz {
		ext, ct = ".tar.gz", "application/gzip"
	}
	// Archives are costly (CPU, a compressor, a connection held as long as
	// the client reads): a server-wide cap, a bounded wait for a turn, then
	// 503 with Retry-After.
	done, err := s.Files.StartArchive(r.Context())
	if err != nil {
		if r.Context().Err() != nil {
			return // the client left while waiting: nobody to answer
		}
		setArchiveRetryAfter(w, err)
		writeError(w, r, err)
		return
	}
	defer done()
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("Content-Disposition", disposition(true, name+ext))
	cw := &countingWriter{w: w}
	bw := bufio.NewWriterSize(cw, archiveBuffer)
	err = fw.Archive(r.Context(), e.ID, bw, format)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		return
	}
	if cw.n == 0 {
		h.Del("Content-Disposition")
		writeError(w, r, err)
		return
	}
	// Part of the archive is out with a 200: cut the connection so that the
	// client sees a failed transfer, not a short archive.
	loggerFrom(r.Context()).Warn("archive download failed midway", "err", err, "requestId", requestID(r.Context()))
	panic(http.ErrAbortHandler)
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// fileChangeEvents are the events of a watch stream after "ready": one per
// change, named by its type; overflow says changes were lost (list again).
func fileChangeEvents() []sseEvent {
	var out []sseEvent
	for _, t := range fileEventTypes {
		out = append(out, sseEvent{Name: t.(string), Data: files.Event{}})
	}
	return out
}

// watchReady is the data of a watch stream's first event.
type watchReady struct {
	Path string `json:"path"`
}

// watchKeepAlive is how often an idle watch stream sends a comment, which
// also notices clients that went away without closing.
const watchKeepAlive = 20 * time.Second

// watchFiles streams the workspace's changes below ?path= as Server-Sent
// Events: first "ready" (the watch is in place), then one event per change,
// named by its type, with {"type", "path", "oldPath"?} as data. It ends when
// the client goes away, the workspace is deleted or the server shuts down.
// Past the caller's stream limits it answers 429 with Retry-After.
func (s *Server) watchFiles(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Query().Get("path")
	if p == "" {
		p = "/"
	}
	if _, err := files.Clean(p); err != nil {
		writeError(w, r, err)
		return
	}
	if s.Files == nil {
		writeError(w, r, berth.Errorf(berth.Unavailable, "workspace files are not configured"))
		return
	}
	if r.URL.Query().Has("snapshot") {
		writeError(w, r, berth.FieldErrorf(berth.Invalid, "snapshot", "a snapshot never changes: there is nothing to watch"))
		return
	}
	ws, err := s.Workspaces.Resolve(r.Context(), chi.URLParam(r, "id"), "files:read")
	if err != nil {
		writeError(w, r, err)
		return
	}
	ctx := r.Context()
	events, stop, err := s.Files.Watch(ctx, ws, p)
	if err != nil {
		writeError(w, r, err)
		return
	}
	defer stop() // ends the watch and frees its slot
	stream := startSSE(w)
	if err := stream.json("ready", watchReady{Path: p}); err != nil {
		return
	}
	tick := time.NewTicker(watchKeepAlive)
	defer tick.Stop()
	for {
		select {
		case e, ok := <-events:
			if !ok {
				return
			}
			if err := stream.json(e.Type, e); err != nil {
				return
			}
		case <-tick.C:
			if err := stream.comment("keep-alive"); err != nil {
				return
			}
		case <-ctx.Done():
			return
		case <-s.Files.Stopping():
			return
		}
	}
}

// comment sends an SSE comment line, which clients ignore.
func (s *sse) comment(text string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.w.Write([]byte(": " + text + "\n\n")); err != nil {
		return err
	}
	s.flush()
	return nil
}
