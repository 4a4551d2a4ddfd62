package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
)

// sse writes Server-Sent Events. It is safe for concurrent use (stdout and
// stderr of an exec arrive on different goroutines) and flushes each event.
type sse struct {
	mu sync.Mutex
	w  http.ResponseWriter
	f  http.Flusher
}

// startSSE sends the event-stream headers.
func startSSE(w http.ResponseWriter) *sse {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	f, _ := w.(http.Flusher)
	s := &sse{w: w, f: f}
	s.flush()
	return s
}

func (s *sse) flush() {
	if s.f != nil {
		s.f.Flush()
	} else {
		// A flush fails only when the client went away (or the writer cannot
		// flush); the next write reports the former.
		_ = http.NewResponseController(s.w).Flush()
	}
}

// event sends one event; see send.
func (s *sse) event(name, data string) error { return s.send("", name, data) }

// send sends one event with an optional id. The data is split on line ends
// into data lines, so a client that joins them with "\n" gets the text back.
// SSE cannot carry a carriage return inside data (it ends a line there), so
// "\r\n" and a lone "\r" (progress bars) arrive as "\n": no text is lost.
func (s *sse) send(id, name, data string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	if id != "" {
		b.WriteString("id: " + id + "\n")
	}
	if name != "" {
		b.WriteString("event: " + name + "\n")
	}
	data = strings.ReplaceAll(data, "\r\n", "\n")
	data = strings.ReplaceAll(data, "\r", "\n")
	for _, line := range strings.Split(data, "\n") {
		b.WriteString("data: " + line + "\n")
	}
	b.WriteString("\n")
	if _, err := s.w.Write([]byte(b.String())); err != nil {
		return err
	}
	s.flush()
	return nil
}

// end sends v as the last event of a stream. A failure means the client
// went away (v is one of the API's own types, which always encode), and
// then there is nobody left to tell.
func (s *sse) end(name string, v any) { _ = s.json(name, v) }

// json sends v as one event's JSON data.
func (s *sse) json(name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.event(name, string(b))
}

// writerFunc adapts a function to io.Writer.
type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// eventWriter is an io.Writer that sends each write as an event.
func (s *sse) writer(name string) writerFunc {
	return func(p []byte) (int, error) {
		if err := s.event(name, string(p)); err != nil {
			return 0, err
		}
		return len(p), nil
	}
}
