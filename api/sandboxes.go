package api

import (
	"bytes"
	"context"
	"net/http"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/go-chi/chi/v5"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/sandbox"
)

func (s *Server) sandboxRoutes() []route {
	if s.Sandboxes == nil {
		return nil
	}
	return []route{
		{Method: "POST", Pattern: "/v1/sandboxes", Summary: "create a sandbox (?async=true: 202 while creating)", Scope: "sandbox:create", Success: []int{201, 202}, Query: []param{qBool("async", "answer 202 at once while the sandbox is created")}, In: sandbox.CreateInput{}, Out: sandbox.Sandbox{}, handler: s.createSandbox},
		{Method: "GET", Pattern: "/v1/sandboxes", Summary: "list sandboxes (?status, ?tag, ?template, ?all, limit, cursor)", Scope: "sandbox:read", Paged: true,
			Query: []param{
				{Name: "status", Desc: "only sandboxes in this status", Schema: openapi3.NewStringSchema().WithEnum(sandboxStatuses...)},
				{Name: "tag", Desc: "only sandboxes with this tag (repeat: all of them)", Schema: openapi3.NewArraySchema().WithItems(openapi3.NewStringSchema())},
				{Name: "template", Desc: "only sandboxes of this template"},
				qAll,
			}, Out: []sandbox.Sandbox{}, handler: s.listSandboxes},
		{Method: "GET", Pattern: "/v1/sandboxes/{id}", Summary: "one sandbox, by id or name", Scope: "sandbox:read", Out: sandbox.Sandbox{}, handler: s.getSandbox},
		{Method: "DELETE", Pattern: "/v1/sandboxes/{id}", Summary: "destroy a sandbox (workspaces untouched)", Scope: "sandbox:write", Out: deleted{}, handler: s.destroySandbox},
		{Method: "POST", Pattern: "/v1/sandboxes/{id}/pause", Summary: "freeze a sandbox", Scope: "sandbox:write", Out: sandbox.Sandbox{}, handler: s.sandboxAction(s.Sandboxes.Pause)},
		{Method: "POST", Pattern: "/v1/sandboxes/{id}/resume", Summary: "thaw a sandbox", Scope: "sandbox:write", Out: sandbox.Sandbox{}, handler: s.sandboxAction(s.Sandboxes.Resume)},
		{Method: "POST", Pattern: "/v1/sandboxes/{id}/stop", Summary: "stop a sandbox's processes", Scope: "sandbox:write", Out: sandbox.Sandbox{}, handler: s.sandboxAction(s.Sandboxes.Stop)},
		{Method: "POST", Pattern: "/v1/sandboxes/{id}/start", Summary: "start a stopped sandbox", Scope: "sandbox:write", Out: sandbox.Sandbox{}, handler: s.sandboxAction(s.Sandboxes.Start)},
		{Method: "POST", Pattern: "/v1/sandboxes/{id}/keepalive", Summary: "reset the idle timer", Scope: "sandbox:write", Out: sandbox.Sandbox{}, handler: s.sandboxAction(s.Sandboxes.Keepalive)},
		{Method: "POST", Pattern: "/v1/sandboxes/{id}/mounts", Summary: "attach a workspace (or a snapshot) to a running or stopped sandbox", Scope: "sandbox:write",
			In: sandbox.Mount{}, Out: sandbox.Sandbox{}, handler: s.attachMount},
		{Method: "DELETE", Pattern: "/v1/sandboxes/{id}/mounts", Summary: "detach a mount attached earlier (?path=)", Scope: "sandbox:write",
			Query: []param{{Name: "path", Desc: "the mount's path in the sandbox", Required: true}}, Out: sandbox.Sandbox{}, handler: s.detachMount},
		{Method: "POST", Pattern: "/v1/sandboxes/{id}/exec", Summary: "run a command (?stream=true: SSE)", Scope: "sandbox:write",
			Query: []param{qStream}, In: sandbox.ExecInput{}, Out: execAnswer{},
			Stream: &stream{When: "With ?stream=true", Events: []sseEvent{
				{Name: "stdout", Desc: "a chunk of standard output"},
				{Name: "stderr", Desc: "a chunk of standard error"},
				{Name: "exit", Data: sandbox.ExecResult{}, Desc: "last: how the command ended"},
				{Name: "error", Data: streamError{}, Desc: "last: the exec failed"},
			}}, handler: s.execSandbox},
		{Method: "GET", Pattern: "/v1/sandboxes/{id}/pty", Summary: "an interactive terminal (WebSocket)", Scope: "sandbox:write",
			Desc: ptyDoc, Query: ptyParams, Raw: []rawBody{{Status: http.StatusSwitchingProtocols, Desc: "the WebSocket session (see the description)"}},
			handler: s.sandboxPTY},
	}
}

