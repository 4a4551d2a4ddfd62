package client

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"
)

// Mount is a workspace mounted into a sandbox.
type Mount struct {
	WorkspaceID string `json:"workspaceId"`
	// SnapshotID mounts that snapshot of the workspace, always read-only.
	SnapshotID string `json:"snapshotId,omitempty"`
	Path       string `json:"path"`
	ReadOnly   bool   `json:"readOnly,omitempty"`
}

// Resources are a sandbox's limits.
type Resources struct {
	VCPUs  float64 `json:"vcpus,omitempty"`
	Memory string  `json:"memory,omitempty"`
	Disk   string  `json:"disk,omitempty"`
	Pids   int64   `json:"pids,omitempty"`
}

// Sandbox is the API's sandbox object.
type Sandbox struct {
	ID                        string            `json:"id"`
	Name                      string            `json:"name"`
	Status                    string            `json:"status"`
	StatusReason              string            `json:"statusReason"`
	Template                  string            `json:"template"`
	Tags                      []string          `json:"tags"`
	Env                       []string          `json:"env"`
	Resources                 Resources         `json:"resources"`
	Mounts                    []Mount           `json:"mounts"`
	HasWritableWorkspaceMount bool              `json:"hasWritableWorkspaceMount"`
	IdleTimeout               int64             `json:"idleTimeout"`
	Network                   string            `json:"network"`
	Metadata                  map[string]string `json:"metadata"`
	OwnerUserID               string            `json:"ownerUserId"`
	CreatedAt                 time.Time         `json:"createdAt"`
	UpdatedAt                 time.Time         `json:"updatedAt"`
	LastActivityAt            time.Time         `json:"lastActivityAt"`
	IP                        string            `json:"ip"`
}

// SandboxRequest is the body of a sandbox creation.
type SandboxRequest struct {
	Name        string            `json:"name,omitempty"`
	Template    string            `json:"template"`
	Tags        []string          `json:"tags,omitempty"`
	Env         map[string]string `json:"env,omitempty"`
	Resources   *Resources        `json:"resources,omitempty"`
	IdleTimeout int64             `json:"idleTimeout,omitempty"`
	Network     string            `json:"network,omitempty"` // "bridge" (default, isolated), "none" or "shared"
	Mounts      []Mount           `json:"mounts,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
}

// SandboxFilter selects sandboxes in a list.
type SandboxFilter struct {
	Status, Template, Cursor string
	Tags                     []string
	All                      bool
	Limit                    int
}

// CreateSandbox creates a sandbox; with async it answers while creating.
func (c *Client) CreateSandbox(ctx context.Context, in SandboxRequest, async bool) (*Sandbox, error) {
	var s Sandbox
	_, err := c.Do(ctx, "POST", "/v1/sandboxes"+query("async", boolStr(async)), in, &s)
	return &s, err
}

// Sandboxes lists one page of sandboxes and returns the next cursor ("" at the end).
func (c *Client) Sandboxes(ctx context.Context, f SandboxFilter) ([]Sandbox, string, error) {
	v := url.Values{}
	if f.Status != "" {
		v.Set("status", f.Status)
	}
	if f.Template != "" {
		v.Set("template", f.Template)
	}
	if f.Cursor != "" {
		v.Set("cursor", f.Cursor)
	}
	if f.All {
		v.Set("all", "true")
	}
	if f.Limit > 0 {
		v.Set("limit", fmt.Sprint(f.Limit))
	}
	for _, t := range f.Tags {
		v.Add("tag", t)
	}
	path := "/v1/sandboxes"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var out []Sandbox
	meta, err := c.Do(ctx, "GET", path, nil, &out)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if meta.NextCursor != nil {
		next = *meta.NextCursor
	}
	return out, next, nil
}

// Sandbox returns one sandbox by id or name.
func (c *Client) Sandbox(ctx context.Context, idOrName string) (*Sandbox, error) {
	var s Sandbox
	_, err := c.Do(ctx, "GET", "/v1/sandboxes/"+url.PathEscape(idOrName), nil, &s)
	return &s, err
}

// SandboxAction posts one of pause, resume, stop, start, keepalive.
func (c *Client) SandboxAction(ctx context.Context, idOrName, action string) (*Sandbox, error) {
	var s Sandbox
	_, err := c.Do(ctx, "POST", "/v1/sandboxes/"+url.PathEscape(idOrName)+"/"+action, nil, &s)
	return &s, err
}

// DestroySandbox destroys a sandbox.
func (c *Client) DestroySandbox(ctx context.Context, idOrName string) error {
	_, err := c.Do(ctx, "DELETE", "/v1/sandboxes/"+url.PathEscape(idOrName), nil, nil)
	return err
}

// ExecRequest is the body of an exec. Command is a string (run by /bin/sh
// -c) or a []string argv.
type ExecRequest struct {
	Command any               `json:"command"`
	Timeout int64             `json:"timeout,omitempty"` // ms
	Cwd     string            `json:"cwd,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	Stdin   *string           `json:"stdin,omitempty"`
}

