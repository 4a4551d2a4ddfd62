package berth_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/berth-dev/berth"
)

func TestFieldOf(t *testing.T) {
	e := berth.FieldErrorf(berth.Invalid, "mounts[1].path", "mount path %q is invalid", "/etc")
	if got := berth.FieldOf(e); got != "mounts[1].path" {
		t.Fatalf("FieldOf = %q", got)
	}
	if berth.Message(e) != `mount path "/etc" is invalid` || !berth.IsKind(e, berth.Invalid) {
		t.Fatalf("message %q kind %s", berth.Message(e), berth.KindOf(e))
	}
	// Through wrapping, by fmt and by berth.
	wrapped := fmt.Errorf("create: %w", e)
	if got := berth.FieldOf(wrapped); got != "mounts[1].path" {
		t.Fatalf("FieldOf(fmt wrapped) = %q", got)
	}
	if got := berth.FieldOf(berth.Wrap(berth.Invalid, e, "outer")); got != "mounts[1].path" {
		t.Fatalf("FieldOf(berth wrapped) = %q", got)
	}
	for _, err := range []error{nil, errors.New("plain"), berth.Errorf(berth.Invalid, "no field")} {
		if got := berth.FieldOf(err); got != "" {
			t.Fatalf("FieldOf(%v) = %q, want none", err, got)
		}
	}
}

func TestWithField(t *testing.T) {
	if berth.WithField(nil, "x") != nil {
		t.Fatal("WithField(nil) is not nil")
	}
	base := berth.Errorf(berth.Invalid, "slug must be lowercase")
	e := berth.WithField(base, "slug")
	if berth.FieldOf(e) != "slug" || berth.Message(e) != "slug must be lowercase" || !berth.IsKind(e, berth.Invalid) {
		t.Fatalf("WithField: field %q message %q kind %s", berth.FieldOf(e), berth.Message(e), berth.KindOf(e))
	}
	if berth.FieldOf(base) != "" {
		t.Fatal("WithField changed the error it was given")
	}
	// A field the inner validator named is the more exact one: kept.
	inner := berth.FieldErrorf(berth.Invalid, "resources.memory", "too small")
	if got := berth.FieldOf(berth.WithField(inner, "resources")); got != "resources.memory" {
		t.Fatalf("WithField replaced the inner field: %q", got)
	}
	// A berth error inside a fmt wrapper: the field is added, the kind,
	// message and chain stay.
	sentinel := errors.New("sentinel")
	deep := fmt.Errorf("ctx: %w", &berth.Error{Kind: berth.NotFound, Msg: "workspace not found", Err: sentinel})
	e = berth.WithField(deep, "mounts[0].workspaceId")
	if berth.FieldOf(e) != "mounts[0].workspaceId" || !berth.IsKind(e, berth.NotFound) || !errors.Is(e, sentinel) || berth.Message(e) != "workspace not found" {
		t.Fatalf("WithField(wrapped): field %q kind %s message %q is %v", berth.FieldOf(e), berth.KindOf(e), berth.Message(e), errors.Is(e, sentinel))
	}
	// Not a berth error: stays Internal (its text is not shown), with the field.
	e = berth.WithField(errors.New("disk on fire"), "name")
	if !berth.IsKind(e, berth.Internal) || berth.Message(e) != "internal error" || berth.FieldOf(e) != "name" {
		t.Fatalf("WithField(plain): kind %s message %q field %q", berth.KindOf(e), berth.Message(e), berth.FieldOf(e))
	}
}
