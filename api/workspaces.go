package api

import (
	"encoding/json"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/workspace"
)

func (s *Server) workspaceRoutes() []route {
	return []route{
		{Method: "GET", Pattern: "/v1/workspaces", Summary: "list workspaces (admins: ?all=true)", Scope: "files:read", Query: []param{qAll}, Out: workspace.List{}, handler: s.listWorkspaces},
		{Method: "POST", Pattern: "/v1/workspaces", Summary: "create a workspace", Scope: "files:write", Success: []int{201}, In: workspace.CreateInput{}, Out: workspace.Workspace{}, handler: s.createWorkspace},
		{Method: "GET", Pattern: "/v1/workspaces/{id}", Summary: "one workspace", Scope: "files:read", Out: workspace.Workspace{}, handler: s.getWorkspace},
		{Method: "PATCH", Pattern: "/v1/workspaces/{id}", Summary: "rename a workspace or change its quota", Scope: "files:write", In: workspaceUpdate{}, Out: workspace.Workspace{}, handler: s.updateWorkspace},
		{Method: "DELETE", Pattern: "/v1/workspaces/{id}", Summary: "delete a workspace (?force=true while in use)", Scope: "files:write", Query: []param{qBool("force", "delete even while sandboxes or agents use it")}, Out: deleted{}, handler: s.deleteWorkspace},
		{Method: "GET", Pattern: "/v1/workspaces/{id}/usage", Summary: "who references a workspace", Scope: "files:read", Out: workspace.Usage{}, handler: s.workspaceUsage},
		{Method: "GET", Pattern: "/v1/workspaces/{id}/access", Summary: "members granted a workspace (admin)", Scope: "org:read", Out: accessBody{}, handler: s.workspaceAccess},
		{Method: "PUT", Pattern: "/v1/workspaces/{id}/access", Summary: "set a workspace's grants (admin)", Scope: "org:members", In: accessBody{}, Out: accessBody{}, handler: s.setWorkspaceAccess},
		{Method: "POST", Pattern: "/v1/workspaces/{id}/snapshots", Summary: "snapshot a workspace (read-only, instant; 501 on the dir storage driver)", Scope: "files:write", Success: []int{201}, In: workspace.SnapshotInput{}, Out: workspace.Snapshot{}, handler: s.createSnapshot},
		{Method: "GET", Pattern: "/v1/workspaces/{id}/snapshots", Summary: "a workspace's snapshots, oldest first", Scope: "files:read", Paged: true, Out: []workspace.Snapshot{}, handler: s.listSnapshots},
		{Method: "GET", Pattern: "/v1/workspaces/{id}/snapshots/{sid}", Summary: "one snapshot", Scope: "files:read", Out: workspace.Snapshot{}, handler: s.getSnapshot},
		{Method: "DELETE", Pattern: "/v1/workspaces/{id}/snapshots/{sid}", Summary: "delete a snapshot (409 while a sandbox mounts it)", Scope: "files:write", Out: deleted{}, handler: s.deleteSnapshot},
		{Method: "POST", Pattern: "/v1/workspaces/{id}/snapshots/{sid}/restore", Summary: "return the workspace to a snapshot (409 while a running sandbox mounts it read-write, unless force: those sandboxes are stopped and started again)", Scope: "files:write", In: workspace.RestoreInput{}, Out: workspace.RestoreResult{}, handler: s.restoreSnapshot},
		{Method: "POST", Pattern: "/v1/workspaces/{id}/clone", Summary: "a new workspace with this one's contents, or a snapshot's (copy-on-write; 501 on the dir storage driver)", Scope: "files:write", Success: []int{201}, In: workspace.CloneInput{}, Out: workspace.Workspace{}, handler: s.cloneWorkspace},
	}
}

