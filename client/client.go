// Package client is the Go SDK for berth's REST API. The CLI and the
// end-to-end tests use it; it speaks exactly the contract in API.md.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client talks to one berth server with one API key.
type Client struct {
	BaseURL string
	Key     string
	HTTP    *http.Client
	// session, when set (WithSession), authenticates instead of Key.
	session *Session
}

// New returns a client for baseURL (e.g. http://127.0.0.1:8080) using key.
func New(baseURL, key string) *Client {
	// Larger connection buffers than the defaults (4 KiB): file uploads and
	// downloads move gigabytes through them.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.WriteBufferSize, tr.ReadBufferSize = 256<<10, 256<<10
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), Key: key, HTTP: &http.Client{Transport: tr}}
}

// WithKey returns a copy of c that uses another key.
func (c *Client) WithKey(key string) *Client {
	cp := *c
	cp.Key = key
	return &cp
}

// closeBody closes an answer's body once it is read or abandoned. Its
// error says nothing about the answer, which was already decoded (or is
// being given up), so it is dropped here, in one place.
func closeBody(resp *http.Response) { _ = resp.Body.Close() }

// Error is an error answer of the API.
type Error struct {
	Status    int    `json:"-"`
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"requestId"`
	// Field is the JSON path of the request field the error is about
	// ("mounts[1].path"), empty when it is about no one field.
	Field string `json:"field,omitempty"`
	// RetryAfter is the answer's Retry-After (rate_limited, unavailable),
	// zero when it has none.
	RetryAfter time.Duration `json:"-"`
}

func (e *Error) Error() string {
	return fmt.Sprintf("%d %s: %s (request %s)", e.Status, e.Code, e.Message, e.RequestID)
}

// Meta is the envelope's meta.
type Meta struct {
	RequestID  string  `json:"requestId"`
	HasMore    bool    `json:"hasMore"`
	NextCursor *string `json:"nextCursor"`
}

// Do sends a request with a JSON body (nil for none) and decodes the
// envelope's data into out (nil to discard).
func (c *Client) Do(ctx context.Context, method, path string, body, out any) (*Meta, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := c.NewRequest(ctx, method, path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer closeBody(resp)
	return decodeEnvelope(resp, out)
}

// NewRequest builds an authenticated request for path (with query string).
func (c *Client) NewRequest(ctx context.Context, method, path string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, body)
	if err != nil {
		return nil, err
	}
	if c.Key != "" {
		req.Header.Set("X-API-Key", c.Key)
	}
	if c.session != nil {
		req.AddCookie(&http.Cookie{Name: SessionCookie, Value: c.session.Token})
		req.Header.Set("X-CSRF-Token", c.session.CSRFToken)
	}
	return req, nil
}

// decodeEnvelope reads a success envelope into out or returns the *Error.
func decodeEnvelope(resp *http.Response, out any) (*Meta, error) {
	if resp.StatusCode >= 400 {
		return nil, ErrorFrom(resp)
	}
	var env struct {
		Data json.RawMessage `json:"data"`
		Meta Meta            `json:"meta"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		return nil, fmt.Errorf("decode %s answer: %w", resp.Request.URL.Path, err)
	}
	if out != nil {
		if err := json.Unmarshal(env.Data, out); err != nil {
			return nil, fmt.Errorf("decode %s data: %w", resp.Request.URL.Path, err)
		}
	}
	return &env.Meta, nil
}

