package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/coder/websocket"
)

// TerminalOptions shape a terminal session; zero values take the server's
// defaults (an interactive /bin/sh in the sandbox's working directory, 24×80).
type TerminalOptions struct {
	Cmd        string // command line for /bin/sh -c instead of /bin/sh
	Cwd        string
	Rows, Cols int
	// Header is sent with the upgrade (a browser's Origin, say).
	Header http.Header
}

// Terminal is an interactive session on a pseudo-terminal in a sandbox
// (GET /v1/sandboxes/{id}/pty). Write and Resize may be called while Wait
// runs.
type Terminal struct {
	conn *websocket.Conn
	ctx  context.Context
}

// Terminal opens a terminal session. An answer before the upgrade (404,
// 403, 501 for a sandbox without a supervisor, ...) is an *Error.
func (c *Client) Terminal(ctx context.Context, idOrName string, opt TerminalOptions) (*Terminal, error) {
	q := url.Values{}
	if opt.Cmd != "" {
		q.Set("cmd", opt.Cmd)
	}
	if opt.Cwd != "" {
		q.Set("cwd", opt.Cwd)
	}
	if opt.Rows > 0 {
		q.Set("rows", strconv.Itoa(opt.Rows))
	}
	if opt.Cols > 0 {
		q.Set("cols", strconv.Itoa(opt.Cols))
	}
	path := "/v1/sandboxes/" + url.PathEscape(idOrName) + "/pty"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	req, err := c.NewRequest(ctx, "GET", path, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range opt.Header {
		req.Header[k] = v
	}
	u := c.BaseURL + path
	switch {
	case strings.HasPrefix(u, "https://"):
		u = "wss://" + strings.TrimPrefix(u, "https://")
	case strings.HasPrefix(u, "http://"):
		u = "ws://" + strings.TrimPrefix(u, "http://")
	}
	conn, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: c.HTTP, HTTPHeader: req.Header})
	if err != nil {
		if resp != nil && resp.StatusCode >= 400 {
			defer closeBody(resp)
			return nil, ErrorFrom(resp)
		}
		return nil, fmt.Errorf("terminal: %w", err)
	}
	conn.SetReadLimit(1 << 20)
	return &Terminal{conn: conn, ctx: ctx}, nil
}

// terminalMessage is a text message of the terminal WebSocket.
type terminalMessage struct {
	Type     string `json:"type"`
	Rows     int    `json:"rows,omitempty"`
	Cols     int    `json:"cols,omitempty"`
	ExitCode *int   `json:"exitCode,omitempty"`
	Error    *Error `json:"error,omitempty"`
}

// Write sends keyboard input.
func (t *Terminal) Write(p []byte) (int, error) {
	if err := t.conn.Write(t.ctx, websocket.MessageBinary, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Resize sets the terminal's size.
func (t *Terminal) Resize(rows, cols int) error {
	b, err := json.Marshal(terminalMessage{Type: "resize", Rows: rows, Cols: cols})
	if err != nil {
		return err
	}
	return t.conn.Write(t.ctx, websocket.MessageText, b)
}

// Wait copies the terminal's output to out until the session ends and
// returns the shell's exit code. An error the server reports at the end is
// an *Error.
func (t *Terminal) Wait(out io.Writer) (int, error) {
	defer func() { _ = t.conn.CloseNow() }()
	for {
		typ, data, err := t.conn.Read(t.ctx)
		if err != nil {
			return -1, fmt.Errorf("terminal: %w", err)
		}
		if typ == websocket.MessageBinary {
			if _, err := out.Write(data); err != nil {
				return -1, err
			}
			continue
		}
		var m terminalMessage
		if err := json.Unmarshal(data, &m); err != nil {
			return -1, fmt.Errorf("terminal: bad message: %w", err)
		}
		switch {
		case m.Type == "exit" && m.ExitCode != nil:
			_ = t.conn.Close(websocket.StatusNormalClosure, "")
			return *m.ExitCode, nil
		case m.Type == "error" && m.Error != nil:
			m.Error.Status = http.StatusOK // reported in the session, after the upgrade
			return -1, m.Error
		case m.Type == "exit" || m.Type == "error":
			return -1, errors.New("terminal: bad end message")
		}
	}
}

// Close ends the session, killing the shell if it still runs.
func (t *Terminal) Close() error { return t.conn.CloseNow() }
