// Command portecho is a small HTTP server for the tests and benchmarks of
// the port proxy, run inside a sandbox (built static, CGO_ENABLED=0):
// /headers answers the request it got as JSON, /stream writes a first
// line and holds the rest until /release is called, /ws echoes WebSocket
// messages, /big answers 1 MiB.
//
//	portecho ADDR
package main

import (
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"os"

	"github.com/coder/websocket"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: portecho ADDR")
		os.Exit(2)
	}
	release := make(chan struct{})
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte('a' + i%26)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/headers", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"header": r.Header, "host": r.Host, "path": r.URL.Path,
			"query": r.URL.RawQuery, "method": r.Method})
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = fmt.Fprintln(w, "first")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		_, _ = fmt.Fprintln(w, "second")
	})
	mux.HandleFunc("/release", func(w http.ResponseWriter, r *http.Request) {
		select {
		case release <- struct{}{}:
			_, _ = fmt.Fprintln(w, "released")
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(big)
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
		if err != nil {
			return
		}
		defer func() { _ = c.CloseNow() }()
		for {
			typ, p, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, append([]byte("echo:"), p...)); err != nil {
				return
			}
		}
	})
	log.Fatal(http.ListenAndServe(os.Args[1], mux))
}