// ErrorFrom reads an error envelope from resp.
func ErrorFrom(resp *http.Response) error {
	var env struct {
		Error Error `json:"error"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var retry time.Duration
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
		retry = time.Duration(secs) * time.Second
	}
	if err := json.Unmarshal(b, &env); err != nil || env.Error.Code == "" {
		return &Error{Status: resp.StatusCode, Code: "unknown", Message: strings.TrimSpace(string(b)), RetryAfter: retry}
	}
	env.Error.Status = resp.StatusCode
	env.Error.RetryAfter = retry
	return &env.Error
}

// ErrorCode returns the API error code of err, or "".
func ErrorCode(err error) string {
	if e, ok := err.(*Error); ok {
		return e.Code
	}
	return ""
}

// listAll gets every page of a paginated list at path (which may carry a
// query already), following meta.nextCursor.
func listAll[T any](ctx context.Context, c *Client, path string) ([]T, error) {
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	all := []T{}
	cursor := ""
	for {
		p := path + sep + "limit=500"
		if cursor != "" {
			p += "&cursor=" + url.QueryEscape(cursor)
		}
		var page []T
		meta, err := c.Do(ctx, "GET", p, nil, &page)
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

func query(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			v.Set(kv[i], kv[i+1])
		}
	}
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}

func boolStr(b bool) string {
	if b {
		return "true"
	}
	return ""
}

// Member is a user of the organization.
type Member struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Email     string    `json:"email"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"createdAt"`
}

// Me is the caller.
type Me struct {
	User   Member   `json:"user"`
	Org    Org      `json:"org"`
	Role   string   `json:"role"`
	Scopes []string `json:"scopes"`
}

// Org is an organization.
type Org struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// APIKey describes a key; Key is set only when it was just created.
type APIKey struct {
	ID          string     `json:"id"`
	Name        string     `json:"name"`
	KeyPrefix   string     `json:"keyPrefix"`
	Scopes      []string   `json:"scopes"`
	OwnerUserID string     `json:"ownerUserId"`
	ExpiresAt   *time.Time `json:"expiresAt"`
	LastUsedAt  *time.Time `json:"lastUsedAt"`
	RevokedAt   *time.Time `json:"revokedAt"`
	CreatedAt   time.Time  `json:"createdAt"`
	Status      string     `json:"status"`
	Key         string     `json:"key,omitempty"`
}

// Me returns the caller.
func (c *Client) Me(ctx context.Context) (*Me, error) {
	var m Me
	_, err := c.Do(ctx, "GET", "/v1/me", nil, &m)
	return &m, err
}

// Members lists the org's members (every page).
func (c *Client) Members(ctx context.Context) ([]Member, error) {
	return listAll[Member](ctx, c, "/v1/members")
}

// Member returns one member of the org.
func (c *Client) Member(ctx context.Context, id string) (*Member, error) {
	var m Member
	_, err := c.Do(ctx, "GET", "/v1/members/"+url.PathEscape(id), nil, &m)
	return &m, err
}

// AddMember adds a member with role "admin" or "member".
func (c *Client) AddMember(ctx context.Context, name, email, role string) (*Member, error) {
	var m Member
	_, err := c.Do(ctx, "POST", "/v1/members", map[string]string{"name": name, "email": email, "role": role}, &m)
	return &m, err
}

// SetMemberRole changes a member's role.
func (c *Client) SetMemberRole(ctx context.Context, id, role string) (*Member, error) {
	var m Member
	_, err := c.Do(ctx, "PATCH", "/v1/members/"+url.PathEscape(id), map[string]string{"role": role}, &m)
	return &m, err
}

// RemoveMember removes a member.
func (c *Client) RemoveMember(ctx context.Context, id string) error {
	_, err := c.Do(ctx, "DELETE", "/v1/members/"+url.PathEscape(id), nil, nil)
	return err
}

// KeyRequest is the body of a key creation.
type KeyRequest struct {
	Name      string   `json:"name"`
	Scopes    []string `json:"scopes,omitempty"`
	ExpiresIn string   `json:"expiresIn,omitempty"`
	UserID    string   `json:"userId,omitempty"`
}

// CreateAPIKey mints a key; the answer's Key is the secret, shown once.
func (c *Client) CreateAPIKey(ctx context.Context, in KeyRequest) (*APIKey, error) {
	var k APIKey
	_, err := c.Do(ctx, "POST", "/v1/api-keys", in, &k)
	return &k, err
}

// APIKeys lists the caller's keys (all: every key of the org, admins only),
// every page.
func (c *Client) APIKeys(ctx context.Context, all bool) ([]APIKey, error) {
	return listAll[APIKey](ctx, c, "/v1/api-keys"+query("all", boolStr(all)))
}

// RevokeAPIKey revokes a key.
func (c *Client) RevokeAPIKey(ctx context.Context, id string) (*APIKey, error) {
	var k APIKey
	_, err := c.Do(ctx, "DELETE", "/v1/api-keys/"+url.PathEscape(id), nil, &k)
	return &k, err
}
