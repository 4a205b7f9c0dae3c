# Self-improvement proposals (issue 21): which files of the config repository a self-PR may change, decided
# before anything is applied.
#
# input.proposal {id, kind: prompt_delta|router_prior|tool_adapter|new_test}
# input.changes  [{path, action: add|modify|delete, problem, fields: ["role.field", ...], size}]
#                path is normalised by Naestro (posix, relative); problem says why it cannot be (absolute,
#                "..", NUL); fields lists what changed in roles.yaml.
# data.naestro.improve {allowed: {kind: [globs]}, tests: [globs], protected: [globs], max_changes, max_bytes}
#
# Never: policies, keys and secrets, the loop itself, releases and version files (the loop writes those on
# merge, a proposal does not). Tests may be added by any proposal, never edited or deleted by one: a proposal
# must not remove the counter-example it fails.
package naestro.improve

import rego.v1

# Data keys are read one by one: a reference to the whole data.naestro.improve would include this package's own
# rules (OPA refuses that as recursion; regorus accepted it).

path_protected(path) if {
	some pattern in data.naestro.improve.protected
	glob.match(pattern, ["/"], path)
}

path_allowed(kind, path) if {
	some pattern in data.naestro.improve.allowed[kind]
	glob.match(pattern, ["/"], path)
}

test_addition(c) if {
	c.action == "add"
	some pattern in data.naestro.improve.tests
	glob.match(pattern, ["/"], c.path)
}

deny contains sprintf("%s: %s", [c.path, c.problem]) if {
	some c in input.changes
	c.problem != ""
}

deny contains sprintf("%s is protected: the loop never changes policies, keys, secrets, releases or itself", [c.path]) if {
	some c in input.changes
	path_protected(c.path)
}

deny contains sprintf("%s is outside the allowlist of a %s proposal (%v; tests may only be added)", [c.path, input.proposal.kind, object.get(data.naestro.improve.allowed, input.proposal.kind, [])]) if {
	some c in input.changes
	c.problem == ""
	not path_protected(c.path)
	not path_allowed(input.proposal.kind, c.path)
	not test_addition(c)
}

deny contains sprintf("%s: a prompt delta changes prompts only, not %v", [c.path, sort(others)]) if {
	input.proposal.kind == "prompt_delta"
	some c in input.changes
	others := {f | some f in c.fields; not endswith(f, ".prompt")}
	count(others) > 0
}

deny contains sprintf("%s: a %s proposal may not change roles (%v)", [c.path, input.proposal.kind, c.fields]) if {
	input.proposal.kind != "prompt_delta"
	some c in input.changes
	count(c.fields) > 0
}

deny contains sprintf("unknown proposal kind %q", [input.proposal.kind]) if not data.naestro.improve.allowed[input.proposal.kind]

deny contains "a proposal must change something" if count(input.changes) == 0

deny contains sprintf("%d files changed; a proposal is a minimal diff of at most %d", [count(input.changes), data.naestro.improve.max_changes]) if {
	count(input.changes) > data.naestro.improve.max_changes
}

deny contains sprintf("%s: %d bytes; at most %d per file", [c.path, c.size, data.naestro.improve.max_bytes]) if {
	some c in input.changes
	c.size > data.naestro.improve.max_bytes
}

decision := {
	"allow": count(deny) == 0,
	"ask": false,
	"reasons": sort([m | some m in deny]),
	"obligations": {},
}