func (s *Server) createSnapshot(w http.ResponseWriter, r *http.Request) {
	var in workspace.SnapshotInput
	if err := decode(w, r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	snap, err := s.Workspaces.CreateSnapshot(r.Context(), chi.URLParam(r, "id"), in)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeData(w, r, http.StatusCreated, snap)
}

func (s *Server) listSnapshots(w http.ResponseWriter, r *http.Request) {
	limit, err := limitParam(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	snaps, next, err := s.Workspaces.Snapshots(r.Context(), chi.URLParam(r, "id"), limit, r.URL.Query().Get("cursor"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writePage(w, r, snaps, next)
}

func (s *Server) getSnapshot(w http.ResponseWriter, r *http.Request) {
	snap, err := s.Workspaces.GetSnapshot(r.Context(), chi.URLParam(r, "id"), chi.URLParam(r, "sid"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeData(w, r, http.StatusOK, snap)
}

func (s *Server) deleteSnapshot(w http.ResponseWriter, r *http.Request) {
	sid := chi.URLParam(r, "sid")
	if err := s.Workspaces.DeleteSnapshot(r.Context(), chi.URLParam(r, "id"), sid); err != nil {
		writeError(w, r, err)
		return
	}
	writeData(w, r, http.StatusOK, deleted{ID: sid, Deleted: true})
}

func (s *Server) restoreSnapshot(w http.ResponseWriter, r *http.Request) {
	var in workspace.RestoreInput
	// The body is optional: none is {"force": false}.
	if r.ContentLength != 0 {
		if err := decode(w, r, &in); err != nil {
			writeError(w, r, err)
			return
		}
	}
	res, err := s.Workspaces.RestoreSnapshot(r.Context(), chi.URLParam(r, "id"), chi.URLParam(r, "sid"), in.Force)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeData(w, r, http.StatusOK, res)
}

func (s *Server) cloneWorkspace(w http.ResponseWriter, r *http.Request) {
	var in workspace.CloneInput
	if err := decode(w, r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	ws, err := s.Workspaces.Clone(r.Context(), chi.URLParam(r, "id"), in)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeData(w, r, http.StatusCreated, ws)
}

func (s *Server) listWorkspaces(w http.ResponseWriter, r *http.Request) {
	all, err := boolParam(r, "all")
	if err != nil {
		writeError(w, r, err)
		return
	}
	l, err := s.Workspaces.List(r.Context(), all)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeData(w, r, http.StatusOK, l)
}

func (s *Server) createWorkspace(w http.ResponseWriter, r *http.Request) {
	var in workspace.CreateInput
	if err := decode(w, r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	ws, err := s.Workspaces.Create(r.Context(), in)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeData(w, r, http.StatusCreated, ws)
}

func (s *Server) getWorkspace(w http.ResponseWriter, r *http.Request) {
	ws, err := s.Workspaces.Get(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeData(w, r, http.StatusOK, ws)
}

// workspaceUpdate is the body of PATCH /v1/workspaces/{id}. QuotaBytes
// stays raw to tell an absent field (unchanged) from null (no quota).
type workspaceUpdate struct {
	Name       *string         `json:"name"`
	QuotaBytes json.RawMessage `json:"quotaBytes"`
}

func (s *Server) updateWorkspace(w http.ResponseWriter, r *http.Request) {
	var body workspaceUpdate
	if err := decode(w, r, &body); err != nil {
		writeError(w, r, err)
		return
	}
	in := workspace.UpdateInput{Name: body.Name, QuotaSet: body.QuotaBytes != nil}
	if in.QuotaSet && string(body.QuotaBytes) != "null" {
		var q int64
		if err := json.Unmarshal(body.QuotaBytes, &q); err != nil {
			writeError(w, r, berth.Errorf(berth.Invalid, "field \"quotaBytes\" must be an integer number of bytes or null"))
			return
		}
		in.QuotaBytes = &q
	}
	ws, err := s.Workspaces.Update(r.Context(), chi.URLParam(r, "id"), in)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeData(w, r, http.StatusOK, ws)
}

func (s *Server) deleteWorkspace(w http.ResponseWriter, r *http.Request) {
	force, err := boolParam(r, "force")
	if err != nil {
		writeError(w, r, err)
		return
	}
	id := chi.URLParam(r, "id")
	if err := s.Workspaces.Delete(r.Context(), id, force); err != nil {
		writeError(w, r, err)
		return
	}
	writeData(w, r, http.StatusOK, deleted{ID: id, Deleted: true})
}

func (s *Server) workspaceUsage(w http.ResponseWriter, r *http.Request) {
	u, err := s.Workspaces.Usage(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeData(w, r, http.StatusOK, u)
}

type accessBody struct {
	UserIDs []string `json:"userIds"`
}

func (s *Server) workspaceAccess(w http.ResponseWriter, r *http.Request) {
	ids, err := s.Workspaces.Access(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeData(w, r, http.StatusOK, accessBody{UserIDs: ids})
}

func (s *Server) setWorkspaceAccess(w http.ResponseWriter, r *http.Request) {
	var in accessBody
	if err := decode(w, r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	ids, err := s.Workspaces.SetAccess(r.Context(), chi.URLParam(r, "id"), in.UserIDs)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeData(w, r, http.StatusOK, accessBody{UserIDs: ids})
}
