package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// SessionCookie names the session cookie of a dashboard sign-in.
const SessionCookie = "berth_session"

// Session is a dashboard sign-in: GET /v1/me's data plus the CSRF token
// that state-changing requests send back, and when it ends.
type Session struct {
	CSRFToken string    `json:"csrfToken"`
	ExpiresAt time.Time `json:"expiresAt"`
	User      Member    `json:"user"`
	Org       Org       `json:"org"`
	Role      string    `json:"role"`
	Scopes    []string  `json:"scopes"`
	// Token is the session cookie's value, known only to the client that
	// signed in.
	Token string `json:"-"`
}

// SignIn opens a session with the client's key, as the dashboard does
// (POST /v1/sessions); WithSession makes a client that uses it.
func (c *Client) SignIn(ctx context.Context) (*Session, error) {
	b, err := json.Marshal(map[string]string{"apiKey": c.Key})
	if err != nil {
		return nil, err
	}
	// Not NewRequest: the key goes in the body only.
	req, err := http.NewRequestWithContext(ctx, "POST", c.BaseURL+"/v1/sessions", bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer closeBody(resp)
	var s Session
	if _, err := decodeEnvelope(resp, &s); err != nil {
		return nil, err
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == SessionCookie {
			s.Token = ck.Value
		}
	}
	if s.Token == "" {
		return nil, fmt.Errorf("sign-in answer set no %s cookie", SessionCookie)
	}
	return &s, nil
}

// WithSession returns a copy of c that authenticates with the session's
// cookie instead of a key, sending its CSRF token as a browser page would.
func (c *Client) WithSession(s *Session) *Client {
	cp := *c
	cp.Key = ""
	cp.session = s
	return &cp
}

// CurrentSession returns the session of a WithSession client
// (GET /v1/session).
func (c *Client) CurrentSession(ctx context.Context) (*Session, error) {
	var s Session
	_, err := c.Do(ctx, "GET", "/v1/session", nil, &s)
	if c.session != nil {
		s.Token = c.session.Token
	}
	return &s, err
}

// SignOut ends the session of a WithSession client (DELETE /v1/session).
func (c *Client) SignOut(ctx context.Context) error {
	_, err := c.Do(ctx, "DELETE", "/v1/session", nil, nil)
	return err
}
