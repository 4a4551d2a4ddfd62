package api

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/berth-dev/berth/client"
)

// Every chunk sent must come back whole through the client's parser, with
// carriage returns turned into line ends rather than lost.
func TestSSERoundTrip(t *testing.T) {
	chunks := []struct{ in, want string }{
		{"plain", "plain"},
		{"two\nlines\n", "two\nlines\n"},
		{"crlf\r\nend", "crlf\nend"},
		{"10%\r20%\r30%", "10%\n20%\n30%"},
		{"", ""},
		{"\n\n", "\n\n"},
		{"data: fake\n\nevent: x", "data: fake\n\nevent: x"},
	}
	rec := httptest.NewRecorder()
	ev := startSSE(rec)
	for i, c := range chunks {
		id := ""
		if i%2 == 0 {
			id = "7"
		}
		if err := ev.send(id, "stdout", c.in); err != nil {
			t.Fatal(err)
		}
	}
	var got []client.Event
	if err := client.ReadEvents(strings.NewReader(rec.Body.String()), func(e client.Event) error {
		got = append(got, e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(chunks) {
		t.Fatalf("%d events back, sent %d:\n%s", len(got), len(chunks), rec.Body.String())
	}
	for i, c := range chunks {
		if got[i].Name != "stdout" || got[i].Data != c.want {
			t.Errorf("chunk %d: got %q %q, want %q", i, got[i].Name, got[i].Data, c.want)
		}
	}
	if ct := rec.Header().Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("content type %q", ct)
	}
}
