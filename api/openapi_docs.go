package api

import (
	"reflect"
	"sort"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/agent"
	"github.com/berth-dev/berth/auth"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/sandbox"
	"github.com/berth-dev/berth/templates"
	"github.com/berth-dev/berth/workspace"
	"github.com/berth-dev/berth/workspace/files"
)

// typeDoc is what the OpenAPI document says of a Go type beyond what
// reflection finds.
type typeDoc struct {
	Name   string                          // component name, when not the Go type's
	Desc   string                          // description of the component
	Enum   []any                           // the values of a string type
	Schema func(*schemas) *openapi3.Schema // replaces reflection altogether
}

// field is what the document says of one JSON field of a struct.
type field struct {
	Enum     []any // values of a string field (or of a string array's items)
	Desc     string
	Nullable bool // null is sent although the Go type is not a pointer
	Required bool // in a request body: the server refuses a body without it
	Optional bool // in an answer: absent at times although not omitempty
	Schema   func(*schemas) *openapi3.Schema
}

func docOf(t reflect.Type) typeDoc { return typeDocs[t] }

func fieldDoc(t reflect.Type, name string) (field, bool) {
	f, ok := fieldDocs[t][name]
	return f, ok
}

func typeOf[T any]() reflect.Type { return reflect.TypeFor[T]() }

// Enumerations of the wire values, from the constants the services use.
var (
	sandboxStatuses = enum(sandbox.Creating, sandbox.Running, sandbox.Pausing, sandbox.Paused, sandbox.Resuming,
		sandbox.Stopping, sandbox.Stopped, sandbox.Destroying, sandbox.Destroyed, sandbox.Error)
	runStatuses     = enum(agent.Queued, agent.Running, agent.Completed, agent.Failed, agent.Cancelled, agent.TimedOut)
	executionModes  = enum(agent.InSandbox, agent.Managed)
	networkModes    = enum(runtime.NetworkBridge, runtime.NetworkNone, runtime.NetworkShared)
	entryTypes      = enum(files.TypeFile, files.TypeDirectory, files.TypeSymlink)
	fileEventTypes  = enum(files.EventCreate, files.EventWrite, files.EventRemove, files.EventRename, files.EventOverflow)
	agentEventTypes = enum(agent.EventPrompt, agent.EventStatus, agent.EventStdout, agent.EventStderr, agent.EventResult)
	scopes          = enum(auth.KnownScopes()...)
	roles           = enum(berth.RoleAdmin, berth.RoleMember)
	keyStatuses     = enum("active", "revoked", "expired")
	archiveFormats  = enum(files.FormatZip, files.FormatTarGz)
)

// errorKinds lists every error code, from the one kind→status table.
func errorKinds() []any {
	var ks []string
	for k := range statusOf {
		ks = append(ks, string(k))
	}
	sort.Strings(ks)
	return enum(ks...)
}

