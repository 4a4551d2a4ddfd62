package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth"
)

// statusOf is the one table from error kinds to HTTP statuses.
var statusOf = map[berth.Kind]int{
	berth.Invalid:       http.StatusBadRequest,
	berth.Unauthorized:  http.StatusUnauthorized,
	berth.Forbidden:     http.StatusForbidden,
	berth.NotFound:      http.StatusNotFound,
	berth.Conflict:      http.StatusConflict,
	berth.InUse:         http.StatusConflict,
	berth.TooLarge:      http.StatusRequestEntityTooLarge,
	berth.QuotaExceeded: http.StatusInsufficientStorage,
	berth.Unavailable:   http.StatusServiceUnavailable,
	berth.Internal:      http.StatusInternalServerError,

	berth.TooManyRequests: http.StatusTooManyRequests, // with Retry-After

	berth.PreconditionFailed: http.StatusPreconditionFailed, // If-Match

	berth.NotSupported: http.StatusNotImplemented, // e.g. snapshots on the dir storage driver
}

// Meta is the envelope's meta object.
type Meta struct {
	RequestID  string          `json:"requestId"`
	HasMore    *bool           `json:"hasMore,omitempty"`
	NextCursor json.RawMessage `json:"nextCursor,omitempty"` // a string, or null on the last page
}

type envelope struct {
	Data any  `json:"data"`
	Meta Meta `json:"meta"`
}

// deleted answers a delete. The answers that were maps keep their bytes:
// fields in the maps' (sorted) key order.
type deleted struct {
	Deleted bool   `json:"deleted"` // always true
	ID      string `json:"id"`
}

// streamError is the data of an event stream's last "error" event: the
// stream had started (200), so the failure cannot be a status.
type streamError struct {
	Code    berth.Kind `json:"code"`
	Message string     `json:"message"`
}

// streamErr describes err for an "error" event.
func streamErr(err error) streamError {
	return streamError{Code: berth.KindOf(err), Message: berth.Message(err)}
}

type errorBody struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"requestId"`
	// Field is the JSON path of the request field the error is about, when
	// it is about one, so that clients need not parse the message.
	Field string `json:"field,omitempty"`
}

// errorBodyOf is the envelope's error object for err.
func errorBodyOf(r *http.Request, err error) errorBody {
	kind := berth.KindOf(err)
	b := errorBody{Code: string(kind), Message: berth.Message(err), RequestID: requestID(r.Context())}
	if kind != berth.Internal {
		b.Field = berth.FieldOf(err)
	}
	return b
}

// writeData answers {"data": v, "meta": {...}}.
func writeData(w http.ResponseWriter, r *http.Request, status int, v any) {
	writeEnvelope(w, r, status, v, Meta{})
}

// writePage answers a paginated list.
func writePage(w http.ResponseWriter, r *http.Request, v any, next string) {
	more := next != ""
	m := Meta{HasMore: &more, NextCursor: json.RawMessage("null")}
	if more {
		m.NextCursor, _ = json.Marshal(next)
	}
	writeEnvelope(w, r, http.StatusOK, v, m)
}

func writeEnvelope(w http.ResponseWriter, r *http.Request, status int, v any, m Meta) {
	m.RequestID = requestID(r.Context())
	body, err := json.Marshal(envelope{Data: v, Meta: m})
	if err != nil {
		writeError(w, r, fmt.Errorf("encode response: %w", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
	w.Write([]byte("\n"))
}

// writeError sends err through the one table. Internal errors are logged
// with their details; the client sees only "internal error".
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	kind := berth.KindOf(err)
	status, ok := statusOf[kind]
	if !ok {
		status = http.StatusInternalServerError
	}
	if kind == berth.Internal {
		loggerFrom(r.Context()).Error("request failed", "err", err, "requestId", requestID(r.Context()),
			"method", r.Method, "path", r.URL.Path)
	}
	// The port proxy's answers are the sandbox's server's, errors too:
	// this header says an error is berth's own.
	w.Header().Set(BerthErrorHeader, "true")
	if d := berth.RetryAfter(err); d > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((d+time.Second-1)/time.Second)))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// Strings always encode, so only the write can fail: the client went
	// away and there is nobody left to tell.
	_ = json.NewEncoder(w).Encode(struct {
		Error errorBody `json:"error"`
	}{errorBodyOf(r, err)})
}

// maxJSON bounds every JSON request body.
const maxJSON = 1 << 20

// decode reads a JSON body strictly: bounded size, unknown fields and
// trailing data rejected, type errors reported with the field's name.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	body := http.MaxBytesReader(w, r.Body, maxJSON)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeErr(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return decodeErr(err)
		}
		return berth.Errorf(berth.Invalid, "request body has data after the JSON value")
	}
	return nil
}

func decodeErr(err error) error {
	var (
		maxErr  *http.MaxBytesError
		synErr  *json.SyntaxError
		typeErr *json.UnmarshalTypeError
		be      *berth.Error
	)
	switch {
	case errors.As(err, &be):
		return err // from the body's reader: already says what went wrong
	case errors.As(err, &maxErr):
		return berth.Errorf(berth.TooLarge, "request body exceeds %d bytes", maxErr.Limit)
	case errors.Is(err, io.EOF):
		return berth.Errorf(berth.Invalid, "request body is empty; a JSON object is required")
	case errors.As(err, &synErr), errors.Is(err, io.ErrUnexpectedEOF):
		return berth.Errorf(berth.Invalid, "malformed JSON: %v", err)
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return berth.Errorf(berth.Invalid, "request body must be a JSON object")
		}
		return berth.FieldErrorf(berth.Invalid, field, "field %q must be %s, not %s", field, jsonType(typeErr.Type.Kind().String()), typeErr.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return berth.Errorf(berth.Invalid, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return berth.Errorf(berth.Invalid, "invalid JSON body: %v", err)
}

func jsonType(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "an array"
	case "map", "struct":
		return "an object"
	case "int", "int64", "int32", "uint", "uint64", "float64":
		return "a number"
	}
	return goKind
}

type ctxKey int

const (
	loggerKey ctxKey = iota
)

func requestID(ctx context.Context) string { return berth.RequestIDFrom(ctx) }

func loggerFrom(ctx interface{ Value(any) any }) *slog.Logger {
	if l, ok := ctx.Value(loggerKey).(*slog.Logger); ok {
		return l
	}
	return slog.Default()
}
