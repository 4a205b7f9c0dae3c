# Rego unit tests for gate.rego (`naestro policy test` runs them on every available engine).
package naestro.gate_test

import data.naestro.gate
import rego.v1

roles := {
	"coder": {"tools": ["fs.read", "fs.write", "fs.list", "exec.run"]},
	"researcher": {"tools": ["fs.read", "web.*"]},
}

base_ctx := {
	"workspace": "/runs/r1/workspace",
	"scratch": true,
	"roots": ["/data/shared"],
	"allowed_domains": ["docs.python.org", "*.example.com"],
	"allowed_cidrs": [],
	"approved": [],
	"scopes": [],
	"data_labels": [],
	"quarantined": {"tools": [], "models": []},
	"window": {"calls": 0, "window_s": 60},
	"budget": {"task": {"tokens": {"spent": 100, "limit": 1000}, "usd": {"spent": 0, "limit": null}}},
}

tool_call(role, tool, paths, urls) := {
	"actor": {"run": "r1", "task": "t1", "role": role, "mode": "copilot"},
	"action": {"kind": "tool", "tool": tool, "registered": true, "arguments": {}, "paths": paths, "urls": urls},
	"context": base_ctx,
}

ws_path(rel) := [{"arg": "path", "resolved": concat("/", ["/runs/r1/workspace", rel])}]

url(host, ip, private) := [{"arg": "url", "url": concat("", ["https://", host, "/"]), "scheme": "https",
	"host": host, "ip": ip, "private": private, "loopback": false, "addresses": addrs}] if {
	addrs := [a | some a in [host]; ip]
}

decide(inp) := d if {
	d := gate.decision with input as inp with data.naestro.roles as roles
}

test_read_in_workspace_allowed if {
	d := decide(tool_call("coder", "fs.read", ws_path("src/a.py"), []))
	d.allow
	not d.ask
	d.obligations.timeout_s == 30
}

test_write_in_scratch_allowed if {
	decide(tool_call("coder", "fs.write", ws_path("out.txt"), [])).allow
}

test_path_outside_workspace_denied if {
	d := decide(tool_call("coder", "fs.read", [{"arg": "path", "resolved": "/etc/passwd"}], []))
	not d.allow
	not d.ask
	contains(d.reasons[0], "/etc/passwd, outside the workspace")
}

test_prefix_sibling_is_not_inside if {
	# /runs/r1/workspace-evil starts with the workspace string but is not inside it
	d := decide(tool_call("coder", "fs.read", [{"arg": "path", "resolved": "/runs/r1/workspace-evil/x"}], []))
	not d.allow
}

test_declared_root_allowed if {
	decide(tool_call("coder", "fs.read", [{"arg": "path", "resolved": "/data/shared/t.csv"}], [])).allow
}

test_unknown_tool_denied if {
	inp := json.patch(tool_call("coder", "nope.tool", [], []), [{"op": "replace", "path": "/action/registered", "value": false}])
	d := decide(inp)
	not d.allow
	contains(d.reasons[0], "unknown tool")
}

test_role_allowlist if {
	d := decide(tool_call("coder", "web.fetch", [], url("docs.python.org", false, false)))
	not d.allow
	not d.ask
	some r in d.reasons
	contains(r, "may not use tool \"web.fetch\"")
}

test_network_asks_in_copilot_when_domain_allowed if {
	d := decide(tool_call("researcher", "web.fetch", [], url("docs.python.org", false, false)))
	d.ask
	contains(d.reasons[0], "network access")
}

test_wildcard_domain_matches_subdomain_only if {
	decide(tool_call("researcher", "web.fetch", [], url("api.example.com", false, false))).ask
	d := decide(tool_call("researcher", "web.fetch", [], url("example.com.evil.org", false, false)))
	not d.ask
	not d.allow
}

test_ip_literal_denied if {
	d := decide(tool_call("researcher", "web.fetch", [], url("93.184.216.34", true, false)))
	not d.allow
	some r in d.reasons
	contains(r, "IP address")
}

test_private_host_denied if {
	d := decide(tool_call("researcher", "web.fetch", [], url("intranet.example.com", false, true)))
	not d.allow
	some r in d.reasons
	contains(r, "private address")
}

test_private_name_allowed_only_by_cidr if {
	intranet := [{"arg": "url", "url": "https://wiki.corp/", "scheme": "https", "host": "wiki.corp", "ip": false, "private": true, "loopback": false, "addresses": ["10.9.8.7"]}]
	inp := json.patch(tool_call("researcher", "web.fetch", [], intranet), [{"op": "replace", "path": "/context/allowed_domains", "value": ["wiki.corp"]}])
	not decide(inp).ask
	cidr := json.patch(inp, [{"op": "replace", "path": "/context/allowed_cidrs", "value": ["10.0.0.0/8"]}])
	decide(cidr).ask
}

test_allowed_cidr_lets_ip_through if {
	inp := json.patch(tool_call("researcher", "web.fetch", [], url("10.1.2.3", true, true)), [{"op": "replace", "path": "/context/allowed_cidrs", "value": ["10.0.0.0/8"]}])
	decide(inp).ask
}

test_shell_asks_in_copilot if {
	d := decide(tool_call("coder", "exec.run", [], []))
	d.ask
	not d.allow
}

test_preapproved_scope_allows_shell if {
	inp := json.patch(tool_call("coder", "exec.run", [], []), [{"op": "replace", "path": "/context/approved", "value": [{"tool": "exec.run", "under": null}]}])
	decide(inp).allow
}

