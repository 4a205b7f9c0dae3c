package naestro.improve_test

import rego.v1

prompt_change := {"path": "roles.yaml", "action": "modify", "problem": "", "fields": ["coder.prompt"], "size": 100}

test_prompt_delta_on_roles_allowed if {
	data.naestro.improve.decision.allow with input as {"proposal": {"id": "p", "kind": "prompt_delta"}, "changes": [prompt_change]}
}

test_prompt_delta_may_add_a_test if {
	data.naestro.improve.decision.allow with input as {"proposal": {"id": "p", "kind": "prompt_delta"}, "changes": [prompt_change, {"path": "golden/run-1.json", "action": "add", "problem": "", "fields": [], "size": 10}]}
}

test_editing_a_test_denied if {
	not data.naestro.improve.decision.allow with input as {"proposal": {"id": "p", "kind": "prompt_delta"}, "changes": [{"path": "golden/run-1.json", "action": "delete", "problem": "", "fields": [], "size": 0}]}
}

test_policies_denied if {
	d := data.naestro.improve.decision with input as {"proposal": {"id": "p", "kind": "prompt_delta"}, "changes": [{"path": "policies/rego/gate.rego", "action": "modify", "problem": "", "fields": [], "size": 10}]}
	not d.allow
	some r in d.reasons
	contains(r, "protected")
}

test_tools_in_a_prompt_delta_denied if {
	d := data.naestro.improve.decision with input as {"proposal": {"id": "p", "kind": "prompt_delta"}, "changes": [{"path": "roles.yaml", "action": "modify", "problem": "", "fields": ["coder.prompt", "coder.tools"], "size": 100}]}
	not d.allow
	some r in d.reasons
	contains(r, "coder.tools")
}

test_loop_itself_denied if {
	not data.naestro.improve.decision.allow with input as {"proposal": {"id": "p", "kind": "tool_adapter"}, "changes": [{"path": "naestro/improve/loop.py", "action": "modify", "problem": "", "fields": [], "size": 10}]}
}

test_path_problem_denied if {
	not data.naestro.improve.decision.allow with input as {"proposal": {"id": "p", "kind": "prompt_delta"}, "changes": [{"path": "../x", "action": "add", "problem": "leaves the repository", "fields": [], "size": 1}]}
}

test_unknown_kind_denied if {
	not data.naestro.improve.decision.allow with input as {"proposal": {"id": "p", "kind": "policy"}, "changes": [prompt_change]}
}
