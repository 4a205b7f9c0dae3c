// The words for a run's status. A run that `naestro worker`s execute (issue 20) says where it stands, as
// `naestro runs show` and the scale-out API do (naestro/distributed/status.py): "running on HOST:PID",
// "queued again (HOST:PID stopped)", "waiting for consent". Pure, so the unit tests check it without a DOM.

export interface StatusSource { status: string; status_text?: string; remote?: boolean }

/** The label for ``status`` (the live one, folded from the event stream) of a run last read as ``run``: the
 * server's sentence while the two agree, the bare status once the stream has moved past the last read. */
export function statusLabel(status: string, run: StatusSource): string {
  return status === run.status && run.status_text ? run.status_text : status;
}

/** Whether the run view must look again without an event: a worker that dies writes none, and only the run's
 * lock (read by the server) tells that its run is queued again; a queued run is taken without a word as well. */
export function needsPolling(run: StatusSource): boolean {
  return Boolean(run.remote) && ["queued", "planning", "running"].includes(run.status);
}
