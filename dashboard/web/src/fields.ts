// Field errors. The API answers a validation failure as one error envelope
// whose message names what is wrong ("mount path \"/x\" is invalid: ...",
// "resources.memory \"1\" is below ...", "unknown template \"y\""); it has no
// structured field member. fieldOf reads which form field a message is about
// from those fixed phrasings, so a form can show the API's own message next
// to the field; anything it does not recognise is shown at the form's top.
import { ApiError } from "./api";

/** A rule: the message matches re; the field is key, or key + the quoted value. */
type Rule = [RegExp, string];

/**
 * fieldOf returns the field key an invalid_request message is about, using
 * rules in order; a rule whose pattern has a capture group gives
 * "key:captured" (e.g. "mount:/workspace/x" for one mount row).
 */
export function fieldOf(e: unknown, rules: Rule[]): string | null {
  if (!(e instanceof ApiError) || e.code !== "invalid_request" && e.code !== "conflict") return null;
  for (const [re, key] of rules) {
    const m = re.exec(e.message);
    if (m) return m[1] !== undefined ? key + ":" + m[1] : key;
  }
  return null;
}

/** The sandbox create form's fields (sandbox/create.go, sandbox/limits.go). */
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

/** The agent form's fields (agent/agent.go). */
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
