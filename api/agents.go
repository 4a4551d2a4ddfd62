package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/agent"
)

func (s *Server) agentRoutes() []route {
	if s.Agents == nil {
		return nil
	}
	return []route{
		{Method: "POST", Pattern: "/v1/agents", Summary: "create or update an agent by slug (201 created, 200 updated)", Scope: "agent:write", Success: []int{201, 200}, In: agent.Input{}, Out: agent.Upserted{}, handler: s.upsertAgent},
		{Method: "GET", Pattern: "/v1/agents", Summary: "list agents (?all=true: admins, the org's; limit, cursor)", Scope: "agent:read", Paged: true, Query: []param{qAll}, Out: []agent.Agent{}, handler: s.listAgents},
		{Method: "GET", Pattern: "/v1/agents/{slug}", Summary: "one agent", Scope: "agent:read", Out: agent.Agent{}, handler: s.getAgent},
		{Method: "DELETE", Pattern: "/v1/agents/{slug}", Summary: "delete an agent (its runs and threads stay)", Scope: "agent:write", Out: agentDeleted{}, handler: s.deleteAgent},
		{Method: "POST", Pattern: "/v1/agents/{slug}/run", Summary: "run an agent (stream: true for SSE)", Scope: "agent:run", In: agent.RunInput{}, Out: agent.Run{},
			Stream: &stream{When: "With \"stream\": true in the body; each event's id is its sequence number", Events: []sseEvent{
				{Name: "prompt", Desc: "the prompt"},
				{Name: "status", Data: agent.StatusData{}, Desc: "the run's status changed"},
				{Name: "stdout", Desc: "a chunk of the agent's output"},
				{Name: "stderr", Desc: "a chunk of the agent's standard error"},
				{Name: "result", Data: agent.Run{}, Desc: "last: the whole run"},
				{Name: "error", Data: streamError{}, Desc: "last: following the run failed"},
			}}, handler: s.runAgent},
		{Method: "POST", Pattern: "/v1/run", Summary: "run the agent named in the body", Scope: "agent:run", In: agent.RunInput{}, Out: agent.Run{},
			Stream: &stream{When: "With \"stream\": true in the body; each event's id is its sequence number", Events: []sseEvent{
				{Name: "prompt", Desc: "the prompt"},
				{Name: "status", Data: agent.StatusData{}, Desc: "the run's status changed"},
				{Name: "stdout", Desc: "a chunk of the agent's output"},
				{Name: "stderr", Desc: "a chunk of the agent's standard error"},
				{Name: "result", Data: agent.Run{}, Desc: "last: the whole run"},
				{Name: "error", Data: streamError{}, Desc: "last: following the run failed"},
			}}, handler: s.runAgent},
		{Method: "GET", Pattern: "/v1/runs/{runId}", Summary: "one run: status, exit code, output, timings", Scope: "agent:read", Out: agent.Run{}, handler: s.getRun},
		{Method: "GET", Pattern: "/v1/runs/{runId}/events", Summary: "a run's events (Accept: text/event-stream follows it live)", Scope: "agent:read", Paged: true, Out: []agent.Event{},
			Query: []param{{Name: "Last-Event-ID", Header: true, Desc: "streaming: resume after this event (its seq)"}},
			Stream: &stream{When: "With Accept: text/event-stream (resuming after Last-Event-ID or ?cursor)", Events: []sseEvent{
				{Name: "prompt", Desc: "the prompt"},
				{Name: "status", Data: agent.StatusData{}, Desc: "the run's status changed"},
				{Name: "stdout", Desc: "a chunk of the agent's output"},
				{Name: "stderr", Desc: "a chunk of the agent's standard error"},
				{Name: "result", Data: agent.Run{}, Desc: "last: the whole run"},
				{Name: "error", Data: streamError{}, Desc: "last: following the run failed"},
			}}, handler: s.runEvents},
		{Method: "POST", Pattern: "/v1/runs/{runId}/cancel", Summary: "cancel a run (kills its process)", Scope: "agent:run", Out: agent.Run{}, handler: s.cancelRun},
		{Method: "GET", Pattern: "/v1/threads", Summary: "list threads (?agent=slug, ?all, limit, cursor)", Scope: "agent:read", Paged: true, Query: []param{{Name: "agent", Desc: "only threads of the agent with this slug"}, qAll}, Out: []agent.Thread{}, handler: s.listThreads},
		{Method: "GET", Pattern: "/v1/threads/{threadId}", Summary: "a thread with its runs", Scope: "agent:read", Out: agent.Thread{}, handler: s.getThread},
		{Method: "GET", Pattern: "/v1/threads/{threadId}/events", Summary: "every event of a thread, in order", Scope: "agent:read", Paged: true, Out: []agent.Event{},
			Query: []param{{Name: "Last-Event-ID", Header: true, Desc: "streaming: resume after this event (its seq)"}}, handler: s.threadEvents},
		{Method: "PATCH", Pattern: "/v1/threads/{threadId}", Summary: "retitle or (un)archive a thread", Scope: "agent:write", In: agent.ThreadUpdate{}, Out: agent.Thread{}, handler: s.updateThread},
		{Method: "DELETE", Pattern: "/v1/threads/{threadId}", Summary: "delete a thread with its runs and events", Scope: "agent:write", Out: deleted{}, handler: s.deleteThread},
	}
}