func (s *Server) createSandbox(w http.ResponseWriter, r *http.Request) {
	async, err := boolParam(r, "async")
	if err != nil {
		writeError(w, r, err)
		return
	}
	var in sandbox.CreateInput
	if err := decode(w, r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	sb, err := s.Sandboxes.Create(r.Context(), in, async)
	if err != nil {
		writeError(w, r, err)
		return
	}
	status := http.StatusCreated
	if async {
		status = http.StatusAccepted
	}
	writeData(w, r, status, sb)
}

func (s *Server) listSandboxes(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	lq, err := listParams(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	list, next, err := s.Sandboxes.List(r.Context(), sandbox.Filter{
		Status: sandbox.Status(q.Get("status")), Tags: q["tag"], Template: q.Get("template"),
		All: lq.All, Limit: lq.Limit, Cursor: lq.Cursor,
	})
	if err != nil {
		writeError(w, r, err)
		return
	}
	writePage(w, r, list, next)
}

func (s *Server) getSandbox(w http.ResponseWriter, r *http.Request) {
	sb, err := s.Sandboxes.Get(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeData(w, r, http.StatusOK, sb)
}

func (s *Server) destroySandbox(w http.ResponseWriter, r *http.Request) {
	sb, err := s.Sandboxes.Destroy(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeData(w, r, http.StatusOK, deleted{ID: sb.ID, Deleted: true})
}

func (s *Server) sandboxAction(act func(ctx context.Context, id string) (*sandbox.Sandbox, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sb, err := act(r.Context(), chi.URLParam(r, "id"))
		if err != nil {
			writeError(w, r, err)
			return
		}
		writeData(w, r, http.StatusOK, sb)
	}
}

func (s *Server) attachMount(w http.ResponseWriter, r *http.Request) {
	var in sandbox.Mount
	if err := decode(w, r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	sb, err := s.Sandboxes.Attach(r.Context(), chi.URLParam(r, "id"), in)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeData(w, r, http.StatusOK, sb)
}

func (s *Server) detachMount(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Query().Get("path")
	if p == "" {
		writeError(w, r, berth.FieldErrorf(berth.Invalid, "path", "the query parameter path is required"))
		return
	}
	sb, err := s.Sandboxes.Detach(r.Context(), chi.URLParam(r, "id"), p)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeData(w, r, http.StatusOK, sb)
}

// maxExecOutput caps each stream kept in a JSON exec answer.
const maxExecOutput = 1 << 20

// capped keeps the first max bytes written and notes whether more came.
type capped struct {
	buf       bytes.Buffer
	max       int
	truncated bool
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.buf.Len(); room > 0 {
		if len(p) > room {
			c.buf.Write(p[:room])
			c.truncated = true
		} else {
			c.buf.Write(p)
		}
	} else if len(p) > 0 {
		c.truncated = true
	}
	return len(p), nil
}

type execAnswer struct {
	Stdout     string `json:"stdout"`
	Stderr     string `json:"stderr"`
	ExitCode   int    `json:"exitCode"`
	DurationMs int64  `json:"durationMs"`
	TimedOut   bool   `json:"timedOut"`
	Truncated  bool   `json:"truncated"`
}

func (s *Server) execSandbox(w http.ResponseWriter, r *http.Request) {
	stream, err := boolParam(r, "stream")
	if err != nil {
		writeError(w, r, err)
		return
	}
	var in sandbox.ExecInput
	if err := decode(w, r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	req, err := sandbox.ParseExec(in)
	if err != nil {
		writeError(w, r, err)
		return
	}
	id := chi.URLParam(r, "id")
	if !stream {
		out, errb := &capped{max: maxExecOutput}, &capped{max: maxExecOutput}
		res, err := s.Sandboxes.Exec(r.Context(), id, req, out, errb)
		if err != nil {
			writeError(w, r, err)
			return
		}
		writeData(w, r, http.StatusOK, execAnswer{Stdout: out.buf.String(), Stderr: errb.buf.String(),
			ExitCode: res.ExitCode, DurationMs: res.DurationMs, TimedOut: res.TimedOut, Truncated: out.truncated || errb.truncated})
		return
	}
	// Resolve first so that a missing sandbox is still a plain 404, not an
	// event stream.
	if _, err := s.Sandboxes.Resolve(r.Context(), id, "sandbox:write"); err != nil {
		writeError(w, r, err)
		return
	}
	ev := startSSE(w)
	res, err := s.Sandboxes.Exec(r.Context(), id, req, ev.writer("stdout"), ev.writer("stderr"))
	if err != nil {
		ev.end("error", streamErr(err))
		return
	}
	ev.end("exit", res)
}
