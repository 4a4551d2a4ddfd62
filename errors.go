package berth

import (
	"errors"
	"fmt"
	"time"
)

// Kind classifies an error. Every layer below the HTTP API reports failures as
// an *Error with one of these kinds; api/ maps kinds to statuses in one table.
type Kind string

// Error kinds. The string values are the wire codes of API.md.
const (
	Invalid       Kind = "invalid_request"
	Unauthorized  Kind = "unauthorized"
	Forbidden     Kind = "forbidden"
	NotFound      Kind = "not_found"
	Conflict      Kind = "conflict"
	InUse         Kind = "WORKSPACE_IN_USE"
	TooLarge      Kind = "payload_too_large"
	QuotaExceeded Kind = "quota_exceeded"
	Unavailable   Kind = "unavailable"
	Internal      Kind = "internal"

	// TooManyRequests: the caller holds as much of a shared resource as one
	// user (or organization) may; other callers are not affected.
	TooManyRequests Kind = "rate_limited"

	// PreconditionFailed: a conditional request (If-Match) found the
	// resource changed since the client read it.
	PreconditionFailed Kind = "precondition_failed"

	// NotSupported: the request is valid but this server's configuration
	// cannot do it (a snapshot on the "dir" storage driver). Neither the
	// request nor retrying it will change that; the server's setup would.
	NotSupported Kind = "not_supported"
)

// Error is berth's one error type. Msg is safe to show to a client (except for
// Internal errors, whose details stay in the server log); Err is the cause.
type Error struct {
	Kind Kind
	Msg  string
	Err  error

	// RetryAfter, when positive, is how long the client should wait before
	// trying again (the API sends it as Retry-After).
	RetryAfter time.Duration

	// Field, when set, is the JSON path of the request field the error is
	// about ("name", "mounts[1].path", "resources.memory"), so a client can
	// place the message at its input without parsing the wording.
	Field string
}

func (e *Error) Error() string {
	switch {
	case e.Msg != "" && e.Err != nil:
		return e.Msg + ": " + e.Err.Error()
	case e.Msg != "":
		return e.Msg
	case e.Err != nil:
		return e.Err.Error()
	}
	return string(e.Kind)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error of the given kind with a formatted client-facing message.
func Errorf(kind Kind, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// FieldErrorf is Errorf for an error about one request field, named by its
// JSON path ("mounts[1].path").
func FieldErrorf(kind Kind, field, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...), Field: field}
}

// WithField names the request field err is about. A berth error gets a copy
// with Field set (a field the chain already names is kept: the innermost
// validator knows the exact path); anything else keeps its kind (Internal).
// A nil err gives nil.
func WithField(err error, field string) error {
	if err == nil {
		return nil
	}
	var e *Error
	if !errors.As(err, &e) {
		return &Error{Kind: Internal, Err: err, Field: field}
	}
	if FieldOf(err) != "" {
		return err
	}
	c := *e
	c.Field = field
	if c.Err == nil && e != err {
		// err wraps e: keep the outer chain as the cause so errors.Is still
		// sees it, and the message stays e's.
		c.Err = err
	}
	return &c
}

// FieldOf is the request field named by the first *Error in err's chain
// that names one ("" when none does).
func FieldOf(err error) string {
	for err != nil {
		if e, ok := err.(*Error); ok && e.Field != "" {
			return e.Field
		}
		err = errors.Unwrap(err)
	}
	return ""
}

// Wrap returns an *Error of the given kind that keeps err as its cause.
// A nil err gives nil.
func Wrap(kind Kind, err error, msg string) error {
	if err == nil {
		return nil
	}
	return &Error{Kind: kind, Msg: msg, Err: err}
}

// KindOf reports the kind of the first *Error in err's chain; errors that are
// not berth errors are Internal.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}

// IsKind reports whether err carries the given kind.
func IsKind(err error, kind Kind) bool {
	return err != nil && KindOf(err) == kind
}

// Message is the text a client may see for err.
func Message(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Kind != Internal {
		if e.Msg != "" {
			return e.Msg
		}
		return e.Error()
	}
	return "internal error"
}

// RetryAfter is the wait hint of the first *Error in err's chain (zero when
// it has none).
func RetryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}
