package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Agent is the API's agent object (Env: variable names only).
type Agent struct {
	ID            string    `json:"id"`
	Slug          string    `json:"slug"`
	Name          string    `json:"name"`
	Description   string    `json:"description"`
	ExecutionMode string    `json:"executionMode"`
	SandboxID     string    `json:"sandboxId"`
	Template      string    `json:"template"`
	Mounts        []Mount   `json:"mounts"`
	Command       []string  `json:"command"`
	Env           []string  `json:"env"`
	Timeout       int64     `json:"timeout"`
	Version       int64     `json:"version"`
	OwnerUserID   string    `json:"ownerUserId"`
	Endpoint      string    `json:"endpoint"`
	CreatedAt     time.Time `json:"createdAt"`
	UpdatedAt     time.Time `json:"updatedAt"`
}

// AgentRequest is the body of an agent upsert.
type AgentRequest struct {
	Slug          string            `json:"slug"`
	Name          string            `json:"name,omitempty"`
	Description   string            `json:"description,omitempty"`
	ExecutionMode string            `json:"executionMode"`
	Sandbox       string            `json:"sandbox,omitempty"`
	Template      string            `json:"template,omitempty"`
	Mounts        []Mount           `json:"mounts,omitempty"`
	Command       []string          `json:"command"`
	Env           map[string]string `json:"env,omitempty"`
	Timeout       int64             `json:"timeout,omitempty"` // ms
}

// AgentUpserted is the answer of an upsert.
type AgentUpserted struct {
	ID        string `json:"id"`
	Slug      string `json:"slug"`
	Action    string `json:"action"` // created or updated
	Version   int64  `json:"version"`
	SandboxID string `json:"sandboxId"`
	Endpoint  string `json:"endpoint"`
}

// Run is the API's run object.
type Run struct {
	RunID         string     `json:"runId"`
	ThreadID      string     `json:"threadId"`
	AgentID       string     `json:"agentId"`
	AgentSlug     string     `json:"agentSlug"`
	AgentVersion  int64      `json:"agentVersion"`
	SandboxID     string     `json:"sandboxId"`
	ExecutionMode string     `json:"executionMode"`
	Status        string     `json:"status"`
	StatusReason  string     `json:"statusReason"`
	ExitCode      *int       `json:"exitCode"`
	Output        string     `json:"output"`
	Stderr        string     `json:"stderr"`
	Truncated     bool       `json:"truncated"`
	Timeout       int64      `json:"timeout"`
	DurationMs    int64      `json:"durationMs"`
	OwnerUserID   string     `json:"ownerUserId"`
	CreatedAt     time.Time  `json:"createdAt"`
	StartedAt     *time.Time `json:"startedAt"`
	FinishedAt    *time.Time `json:"finishedAt"`
}

// RunRequest is the body of a run.
type RunRequest struct {
	Agent    string `json:"agent,omitempty"` // only for RunNamed
	Prompt   string `json:"prompt"`
	ThreadID string `json:"threadId,omitempty"`
	Stream   bool   `json:"stream,omitempty"`
	Timeout  int64  `json:"timeout,omitempty"` // ms
}

// RunEvent is one event of a thread.
type RunEvent struct {
	Seq       int64           `json:"seq"`
	ThreadID  string          `json:"threadId"`
	RunID     string          `json:"runId"`
	Type      string          `json:"type"` // prompt, status, stdout, stderr, result
	Text      string          `json:"text"`
	Data      json.RawMessage `json:"data"`
	CreatedAt time.Time       `json:"createdAt"`
}

// Thread is the API's thread object; Runs is set by Thread only.
type Thread struct {
	ID          string    `json:"id"`
	AgentID     string    `json:"agentId"`
	AgentSlug   string    `json:"agentSlug"`
	Title       string    `json:"title"`
	Archived    bool      `json:"archived"`
	OwnerUserID string    `json:"ownerUserId"`
	EventCount  int64     `json:"eventCount"`
	CreatedAt   time.Time `json:"createdAt"`
	UpdatedAt   time.Time `json:"updatedAt"`
	Runs        []Run     `json:"runs"`
}

// UpsertAgent creates or updates the agent with in.Slug.
func (c *Client) UpsertAgent(ctx context.Context, in AgentRequest) (*AgentUpserted, error) {
	var out AgentUpserted
	_, err := c.Do(ctx, "POST", "/v1/agents", in, &out)
	return &out, err
}