// ExecResult is an exec's answer.
type ExecResult struct {
	Stdout     string `json:"stdout"`
	Stderr     string `json:"stderr"`
	ExitCode   int    `json:"exitCode"`
	DurationMs int64  `json:"durationMs"`
	TimedOut   bool   `json:"timedOut"`
	Truncated  bool   `json:"truncated"`
}

// Exec runs a command and waits for its JSON answer.
func (c *Client) Exec(ctx context.Context, idOrName string, in ExecRequest) (*ExecResult, error) {
	var r ExecResult
	_, err := c.Do(ctx, "POST", "/v1/sandboxes/"+url.PathEscape(idOrName)+"/exec", in, &r)
	return &r, err
}

// Event is one Server-Sent Event. ID is its id: line (a run event's
// sequence number, the cursor to resume after it), "" when it has none.
type Event struct {
	ID   string
	Name string
	Data string
}

// ExecStream runs a command with ?stream=true, calling fn for each event
// (stdout, stderr, then exit or error) as it arrives.
func (c *Client) ExecStream(ctx context.Context, idOrName string, in ExecRequest, fn func(Event) error) error {
	return c.Stream(ctx, "POST", "/v1/sandboxes/"+url.PathEscape(idOrName)+"/exec?stream=true", in, fn)
}

// Stream sends a request whose answer is an event stream and calls fn per
// event. An error status is returned as *Error before any event.
func (c *Client) Stream(ctx context.Context, method, path string, body any, fn func(Event) error) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = strings.NewReader(string(b))
	}
	req, err := c.NewRequest(ctx, method, path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer closeBody(resp)
	if resp.StatusCode >= 400 {
		return ErrorFrom(resp)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		return fmt.Errorf("expected an event stream, got %s (%d)", ct, resp.StatusCode)
	}
	return ReadEvents(resp.Body, fn)
}

// ReadEvents parses an event stream: data lines of one event are joined
// with "\n".
func ReadEvents(r io.Reader, fn func(Event) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var ev Event
	var data []string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.Name != "" || data != nil {
				ev.Data = strings.Join(data, "\n")
				if err := fn(ev); err != nil {
					return err
				}
			}
			ev, data = Event{}, nil
		case strings.HasPrefix(line, "id:"):
			ev.ID = strings.TrimSpace(strings.TrimPrefix(line, "id:"))
		case strings.HasPrefix(line, "event:"):
			ev.Name = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			d := strings.TrimPrefix(line, "data:")
			data = append(data, strings.TrimPrefix(d, " "))
		}
	}
	return sc.Err()
}

