package api

import (
	"net/http"
	"strconv"

	"github.com/berth-dev/berth"
)

// boolParam reads an optional boolean query parameter strictly.
func boolParam(r *http.Request, name string) (bool, error) {
	switch v := r.URL.Query().Get(name); v {
	case "", "false", "0":
		return false, nil
	case "true", "1":
		return true, nil
	default:
		return false, berth.Errorf(berth.Invalid, "query parameter %s must be true or false, not %q", name, v)
	}
}

// limitParam reads ?limit= (1..500; 0 when absent).
func limitParam(r *http.Request) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 500 {
		return 0, berth.Errorf(berth.Invalid, "limit must be an integer between 1 and 500")
	}
	return n, nil
}

// listQuery holds the parameters every admin-wide paginated list takes.
type listQuery struct {
	All    bool   // ?all=true: every item of the org (admins)
	Limit  int    // ?limit= (0 when absent)
	Cursor string // ?cursor=
}

// listParams reads ?all, ?limit and ?cursor strictly.
func listParams(r *http.Request) (listQuery, error) {
	all, err := boolParam(r, "all")
	if err != nil {
		return listQuery{}, err
	}
	limit, err := limitParam(r)
	if err != nil {
		return listQuery{}, err
	}
	return listQuery{All: all, Limit: limit, Cursor: r.URL.Query().Get("cursor")}, nil
}