var typeDocs = map[reflect.Type]typeDoc{
	typeOf[berth.Role]():     {Enum: roles},
	typeOf[berth.Kind]():     {Enum: errorKinds()},
	typeOf[sandbox.Status](): {Enum: sandboxStatuses},

	typeOf[health]():        {Name: "Health"},
	typeOf[readiness]():     {Name: "Readiness", Desc: "Every readiness check by name (database, runtime, ...)."},
	typeOf[checkResult]():   {Name: "ReadinessCheck"},
	typeOf[deleted]():       {Name: "Deleted"},
	typeOf[agentDeleted]():  {Name: "AgentDeleted"},
	typeOf[errorBody]():     {Name: "ErrorBody"},
	typeOf[streamError]():   {Name: "StreamError", Desc: "Data of the last event of a stream that failed after it had started."},
	typeOf[watchReady]():    {Name: "WatchReady"},
	typeOf[batchResult]():   {Name: "BatchResult", Desc: "One id's outcome in a batch: entry when ok, else error."},
	typeOf[accessBody]():    {Name: "WorkspaceAccess"},
	typeOf[execAnswer]():    {Name: "ExecOutput", Desc: "An exec's output (each stream capped at 1 MiB: truncated) and how it ended."},
	typeOf[templateView]():  {Name: "Template", Desc: "A sandbox template; ready says whether its image is present."},
	typeOf[templateBuild](): {Name: "TemplateBuild"},

	typeOf[memberUpdate]():    {Name: "MemberUpdateInput"},
	typeOf[SessionRequest]():  {Name: "SessionInput"},
	typeOf[workspaceUpdate](): {Name: "WorkspaceUpdateInput", Desc: "Fields left out stay unchanged; quotaBytes null removes the quota."},
	typeOf[fileCreate]():      {Name: "FileCreateInput"},
	typeOf[fileUpdate]():      {Name: "FileUpdateInput", Desc: "rename, move and copy take target; write takes contents."},
	typeOf[fileBatch]():       {Name: "FileBatchInput"},
	typeOf[fileBatchDelete](): {Name: "FileBatchDeleteInput"},

	typeOf[workspace.CreateInput]():   {Name: "WorkspaceCreateInput"},
	typeOf[workspace.List]():          {Name: "WorkspaceList"},
	typeOf[workspace.Usage]():         {Name: "WorkspaceUsage"},
	typeOf[workspace.Snapshot]():      {Name: "Snapshot", Desc: "A read-only snapshot of a workspace's tree."},
	typeOf[workspace.SnapshotInput](): {Name: "SnapshotCreateInput"},
	typeOf[workspace.RestoreInput]():  {Name: "SnapshotRestoreInput", Desc: "The body may be left out: force false."},
	typeOf[workspace.RestoreResult](): {Name: "SnapshotRestore"},
	typeOf[workspace.CloneInput]():    {Name: "WorkspaceCloneInput", Desc: "The clone is a new workspace owned by the caller, with the origin's quota and no grants."},
	typeOf[files.Entry]():             {Name: "FileEntry", Desc: "A file, directory or symlink; id is its path in the workspace."},
	typeOf[files.Summary]():           {Name: "FileSummary", Desc: "An entry; for a directory with its recursive allocated size and entry count."},
	typeOf[files.Info]():              {Name: "WorkspaceSpace", Desc: "Space used, total (the quota) and free, in bytes; total and free are -1 when unlimited."},
	typeOf[files.Event]():             {Name: "FileEvent", Desc: "A change below the watched path; oldPath is set for renames."},
	typeOf[sandbox.CreateInput]():     {Name: "SandboxCreateInput"},
	typeOf[sandbox.Resources]():       {Name: "SandboxResources"},
	typeOf[templates.Resources]():     {Name: "TemplateResources"},
	typeOf[agent.Input]():             {Name: "AgentInput"},
	typeOf[agent.Upserted]():          {Name: "AgentUpserted"},
	typeOf[agent.Result]():            {Name: "RunResult", Desc: "Data of a run's result event."},
	typeOf[agent.StatusData]():        {Name: "RunStatus", Desc: "Data of a run's status event."},
	typeOf[agent.ThreadUpdate]():      {Name: "ThreadUpdateInput"},
}

func stringOrArgv(*schemas) *openapi3.Schema {
	s := openapi3.NewOneOfSchema(openapi3.NewStringSchema(), openapi3.NewArraySchema().WithItems(openapi3.NewStringSchema()).WithMinItems(1))
	s.Description = "a string, run by /bin/sh -c, or an argv array"
	return s
}

func argv(*schemas) *openapi3.Schema {
	s := openapi3.NewArraySchema().WithItems(openapi3.NewStringSchema()).WithMinItems(1)
	s.Description = "argv of the agent's command"
	return s
}

// eventData is the data of an agent event: a status or a result.
func eventData(g *schemas) *openapi3.Schema {
	s := openapi3.NewSchema()
	s.OneOf = openapi3.SchemaRefs{g.of(agent.StatusData{}, false), g.of(agent.Result{}, false)}
	s.Description = "status events: RunStatus; result events: RunResult; absent on text events"
	return s
}

func nullableInt(*schemas) *openapi3.Schema {
	s := openapi3.NewInt64Schema().WithNullable()
	s.Description = "bytes; null removes the quota"
	return s
}

func nextCursor(*schemas) *openapi3.Schema {
	s := openapi3.NewStringSchema().WithNullable()
	s.Description = "pass as ?cursor= for the next page; null on the last page"
	return s
}

// fieldDocs documents fields by their struct and JSON name (set in init:
// its schema functions reach back into the reflector).
var fieldDocs map[reflect.Type]map[string]field

func init() { fieldDocs = fieldDocTable() }

