# The gate's policy: one decision for every tool call and model call an agent makes.
#
# input.actor   {run, task, role, mode: guide|copilot|auto}
# input.action  {kind: tool|model, tool, registered, arguments, paths: [{arg, resolved, problem}],
#                urls: [{arg, url, scheme, host, ip, private, loopback, addresses}],
#                endpoint: {name, locality}, estimate: {tokens, usd}}
# input.context {workspace, scratch, roots, allowed_domains, allowed_cidrs, approved: [{tool, under}],
#                scopes, data_labels, quarantined: {tools, models}, window: {calls, window_s},
#                budget: {task: {tokens: {spent, limit}, usd: ..., wall_s: ...}, run: ...},
#                protected: [resolved paths the goal says must not change]}
#
# Paths arrive already resolved (`..` and symlinks) by the gate; this file only compares strings, so the
# embedded engine and OPA decide identically. Rego v1 syntax.
package naestro.gate

import rego.v1

# --- what the action is ---------------------------------------------------------------------------------

is_tool if input.action.kind == "tool"

is_model if input.action.kind == "model"

tool_info := data.naestro.tools[input.action.tool] if is_tool

tool_info := data.naestro.external_tool if {
	is_tool
	not data.naestro.tools[input.action.tool]
}

effects contains e if some e in tool_info.effects

effects contains "network" if {
	is_tool
	count(input.action.urls) > 0
}

# A path is inside a root when it is the root or below it (string prefix on resolved absolute paths).
within(path, root) if path == root

within(path, root) if startswith(path, concat("", [trim_suffix(root, "/"), "/"]))

confined(path) if within(path, input.context.workspace)

confined(path) if {
	some root in input.context.roots
	within(path, root)
}

# A domain pattern matches exactly, or "*.example.com" matches any subdomain of example.com.
domain_ok(host) if {
	some pattern in input.context.allowed_domains
	pattern == host
}

domain_ok(host) if {
	some pattern in input.context.allowed_domains
	startswith(pattern, "*.")
	endswith(host, substring(pattern, 1, -1))
}

cidr_ok(addr) if {
	some cidr in input.context.allowed_cidrs
	net.cidr_contains(cidr, addr)
}

# Every address the host is (an IP literal) or resolves to lies in an allowlisted CIDR.
addresses_allowed(u) if {
	count(u.addresses) > 0
	every a in u.addresses {
		cidr_ok(a)
	}
}

# A pre-approved scope (from --approve or a remembered consent) covers the action.
approved if {
	some scope in input.context.approved
	glob.match(scope.tool, ["."], action_name)
	scope_paths_ok(scope)
}

scope_paths_ok(scope) if object.get(scope, "under", null) == null

scope_paths_ok(scope) if {
	is_string(scope.under)
	count(input.action.paths) > 0
	every p in input.action.paths {
		within(p.resolved, scope.under)
	}
}

action_name := input.action.tool if is_tool

action_name := concat("", ["model:", input.action.endpoint.name]) if is_model

role_allows(tool) if {
	some pattern in data.naestro.roles[input.actor.role].tools
	glob.match(pattern, ["."], tool)
}

# --- deny -----------------------------------------------------------------------------------------------

deny contains {"rule": "unknown_tool", "message": sprintf("unknown tool %q: it is not in the tool registry", [input.action.tool])} if {
	is_tool
	not input.action.registered
}

deny contains {"rule": "role_tools", "message": sprintf("role %q may not use tool %q", [input.actor.role, input.action.tool])} if {
	is_tool
	input.action.registered
	not role_allows(input.action.tool)
}

# A path the gate could not resolve (a NUL byte, a glob climbing out after a wildcard) carries a problem.
unresolvable(p) if is_string(object.get(p, "problem", null))

deny contains {"rule": "path_invalid", "message": sprintf("%s: %s", [p.arg, p.problem])} if {
	is_tool
	some p in input.action.paths
	unresolvable(p)
}

deny contains {"rule": "path_confinement", "message": sprintf("%s: path resolves to %s, outside the workspace and allowed roots", [p.arg, p.resolved])} if {
	is_tool
	some p in input.action.paths
	not unresolvable(p)
	not confined(p.resolved)
}

# A file the goal keeps as it is is not written by a tool that only writes: one it says not to change ("fix
# stats.py; do not change test_stats.py": the agent is told to change the code instead of the file that checks it,
# issue 22) or the input data it describes ("scores.csv has columns student,score": a re-planned task wrote invented
# rows over it). A shell command can still change it; the run's goal check (the file's digest at planning) catches
# that.
deny contains {"rule": "goal_protected", "message": sprintf("%s: the goal keeps %s as it is (a file it says not to change, or the input it reads); leave it and change the other files instead", [p.arg, p.resolved])} if {
	is_tool
	"write" in effects
	not "read" in effects
	some p in input.action.paths
	p.resolved in object.get(input.context, "protected", [])
}

deny contains {"rule": "network_scheme", "message": sprintf("%s: scheme %q is not allowed (only %v)", [u.arg, u.scheme, data.naestro.schemes])} if {
	some u in input.action.urls
	not u.scheme in data.naestro.schemes
}

