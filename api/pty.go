package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/go-chi/chi/v5"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/sandbox"
)

// ptyDoc is the WebSocket protocol of GET /v1/sandboxes/{id}/pty, for the
// OpenAPI document (docs/api.md says the same at more length).
const ptyDoc = "Upgrades to a WebSocket (`Connection: Upgrade`, `Upgrade: websocket`) running a shell on a new " +
	"pseudo-terminal inside the sandbox. Client to server: binary messages are terminal input; text messages are " +
	"JSON controls, `{\"type\":\"resize\",\"rows\":R,\"cols\":C}`. Server to client: binary messages are terminal " +
	"output; the last text message is `{\"type\":\"exit\",\"exitCode\":N}` or `{\"type\":\"error\",\"error\":{\"code\",\"message\"}}`, " +
	"then the server closes the WebSocket. Closing the WebSocket kills the shell and everything it started. " +
	"Errors before the upgrade are ordinary JSON error answers."

var ptyParams = []param{
	{Name: "cmd", Desc: "command line run by /bin/sh -c instead of an interactive /bin/sh"},
	{Name: "cwd", Desc: "working directory (absolute; default the sandbox's, /workspace)"},
	{Name: "rows", Desc: "first terminal height (default 24)", Schema: openapi3.NewIntegerSchema().WithMin(1).WithMax(65535)},
	{Name: "cols", Desc: "first terminal width (default 80)", Schema: openapi3.NewIntegerSchema().WithMin(1).WithMax(65535)},
}

// ptyMessage is a text message of the terminal WebSocket, either way.
type ptyMessage struct {
	Type     string       `json:"type"`               // resize (in); exit, error (out)
	Rows     uint16       `json:"rows,omitempty"`     // resize
	Cols     uint16       `json:"cols,omitempty"`     // resize
	ExitCode *int         `json:"exitCode,omitempty"` // exit
	Error    *streamError `json:"error,omitempty"`    // error
}

// ptyReadLimit bounds one input message (a large paste).
const ptyReadLimit = 1 << 20

func (s *Server) sandboxPTY(w http.ResponseWriter, r *http.Request) {
	// A sandbox the caller cannot see is 404 whatever the request is
	// like; one that is not an upgrade is refused before anything runs.
	if _, err := s.Sandboxes.Resolve(r.Context(), chi.URLParam(r, "id"), "sandbox:write"); err != nil {
		writeError(w, r, err)
		return
	}
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		writeError(w, r, berth.Errorf(berth.Invalid, "this route is a WebSocket: send Connection: Upgrade and Upgrade: websocket"))
		return
	}
	q := r.URL.Query()
	req := sandbox.TerminalRequest{Cwd: q.Get("cwd")}
	if c := q.Get("cmd"); c != "" {
		req.Argv = []string{"/bin/sh", "-c", c}
	}
	var err error
	if req.Rows, err = sizeParam(r, "rows"); err == nil {
		req.Cols, err = sizeParam(r, "cols")
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	upgraded := false
	err = s.Sandboxes.Terminal(r.Context(), chi.URLParam(r, "id"), req, func(ctx context.Context, sess sandbox.TerminalSession) error {
		// The connection's deadlines (the write-stall guard's) must not
		// outlive the upgrade: a terminal may sit idle for hours.
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Time{})
		_ = rc.SetWriteDeadline(time.Time{})
		upgraded = true // from here on Accept answers failures itself
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return nil
		}
		defer func() { _ = c.CloseNow() }()
		c.SetReadLimit(ptyReadLimit)
		relayPTY(ctx, c, sess)
		return nil
	})
	if err != nil && !upgraded {
		writeError(w, r, err)
	}
}

// relayPTY relays a terminal session and its WebSocket until the session
// ends (exit message) or the client goes away (the session is killed).
func relayPTY(ctx context.Context, c *websocket.Conn, sess sandbox.TerminalSession) {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		// The client going away ends Wait below, which kills the shell.
		defer cancel()
		for {
			typ, data, err := c.Read(rctx)
			if err != nil {
				return
			}
			if typ == websocket.MessageBinary {
				if _, err := sess.Write(data); err != nil {
					return
				}
				continue
			}
			var m ptyMessage
			if json.Unmarshal(data, &m) == nil && m.Type == "resize" && m.Rows > 0 && m.Cols > 0 {
				if err := sess.Resize(m.Rows, m.Cols); err != nil {
					return
				}
			}
		}
	}()
	code, err := sess.Wait(rctx, wsWriter{ctx: rctx, c: c})
	var last ptyMessage
	switch {
	case err == nil:
		last = ptyMessage{Type: "exit", ExitCode: &code}
	case ctx.Err() == nil && rctx.Err() != nil:
		return // the client went away
	default:
		if cause := context.Cause(ctx); ctx.Err() != nil && cause != nil && !errors.Is(cause, context.Canceled) {
			err = cause // cut off: the answer says why
		}
		se := streamErr(err)
		if errors.Is(err, context.Canceled) {
			se = streamErr(berth.Wrap(berth.Unavailable, err, "terminal ended"))
		}
		last = ptyMessage{Type: "error", Error: &se}
	}
	b, _ := json.Marshal(last)
	wctx, wcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer wcancel()
	if err := c.Write(wctx, websocket.MessageText, b); err != nil {
		return
	}
	_ = c.Close(websocket.StatusNormalClosure, last.Type)
}

// wsWriter sends terminal output as binary messages.
type wsWriter struct {
	ctx context.Context
	c   *websocket.Conn
}

func (w wsWriter) Write(p []byte) (int, error) {
	if err := w.c.Write(w.ctx, websocket.MessageBinary, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// sizeParam reads a terminal dimension (0 when absent).
func sizeParam(r *http.Request, name string) (uint16, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 16)
	if err != nil || n == 0 {
		return 0, berth.Errorf(berth.Invalid, "query parameter %s must be a number from 1 to 65535, not %q", name, v)
	}
	return uint16(n), nil
}