test_scope_under_folder if {
	approved := [{"tool": "fs.write", "under": "/home/u/project"}]
	inside := json.patch(tool_call("coder", "fs.write", [{"arg": "path", "resolved": "/home/u/project/a.txt"}], []), [
		{"op": "replace", "path": "/context/approved", "value": approved},
		{"op": "replace", "path": "/context/scratch", "value": false},
		{"op": "replace", "path": "/context/roots", "value": ["/home/u"]},
	])
	decide(inside).allow
	outside := json.patch(inside, [{"op": "replace", "path": "/action/paths", "value": [{"arg": "path", "resolved": "/home/u/other.txt"}]}])
	decide(outside).ask
}

test_write_outside_scratch_asks if {
	inp := json.patch(tool_call("coder", "fs.write", ws_path("a.txt"), []), [{"op": "replace", "path": "/context/scratch", "value": false}])
	d := decide(inp)
	d.ask
	contains(d.reasons[0], "write outside scratch")
}

test_auto_mode_denies_instead_of_asking if {
	inp := json.patch(tool_call("coder", "exec.run", [], []), [{"op": "replace", "path": "/actor/mode", "value": "auto"}])
	d := decide(inp)
	not d.allow
	not d.ask
	contains(d.reasons[0], "auto mode")
}

test_guide_mode_has_no_side_effects if {
	write := json.patch(tool_call("coder", "fs.write", ws_path("a.txt"), []), [{"op": "replace", "path": "/actor/mode", "value": "guide"}])
	not decide(write).allow
	read := json.patch(tool_call("coder", "fs.read", ws_path("a.txt"), []), [{"op": "replace", "path": "/actor/mode", "value": "guide"}])
	decide(read).allow
}

test_secret_needs_scope if {
	inp := json.patch(tool_call("coder", "fs.write", ws_path("a.txt"), []), [{"op": "replace", "path": "/context/data_labels", "value": ["secret"]}])
	not decide(inp).allow
	scoped := json.patch(inp, [{"op": "replace", "path": "/context/scopes", "value": ["secret"]}])
	decide(scoped).allow
}

test_pii_not_offprem if {
	call := {
		"actor": {"run": "r1", "task": "t1", "role": "coder", "mode": "copilot"},
		"action": {"kind": "model", "endpoint": {"name": "gpt", "locality": "cloud"}, "estimate": {"tokens": 10, "usd": 0.001}},
		"context": json.patch(base_ctx, [{"op": "replace", "path": "/data_labels", "value": ["pii"]}]),
	}
	d := decide(call)
	not d.allow
	contains(d.reasons[0], "off-prem")
	local := json.patch(call, [{"op": "replace", "path": "/action/endpoint/locality", "value": "local"}])
	decide(local).allow
}

test_quarantined_tool_denied if {
	inp := json.patch(tool_call("coder", "fs.read", ws_path("a"), []), [{"op": "replace", "path": "/context/quarantined/tools", "value": ["fs.read"]}])
	d := decide(inp)
	not d.allow
	contains(d.reasons[0], "quarantined")
}

test_rate_limit if {
	inp := json.patch(tool_call("coder", "exec.run", [], []), [{"op": "replace", "path": "/context/window/calls", "value": 30}])
	d := decide(inp)
	not d.allow
	not d.ask
	contains(d.reasons[0], "rate limit")
}

test_budget_ceiling if {
	call := {
		"actor": {"run": "r1", "task": "t1", "role": "coder", "mode": "copilot"},
		"action": {"kind": "model", "endpoint": {"name": "local", "locality": "local"}, "estimate": {"tokens": 950, "usd": 0}},
		"context": base_ctx,
	}
	d := decide(call)
	not d.allow
	contains(d.reasons[0], "task budget: tokens spent 100 + estimated 950 would exceed the limit 1000")
}

test_spending_above_threshold_asks if {
	call := {
		"actor": {"run": "r1", "task": "t1", "role": "coder", "mode": "copilot"},
		"action": {"kind": "model", "endpoint": {"name": "gpt", "locality": "cloud"}, "estimate": {"tokens": 10, "usd": 0.5}},
		"context": base_ctx,
	}
	decide(call).ask
}

test_deny_wins_over_ask if {
	d := decide(tool_call("coder", "exec.run", [{"arg": "cwd", "resolved": "/"}], []))
	not d.ask
	not d.allow
}

test_unresolvable_path_denied_with_its_problem if {
	d := decide(tool_call("coder", "fs.read", [{"arg": "path", "resolved": "", "problem": "path contains a NUL byte"}], []))
	not d.allow
	not d.ask
	d.reasons == ["path: path contains a NUL byte"]
}

test_goal_protected_file_is_not_written if {
	inp := json.patch(tool_call("coder", "fs.write", ws_path("test_stats.py"), []),
		[{"op": "add", "path": "/context/protected", "value": ["/runs/r1/workspace/test_stats.py"]}])
	d := decide(inp)
	not d.allow
	some r in d.reasons
	contains(r, "the goal keeps /runs/r1/workspace/test_stats.py as it is")
}

test_goal_protected_file_is_still_read_and_others_written if {
	protect := [{"op": "add", "path": "/context/protected", "value": ["/runs/r1/workspace/test_stats.py"]}]
	decide(json.patch(tool_call("coder", "fs.read", ws_path("test_stats.py"), []), protect)).allow
	decide(json.patch(tool_call("coder", "fs.write", ws_path("stats.py"), []), protect)).allow
}
