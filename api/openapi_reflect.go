package api

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/getkin/kin-openapi/openapi3"
)

// schemas derives OpenAPI schemas from the Go types the handlers decode and
// encode, so that the document describes what the server really sends. A
// named struct becomes a component schema named after its type (see
// typeNames for the few renamed ones); its fields follow encoding/json:
// a field without omitempty is required, a pointer is nullable, embedded
// structs are inlined. What the Go type cannot say (enums of plain string
// fields, the shapes of json.RawMessage fields, descriptions) comes from
// fieldDocs and typeDocs in openapi_docs.go.
//
// Input types (request bodies) are reflected in input mode: nothing is
// required unless fieldDocs says so (the services give absent fields their
// defaults), and a type used on both sides (sandbox.Mount) gets a second
// component named "MountInput".
type schemas struct {
	comps openapi3.Schemas
	names map[schemaKey]string       // components made so far
	owner map[string]reflect.Type    // component name -> its Go type, to catch clashes
	errs  []string                   // types that cannot be described
	seen  map[schemaKey]bool         // guards recursion
	doc   func(reflect.Type) typeDoc // documentation of types
}

type schemaKey struct {
	t  reflect.Type
	in bool
}

func newSchemas() *schemas {
	return &schemas{
		comps: openapi3.Schemas{},
		names: map[schemaKey]string{},
		owner: map[string]reflect.Type{},
		seen:  map[schemaKey]bool{},
		doc:   docOf,
	}
}

var (
	timeType = reflect.TypeOf(time.Time{})
	rawType  = reflect.TypeOf(json.RawMessage{})
)

// of returns the schema of v's type; v is a zero value (or nil for none).
func (g *schemas) of(v any, in bool) *openapi3.SchemaRef {
	return g.ref(reflect.TypeOf(v), in, "")
}

// ref returns the schema of t: a $ref for a named struct, else inline.
// where names the field, for error messages.
func (g *schemas) ref(t reflect.Type, in bool, where string) *openapi3.SchemaRef {
	if t == nil {
		g.errs = append(g.errs, fmt.Sprintf("%s: no type", where))
		return openapi3.NewSchemaRef("", openapi3.NewStringSchema())
	}
	if d := g.doc(t); d.Schema != nil {
		return openapi3.NewSchemaRef("", d.Schema(g))
	}
	switch t.Kind() {
	case reflect.Pointer:
		return nullable(g.ref(t.Elem(), in, where))
	case reflect.Struct:
		if t == timeType {
			return openapi3.NewSchemaRef("", openapi3.NewDateTimeSchema())
		}
		if t.Name() == "" {
			return openapi3.NewSchemaRef("", g.object(t, in))
		}
		return g.component(t, in)
	case reflect.Slice, reflect.Array:
		if t == rawType {
			g.errs = append(g.errs, fmt.Sprintf("%s: json.RawMessage needs a schema in fieldDocs", where))
			return openapi3.NewSchemaRef("", openapi3.NewStringSchema())
		}
		if t.Elem().Kind() == reflect.Uint8 {
			return openapi3.NewSchemaRef("", openapi3.NewBytesSchema())
		}
		a := openapi3.NewArraySchema()
		a.Items = g.ref(t.Elem(), in, where+"[]")
		return openapi3.NewSchemaRef("", a)
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			g.errs = append(g.errs, fmt.Sprintf("%s: map key %s is not a string", where, t.Key()))
		}
		o := openapi3.NewObjectSchema().WithAdditionalProperties(nil)
		o.AdditionalProperties.Schema = g.ref(t.Elem(), in, where+"{}")
		return openapi3.NewSchemaRef("", o)
	case reflect.String:
		s := openapi3.NewStringSchema()
		if d := g.doc(t); len(d.Enum) > 0 {
			s.Enum = d.Enum
		}
		return openapi3.NewSchemaRef("", s)
	case reflect.Bool:
		return openapi3.NewSchemaRef("", openapi3.NewBoolSchema())
	case reflect.Int, reflect.Int64, reflect.Uint, reflect.Uint64:
		return openapi3.NewSchemaRef("", openapi3.NewInt64Schema())
	case reflect.Int32, reflect.Int16, reflect.Int8, reflect.Uint32, reflect.Uint16, reflect.Uint8:
		return openapi3.NewSchemaRef("", openapi3.NewInt32Schema())
	case reflect.Float64, reflect.Float32:
		return openapi3.NewSchemaRef("", openapi3.NewFloat64Schema())
	}
	g.errs = append(g.errs, fmt.Sprintf("%s: cannot describe %s (kind %s)", where, t, t.Kind()))
	return openapi3.NewSchemaRef("", openapi3.NewStringSchema())
}

