package api_test

import (
	"bytes"
	"context"
	"fmt"
	"mime/multipart"
	"sync/atomic"
	"testing"
)

// rawBody is a request body that call sends verbatim with its content type.
type rawBody struct {
	contentType string
	data        []byte
}

var fileSeq atomic.Int64

func uniqueName(prefix string) string { return fmt.Sprintf("%s-%d", prefix, fileSeq.Add(1)) }

// freshFile creates, as the admin, a new file in f.ws and returns its path.
func (f *fixture) freshFile(t *testing.T) string {
	c := "contents"
	e, err := f.env.Admin.CreateFile(context.Background(), f.ws, "/", uniqueName("file"), "file", &c)
	must(t, err)
	return e.ID
}

// freshDir creates, as the admin, a new directory in f.ws and returns its path.
func (f *fixture) freshDir(t *testing.T) string {
	e, err := f.env.Admin.CreateFile(context.Background(), f.ws, "/", uniqueName("dir"), "directory", nil)
	must(t, err)
	return e.ID
}

func multipartBody(filename, contents string) rawBody {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	// Writes into a bytes.Buffer: nothing here can fail.
	w, _ := mw.CreateFormFile("file", filename)
	_, _ = w.Write([]byte(contents))
	_ = mw.Close()
	return rawBody{contentType: mw.FormDataContentType(), data: b.Bytes()}
}

func init() {
	ws := func(f *fixture) string { return "/v1/workspaces/" + f.ws }
	addCases(map[string]authCase{
		"GET /v1/workspaces/{id}/files": {func(t *testing.T, f *fixture) (string, any) {
			return ws(f) + "/files?showHidden=true&limit=5", nil
		}, 404, 200, 200},
		"GET /v1/workspaces/{id}/files/*": {func(t *testing.T, f *fixture) (string, any) {
			return ws(f) + "/files" + f.freshDir(t), nil
		}, 404, 200, 200},
		"GET /v1/workspaces/{id}/info": {func(t *testing.T, f *fixture) (string, any) {
			return ws(f) + "/info", nil
		}, 404, 200, 200},
		"GET /v1/workspaces/{id}/info/*": {func(t *testing.T, f *fixture) (string, any) {
			return ws(f) + "/info" + f.freshFile(t), nil
		}, 404, 200, 200},
		"POST /v1/workspaces/{id}/files": {func(t *testing.T, f *fixture) (string, any) {
			return ws(f) + "/files", map[string]string{"name": uniqueName("created"), "type": "file", "contents": "x"}
		}, 404, 201, 201},
		"POST /v1/workspaces/{id}/files/*": {func(t *testing.T, f *fixture) (string, any) {
			return ws(f) + "/files" + f.freshDir(t), map[string]string{"name": "sub", "type": "directory"}
		}, 404, 201, 201},
		"POST /v1/workspaces/{id}/upload": {func(t *testing.T, f *fixture) (string, any) {
			return ws(f) + "/upload", multipartBody(uniqueName("up"), "uploaded")
		}, 404, 201, 201},
		"POST /v1/workspaces/{id}/upload/*": {func(t *testing.T, f *fixture) (string, any) {
			return ws(f) + "/upload/" + uniqueName("updir"), multipartBody("a.txt", "uploaded")
		}, 404, 201, 201},
		"PUT /v1/workspaces/{id}/upload/*": {func(t *testing.T, f *fixture) (string, any) {
			return ws(f) + "/upload/" + uniqueName("put") + "/f.bin", rawBody{data: []byte("raw"), contentType: "application/octet-stream"}
		}, 404, 201, 201},
		"PUT /v1/workspaces/{id}/files": {func(t *testing.T, f *fixture) (string, any) {
			return ws(f) + "/files", map[string]any{"operation": "copy", "ids": []string{f.freshFile(t)}, "target": f.freshDir(t)}
		}, 404, 200, 200},
		"PUT /v1/workspaces/{id}/files/*": {func(t *testing.T, f *fixture) (string, any) {
			return ws(f) + "/files" + f.freshFile(t), map[string]string{"operation": "write", "contents": "new"}
		}, 404, 200, 200},
		"DELETE /v1/workspaces/{id}/files": {func(t *testing.T, f *fixture) (string, any) {
			return ws(f) + "/files", map[string]any{"ids": []string{f.freshFile(t)}}
		}, 404, 200, 200},
		"DELETE /v1/workspaces/{id}/files/*": {func(t *testing.T, f *fixture) (string, any) {
			return ws(f) + "/files" + f.freshFile(t), nil
		}, 404, 200, 200},
		"GET /v1/workspaces/{id}/direct": {func(t *testing.T, f *fixture) (string, any) {
			return ws(f) + "/direct?id=" + f.freshFile(t), nil
		}, 404, 200, 200},
		// The stream's first event answers call's JSON decoding with an
		// error at once; call then closes the stream.
		"GET /v1/workspaces/{id}/watch": {func(t *testing.T, f *fixture) (string, any) {
			return ws(f) + "/watch?path=/", nil
		}, 404, 200, 200},
	})
}
