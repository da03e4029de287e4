/**
 * Group commit: many committed transactions made durable by one sync of the log. A caller that
 * committed asks for `durable()`; it resolves once a sync that started after the call finished,
 * so every write committed before a sync began is on disk when that sync resolves.
 */

/**
 * Returns `durable()`: resolves after a run of `sync` that began no earlier than the call. At
 * most one sync runs at a time; callers that arrive while one runs share the next one, so the
 * number of syncs grows with time, not with writers. A failed sync rejects all who waited on it.
 */
export function groupCommit(sync: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  let queued: Promise<void> | undefined;
  const start = (): Promise<void> => {
    const p: Promise<void> = sync().finally(() => {
      if (running === p) running = undefined;
    });
    running = p;
    return p;
  };
  return () => {
    if (running === undefined && queued === undefined) return start();
    // The running sync may have begun before this caller's commit: wait for the next one.
    queued ??= (running ?? Promise.resolve())
      .catch(() => undefined)
      .then(() => {
        queued = undefined;
        return start();
      });
    return queued;
  };
}
