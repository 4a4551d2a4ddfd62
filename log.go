package berth

import (
	"context"
	"log/slog"
)

// LogKeyRequestID is the log attribute that names the API request a log line
// belongs to (the requestId of the error envelope and X-Request-Id).
const LogKeyRequestID = "requestId"

type requestIDKey struct{}

// WithRequestID returns a context carrying the id of the API request it
// serves. Work started for the request (including work that outlives it via
// context.WithoutCancel) keeps the id, so its log lines can be tied to it.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestIDFrom returns the request id on ctx, or "".
func RequestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// RequestIDHandler wraps h so that every record logged with a context
// carrying a request id (the *Context logging methods, LogAttrs) gets a
// requestId attribute, unless the call already set one. With it, a
// service only has to log with the request's context for its lines to
// be found next to the request's access-log line.
func RequestIDHandler(h slog.Handler) slog.Handler {
	if _, ok := h.(requestIDHandler); ok {
		return h
	}
	return requestIDHandler{h}
}

type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestIDFrom(ctx); id != "" {
		has := false
		r.Attrs(func(a slog.Attr) bool {
			has = a.Key == LogKeyRequestID
			return !has
		})
		if !has {
			r = r.Clone()
			r.AddAttrs(slog.String(LogKeyRequestID, id))
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(as)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}
