package client

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// PortPath is the API path of p on the server listening on port inside
// sandbox idOrName (the port proxy); p starts with "/" and may carry a
// query.
func PortPath(idOrName string, port int, p string) string {
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return "/v1/sandboxes/" + url.PathEscape(idOrName) + "/ports/" + strconv.Itoa(port) + p
}

// PortRequest sends a request through the port proxy to the server
// listening on port inside a sandbox and returns its answer as is,
// whatever its status (an error only when berth itself refused it or the
// request failed). The caller closes the body.
func (c *Client) PortRequest(ctx context.Context, method, idOrName string, port int, p string, body io.Reader, header http.Header) (*http.Response, error) {
	req, err := c.NewRequest(ctx, method, PortPath(idOrName, port, p), body)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.Header.Get("X-Berth-Error") == "true" {
		defer closeBody(resp)
		return nil, ErrorFrom(resp)
	}
	return resp, nil
}
