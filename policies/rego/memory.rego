# Memory recalls (issue 19): a read of memory slices is an action whose data scope is the slices it reads.
#
# input.action  {kind: "memory", tool: "memory.recall", arguments: {slices: [...], query}}
# data.naestro.memory.readable[role]: the slices (globs) a role may read; roles without an entry read nothing.
# Memory holds redacted facts of earlier runs; which role sees which is decided here, so a coder does not
# read the researcher's notes, and `naestro quarantine tool memory.recall` stops every recall.
package naestro.gate

import rego.v1

is_memory if input.action.kind == "memory"

action_name := input.action.tool if is_memory

memory_readable(slice) if {
	some pattern in data.naestro.memory.readable[input.actor.role]
	glob.match(pattern, [], slice)
}

deny contains {"rule": "memory_scope", "message": sprintf("role %q may not read memory slice %q (readable: %v)", [input.actor.role, s, object.get(data.naestro.memory.readable, input.actor.role, [])])} if {
	is_memory
	some s in input.action.arguments.slices
	not memory_readable(s)
}

deny contains {"rule": "memory_scope", "message": "a memory recall must name the slices it reads"} if {
	is_memory
	count(object.get(input.action.arguments, "slices", [])) == 0
}

deny contains {"rule": "quarantine", "message": sprintf("tool %q is quarantined (naestro quarantine)", [input.action.tool])} if {
	is_memory
	input.action.tool in input.context.quarantined.tools
}

obligations := {"max_results": data.naestro.memory.max_results} if is_memory