// component returns a $ref to the component of named struct t, making it
// on first use.
func (g *schemas) component(t reflect.Type, in bool) *openapi3.SchemaRef {
	k := schemaKey{t, in}
	name, ok := g.names[k]
	if !ok {
		name = g.nameOf(t, in)
		if other, taken := g.owner[name]; taken && other != t {
			g.errs = append(g.errs, fmt.Sprintf("component %s: both %s and %s (rename one in typeNames)", name, other, t))
		}
		g.owner[name] = t
		g.names[k] = name
		g.comps[name] = openapi3.NewSchemaRef("", openapi3.NewObjectSchema()) // placeholder for recursion
		g.comps[name] = openapi3.NewSchemaRef("", g.object(t, in))
	}
	return openapi3.NewSchemaRef("#/components/schemas/"+name, g.comps[name].Value)
}

// nameOf is t's component name: typeNames, else the Go name (exported);
// in input mode the name ends in "Input" (sandbox.Mount, used on both
// sides, is "Mount" in answers and "MountInput" in requests).
func (g *schemas) nameOf(t reflect.Type, in bool) string {
	d := g.doc(t)
	name := d.Name
	if name == "" {
		r := []rune(t.Name())
		r[0] = unicode.ToUpper(r[0])
		name = string(r)
	}
	if in && !strings.HasSuffix(name, "Input") {
		name += "Input"
	}
	return name
}

// object describes struct t's JSON object.
func (g *schemas) object(t reflect.Type, in bool) *openapi3.Schema {
	o := openapi3.NewObjectSchema().WithoutAdditionalProperties()
	o.Properties = openapi3.Schemas{}
	if d := g.doc(t); d.Desc != "" {
		o.Description = d.Desc
	}
	g.fields(o, t, t, in)
	sort.Strings(o.Required)
	return o
}

// fields adds the JSON fields of struct t (inlining embedded structs) to o;
// owner is the outer type, whose fieldDocs apply.
func (g *schemas) fields(o *openapi3.Schema, owner, t reflect.Type, in bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			g.fields(o, owner, f.Type, in)
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		where := owner.String() + "." + name
		fd, has := fieldDoc(owner, name)
		if !has && owner != t {
			fd, _ = fieldDoc(t, name)
		}
		var s *openapi3.SchemaRef
		if fd.Schema != nil {
			s = openapi3.NewSchemaRef("", fd.Schema(g))
		} else {
			s = g.ref(f.Type, in, where)
		}
		if len(fd.Enum) > 0 || fd.Desc != "" || fd.Nullable {
			s = decorate(s, fd)
		}
		o.Properties[name] = s
		omit := strings.Contains(","+opts+",", ",omitempty,")
		switch {
		case in && fd.Required:
			o.Required = append(o.Required, name)
		case !in && !omit && !fd.Optional:
			o.Required = append(o.Required, name)
		}
	}
}

// decorate adds a field's enum, description or nullability to s. A $ref
// cannot carry siblings in OpenAPI 3.0, so it is wrapped in allOf.
func decorate(s *openapi3.SchemaRef, fd field) *openapi3.SchemaRef {
	if s.Ref != "" {
		w := openapi3.NewAllOfSchema()
		w.AllOf = openapi3.SchemaRefs{s}
		s = openapi3.NewSchemaRef("", w)
	} else {
		c := *s.Value
		s = openapi3.NewSchemaRef("", &c)
	}
	if len(fd.Enum) > 0 {
		if s.Value.Items != nil && s.Value.Type.Is(openapi3.TypeArray) {
			item := *s.Value.Items.Value
			item.Enum = fd.Enum
			s.Value.Items = openapi3.NewSchemaRef("", &item)
		} else {
			s.Value.Enum = fd.Enum
		}
	}
	if fd.Desc != "" {
		s.Value.Description = fd.Desc
	}
	if fd.Nullable {
		s.Value.Nullable = true
	}
	return s
}

// nullable marks s as also null.
func nullable(s *openapi3.SchemaRef) *openapi3.SchemaRef {
	if s.Ref != "" {
		w := openapi3.NewAllOfSchema()
		w.AllOf = openapi3.SchemaRefs{s}
		w.Nullable = true
		return openapi3.NewSchemaRef("", w)
	}
	c := *s.Value
	c.Nullable = true
	return openapi3.NewSchemaRef("", &c)
}

// enum converts string constants for Schema.Enum.
func enum[S ~string](vs ...S) []any {
	out := make([]any, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}
