package api

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/auth"
)

func (s *Server) orgRoutes() []route {
	return []route{
		{Method: "GET", Pattern: "/v1/me", Summary: "the caller", Out: auth.Me{}, handler: s.me},
		{Method: "GET", Pattern: "/v1/members", Summary: "list members (limit, cursor)", Scope: "org:read", Paged: true, Out: []auth.Member{}, handler: s.listMembers},
		{Method: "POST", Pattern: "/v1/members", Summary: "add a member", Scope: "org:members", Success: []int{201}, In: auth.MemberInput{}, Out: auth.Member{}, handler: s.addMember},
		{Method: "GET", Pattern: "/v1/members/{userId}", Summary: "one member", Scope: "org:read", Out: auth.Member{}, handler: s.getMember},
		{Method: "PATCH", Pattern: "/v1/members/{userId}", Summary: "change a member's role", Scope: "org:members", In: memberUpdate{}, Out: auth.Member{}, handler: s.updateMember},
		{Method: "DELETE", Pattern: "/v1/members/{userId}", Summary: "remove a member", Scope: "org:members", Out: deleted{}, handler: s.removeMember},
		{Method: "GET", Pattern: "/v1/api-keys", Summary: "list API keys (admins: ?all=true; limit, cursor)", Scope: "org:read", Paged: true, Query: []param{qAll}, Out: []auth.APIKey{}, handler: s.listKeys},
		{Method: "POST", Pattern: "/v1/api-keys", Summary: "create an API key", Scope: "org:write", Success: []int{201}, In: auth.KeyInput{}, Out: auth.APIKey{}, handler: s.createKey},
		{Method: "DELETE", Pattern: "/v1/api-keys/{keyId}", Summary: "revoke an API key", Scope: "org:write", Out: auth.APIKey{}, handler: s.revokeKey},
	}
}

func (s *Server) me(w http.ResponseWriter, r *http.Request) {
	me, err := s.Auth.Me(r.Context())
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeData(w, r, http.StatusOK, me)
}

func (s *Server) listMembers(w http.ResponseWriter, r *http.Request) {
	limit, err := limitParam(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	ms, next, err := s.Auth.ListMembers(r.Context(), limit, r.URL.Query().Get("cursor"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writePage(w, r, ms, next)
}

func (s *Server) getMember(w http.ResponseWriter, r *http.Request) {
	m, err := s.Auth.GetMember(r.Context(), chi.URLParam(r, "userId"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeData(w, r, http.StatusOK, m)
}

func (s *Server) addMember(w http.ResponseWriter, r *http.Request) {
	var in auth.MemberInput
	if err := decode(w, r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	m, err := s.Auth.AddMember(r.Context(), in)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeData(w, r, http.StatusCreated, m)
}

// memberUpdate is the body of PATCH /v1/members/{userId}.
type memberUpdate struct {
	Role berth.Role `json:"role"`
}

func (s *Server) updateMember(w http.ResponseWriter, r *http.Request) {
	var in memberUpdate
	if err := decode(w, r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	m, err := s.Auth.UpdateMember(r.Context(), chi.URLParam(r, "userId"), in.Role)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeData(w, r, http.StatusOK, m)
}

func (s *Server) removeMember(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "userId")
	if err := s.Auth.RemoveMember(r.Context(), id); err != nil {
		writeError(w, r, err)
		return
	}
	writeData(w, r, http.StatusOK, deleted{ID: id, Deleted: true})
}

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) {
	lq, err := listParams(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	keys, next, err := s.Auth.ListKeys(r.Context(), lq.All, lq.Limit, lq.Cursor)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writePage(w, r, keys, next)
}

func (s *Server) createKey(w http.ResponseWriter, r *http.Request) {
	var in auth.KeyInput
	if err := decode(w, r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	k, err := s.Auth.CreateKey(r.Context(), in)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeData(w, r, http.StatusCreated, k)
}

func (s *Server) revokeKey(w http.ResponseWriter, r *http.Request) {
	k, err := s.Auth.RevokeKey(r.Context(), chi.URLParam(r, "keyId"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeData(w, r, http.StatusOK, k)
}