// Agents lists the caller's agents (all: the org's, admins only), every page.
func (c *Client) Agents(ctx context.Context, all bool) ([]Agent, error) {
	return listAll[Agent](ctx, c, "/v1/agents"+query("all", boolStr(all)))
}

// Agent returns one agent.
func (c *Client) Agent(ctx context.Context, slug string) (*Agent, error) {
	var out Agent
	_, err := c.Do(ctx, "GET", "/v1/agents/"+url.PathEscape(slug), nil, &out)
	return &out, err
}

// DeleteAgent deletes an agent; its runs and threads stay.
func (c *Client) DeleteAgent(ctx context.Context, slug string) error {
	_, err := c.Do(ctx, "DELETE", "/v1/agents/"+url.PathEscape(slug), nil, nil)
	return err
}

// RunAgent runs an agent and waits for the run to end.
func (c *Client) RunAgent(ctx context.Context, slug string, in RunRequest) (*Run, error) {
	in.Stream = false
	var out Run
	_, err := c.Do(ctx, "POST", "/v1/agents/"+url.PathEscape(slug)+"/run", in, &out)
	return &out, err
}

// RunNamed runs the agent named in in.Agent through POST /v1/run.
func (c *Client) RunNamed(ctx context.Context, in RunRequest) (*Run, error) {
	in.Stream = false
	var out Run
	_, err := c.Do(ctx, "POST", "/v1/run", in, &out)
	return &out, err
}

// RunAgentStream runs an agent with stream: true, calling fn for each event
// (prompt, status, stdout, stderr, and last result, whose Data is the run
// object). Event names are the event types; Data is the text for prompt
// and output, JSON for status and result.
func (c *Client) RunAgentStream(ctx context.Context, slug string, in RunRequest, fn func(Event) error) error {
	in.Stream = true
	return c.Stream(ctx, "POST", "/v1/agents/"+url.PathEscape(slug)+"/run", in, fn)
}

// FollowRun streams a run's events after cursor ("" for all) until it ends.
func (c *Client) FollowRun(ctx context.Context, runID, cursor string, fn func(Event) error) error {
	return c.Stream(ctx, "GET", "/v1/runs/"+url.PathEscape(runID)+"/events"+query("cursor", cursor), nil, fn)
}

// GetRun returns one run.
func (c *Client) GetRun(ctx context.Context, runID string) (*Run, error) {
	var out Run
	_, err := c.Do(ctx, "GET", "/v1/runs/"+url.PathEscape(runID), nil, &out)
	return &out, err
}

// CancelRun cancels a run and returns it once it has ended.
func (c *Client) CancelRun(ctx context.Context, runID string) (*Run, error) {
	var out Run
	_, err := c.Do(ctx, "POST", "/v1/runs/"+url.PathEscape(runID)+"/cancel", nil, &out)
	return &out, err
}

// events pages through an event list.
func (c *Client) events(ctx context.Context, path string) ([]RunEvent, error) {
	return listAll[RunEvent](ctx, c, path)
}

// RunEvents returns every event of a run so far, in order.
func (c *Client) RunEvents(ctx context.Context, runID string) ([]RunEvent, error) {
	return c.events(ctx, "/v1/runs/"+url.PathEscape(runID)+"/events")
}

// ThreadEvents returns every event of a thread, in order.
func (c *Client) ThreadEvents(ctx context.Context, threadID string) ([]RunEvent, error) {
	return c.events(ctx, "/v1/threads/"+url.PathEscape(threadID)+"/events")
}

// Threads lists one page of threads (agent: a slug, "" for all) and the
// next cursor ("" at the end).
func (c *Client) Threads(ctx context.Context, agent string, limit int, cursor string) ([]Thread, string, error) {
	l := ""
	if limit > 0 {
		l = strconv.Itoa(limit)
	}
	var out []Thread
	meta, err := c.Do(ctx, "GET", "/v1/threads"+query("agent", agent, "limit", l, "cursor", cursor), nil, &out)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if meta.NextCursor != nil {
		next = *meta.NextCursor
	}
	return out, next, nil
}

// Thread returns a thread with its runs.
func (c *Client) Thread(ctx context.Context, id string) (*Thread, error) {
	var out Thread
	_, err := c.Do(ctx, "GET", "/v1/threads/"+url.PathEscape(id), nil, &out)
	return &out, err
}

