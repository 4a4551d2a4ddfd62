package api_test

import "testing"

// The snapshot and clone routes on the dir driver (the matrix's servers):
// access is checked first (a member without a grant gets 404), then the
// driver answers 501 not_supported. TestBtrfsWorkspaceStorage covers them
// on btrfs, scopes included.
func init() {
	const sid = "00000000-0000-0000-0000-000000000000"
	ws := func(suffix string) func(*testing.T, *fixture) (string, any) {
		return func(t *testing.T, f *fixture) (string, any) { return "/v1/workspaces/" + f.ws + suffix, nil }
	}
	withBody := func(suffix string, body any) func(*testing.T, *fixture) (string, any) {
		return func(t *testing.T, f *fixture) (string, any) { return "/v1/workspaces/" + f.ws + suffix, body }
	}
	addCases(map[string]authCase{
		"POST /v1/workspaces/{id}/snapshots":               {withBody("/snapshots", map[string]string{"name": "s"}), 404, 501, 501},
		"GET /v1/workspaces/{id}/snapshots":                {ws("/snapshots"), 404, 501, 501},
		"GET /v1/workspaces/{id}/snapshots/{sid}":          {ws("/snapshots/" + sid), 404, 501, 501},
		"DELETE /v1/workspaces/{id}/snapshots/{sid}":       {ws("/snapshots/" + sid), 404, 501, 501},
		"POST /v1/workspaces/{id}/snapshots/{sid}/restore": {withBody("/snapshots/"+sid+"/restore", map[string]bool{"force": false}), 404, 501, 501},
		"POST /v1/workspaces/{id}/clone":                   {withBody("/clone", map[string]string{"name": "c"}), 404, 501, 501},
	})
}
