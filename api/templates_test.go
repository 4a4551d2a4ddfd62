package api_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/server/servertest"
)

// A template build streams its steps as SSE progress events, from the
// root filesystem to the engine's load, then the template, ready; without
// ?stream the log comes with the answer. base is reproducible, so building
// it again while other tests use it changes nothing on the engine.
func TestTemplateBuildProgress(t *testing.T) {
	env := servertest.Start(t, "")
	needEngine(t, env)
	ctx := testctx.Context(t)
	steps := []string{"building berth/base:", "making the root filesystem (busybox)", "assembling the image",
		"loading berth/base:", "into the engine"}

	var lines []string
	tmpl, err := env.Admin.BuildTemplateStream(ctx, "base", func(line string) { lines = append(lines, line) })
	if err != nil {
		t.Fatalf("build: %v\n%s", err, strings.Join(lines, "\n"))
	}
	if !tmpl.Ready || tmpl.Name != "base" {
		t.Errorf("built template %+v, want base, ready", tmpl)
	}
	log := strings.Join(lines, "\n")
	for _, step := range steps {
		if !strings.Contains(log, step) {
			t.Errorf("progress lacks %q:\n%s", step, log)
		}
	}

	st, data, code, msg := raw(t, env, env.AdminKey, "POST", "/v1/templates/base/build", nil)
	if st != 200 {
		t.Fatalf("build without stream: %d %s %s", st, code, msg)
	}
	var built struct {
		Log      string `json:"log"`
		Template struct {
			Name  string `json:"name"`
			Ready bool   `json:"ready"`
		} `json:"template"`
	}
	if err := json.Unmarshal(data, &built); err != nil {
		t.Fatal(err)
	}
	if !built.Template.Ready || built.Template.Name != "base" {
		t.Errorf("built template %+v, want base, ready", built.Template)
	}
	for _, step := range steps {
		if !strings.Contains(built.Log, step) {
			t.Errorf("log lacks %q:\n%s", step, built.Log)
		}
	}
}
