/**
 * Failpoints (etcd's gofail, in miniature): named places where a test can make a process
 * crash or stall at the worst moment, e.g. between making a collector mark and recording it
 * in the API. Off unless REWIND_FAILPOINTS is set ("name=kill", "name=sleep:2000", comma
 * separated); each fires once per process. Nothing else reads it.
 */
const specs = new Map<string, string>();
for (const part of (process.env.REWIND_FAILPOINTS ?? '').split(',')) {
  const [name, action] = part.split('=');
  if (name && action) specs.set(name.trim(), action.trim());
}

export async function failpoint(name: string): Promise<void> {
  const action = specs.get(name);
  if (!action) return;
  specs.delete(name);
  process.stderr.write(JSON.stringify({ t: new Date().toISOString(), level: 'warn', msg: 'failpoint', name, action }) + '\n');
  if (action === 'kill') process.kill(process.pid, 'SIGKILL');
  const sleep = /^sleep:(\d+)$/.exec(action);
  if (sleep) await new Promise((r) => setTimeout(r, Number(sleep[1])));
}
