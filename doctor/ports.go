package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"
)

// Ports checks that the listen address is free, or held by a berth server
// (which answers /healthz as berth does: then berth is already running).
func Ports(ctx context.Context, cfg Config) []Check {
	c := Check{Name: "listen address"}
	l, err := net.Listen("tcp", cfg.Addr)
	if err == nil {
		if err := l.Close(); err != nil {
			c.Status, c.Message = Warn, fmt.Sprintf("%s is free, but closing the check's listener: %v", cfg.Addr, err)
			return []Check{c}
		}
		c.Status, c.Message = OK, cfg.Addr+" is free"
		return []Check{c}
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		c.Status, c.Message = Fail, fmt.Sprintf("cannot listen on %s: %v", cfg.Addr, err)
		c.Fix = "choose another --addr (a port above 1023 unless root, on an address of this host)"
		return []Check{c}
	}
	if url, ok := berthAt(ctx, cfg); ok {
		c.Status, c.Message = OK, cfg.Addr+" is held by a berth server answering "+url+" (berth is running)"
		return []Check{c}
	}
	c.Status, c.Message = Fail, cfg.Addr+" is in use by another process (not a berth server)"
	c.Fix = "stop that process, or choose another --addr"
	return []Check{c}
}

// berthAt reports whether a berth server answers /healthz at cfg.Addr:
// {"data": {"status": "ok"}, "meta": {"requestId": ...}} with X-Request-Id.
func berthAt(ctx context.Context, cfg Config) (string, bool) {
	host, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return "", false
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	url := "http://" + net.JoinHostPort(host, port) + "/healthz"
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", false
	}
	defer func() { _ = resp.Body.Close() }() // read to the end or abandoned: nothing to report
	var body struct {
		Data struct {
			Status string `json:"status"`
		} `json:"data"`
		Meta struct {
			RequestID string `json:"requestId"`
		} `json:"meta"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 1<<16)).Decode(&body) != nil {
		return "", false
	}
	return url, body.Data.Status == "ok" && body.Meta.RequestID != "" && resp.Header.Get("X-Request-Id") != ""
}
