package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/auth"
	"github.com/berth-dev/berth/templates"
)

func (s *Server) templateRoutes() []route {
	if s.Sandboxes == nil {
		return nil
	}
	return []route{
		{Method: "GET", Pattern: "/v1/templates", Summary: "list templates", Scope: "sandbox:read", Out: []templateView{}, handler: s.listTemplates},
		{Method: "GET", Pattern: "/v1/templates/{name}", Summary: "one template", Scope: "sandbox:read", Out: templateView{}, handler: s.getTemplate},
		{Method: "POST", Pattern: "/v1/templates/{name}/build", Summary: "build or pull a template's image now (admin; ?stream=true: SSE progress)", Scope: "sandbox:write",
			Query: []param{qStream}, Out: templateBuild{},
			Stream: &stream{When: "With ?stream=true", Events: []sseEvent{
				{Name: "progress", Desc: "one line of the build's log"},
				{Name: "done", Data: templateView{}, Desc: "last: the template, built"},
				{Name: "error", Data: streamError{}, Desc: "last: the build failed"},
			}}, handler: s.buildTemplate},
	}
}

type templateView struct {
	templates.Template
	Ready bool `json:"ready"`
	// DiskNotEnforced, when the template has a disk default that the
	// engine cannot enforce, says so and why: sandboxes made from the
	// template get no disk limit (and a create that asks for one is
	// refused).
	DiskNotEnforced string `json:"diskNotEnforced,omitempty"`
}

func (s *Server) view(ctx context.Context, t templates.Template) (templateView, error) {
	rt := s.Sandboxes.Runtime()
	ok, err := rt.ImagePresent(ctx, t.Image)
	if err != nil && !berth.IsKind(err, berth.Unavailable) {
		return templateView{}, err
	}
	v := templateView{Template: t, Ready: ok}
	if t.Resources.Disk != "" {
		// An engine that does not answer says nothing either way: the
		// listing still works (as ready does), and a create asks again.
		c, err := rt.Capabilities(ctx)
		if err != nil && !berth.IsKind(err, berth.Unavailable) {
			return templateView{}, err
		}
		if err == nil && !c.DiskLimit {
			v.DiskNotEnforced = fmt.Sprintf("resources.disk %s is not applied on this server: %s; sandboxes made from this template get no disk limit", t.Resources.Disk, c.NoDiskLimit)
		}
	}
	return v, nil
}

// builtView describes t after a build that succeeded. The build is what the
// client asked for, so a failure to check its image is logged, and the
// answer says only "not known to be ready" rather than fail.
func (s *Server) builtView(r *http.Request, t templates.Template) templateView {
	v, err := s.view(r.Context(), t)
	if err != nil {
		loggerFrom(r.Context()).Warn("template built, but its image could not be checked", "template", t.Name, "err", err)
		return templateView{Template: t}
	}
	return v
}

func (s *Server) listTemplates(w http.ResponseWriter, r *http.Request) {
	out := []templateView{}
	for _, t := range templates.List() {
		v, err := s.view(r.Context(), t)
		if err != nil {
			writeError(w, r, err)
			return
		}
		out = append(out, v)
	}
	writeData(w, r, http.StatusOK, out)
}

func (s *Server) getTemplate(w http.ResponseWriter, r *http.Request) {
	t, err := templates.Get(chi.URLParam(r, "name"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	v, err := s.view(r.Context(), t)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeData(w, r, http.StatusOK, v)
}

// templateBuild answers a build without ?stream.
type templateBuild struct {
	Log      string       `json:"log"`
	Template templateView `json:"template"`
}

// buildTemplate builds (or pulls) now. With ?stream=true each progress line
// is an SSE "progress" event, then "done" or "error"; without, the answer
// comes when the build ends and carries the log.
func (s *Server) buildTemplate(w http.ResponseWriter, r *http.Request) {
	// Every sandbox of the org uses the same template images, so rebuilding
	// one is an admin's decision.
	if _, err := auth.RequireAdmin(r.Context(), "sandbox:write"); err != nil {
		writeError(w, r, err)
		return
	}
	stream, err := boolParam(r, "stream")
	if err != nil {
		writeError(w, r, err)
		return
	}
	t, err := templates.Get(chi.URLParam(r, "name"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	rt := s.Sandboxes.Runtime()
	if err := rt.Ping(r.Context()); err != nil {
		writeError(w, r, berth.Wrap(berth.Unavailable, err, "the container engine is unavailable"))
		return
	}
	if !stream {
		var log strings.Builder
		if err := templates.Make(r.Context(), rt, t, &log); err != nil {
			writeError(w, r, err)
			return
		}
		writeData(w, r, http.StatusOK, templateBuild{Template: s.builtView(r, t), Log: log.String()})
		return
	}
	ev := startSSE(w)
	// A progress line that cannot be sent means the client went away; its
	// request context ends too, which stops the build.
	lw := &lineWriter{emit: func(line string) { _ = ev.event("progress", line) }}
	err = templates.Make(r.Context(), rt, t, lw)
	lw.Close()
	if err != nil {
		ev.end("error", streamErr(err))
		return
	}
	ev.end("done", s.builtView(r, t))
}

// lineWriter splits a byte stream into lines.
type lineWriter struct {
	buf  []byte
	emit func(string)
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	for {
		i := strings.IndexByte(string(l.buf), '\n')
		if i < 0 {
			break
		}
		l.emit(string(l.buf[:i]))
		l.buf = l.buf[i+1:]
	}
	return len(p), nil
}

func (l *lineWriter) Close() {
	if len(l.buf) > 0 {
		l.emit(string(l.buf))
		l.buf = nil
	}
}
