package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// Readiness is the answer of /readyz: whether the server is ready, and
// each dependency's state ("up" or "down" with the error).
type Readiness struct {
	Ready  bool `json:"ready"`
	Checks map[string]struct {
		Status string `json:"status"`
		Error  string `json:"error,omitempty"`
	} `json:"checks"`
}

// Health reports whether the server process is up (GET /healthz).
func (c *Client) Health(ctx context.Context) error {
	_, err := c.Do(ctx, "GET", "/healthz", nil, nil)
	return err
}

// Ready returns the server's readiness (GET /readyz). A server that is not
// ready answers 503 with the same object: it is returned with an error.
func (c *Client) Ready(ctx context.Context) (*Readiness, error) {
	body, status, err := c.raw(ctx, "/readyz")
	if err != nil {
		return nil, err
	}
	var env struct {
		Data Readiness `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("decode /readyz answer (%d): %w", status, err)
	}
	if status != http.StatusOK {
		return &env.Data, fmt.Errorf("server not ready (%d)", status)
	}
	return &env.Data, nil
}

// Metrics returns the Prometheus metrics text (GET /metrics).
func (c *Client) Metrics(ctx context.Context) (string, error) {
	body, status, err := c.raw(ctx, "/metrics")
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("GET /metrics: status %d", status)
	}
	return string(body), err
}

// OpenAPI returns the server's OpenAPI 3 document (GET /v1/openapi.json).
func (c *Client) OpenAPI(ctx context.Context) (json.RawMessage, error) {
	body, status, err := c.raw(ctx, "/v1/openapi.json")
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("GET /v1/openapi.json: status %d", status)
	}
	return body, err
}

// raw GETs an unenveloped document.
func (c *Client) raw(ctx context.Context, path string) ([]byte, int, error) {
	req, err := c.NewRequest(ctx, "GET", path, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer closeBody(resp)
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	return b, resp.StatusCode, err
}