func (s *Server) upsertAgent(w http.ResponseWriter, r *http.Request) {
	var in agent.Input
	if err := decode(w, r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	out, err := s.Agents.Upsert(r.Context(), in)
	if err != nil {
		writeError(w, r, err)
		return
	}
	status := http.StatusOK
	if out.Action == "created" {
		status = http.StatusCreated
	}
	writeData(w, r, status, out)
}

func (s *Server) listAgents(w http.ResponseWriter, r *http.Request) {
	lq, err := listParams(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	as, next, err := s.Agents.List(r.Context(), lq.All, lq.Limit, lq.Cursor)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writePage(w, r, as, next)
}

func (s *Server) getAgent(w http.ResponseWriter, r *http.Request) {
	a, err := s.Agents.Get(r.Context(), chi.URLParam(r, "slug"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeData(w, r, http.StatusOK, a)
}

// agentDeleted answers DELETE /v1/agents/{slug}.
type agentDeleted struct {
	Deleted bool   `json:"deleted"` // always true
	Slug    string `json:"slug"`
}

func (s *Server) deleteAgent(w http.ResponseWriter, r *http.Request) {
	slug := chi.URLParam(r, "slug")
	if err := s.Agents.Delete(r.Context(), slug); err != nil {
		writeError(w, r, err)
		return
	}
	writeData(w, r, http.StatusOK, agentDeleted{Slug: slug, Deleted: true})
}

// runAgent serves both run routes: the slug comes from the path or, on
// /v1/run, from the body's "agent".
func (s *Server) runAgent(w http.ResponseWriter, r *http.Request) {
	var in agent.RunInput
	if err := decode(w, r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	slug := chi.URLParam(r, "slug")
	if slug == "" {
		slug = in.Agent
	} else if in.Agent != "" && in.Agent != slug {
		writeError(w, r, berth.Errorf(berth.Invalid, "the body names agent %q but the path %q; leave agent out here", in.Agent, slug))
		return
	}
	run, err := s.Agents.Start(r.Context(), slug, in)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if in.Stream {
		s.streamRun(w, r, run.RunID, "", "agent:run")
		return
	}
	// The run belongs to the server now: a client that goes away leaves it
	// running (GET /v1/runs/{id} finds it; cancel stops it).
	if err := s.Agents.Wait(r.Context(), run.RunID); err != nil {
		return
	}
	s.writeRun(w, r, run.RunID, "agent:run")
}

// writeRun answers a run as seen by a caller with scope.
func (s *Server) writeRun(w http.ResponseWriter, r *http.Request, id, scope string) {
	run, err := s.Agents.GetRunAs(r.Context(), id, scope)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeData(w, r, http.StatusOK, run)
}

// streamRun sends a run's events after cursor as SSE, each with its
// sequence number as the event id: prompt and stdout/stderr frames carry
// the text, status frames {"status", "reason"?}, and the final result frame
// the whole run object. The stream ends after the result.
func (s *Server) streamRun(w http.ResponseWriter, r *http.Request, runID, cursor, scope string) {
	var ev *sse
	err := s.Agents.FollowAs(r.Context(), runID, cursor, scope, func(e agent.Event) error {
		if ev == nil {
			ev = startSSE(w)
		}
		data := e.Text
		switch e.Type {
		case agent.EventResult:
			run, err := s.Agents.GetRunAs(context.WithoutCancel(r.Context()), runID, scope)
			if err != nil {
				return err
			}
			b, _ := json.Marshal(run)
			data = string(b)
		case agent.EventStatus:
			data = string(e.Data)
		}
		return ev.send(strconv.FormatInt(e.Seq, 10), e.Type, data)
	})
	switch {
	case err != nil && ev == nil:
		writeError(w, r, err)
	case err != nil && r.Context().Err() == nil:
		ev.end("error", streamErr(err))
	case ev == nil:
		startSSE(w) // a run with no events left after cursor
	}
}

func (s *Server) getRun(w http.ResponseWriter, r *http.Request) {
	s.writeRun(w, r, chi.URLParam(r, "runId"), "agent:read")
}

func eventPage(r *http.Request) (agent.Page, error) {
	limit, err := limitParam(r)
	return agent.Page{Cursor: r.URL.Query().Get("cursor"), Limit: limit}, err
}

func (s *Server) runEvents(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "runId")
	if strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		cursor := r.URL.Query().Get("cursor")
		if last := r.Header.Get("Last-Event-ID"); last != "" {
			cursor = last
		}
		s.streamRun(w, r, id, cursor, "agent:read")
		return
	}
	p, err := eventPage(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	evs, next, err := s.Agents.RunEvents(r.Context(), id, p)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writePage(w, r, evs, next)
}

func (s *Server) cancelRun(w http.ResponseWriter, r *http.Request) {
	run, err := s.Agents.Cancel(r.Context(), chi.URLParam(r, "runId"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeData(w, r, http.StatusOK, run)
}

func (s *Server) listThreads(w http.ResponseWriter, r *http.Request) {
	lq, err := listParams(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	ts, next, err := s.Agents.ListThreads(r.Context(), agent.ThreadFilter{Agent: r.URL.Query().Get("agent"), All: lq.All, Limit: lq.Limit, Cursor: lq.Cursor})
	if err != nil {
		writeError(w, r, err)
		return
	}
	writePage(w, r, ts, next)
}

func (s *Server) getThread(w http.ResponseWriter, r *http.Request) {
	t, err := s.Agents.GetThread(r.Context(), chi.URLParam(r, "threadId"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeData(w, r, http.StatusOK, t)
}

func (s *Server) threadEvents(w http.ResponseWriter, r *http.Request) {
	p, err := eventPage(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	evs, next, err := s.Agents.ThreadEvents(r.Context(), chi.URLParam(r, "threadId"), p)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writePage(w, r, evs, next)
}

func (s *Server) updateThread(w http.ResponseWriter, r *http.Request) {
	var in agent.ThreadUpdate
	if err := decode(w, r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	t, err := s.Agents.UpdateThread(r.Context(), chi.URLParam(r, "threadId"), in)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeData(w, r, http.StatusOK, t)
}

func (s *Server) deleteThread(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "threadId")
	if err := s.Agents.DeleteThread(r.Context(), id); err != nil {
		writeError(w, r, err)
		return
	}
	writeData(w, r, http.StatusOK, deleted{ID: id, Deleted: true})
}
