// Field errors. The API's error envelope names the request field a
// validation error is about in its "field" member, as a JSON path ("name",
// "mounts[1].path", "resources.memory"); fieldOf maps that path to the form's
// key, so a form can show the API's own message next to the input. Errors
// without a field (from a server before the member existed) are placed by the
// fallback rules, which read the field from the message's fixed phrasings;
// anything neither places is shown at the form's top.
import { ApiError } from "./api";

/** A rule: the message matches re; the field is key, or key + the quoted value. */
type Rule = [RegExp, string];

/**
 * A form's field paths: the API's path (a mount's "mounts[i]..." aside) to
 * the form's key. A path a form does not list has no input there: null.
 */
type Paths = Record<string, string>;

/**
 * fieldOf returns the field key an error is about. With the envelope's
 * field: "mounts[i]" for any member of the i-th mount (the request's mounts
 * are the form's rows, in order), else paths[field]. Without it (an
 * invalid_request or conflict only), the first rule whose pattern matches the
 * message; a rule whose pattern has a capture group gives "key:captured"
 * (e.g. "mount:/workspace/x" for one mount row).
 */
export function fieldOf(e: unknown, paths: Paths, rules: Rule[]): string | null {
  if (!(e instanceof ApiError)) return null;
  if (e.field) {
    const row = /^mounts\[(\d+)\]/.exec(e.field);
    if (row && paths.mounts) return "mounts[" + row[1] + "]";
    return Object.prototype.hasOwnProperty.call(paths, e.field) ? paths[e.field] : null;
  }
  if (e.code !== "invalid_request" && e.code !== "conflict") return null;
  for (const [re, key] of rules) {
    const m = re.exec(e.message);
    if (m) return m[1] !== undefined ? key + ":" + m[1] : key;
  }
  return null;
}

/** The sandbox create form's field paths (CreateInput in sandbox/create.go). */
export const sandboxPaths: Paths = {
  name: "name",
  template: "template",
  mounts: "mounts",
  "resources.vcpus": "vcpus",
  "resources.memory": "memory",
  "resources.disk": "disk",
  "resources.pids": "pids",
  network: "network",
  idleTimeout: "idleTimeout",
};

/** The agent form's field paths (Input in agent/agent.go). */
export const agentPaths: Paths = {
  slug: "slug",
  name: "name",
  description: "name",
  executionMode: "executionMode",
  sandbox: "sandbox",
  template: "template",
  mounts: "mounts",
  command: "command",
  env: "command",
  timeout: "timeout",
};

/** Fallback: the sandbox create form's fields by wording (sandbox/create.go, sandbox/limits.go). */
export const sandboxRules: Rule[] = [
  [/^mount path "([^"]*)"/, "mount"],
  [/^mount "([^"]*)" needs a workspaceId/, "mount"],
  [/^mount path (\S+) lies inside another mount/, "mount"],
  [/^workspace "([^"]*)" is personal/, "mountws"],
  [/^nested mounts/, "mounts"],
  [/^at most 32 mounts/, "mounts"],
  [/^(?:template is required|unknown template)/, "template"],
  [/^(?:name must be|a sandbox named)/, "name"],
  [/^(?:field ")?resources\.vcpus/, "vcpus"],
  [/^(?:field ")?resources\.memory/, "memory"],
  [/^(?:field ")?resources\.disk/, "disk"],
  [/^(?:field ")?resources\.pids/, "pids"],
  [/^network must/, "network"],
  [/^(?:field ")?idleTimeout/, "idleTimeout"],
  [/^(?:at most 50 tags|tag ")/, "tags"],
];

/** Fallback: the agent form's fields by wording (agent/agent.go). */
export const agentRules: Rule[] = [
  [/^slug /, "slug"],
  [/^name is at most/, "name"],
  [/^(?:command |a command|environment variable)/, "command"],
  [/^(?:field ")?timeout/, "timeout"],
  [/^(?:an in_sandbox agent needs a sandbox|sandbox )/, "sandbox"],
  [/^(?:a managed agent needs a template|unknown template|template and mounts)/, "template"],
  [/^(?:mount|workspace "|at most 32 mounts)/, "mounts"],
  [/^executionMode/, "executionMode"],
];
