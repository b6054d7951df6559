import { Command } from 'commander';

interface Conn {
  url: string;
  user?: string;
}

/** Basic with MQPROBE_HTTP_PASSWORD when a user is given, else Bearer MQPROBE_HTTP_TOKEN: never a secret on the command line. */
function authorization(c: Conn): string | undefined {
  if (c.user !== undefined) {
    const password = process.env.MQPROBE_HTTP_PASSWORD;
    if (password === undefined) throw new Error('--user needs the password in the environment variable MQPROBE_HTTP_PASSWORD');
    return `Basic ${Buffer.from(`${c.user}:${password}`).toString('base64')}`;
  }
  const token = process.env.MQPROBE_HTTP_TOKEN;
  return token ? `Bearer ${token}` : undefined;
}

async function call(c: Conn, method: 'GET' | 'DELETE', path: string): Promise<unknown> {
  const auth = authorization(c);
  let res: Response;
  try {
    res = await fetch(new URL(path, c.url), { method, headers: auth ? { authorization: auth } : {} });
  } catch (err) {
    throw new Error(`cannot reach ${c.url}: ${(err as Error).message}`);
  }
  const body = (await res.json().catch(() => ({}))) as { error?: string };
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${body.error ?? res.statusText}`);
  return body;
}

/** `mqprobe bans list|remove`: the bans of a running broker, through its HTTP listener (GET /bans, DELETE /bans/<entity>). */
export function bansCommand(): Command {
  const cmd = new Command('bans').description("list or lift a running broker's detection bans (through its http_listener)");
  const common = (c: Command) =>
    c
      .option('--url <url>', 'the broker’s HTTP listener', 'http://127.0.0.1:8080')
      .option('-u, --user <name>', 'a detect_admin_user (password in MQPROBE_HTTP_PASSWORD; else a token in MQPROBE_HTTP_TOKEN)');
  const fail = (err: unknown) => {
    process.stderr.write(`mqprobe bans: ${(err as Error).message}\n`);
    process.exitCode = 1;
  };
  cmd.addCommand(
    common(new Command('list').description('one ban a line: entity, rule, until')).action(async (o: Conn) => {
      try {
        const { bans } = (await call(o, 'GET', '/bans')) as { bans: { entity: string; rule: string; until: string }[] };
        for (const b of bans) process.stdout.write(`${b.entity}\t${b.rule}\t${b.until}\n`);
      } catch (err) {
        fail(err);
      }
    }),
  );
  cmd.addCommand(
    common(new Command('remove').description('lift one ban').argument('<entity>', 'ip:<address>, client:<id> or user:<name>')).action(
      async (entity: string, o: Conn) => {
        try {
          await call(o, 'DELETE', `/bans/${encodeURIComponent(entity)}`);
          process.stdout.write(`lifted ${entity}\n`);
        } catch (err) {
          fail(err);
        }
      },
    ),
  );
  return cmd;
}