func fieldDocTable() map[reflect.Type]map[string]field {
	return map[reflect.Type]map[string]field{
		typeOf[checkResult](): {"status": {Enum: enum("up", "down")}},
		typeOf[health]():      {"status": {Enum: enum("ok")}},
		typeOf[Meta]():        {"nextCursor": {Schema: nextCursor}},
		typeOf[errorBody]():   {"code": {Enum: errorKinds()}, "field": {Desc: "the JSON path of the request field the error is about (\"name\", \"mounts[1].path\", \"resources.memory\"); absent when it is about no one field"}},

		typeOf[auth.APIKey](): {
			"status": {Enum: keyStatuses},
			"scopes": {Enum: scopes},
			"key":    {Desc: "the secret, only in the answer that created the key"},
		},
		typeOf[auth.Me]():          {"scopes": {Enum: scopes}},
		typeOf[SessionRequest]():   {"apiKey": {Required: true}},
		typeOf[SessionInfo]():      {"scopes": {Enum: scopes}, "csrfToken": {Desc: "send it back as X-CSRF-Token on every state-changing request made with the session cookie"}},
		typeOf[auth.KeyInput]():    {"scopes": {Enum: scopes}, "name": {Required: true}, "expiresIn": {Enum: enum(auth.Expiries()...), Desc: "absent: the key does not expire"}, "userId": {Desc: "admins: create the key for this member"}},
		typeOf[auth.MemberInput](): {"name": {Required: true}},
		typeOf[memberUpdate]():     {"role": {Required: true}},

		typeOf[workspace.CreateInput]():    {"name": {Required: true}},
		typeOf[workspace.SnapshotInput]():  {"name": {Required: true, Desc: "1..100 characters: letters, digits, '.', '_', '-', starting with a letter or digit; unique in the workspace"}},
		typeOf[workspace.Snapshot]():       {"sizeBytes": {Desc: "bytes the snapshot references, when known"}},
		typeOf[workspace.RestoreInput]():   {"force": {Desc: "restore even while running sandboxes mount the workspace read-write: they are stopped and started again on the restored tree"}},
		typeOf[workspace.RestoreResult]():  {"restartedSandboxes": {Desc: "ids of the sandboxes stopped for the restore and started again"}},
		typeOf[workspace.CloneInput]():     {"name": {Required: true}, "snapshotId": {Desc: "clone this snapshot of the workspace instead of its live tree"}},
		typeOf[workspaceUpdate]():          {"quotaBytes": {Schema: nullableInt}},
		typeOf[accessBody]():               {"userIds": {Required: true}},
		typeOf[workspace.MountedSandbox](): {"sandboxStatus": {Enum: sandboxStatuses}},
		typeOf[workspace.AgentUse]():       {"executionMode": {Enum: executionModes}},

		typeOf[files.Entry]():     {"type": {Enum: entryTypes}},
		typeOf[files.Event]():     {"type": {Enum: fileEventTypes}},
		typeOf[fileCreate]():      {"name": {Required: true}, "type": {Required: true, Enum: enum(files.TypeFile, files.TypeDirectory)}},
		typeOf[fileUpdate]():      {"operation": {Required: true, Enum: enum("rename", "move", "copy", "write")}},
		typeOf[fileBatch]():       {"operation": {Required: true, Enum: enum(files.OpCopy, files.OpMove)}, "ids": {Required: true}, "target": {Required: true}},
		typeOf[fileBatchDelete](): {"ids": {Required: true}},

		typeOf[sandbox.CreateInput](): {
			"template":    {Required: true},
			"network":     {Enum: networkModes, Desc: "bridge (isolated, the default), none or shared"},
			"idleTimeout": {Desc: "seconds"},
		},
		typeOf[sandbox.Sandbox](): {
			"network":     {Enum: networkModes},
			"env":         {Desc: "names of the environment variables (values are not shown)"},
			"idleTimeout": {Desc: "seconds"},
		},
		typeOf[sandbox.Mount](): {"workspaceId": {Required: true}, "path": {Required: true},
			"snapshotId": {Desc: "mount this snapshot of the workspace (always read-only; readOnly false is refused)"},
			"readOnly":   {Desc: "default false; true for a snapshot"}},
		typeOf[sandbox.ExecInput](): {
			"command": {Required: true, Schema: stringOrArgv},
			"timeout": {Desc: "milliseconds; default 30000"},
		},

		typeOf[agent.Agent](): {"executionMode": {Enum: executionModes}, "env": {Desc: "names of the environment variables"}},
		typeOf[agent.Input](): {
			"slug":          {Required: true},
			"executionMode": {Required: true, Enum: executionModes},
			"command":       {Required: true, Schema: argv},
			"sandbox":       {Desc: "in_sandbox: the sandbox (id or name) the agent runs in"},
			"timeout":       {Desc: "milliseconds; 0: 10 minutes"},
		},
		typeOf[agent.Upserted]():   {"action": {Enum: enum("created", "updated")}},
		typeOf[agent.Run]():        {"status": {Enum: runStatuses}, "executionMode": {Enum: executionModes}},
		typeOf[agent.Result]():     {"status": {Enum: runStatuses}},
		typeOf[agent.StatusData](): {"status": {Enum: runStatuses}},
		typeOf[agent.Event]():      {"type": {Enum: agentEventTypes}, "data": {Schema: eventData}},
		typeOf[agent.RunInput](): {
			"prompt":  {Required: true},
			"agent":   {Desc: "the agent's slug: required on POST /v1/run, absent (or the same) on /v1/agents/{slug}/run"},
			"stream":  {Desc: "answer Server-Sent Events instead of waiting for the run"},
			"timeout": {Desc: "milliseconds; default the agent's, else 10 minutes"},
		},
	}
}