// UpdateThread sets a thread's title and/or archived flag (nil: unchanged).
func (c *Client) UpdateThread(ctx context.Context, id string, title *string, archived *bool) (*Thread, error) {
	body := map[string]any{}
	if title != nil {
		body["title"] = *title
	}
	if archived != nil {
		body["archived"] = *archived
	}
	var out Thread
	_, err := c.Do(ctx, "PATCH", "/v1/threads/"+url.PathEscape(id), body, &out)
	return &out, err
}

// DeleteThread deletes a thread with its runs and events.
func (c *Client) DeleteThread(ctx context.Context, id string) error {
	_, err := c.Do(ctx, "DELETE", "/v1/threads/"+url.PathEscape(id), nil, nil)
	return err
}

// RunOptions are the optional parts of a run: the thread to continue and a
// timeout in milliseconds (0: the agent's).
type RunOptions struct {
	ThreadID string
	Timeout  int64
}

// Run runs the agent slug on prompt and waits for the run to end; the
// ergonomic form of RunAgent (a failed run is a run with its status, not an
// error).
func (c *Client) Run(ctx context.Context, slug, prompt string, opts RunOptions) (*Run, error) {
	return c.RunAgent(ctx, slug, RunRequest{Prompt: prompt, ThreadID: opts.ThreadID, Timeout: opts.Timeout})
}

// RunStream runs the agent slug on prompt, calling fn with each event as it
// happens (see RunAgentStream), and returns the run of the final result
// event.
func (c *Client) RunStream(ctx context.Context, slug, prompt string, opts RunOptions, fn func(Event) error) (*Run, error) {
	var run *Run
	err := c.RunAgentStream(ctx, slug, RunRequest{Prompt: prompt, ThreadID: opts.ThreadID, Timeout: opts.Timeout}, func(e Event) error {
		switch e.Name {
		case "result":
			var r Run
			if err := json.Unmarshal([]byte(e.Data), &r); err != nil {
				return fmt.Errorf("bad result event %q: %w", e.Data, err)
			}
			run = &r
		case "error":
			return streamError(e)
		}
		if fn != nil {
			return fn(e)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if run == nil {
		return nil, fmt.Errorf("the run's stream ended without a result")
	}
	return run, nil
}

// ApplyAgent creates or updates the agent with in.Slug (UpsertAgent).
func (c *Client) ApplyAgent(ctx context.Context, in AgentRequest) (*AgentUpserted, error) {
	return c.UpsertAgent(ctx, in)
}

// AllThreads lists every thread (agent: a slug, "" for all), every page.
func (c *Client) AllThreads(ctx context.Context, agent string) ([]Thread, error) {
	return listAll[Thread](ctx, c, "/v1/threads"+query("agent", agent))
}

// AgentRuns lists every run of the agent slug, oldest first, from its
// threads (the API lists runs per thread).
func (c *Client) AgentRuns(ctx context.Context, slug string) ([]Run, error) {
	ts, err := c.AllThreads(ctx, slug)
	if err != nil {
		return nil, err
	}
	runs := []Run{}
	for _, t := range ts {
		full, err := c.Thread(ctx, t.ID)
		if err != nil {
			return nil, err
		}
		runs = append(runs, full.Runs...)
	}
	sort.SliceStable(runs, func(i, j int) bool { return runs[i].CreatedAt.Before(runs[j].CreatedAt) })
	return runs, nil
}

// streamError is the *Error of an event stream's "error" event
// ({"code", "message"}), which ends a stream that had already started.
func streamError(e Event) error {
	var ae Error
	if err := json.Unmarshal([]byte(e.Data), &ae); err != nil || ae.Code == "" {
		ae = Error{Code: "unknown", Message: strings.TrimSpace(e.Data)}
	}
	ae.Status = http.StatusInternalServerError
	return &ae
}

// ThreadEventsAfter returns every event of a thread after the sequence
// number cursor ("" for all), in order.
func (c *Client) ThreadEventsAfter(ctx context.Context, threadID, cursor string) ([]RunEvent, error) {
	all := []RunEvent{}
	for {
		var page []RunEvent
		meta, err := c.Do(ctx, "GET", "/v1/threads/"+url.PathEscape(threadID)+"/events"+query("limit", "500", "cursor", cursor), nil, &page)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if meta.NextCursor == nil || *meta.NextCursor == "" {
			return all, nil
		}
		cursor = *meta.NextCursor
	}
}
