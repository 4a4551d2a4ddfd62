// Package dashboard serves berth's web UI: a prebuilt single-page app (the
// sources are in web/, the build in dist/, committed so that `go build` needs
// no Node toolchain) embedded in the binary. Every path the API does not own
// is the app: files from dist, and index.html for the rest, so that deep
// links and reloads work.
package dashboard

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed dist
var dist embed.FS

// CSP is the dashboard pages' Content-Security-Policy: scripts and styles
// only from the app's own files (no inline code), images also from blob: and
// data: (previews), requests only to this origin, never framed.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; " +
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"

type asset struct {
	body  []byte
	ctype string
	etag  string
}

// Handler serves the embedded app.
func Handler() http.Handler {
	assets := map[string]asset{}
	err := fs.WalkDir(dist, "dist", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := dist.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ct := mime.TypeByExtension(path.Ext(p))
		if ct == "" {
			ct = "application/octet-stream"
		}
		assets[strings.TrimPrefix(p, "dist")] = asset{body: b, ctype: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		// The embedded tree is part of the binary: failing to read it is a
		// build defect, not a runtime condition.
		panic("dashboard: reading the embedded build: " + err.Error())
	}
	return &handler{assets: assets}
}

type handler struct{ assets map[string]asset }

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", CSP)
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hd.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	a, ok := h.assets[path.Clean("/"+r.URL.Path)]
	if !ok || r.URL.Path == "/index.html" {
		// Any other path is a route of the app.
		a, ok = h.assets["/index.html"]
		if !ok {
			http.Error(w, "the dashboard is not built", http.StatusNotFound)
			return
		}
	}
	hd.Set("Content-Type", a.ctype)
	hd.Set("ETag", a.etag)
	// File names carry no version: revalidate each time (a 304 is cheap).
	hd.Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}