// Template is a sandbox template.
type Template struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Image       string `json:"image"`
	Ready       bool   `json:"ready"`
	Resources   any    `json:"resources"`
	// DiskNotEnforced is set when the template's disk default is not
	// applied on this server (the engine cannot enforce it), saying why.
	DiskNotEnforced string `json:"diskNotEnforced,omitempty"`
	Env             any    `json:"env"`
}

// Templates lists the templates.
func (c *Client) Templates(ctx context.Context) ([]Template, error) {
	var ts []Template
	_, err := c.Do(ctx, "GET", "/v1/templates", nil, &ts)
	return ts, err
}

// Template returns one template.
func (c *Client) Template(ctx context.Context, name string) (*Template, error) {
	var t Template
	_, err := c.Do(ctx, "GET", "/v1/templates/"+url.PathEscape(name), nil, &t)
	return &t, err
}

// BuildTemplate builds a template's image, reporting progress lines to fn
// (nil: none).
func (c *Client) BuildTemplate(ctx context.Context, name string, progress func(line string)) error {
	_, err := c.BuildTemplateStream(ctx, name, progress)
	return err
}

// BuildTemplateStream builds a template's image, reporting each progress
// line to fn (nil: none) as it comes, and returns the template once built.
func (c *Client) BuildTemplateStream(ctx context.Context, name string, progress func(line string)) (*Template, error) {
	var (
		failed error
		built  *Template
	)
	err := c.Stream(ctx, "POST", "/v1/templates/"+url.PathEscape(name)+"/build?stream=true", nil, func(e Event) error {
		switch e.Name {
		case "progress":
			if progress != nil {
				progress(e.Data)
			}
		case "done":
			var t Template
			if err := json.Unmarshal([]byte(e.Data), &t); err != nil {
				return fmt.Errorf("bad done event %q: %w", e.Data, err)
			}
			built = &t
		case "error":
			failed = streamError(e)
		}
		return nil
	})
	switch {
	case err != nil:
		return nil, err
	case failed != nil:
		return nil, failed
	case built == nil:
		return nil, fmt.Errorf("the build's stream ended without its result")
	}
	return built, nil
}

// PauseSandbox freezes a sandbox's processes.
func (c *Client) PauseSandbox(ctx context.Context, idOrName string) (*Sandbox, error) {
	return c.SandboxAction(ctx, idOrName, "pause")
}

// ResumeSandbox thaws a paused sandbox.
func (c *Client) ResumeSandbox(ctx context.Context, idOrName string) (*Sandbox, error) {
	return c.SandboxAction(ctx, idOrName, "resume")
}

// StopSandbox stops a sandbox's processes (its files stay).
func (c *Client) StopSandbox(ctx context.Context, idOrName string) (*Sandbox, error) {
	return c.SandboxAction(ctx, idOrName, "stop")
}

// StartSandbox starts a stopped sandbox.
func (c *Client) StartSandbox(ctx context.Context, idOrName string) (*Sandbox, error) {
	return c.SandboxAction(ctx, idOrName, "start")
}

// KeepaliveSandbox resets a sandbox's idle timer.
func (c *Client) KeepaliveSandbox(ctx context.Context, idOrName string) (*Sandbox, error) {
	return c.SandboxAction(ctx, idOrName, "keepalive")
}

// AttachMount mounts a workspace (or a snapshot of one) into a running or
// stopped sandbox at m.Path.
func (c *Client) AttachMount(ctx context.Context, idOrName string, m Mount) (*Sandbox, error) {
	var s Sandbox
	_, err := c.Do(ctx, "POST", "/v1/sandboxes/"+url.PathEscape(idOrName)+"/mounts", m, &s)
	return &s, err
}

// DetachMount removes the mount at path, attached earlier, from a sandbox.
func (c *Client) DetachMount(ctx context.Context, idOrName, path string) (*Sandbox, error) {
	var s Sandbox
	_, err := c.Do(ctx, "DELETE", "/v1/sandboxes/"+url.PathEscape(idOrName)+"/mounts?path="+url.QueryEscape(path), nil, &s)
	return &s, err
}