deny contains {"rule": "network_ip_literal", "message": sprintf("%s: IP address %s is not allowed; use an allowlisted domain name", [u.arg, u.host])} if {
	some u in input.action.urls
	u.ip
	not addresses_allowed(u)
}

deny contains {"rule": "network_private", "message": sprintf("%s: host %s resolves to a loopback or private address", [u.arg, u.host])} if {
	some u in input.action.urls
	not u.ip
	u.private
	not addresses_allowed(u)
}

deny contains {"rule": "network_domain", "message": sprintf("%s: domain %s is not on the allowlist %v", [u.arg, u.host, input.context.allowed_domains])} if {
	some u in input.action.urls
	not u.ip
	not domain_ok(u.host)
}

deny contains {"rule": "data_scope", "message": sprintf("data labelled %q may not go to tool %q without the %q scope", [label, input.action.tool, label])} if {
	is_tool
	some label in input.context.data_labels
	label == "secret"
	not label in input.context.scopes
}

deny contains {"rule": "data_scope", "message": sprintf("data labelled %q may not leave this machine (network tool %q) without the %q scope", [label, input.action.tool, "pii_external"])} if {
	is_tool
	"network" in effects
	some label in input.context.data_labels
	label == "pii"
	not "pii_external" in input.context.scopes
}

deny contains {"rule": "data_scope", "message": sprintf("data labelled %q may not go to cloud endpoint %q while off-prem is off (scope %q)", [label, input.action.endpoint.name, concat("", ["offprem_", label])])} if {
	is_model
	input.action.endpoint.locality != "local"
	some label in input.context.data_labels
	not concat("", ["offprem_", label]) in input.context.scopes
}

deny contains {"rule": "quarantine", "message": sprintf("tool %q is quarantined (naestro quarantine)", [input.action.tool])} if {
	is_tool
	input.action.tool in input.context.quarantined.tools
}

deny contains {"rule": "quarantine", "message": sprintf("model endpoint %q is quarantined (naestro quarantine)", [input.action.endpoint.name])} if {
	is_model
	input.action.endpoint.name in input.context.quarantined.models
}

rate_key := input.action.tool if {
	is_tool
	data.naestro.rate_limits[input.action.tool]
}

rate_key := "default" if {
	is_tool
	not data.naestro.rate_limits[input.action.tool]
}

rate_key := "model" if is_model

deny contains {"rule": "rate_limit", "message": sprintf("rate limit: %d calls of %s by role %s in the last %d s (limit %d)", [input.context.window.calls, action_name, input.actor.role, limit.window_s, limit.max_calls])} if {
	limit := data.naestro.rate_limits[rate_key]
	input.context.window.calls >= limit.max_calls
}

deny contains {"rule": "budget", "message": sprintf("%s budget: %s spent %v + estimated %v would exceed the limit %v", [scope, resource, b.spent, extra, b.limit])} if {
	some scope, budgets in input.context.budget
	some resource, b in budgets
	b.limit != null
	extra := object.get(input.action, ["estimate", resource], 0)
	b.spent + extra > b.limit
}

deny contains {"rule": "mode_guide", "message": sprintf("guide mode proposes only: %s has side effects (%v)", [action_name, sort(effects - {"read"})])} if {
	input.actor.mode == "guide"
	is_tool
	count(effects - {"read"}) > 0
}

deny contains {"rule": "mode_auto", "message": sprintf("auto mode runs only pre-approved scopes; %s is sensitive (%s) and not approved", [action_name, concat(", ", sort(sensitive))])} if {
	input.actor.mode == "auto"
	count(sensitive) > 0
	not approved
}

# --- ask ------------------------------------------------------------------------------------------------

sensitive contains "shell command" if "shell" in effects

sensitive contains "network access" if "network" in effects

sensitive contains "tool from an external server" if "external" in effects

sensitive contains "write outside scratch" if {
	"write" in effects
	not input.context.scratch
}

sensitive contains "write outside scratch" if {
	"write" in effects
	some p in input.action.paths
	not within(p.resolved, input.context.workspace)
}

sensitive contains sprintf("spending above %v USD", [data.naestro.ask_above_usd]) if {
	is_model
	object.get(input.action, ["estimate", "usd"], 0) > data.naestro.ask_above_usd
}

ask contains {"rule": "consent", "message": sprintf("%s needs your consent: %s", [action_name, reason])} if {
	input.actor.mode == "copilot"
	some reason in sensitive
	not approved
}

# --- the decision -----------------------------------------------------------------------------------

obligations := {"timeout_s": tool_info.timeout_s, "max_output_chars": tool_info.max_output_chars} if is_tool

obligations := {} if is_model

fired := sort([r | some r in deny]) if count(deny) > 0

fired := sort([r | some r in ask]) if {
	count(deny) == 0
	count(ask) > 0
}

fired := [] if {
	count(deny) == 0
	count(ask) == 0
}

default asking := false

asking if {
	count(deny) == 0
	count(ask) > 0
}

decision := {
	"allow": count(deny) + count(ask) == 0,
	"ask": asking,
	"reasons": [r.message | some r in fired],
	"rules": [r.rule | some r in fired],
	"obligations": obligations,
}
